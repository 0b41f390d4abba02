"""What every page needs: the database engine (migrated once) and how errors are shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy import Engine
from streamlit.runtime.pages_manager import PagesManager

from billing.errors import OperatorError

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


@st.cache_resource(show_spinner="Starting the database…")
def engine() -> Engine:
    from db.engine import get_engine
    from db.migrations import migrate

    engine = get_engine()
    migrate(engine)
    return engine


@contextmanager
def operator_errors() -> Iterator[None]:
    """Show an operator's mistake as a sentence and a bug as a short note; log the bug."""
    try:
        yield
    except OperatorError as exc:
        st.error(f"**{exc.title}.** {exc.message}")
    except Exception:
        log.exception("dashboard action failed")
        st.error(
            "Something went wrong on our side and nothing was changed. "
            "The details are in the server log; please tell the team."
        )


def rejected_rows_button(import_id: int) -> None:
    """The button that downloads an import's rejected rows, with their reasons.

    The CSV is written by the database only when the button is clicked (the callable runs
    outside the script, so the engine is captured now).
    """
    from billing.importer import rejected_rows_csv

    current_engine = engine()
    st.download_button(
        "Download the rejected rows (CSV with reasons)",
        data=lambda: rejected_rows_csv(current_engine, import_id),
        on_click="ignore",
        file_name=f"rejected-import-{import_id}.csv",
        mime="text/csv",
    )


_use_app_navigation()  # every page imports this module first
