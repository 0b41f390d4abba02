"""Built-in accounts: passwords, sign-in with lockout, dashboard sessions, administration.

Decisions, so a reader need not rediscover them:

- Passwords are hashed with argon2id (argon2-cffi's defaults) and never stored, logged
  or shown; at least MIN_PASSWORD_LENGTH characters.
- Five wrong passwords in a row lock the account for LOCK_MINUTES, with a sentence that
  says until when; every failed attempt waits FAILURE_DELAY_SECONDS before answering,
  and an unknown address costs the same hash as a known one, so neither guessing nor
  probing for addresses is cheap.
- A session is a random token kept by the browser in a cookie; the database keeps only
  its sha256. It ends after SESSION_IDLE_MINUTES without use, when the account is
  disabled or its password reset, and at sign-out, which ends every open session of the
  account: every tab and browser where it was used asks for the password again.
- The role is read from the account at every check, so a change of role or a disabled
  account takes effect on the next click, not at the next sign-in.
- The last active admin can be neither disabled nor demoted: someone must be able to
  manage the accounts.
- With AUTH_MODE=oidc an account without a password names the role of an identity from
  the company's provider; otherwise the OIDC_* lists decide (`oidc_actor`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, Role, parse_role, require
from billing.accounts.audit import Action
from billing.core.errors import OperatorError
from billing.core.i18n import LANGUAGES, _, is_language
from billing.core.settings import Settings, get_settings
from db import accounts as accounts_db
from db.accounts import AccountRow

AUTH_MODES = ("accounts", "oidc")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack
FAILURES_BEFORE_LOCK = 5
LOCK_MINUTES = 15
FAILURE_DELAY_SECONDS = 1.0
SESSION_TOUCH_SECONDS = 60  # last_seen_at is written at most this often per session...
SESSION_TOUCH_SHARE = 0.1  # ...and at most a tenth of the idle limit apart

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_hasher = PasswordHasher()
# Verified against when the address is unknown, so that answer takes as long as any.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class SignInRefused(OperatorError):
    """A sign-in that did not succeed; the message is safe to show to whoever tried."""

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message, title=title if title is not None else _("Not signed in"))


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: Role
    disabled: bool
    has_password: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime
    created_by: str

    @classmethod
    def from_row(cls, row: AccountRow) -> Account:
        return cls(
            id=row["id"],
            email=row["email"],
            role=Role(row["role"]),
            disabled=row["disabled_at"] is not None,
            has_password=row["password_hash"] is not None,
            locked_until=row["locked_until"],
            last_sign_in_at=row["last_sign_in_at"],
            created_at=row["created_at"],
            created_by=row["created_by"],
        )


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: who, and the token the browser keeps for the session."""

    actor: Actor
    token: str


def normalise_email(email: str) -> str:
    value = (email or "").strip().lower()
    if not _EMAIL.match(value) or ".." in value:
        raise OperatorError(
            _("{email} is not an e-mail address.").format(email=repr(email)),
            title=_("Invalid e-mail"),
        )
    return value


