"""What every page needs: the database engines (migrated once) and how errors are shown."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from streamlit.runtime.pages_manager import PagesManager

from billing.accounts.access import ROLE_NAMES, Actor, Permission, Role
from billing.core.errors import OperatorError
from billing.core.i18n import N_, _

log = logging.getLogger("billing.dashboard")


def _use_app_navigation() -> None:
    """Route every page through app.py's st.navigation, even when a link opens it first.

    Streamlit treats an app with a `pages/` folder as an old-style multipage app until
    app.py has called st.navigation once. So after a restart, a link straight to a page
    (`/Charges?status=overdue`, a bookmark) ran that file on its own: no page set-up, the
    sidebar listing every file of pages/ (these helpers included), for every session until
    someone opened the home page. Switching the flag off and rerunning runs app.py
    instead, which opens the same page (it has the same URL path either way).
    """
    # A Streamlit internal (pinned version; the browser test checks the sidebar): should it
    # go away in an upgrade, the pages still work and only this repair is lost.
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# Spinners said once, when the server starts: in the default language (LANGUAGE).
STARTING = N_("Starting the database…")


@st.cache_resource(show_spinner=_(STARTING))
def import_engine() -> Engine:
    """The engine for imports: no statement or lock limit (a large file runs for minutes,
    and an import waits for the one before it to finish)."""
    from db.engine import get_engine
    from db.migrations import migrate_database

    engine = get_engine()
    migrate_database()
    return engine


@st.cache_resource(show_spinner=_(STARTING))
def engine() -> Engine:
    """The engine for actions and for reads that must see the latest data: the primary,
    a lock waited for past DATABASE_LOCK_TIMEOUT_SECONDS given up."""
    from db.engine import dashboard_write_limits

    return dashboard_write_limits(import_engine())


# A read replica replays the primary's changes a moment later. For this long after a
# session changed something, its reads go to the primary: the page shown right after an
# action (the charge after Mark paid, the accounts after Add) shows what it just did.
READ_YOUR_WRITES_SECONDS = 10.0
_WROTE_AT = "wrote_at"


@st.cache_resource(show_spinner=_(STARTING))
def _replica() -> Engine:
    from db.engine import dashboard_read_limits, get_read_engine

    engine()  # the schema is migrated, or checked, on the primary first
    return dashboard_read_limits(get_read_engine())


def read_engine() -> Engine:
    """The engine for what only reads: the read replica (DATABASE_READ_URL) when there
    is one, else the same as engine(); the primary for a while after this session wrote
    (see wrote()). Writes, and reads that must see the latest data, use engine()."""
    wrote_at = st.session_state.get(_WROTE_AT)
    if wrote_at is not None and time.monotonic() - wrote_at < READ_YOUR_WRITES_SECONDS:
        return engine()
    return _replica()


def wrote() -> None:
    """Call after an action changed data: this session reads from the primary for a while."""
    st.session_state[_WROTE_AT] = time.monotonic()


def role_name(role: Role | str) -> str:
    """A role as the reader says it ("operador"); its value stays English in the database."""
    return _(ROLE_NAMES.get(Role(role), str(role)))


# Values stored in English (imports, notices, retornos), shown in the reader's language.
STORED_WORDS = (
    *(N_("running"), N_("done"), N_("failed"), N_("refused")),
    *(N_("queued"), N_("sending"), N_("sent"), N_("skipped")),
)


def shown_word(value: object) -> object:
    """A stored word (a status) in the reader's language; anything else as it is."""
    return _(value) if isinstance(value, str) and value else value


def translated_headers(frame: pd.DataFrame) -> pd.DataFrame:
    """A table whose column names are English labels (the domain's), in the reader's language."""
    return frame.rename(columns=_)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&@])")


def plain(text: object) -> str:
    """Text from a file, a link or a message, escaped so Markdown shows it as typed: no
    link, no emphasis, no heading is ever made of what someone else wrote."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def whole_number(text: str) -> int | None:
    """A positive id typed in a link (`?charge=12`), or None for anything else ('²', '-1')."""
    text = text.strip()
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    return None


@contextmanager
def operator_errors(*, when_database_lost: str | None = None) -> Iterator[None]:
    """Show an operator's mistake as a sentence, a database that is down or too slow as a
    sentence (see database_trouble_shown; `when_database_lost`, if given, is said instead
    when the database went away mid-way), and a bug as a short note; log the bug."""
    try:
        yield
    except OperatorError as exc:
        st.error(f"**{plain(_(exc.title))}.** {plain(exc.message)}")  # a default title: _()
    except Exception as exc:
        if when_database_lost and _database_lost(exc):
            log.warning("the database went away: %s", str(exc).splitlines()[0])
            st.error(when_database_lost)
            return
        if _show_database_trouble(exc):
            return
        log.exception("dashboard action failed")
        st.error(
            _(
                "Something went wrong on our side and nothing was changed. "
                "The details are in the server log; please tell the team."
            )
        )


# --- When the database is down or too slow ------------------------------------------------

# A page that met a database that is not answering tries again this often, by itself.
DATABASE_RETRY_SECONDS = 5
DATABASE_DOWN = N_("The database is not answering; retrying…")
_DOWN_SINCE = "database_down_since"


@contextmanager
def database_trouble_shown() -> Iterator[None]:
    """Around a whole page (app.py): a database that is down, restarting or too slow shows
    a sentence instead of an exception, and a page that met a database down reruns by
    itself once it answers again. Anything else goes on up."""
    try:
        yield
    except Exception as exc:
        if not _show_database_trouble(exc):
            raise


def _show_database_trouble(exc: BaseException) -> bool:
    """Show what `exc` means if it is the database's trouble; False if it is not."""
    from db.engine import DatabaseTrouble, database_trouble

    trouble = database_trouble(exc)
    if trouble is None:
        return False
    if trouble is DatabaseTrouble.TOO_SLOW:
        log.warning("a dashboard query was stopped: %s", str(exc).splitlines()[0])
        st.warning(_too_slow_message())
        return True
    log.warning("the database is not answering: %s", str(exc).splitlines()[0])
    st.warning(_(DATABASE_DOWN), icon=":material/sync_problem:")
    st.caption(
        _(
            "The page comes back by itself once the database answers again; nothing you did "
            "was lost. If this lasts, tell the team."
        )
    )
    st.session_state[_DOWN_SINCE] = time.monotonic()
    _rerun_when_the_database_answers()
    return True


