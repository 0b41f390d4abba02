"""Who is using this browser tab: the sign-in screens, the session cookie, sign-out.

app.py calls `signed_in_actor()` before any page runs: it returns the acting identity or
draws the sign-in (or first-administrator) screen and stops the script. Pages read the
identity with `current_actor()`. The rules (passwords, lockout, idle sessions, roles)
live in billing.accounts.users; this module only draws them and keeps the browser's cookie.
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAuthError

from billing.accounts.access import Actor
from billing.accounts.audit import Action, record_now
from billing.accounts.users import (
    AUTH_MODES,
    MIN_PASSWORD_LENGTH,
    SignInRefused,
    account_language,
    create_first_admin,
    needs_first_admin,
    oidc_actor,
    resume_session,
    set_language,
    sign_in,
    sign_out,
)
from billing.core.errors import OperatorError
from billing.core.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    _,
    current_language,
    is_language,
    use_language,
)
from billing.core.settings import get_settings
from pages._shared import engine, plain, role_name

COOKIE = "billing_session"
COOKIE_DAYS = 30
_ACTOR, _TOKEN = "actor", "session_token"
# The language this tab is shown in: the switch's choice, else the account's, else LANGUAGE.
_LANGUAGE = "language"


def current_actor() -> Actor:
    """The signed-in identity of this run; a script reached without one renders nothing."""
    use_language(st.session_state.get(_LANGUAGE))  # a page opened on its own too
    actor = st.session_state.get(_ACTOR)
    if not isinstance(actor, Actor):
        st.stop()
    return actor


def signed_in_actor() -> Actor | None:
    """The identity using this tab, checked against the database on every run; None for
    a visitor, who must be shown `sign_in_screen` and nothing else. Sets the language
    of the run: the tab's choice, else the account's, else LANGUAGE."""
    use_language(st.session_state.get(_LANGUAGE))
    mode = get_settings().auth_mode
    if mode not in AUTH_MODES:
        st.error(
            _("AUTH_MODE must be {modes}, not {mode}; nobody can sign in.").format(
                modes=_(" or ").join(AUTH_MODES), mode=repr(mode)
            )
        )
        st.stop()
    actor = _oidc_actor() if mode == "oidc" else _password_actor()
    if actor is None:
        st.session_state.pop(_ACTOR, None)
        st.session_state.pop(_LANGUAGE, None)  # the next account reads in its own
    else:
        st.session_state[_ACTOR] = actor
        _use_account_language(actor)
    return actor


def _use_account_language(actor: Actor) -> None:
    """The account's language, read once per tab (the switch keeps it up to date)."""
    if not is_language(st.session_state.get(_LANGUAGE)):
        st.session_state[_LANGUAGE] = account_language(engine(), actor.name) or current_language()
    use_language(st.session_state[_LANGUAGE])


def language_switch(actor: Actor) -> None:
    """The sidebar's choice of language: the page changes at once, and the account keeps
    it for every browser where it signs in."""
    shown = current_language()
    chosen = st.sidebar.selectbox(
        _("Language"), LANGUAGES, index=LANGUAGES.index(shown), format_func=LANGUAGE_NAMES.get
    )
    if chosen == shown:
        return
    st.session_state[_LANGUAGE] = chosen
    set_language(engine(), actor=actor, language=chosen)
    st.rerun()


def sign_in_screen() -> None:
    """What a visitor sees: the first-administrator form on a fresh install, else the
    sign-in form (or the company account's button); then the script stops."""
    if get_settings().auth_mode == "oidc":
        _oidc_sign_in_screen()
    elif needs_first_admin(engine()):
        _first_admin_screen()
    else:
        _sign_in_screen(expired=st.session_state.pop("expired", False))
    st.stop()


def sign_out_button(actor: Actor) -> None:
    st.sidebar.caption(
        _("Signed in as {name} ({role})").format(name=plain(actor.name), role=role_name(actor.role))
    )
    if st.sidebar.button(_("Sign out"), icon=":material/logout:"):
        st.session_state.pop(_ACTOR, None)
        st.session_state.pop(_LANGUAGE, None)
        st.session_state["signed_out"] = True
        if get_settings().auth_mode == "oidc":
            record_now(
                engine(),
                actor=actor,
                action=Action.SIGN_OUT,
                subject=actor.name,
                details={"method": "oidc"},
            )
            st.logout()  # a redirect for the browser: a rerun now would clear it unsent
            st.stop()
        sign_out(engine(), st.session_state.pop(_TOKEN, "") or _cookie_token())
        st.rerun()


# --- Built-in accounts -------------------------------------------------------------------


def _cookie_token() -> str:
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) else ""