def check_password(password: str) -> str:
    """The password as given, if it is acceptable; else a sentence saying why not."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise OperatorError(
            _("The password needs at least {count} characters.").format(count=MIN_PASSWORD_LENGTH),
            title=_("Password too short"),
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OperatorError(
            _("The password may have at most {count} characters.").format(
                count=MAX_PASSWORD_LENGTH
            ),
            title=_("Password too long"),
        )
    return password


def _hash(password: str) -> str:
    return _hasher.hash(check_password(password))


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- The first administrator ------------------------------------------------------------


def needs_first_admin(engine: Engine) -> bool:
    """True on a fresh install: no account at all yet."""
    with engine.connect() as conn:
        return not accounts_db.has_accounts(conn)


def create_first_admin(engine: Engine, *, email: str, password: str) -> Account:
    """Create the first account, an admin; refused as soon as any account exists."""
    email = normalise_email(email)
    password_hash = _hash(password)
    with engine.begin() as conn:
        accounts_db.lock_first_account_creation(conn)
        if accounts_db.has_accounts(conn):
            raise OperatorError(
                _("An administrator already exists; sign in, or ask them for an account."),
                title=_("Already set up"),
            )
        account_id = accounts_db.insert_account(
            conn, email=email, role=Role.ADMIN, password_hash=password_hash, created_by=email
        )
        audit.record(
            conn,
            actor=email,
            action=Action.ACCOUNT_CREATE,
            subject=email,
            details={"role": Role.ADMIN.value, "first_admin": True},
        )
        return _account(conn, email, account_id)


# --- Administration (admins, or the command line) ----------------------------------------


def list_accounts(engine: Engine, *, actor: Actor) -> list[Account]:
    require(actor, Permission.MANAGE_ACCOUNTS)
    with engine.connect() as conn:
        return [Account.from_row(row) for row in accounts_db.all_accounts(conn)]


def create_account(
    engine: Engine, *, actor: Actor, email: str, role: str, password: str | None
) -> Account:
    """A new account; without a password it can only sign in through the company's OIDC."""
    require(actor, Permission.MANAGE_ACCOUNTS)
    email = normalise_email(email)
    role = parse_role(role)
    password_hash = None if password is None else _hash(password)
    with engine.begin() as conn:
        if accounts_db.account_by_email(conn, email) is not None:
            raise OperatorError(
                _("An account for {email} already exists.").format(email=email),
                title=_("Already exists"),
            )
        account_id = accounts_db.insert_account(
            conn, email=email, role=role, password_hash=password_hash, created_by=actor.name
        )
        audit.record(
            conn,
            actor=actor,
            action=Action.ACCOUNT_CREATE,
            subject=email,
            details={"role": role.value, "password": password_hash is not None},
        )
        return _account(conn, email, account_id)


def disable_account(engine: Engine, *, actor: Actor, email: str) -> Account:
    """Disable an account and end its sessions at once."""
    require(actor, Permission.MANAGE_ACCOUNTS)
    with engine.begin() as conn:
        account = _locked_account(conn, email)
        if account.disabled:
            raise OperatorError(
                _("{email} is already disabled.").format(email=account.email),
                title=_("Nothing to do"),
            )
        if account.role is Role.ADMIN:
            _keep_an_admin(conn, account.email)
        accounts_db.update_account(conn, account.id, disabled_at=accounts_db.now(conn))
        ended = accounts_db.end_sessions(conn, account.id)
        audit.record(
            conn,
            actor=actor,
            action=Action.ACCOUNT_DISABLE,
            subject=account.email,
            details={"sessions_ended": ended},
        )
        return _account(conn, account.email, account.id)


def set_role(engine: Engine, *, actor: Actor, email: str, role: str) -> Account:
    require(actor, Permission.MANAGE_ACCOUNTS)
    new_role = parse_role(role)
    with engine.begin() as conn:
        account = _locked_account(conn, email)
        if account.role is new_role:
            return account
        if account.role is Role.ADMIN and not account.disabled:
            _keep_an_admin(conn, account.email)
        accounts_db.update_account(conn, account.id, role=new_role.value)
        audit.record(
            conn,
            actor=actor,
            action=Action.ACCOUNT_SET_ROLE,
            subject=account.email,
            details={"from": account.role.value, "to": new_role.value},
        )
        return _account(conn, account.email, account.id)


def reset_password(engine: Engine, *, actor: Actor, email: str, password: str) -> Account:
    """A new password: the lock is lifted, the account enabled, its sessions ended."""
    require(actor, Permission.MANAGE_ACCOUNTS)
    password_hash = _hash(password)
    with engine.begin() as conn:
        account = _locked_account(conn, email)
        accounts_db.update_account(
            conn,
            account.id,
            password_hash=password_hash,
            failed_attempts=0,
            locked_until=None,
            disabled_at=None,
        )
        ended = accounts_db.end_sessions(conn, account.id)
        audit.record(
            conn,
            actor=actor,
            action=Action.ACCOUNT_RESET_PASSWORD,
            subject=account.email,
            details={"sessions_ended": ended, "enabled": account.disabled},
        )
        return _account(conn, account.email, account.id)


def _locked_account(conn: Connection, email: str) -> Account:
    row = accounts_db.account_by_email(conn, normalise_email(email), for_update=True)
    if row is None:
        raise OperatorError(
            _("There is no account for {email}.").format(email=email.strip()),
            title=_("Not found"),
        )
    return Account.from_row(row)


def _account(conn: Connection, email: str, account_id: int) -> Account:
    row = accounts_db.account_by_email(conn, email)
    assert row is not None and row["id"] == account_id
    return Account.from_row(row)