def _database_lost(exc: BaseException) -> bool:
    from db.engine import DatabaseTrouble, database_trouble

    return database_trouble(exc) is DatabaseTrouble.UNAVAILABLE


def _too_slow_message() -> str:
    from billing.core.settings import get_settings

    limit = get_settings().dashboard_statement_seconds
    return _(
        "This took longer than the dashboard waits ({limit} s) and was stopped; nothing "
        "was changed. Narrow the filters, or try again in a moment: the database may be "
        "busy with an import."
    ).format(limit=limit)


@st.fragment(run_every=DATABASE_RETRY_SECONDS)
def _rerun_when_the_database_answers() -> None:
    """Every few seconds, while the message is on the screen: once the database answers,
    the whole page runs again. (Not on the run that drew the message: a database that
    answers a ping but not the page would otherwise rerun it without pause.)"""
    since = st.session_state.get(_DOWN_SINCE)
    if since is None or time.monotonic() - since < DATABASE_RETRY_SECONDS * 0.8:
        return
    if _database_answers():
        st.session_state.pop(_DOWN_SINCE, None)
        st.rerun(scope="app")


def _database_answers() -> bool:
    from db.engine import database_trouble

    try:
        with engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        if database_trouble(exc) is None:
            raise
        return False
    return True


_REVEALED = "revealed_document"  # (debtor id, whole CPF/CNPJ): one at a time


def shown_document(debtor_id: int, masked: str) -> str:
    """The debtor's CPF/CNPJ as this tab may show it: whole only right after a reveal."""
    revealed = st.session_state.get(_REVEALED)
    return revealed[1] if revealed and revealed[0] == debtor_id else masked


def reveal_button(actor: Actor, debtor_id: int) -> None:
    """For operators: show one whole CPF/CNPJ (audited); the previous one is hidden again."""
    from billing.charges.browsing import reveal_government_id

    if not actor.can(Permission.REVEAL_DOCUMENT):
        return
    revealed = st.session_state.get(_REVEALED)
    if revealed and revealed[0] == debtor_id:
        if st.button(_("Hide the CPF/CNPJ"), key=f"hide-{debtor_id}"):
            st.session_state.pop(_REVEALED, None)
            st.rerun()
        return
    if st.button(
        _("Show the whole CPF/CNPJ"),
        key=f"reveal-{debtor_id}",
        help=_("Each time a whole CPF/CNPJ is shown, it is recorded in the audit trail."),
    ):
        with operator_errors():
            whole = reveal_government_id(engine(), actor=actor, debtor_id=debtor_id)
            wrote()  # an audit row: the Audit page, opened next, lists it
            st.session_state[_REVEALED] = (debtor_id, whole)
            st.rerun()


def rejected_rows_button(actor: Actor, import_id: int) -> None:
    """The button that downloads an import's rejected rows, with their reasons.

    The CSV is written by the database only when the button is clicked (the callable runs
    outside the script, so the engine is captured now).
    """
    from billing.imports.service import rejected_rows_csv

    current_engine = engine()
    st.download_button(
        _("Download the rejected rows (CSV with reasons)"),
        data=lambda: rejected_rows_csv(current_engine, actor=actor, import_id=import_id),
        on_click="ignore",
        file_name=f"rejected-import-{import_id}.csv",
        mime="text/csv",
    )


_use_app_navigation()  # every page imports this module first


def uploader_in_language(*, max_mb: int, kinds: str = "") -> None:
    """Streamlit draws its file uploader's button ("Upload") and its limit line ("300MB per
    file • CSV") in English whatever the page's language, and the limit is its transport
    limit, not ours: both are replaced here, through CSS, by our own words."""
    limit = _("Up to {size} MB per file").format(size=max_mb)
    limit += f" · {kinds}" if kinds else ""
    button = '[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p'
    line = '[data-testid="stFileUploaderDropzoneInstructions"] span'
    css = "".join(
        f"{selector}{{font-size:0}}{selector}::after{{content:{_css_string(text)};font-size:{size}}}"
        for selector, text, size in (
            (button, _("Choose a file"), "0.875rem"),
            (line, limit, "0.8rem"),
        )
    )
    st.markdown(f"<style>{css}</style>", unsafe_allow_html=True)


def _css_string(text: str) -> str:
    """A CSS string literal: quotes and backslashes escaped, accents kept as they are."""
    return json.dumps(text, ensure_ascii=False)