def _password_actor() -> Actor | None:
    token = st.session_state.get(_TOKEN) or (
        "" if st.session_state.get("signed_out") else _cookie_token()
    )
    actor = resume_session(engine(), token) if token else None
    if actor is not None:
        st.session_state[_TOKEN] = token
        if token != _cookie_token():
            _set_cookie(token)
        return actor
    st.session_state.pop(_TOKEN, None)
    if _cookie_token():
        _set_cookie("")  # ended, idle or unknown: the browser forgets it
    if token and not st.session_state.get("signed_out"):
        st.session_state["expired"] = True
    return None


def _sign_in_screen(*, expired: bool) -> None:
    st.title(_("Sign in"))
    if expired:
        st.info(_("Your session ended (signed out elsewhere, or unused for a while)."))
    elif st.session_state.pop("signed_out", False):
        st.success(_("Signed out."))
    with st.form("sign_in"):
        email = st.text_input(_("E-mail"), autocomplete="username")
        password = st.text_input(_("Password"), type="password", autocomplete="current-password")
        submitted = st.form_submit_button(_("Sign in"), type="primary")
    if submitted:
        try:
            signed = sign_in(engine(), email=email, password=password)
        except SignInRefused as refusal:
            st.error(f"**{refusal.title}.** {refusal.message}")
            return
        _start(signed.token)


def _first_admin_screen() -> None:
    st.title(_("Create the first administrator"))
    st.write(
        _(
            "No account exists yet. The account created here is an administrator: it can add "
            "the other accounts. This screen is shown only until one account exists."
        )
    )
    with st.form("first_admin"):
        email = st.text_input(_("E-mail"), autocomplete="username")
        password = st.text_input(
            _("Password (at least {count} characters)").format(count=MIN_PASSWORD_LENGTH),
            type="password",
            autocomplete="new-password",
        )
        again = st.text_input(_("The password again"), type="password", autocomplete="new-password")
        submitted = st.form_submit_button(_("Create the administrator"), type="primary")
    if not submitted:
        return
    if password != again:
        st.error(_("The two passwords differ; type them again."))
        return
    try:
        create_first_admin(engine(), email=email, password=password)
        signed = sign_in(engine(), email=email, password=password)
    except OperatorError as refusal:
        st.error(f"**{refusal.title}.** {refusal.message}")
        return
    _start(signed.token)


def _start(token: str) -> None:
    st.session_state[_TOKEN] = token
    st.session_state.pop("signed_out", None)
    st.rerun()


def _set_cookie(token: str) -> None:
    """Keep (or, with "", forget) the session token in this browser.

    The token is URL-safe base64 (billing.accounts.users), so it is written as is. The browser
    may keep it for COOKIE_DAYS: whether the session is still open (not idle, not signed
    out) is the database's answer at every run, not the cookie's. Secure over HTTPS.
    """
    max_age = COOKIE_DAYS * 86_400 if token else 0
    st.html(
        "<script>document.cookie = "
        f"'{COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict' + "
        "(location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


# --- The company's identity provider (AUTH_MODE=oidc) --------------------------------------


def _oidc_actor() -> Actor | None:
    if "is_logged_in" not in st.user:  # Streamlit found no [auth] section
        st.error(
            _(
                "AUTH_MODE is oidc but Streamlit found no [auth] section in its secrets "
                "(STREAMLIT_SECRETS_FILES or .streamlit/secrets.toml); nobody can sign in."
            )
        )
        st.stop()
    if not st.user.get("is_logged_in"):
        return None
    email = str(st.user.get("email") or "")
    refusal = st.session_state.get("oidc_refusal")
    if refusal is not None and refusal[0] == email:
        return None  # refused already in this browser session: audited once
    try:
        actor = oidc_actor(
            engine(), email=email, email_verified=st.user.get("email_verified") is not False
        )
    except SignInRefused as refused:
        st.session_state["oidc_refusal"] = (email, refused)
        return None
    if st.session_state.get("oidc_signed_in") != actor.name:  # once per browser session
        st.session_state["oidc_signed_in"] = actor.name
        record_now(
            engine(),
            actor=actor,
            action=Action.SIGN_IN,
            subject=actor.name,
            details={"method": "oidc"},
        )
    return actor


def _oidc_sign_in_screen() -> None:
    st.title(_("Sign in"))
    refusal = st.session_state.get("oidc_refusal")
    if refusal is not None and st.user.get("is_logged_in"):
        st.error(f"**{plain(refusal[1].title)}.** {plain(refusal[1].message)}")
        if st.button(_("Sign out of the company account")):
            st.session_state.pop("oidc_refusal", None)
            st.logout()
            st.stop()
        return
    if st.session_state.pop("signed_out", False):
        st.success(_("Signed out."))
    st.write(_("Sign in with your company account."))
    if st.button(_("Sign in with the company account"), type="primary"):
        try:
            st.login()
        except StreamlitAuthError as exc:
            st.error(
                "**{title}** {detail}".format(
                    title=_("The identity provider is not configured."), detail=plain(exc)
                )
            )
            return
        st.stop()  # the redirect must reach the browser before any rerun