def _keep_an_admin(conn: Connection, email: str) -> None:
    """Refuse to disable or demote `email`, an active admin, when it is the last one."""
    if accounts_db.count_active_admins(conn) <= 1:
        raise OperatorError(
            _(
                "{email} is the last active admin: make another account admin first, "
                "so someone can still manage accounts."
            ).format(email=email),
            title=_("Not allowed"),
        )


# --- Signing in, sessions, signing out ----------------------------------------------------


def sign_in(engine: Engine, *, email: str, password: str) -> SignedIn:
    """Check an e-mail and password; on success open a session. Every attempt is audited."""
    address = (email or "").strip().lower()[:254]
    with engine.begin() as conn:
        row = accounts_db.account_by_email(conn, address, for_update=True) if address else None
        refusal = _refusal(conn, row, password or "")
        if refusal is None:
            assert row is not None
            return _open_session(conn, row, password)
    # The failure is committed before waiting: the count and the lock hold whatever happens.
    time.sleep(FAILURE_DELAY_SECONDS)
    raise refusal


def _refusal(conn: Connection, row: AccountRow | None, password: str) -> SignInRefused | None:
    """None when the password is right; else the refusal, with the failure recorded."""
    wrong = SignInRefused(_("Wrong e-mail or password."))
    email = row["email"] if row else ""
    if row is None or row["password_hash"] is None or row["disabled_at"] is not None:
        _verify(_DUMMY_HASH, password)
        reason = "unknown" if row is None else ("disabled" if row["disabled_at"] else "no password")
        _record_failure(conn, email or "(unknown)", reason)
        return wrong
    now = accounts_db.now(conn)
    if row["locked_until"] is not None and row["locked_until"] > now:
        _record_failure(conn, email, "locked")
        return _locked(row["locked_until"])
    if _verify(row["password_hash"], password):
        return None
    attempts = row["failed_attempts"] + 1
    if attempts < FAILURES_BEFORE_LOCK:
        accounts_db.update_account(conn, row["id"], failed_attempts=attempts)
        _record_failure(conn, email, "wrong password", attempts=attempts)
        return wrong
    until = now + timedelta(minutes=LOCK_MINUTES)
    accounts_db.update_account(conn, row["id"], failed_attempts=0, locked_until=until)
    _record_failure(conn, email, "wrong password", attempts=attempts)
    audit.record(
        conn,
        actor=email,
        action=Action.LOCKED,
        subject=email,
        details={"until": until.isoformat(), "minutes": LOCK_MINUTES},
    )
    return _locked(until)


def _locked(until: datetime) -> SignInRefused:
    local = until.astimezone(ZoneInfo(get_settings().timezone))
    return SignInRefused(
        _(
            "This account is locked after {count} wrong passwords in a row. "
            "Try again after {time}, or ask an administrator to reset the password."
        ).format(count=FAILURES_BEFORE_LOCK, time=f"{local:%H:%M}"),
        title=_("Account locked"),
    )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:MAX_PASSWORD_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _record_failure(conn: Connection, email: str, reason: str, **details: Any) -> None:
    audit.record(
        conn,
        actor=email,
        action=Action.SIGN_IN_FAILED,
        subject=email,
        details={"reason": reason, **details},
    )


def _open_session(conn: Connection, row: AccountRow, password: str) -> SignedIn:
    changes: dict[str, Any] = {
        "failed_attempts": 0,
        "locked_until": None,
        "last_sign_in_at": accounts_db.now(conn),
    }
    if row["password_hash"] is not None and _hasher.check_needs_rehash(row["password_hash"]):
        changes["password_hash"] = _hasher.hash(password)  # argon2's parameters were raised
    accounts_db.update_account(conn, row["id"], **changes)
    token = secrets.token_urlsafe(32)
    accounts_db.insert_session(conn, account_id=row["id"], token_sha256=_token_digest(token))
    audit.record(conn, actor=row["email"], action=Action.SIGN_IN, subject=row["email"], details={})
    return SignedIn(actor=Actor(row["email"], Role(row["role"])), token=token)


def resume_session(engine: Engine, token: str, *, settings: Settings | None = None) -> Actor | None:
    """The actor of a session still valid (not ended, not idle, account enabled), or None.

    Each use counts as activity: the idle clock starts again (written once a minute).
    """
    if not token:
        return None
    settings = settings or get_settings()
    with engine.begin() as conn:
        row = accounts_db.open_session(
            conn,
            token_sha256=_token_digest(token),
            idle_minutes=settings.session_idle_minutes,
        )
        if row is None:
            return None
        idle = (accounts_db.now(conn) - row["last_seen_at"]).total_seconds()
        limit = settings.session_idle_minutes * 60
        if idle >= min(SESSION_TOUCH_SECONDS, limit * SESSION_TOUCH_SHARE):
            accounts_db.touch_session(conn, row["session_id"])
        return Actor(row["email"], Role(row["role"]))


def sign_out(engine: Engine, token: str) -> None:
    """End every open session of the token's account (every tab, every browser)."""
    if not token:
        return
    with engine.begin() as conn:
        account = accounts_db.account_of_session(conn, _token_digest(token))
        if account is None:
            return
        ended = accounts_db.end_sessions(conn, account["id"])
        audit.record(
            conn,
            actor=account["email"],
            action=Action.SIGN_OUT,
            subject=account["email"],
            details={"sessions_ended": ended},
        )


# --- The company's identity provider -------------------------------------------------------


def _listed(email: str, entries: str) -> bool:
    domain = email.rpartition("@")[2]
    for entry in (e.strip().lower() for e in entries.split(",")):
        if entry and (entry == email or (entry.startswith("@") and entry[1:] == domain)):
            return True
    return False


def oidc_role(engine: Engine, *, email: str, settings: Settings | None = None) -> Role | None:
    """The role of an identity vouched for by the provider: its account, else the lists."""
    settings = settings or get_settings()
    address = (email or "").strip().lower()
    if not address:
        return None
    with engine.connect() as conn:
        row = accounts_db.account_by_email(conn, address)
    if row is not None:
        return None if row["disabled_at"] is not None else Role(row["role"])
    for role, entries in (
        (Role.ADMIN, settings.oidc_admins),
        (Role.OPERATOR, settings.oidc_operators),
        (Role.VIEWER, settings.oidc_viewers),
    ):
        if _listed(address, entries):
            return role
    return None


def oidc_actor(
    engine: Engine, *, email: str, email_verified: bool = True, settings: Settings | None = None
) -> Actor:
    """The actor for a provider identity, or SignInRefused (audited) when it has no role.

    An address the provider says it has not verified (`email_verified: false`, as Keycloak,
    Okta or Auth0 send) is refused: anyone could otherwise claim one of a listed domain.
    """
    role = oidc_role(engine, email=email, settings=settings) if email_verified else None
    address = (email or "").strip().lower() or "(no e-mail)"
    if role is None:
        audit.record_now(
            engine,
            actor=address,
            action=Action.SIGN_IN_FAILED,
            subject=address,
            details={"reason": "no role" if email_verified else "unverified", "method": "oidc"},
        )
        raise SignInRefused(
            _(
                "{email} has no access to this dashboard. Ask an administrator to give "
                "your account a role."
            ).format(email=address)
            if email_verified
            else _("The identity provider has not verified {email}; verify it there first.").format(
                email=address
            )
        )
    return Actor(address, role)


# --- Each account's language ----------------------------------------------------------------


def account_language(engine: Engine, email: str) -> str | None:
    """The language the account chose to read the dashboard in; None: the default."""
    with engine.connect() as conn:
        return accounts_db.account_language(conn, email)


def set_language(engine: Engine, *, actor: Actor, language: str) -> bool:
    """Keep the actor's own language with their account (any role chooses its own),
    audited; False when the identity has no account to keep it (a provider's list)."""
    if not is_language(language):
        raise OperatorError(
            _("{language} is not a language of the dashboard ({languages}).").format(
                language=repr(language), languages=", ".join(LANGUAGES)
            ),
            title=_("Unknown language"),
        )
    with engine.begin() as conn:
        before = accounts_db.account_language(conn, actor.name)
        if not accounts_db.set_account_language(conn, actor.name, language):
            return False
        if before != language:
            audit.record(
                conn,
                actor=actor,
                action=Action.ACCOUNT_SET_LANGUAGE,
                subject=actor.name,
                details={"from": before or "default", "to": language},
            )
        return True
