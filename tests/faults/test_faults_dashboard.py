"""Bad days for the dashboard: PostgreSQL stopped and started under open pages, a restart
and a kill -9 in the middle of an import from the Upload page, a query past its limit.

Pages run through Streamlit's AppTest against a private PostgreSQL that the test stops,
starts and restarts (tests/support/pg_process.py); the import killed with SIGKILL runs the Upload
page in a process of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.core.settings import get_settings
from billing.imports.service import import_file
from db.engine import get_engine, make_engine
from db.imports import IMPORT_CONNECTION_LOST, INTERRUPTED_MESSAGE
from tests.support.actors import OPERATOR, signed_in_page
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, sample_rows
from tests.support.pg_process import PgProcess, migrated_database

pytestmark = pytest.mark.slow  # a PostgreSQL of its own, stopped and restarted

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "pages"
DOWN = "The database is not answering; retrying…"
LARGE_ROWS = 150_000


def large_debtor_file(folder: Path, rows: int) -> Path:
    """A file large enough that its import runs a few seconds: time to hit it mid-way."""
    from bench.generate import write_debtor_file

    return write_debtor_file(folder / "large.csv", rows=rows)


def _forget_engines() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture()
def pg() -> Iterator[PgProcess]:
    with PgProcess() as server:
        yield server


@pytest.fixture()
def pages_on(pg: PgProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The dashboard pointed at the private server, as the application's role; yields an
    engine of the test's own on it."""
    app_url = migrated_database(pg)
    monkeypatch.setenv("DATABASE_URL", app_url)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", pg.url)
    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT_SECONDS", "3")
    _forget_engines()
    engine = make_engine(app_url)
    yield engine
    engine.dispose()
    get_engine().dispose()
    _forget_engines()


_AS_APP_RUNS_IT = """
import runpy
from pages._shared import database_trouble_shown
with database_trouble_shown():  # app.py's guard around navigation.run()
    runpy.run_path({path!r}, run_name="__main__")
"""


def page_as_app_runs_it(name: str) -> AppTest:
    """A page inside app.py's guard, as a signed-in operator (app.py's sign-in is tested
    on its own below)."""
    at = AppTest.from_string(_AS_APP_RUNS_IT.format(path=str(PAGES / name)), default_timeout=60)
    at.session_state["actor"] = OPERATOR
    return at


def warnings_of(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_open_pages_say_the_database_is_not_answering_then_recover(
    pg: PgProcess, pages_on: Engine
) -> None:
    overview = signed_in_page(PAGES / "0_Overview.py").run()
    assert not overview.exception and not overview.warning
    assert "No charges yet" in overview.info[0].value

    pg.stop()
    st.cache_data.clear()  # figures kept 30 s would hide the outage for that long
    for name in ("0_Overview.py", "4_Notifications.py", "3_Charges.py", "2_Imports.py"):
        page = page_as_app_runs_it(name).run()
        assert not page.exception, (name, page.exception)
        assert DOWN in warnings_of(page), (name, [e.value for e in page.error])

    pg.start()
    overview.run()  # what the page's own retry does once the database answers
    assert not overview.exception and not overview.warning
    assert "No charges yet" in overview.info[0].value
    for name in ("4_Notifications.py", "3_Charges.py", "2_Imports.py"):
        page = page_as_app_runs_it(name).run()
        assert not page.exception and DOWN not in warnings_of(page), name


def test_the_dashboard_itself_starts_while_the_database_is_down(
    pg: PgProcess, pages_on: Engine
) -> None:
    pg.stop()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert DOWN in warnings_of(at)

    pg.start()
    # A new run of app.py (AppTest renders nothing on a second run of the same app.py,
    # whatever the database does).
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and DOWN not in warnings_of(at)
    assert at.text_input[0].label == "E-mail"  # the sign-in screen


def test_a_query_past_the_statement_limit_gets_a_sentence_and_the_page_stays_usable(
    pg: PgProcess, pages_on: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHBOARD_STATEMENT_SECONDS", "1")
    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_SECONDS", "0")  # the statement limit alone
    _forget_engines()
    import_file(
        engine=pages_on,
        actor=OPERATOR,
        data=debtor_csv(sample_rows(5)),
        file_name="five.csv",
        lenient_documents=False,
    )
    # An import rebuilding indexes (here: a lock held by the schema's owner) keeps the
    # Charges page's query waiting.
    with psycopg.connect(pg.url) as holder:
        holder.execute("LOCK TABLE charges IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        at = page_as_app_runs_it("3_Charges.py").run()
        waited = time.monotonic() - started
        holder.rollback()
    assert not at.exception
    assert any("longer than the dashboard waits (1 s)" in w for w in warnings_of(at))
    assert waited < 15

    st.cache_data.clear()
    at.run()
    assert not at.exception and not at.warning
    assert len(at.dataframe[0].value) == 5  # the charges are back

    # Imports keep no statement limit: a write path is not cut at 1 s.
    with pages_on.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"


def _import_started(pg: PgProcess, *, timeout: float = 60) -> None:
    """Wait until an import is running and has its transaction writing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(pg.url, connect_timeout=2) as conn:
                running = conn.execute(
                    "SELECT count(*) FROM imports WHERE status = 'running'"
                ).fetchone()
                if running and running[0]:
                    time.sleep(0.5)  # into the load itself
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError("no import started")


def upload_and_import(at: AppTest, data: bytes) -> AppTest:
    at.run()
    at.file_uploader[0].set_value(("monthly.csv", data, "text/csv")).run()
    assert not at.exception
    at.button[0].click().run()
    return at


def test_a_database_restart_mid_import_fails_it_cleanly_and_importing_again_completes(
    pg: PgProcess, pages_on: Engine, tmp_path: Path
) -> None:
    data = large_debtor_file(tmp_path, LARGE_ROWS).read_bytes()
    restarter = threading.Thread(target=lambda: (_import_started(pg), pg.restart()))
    restarter.start()
    at = upload_and_import(signed_in_page(PAGES / "1_Upload.py"), data)
    restarter.join(60)

    assert not at.exception
    assert [e.value for e in at.error] == [IMPORT_CONNECTION_LOST]
    pages_on.dispose()
    assert scalar(pages_on, "SELECT count(*) FROM charges") == 0  # nothing partial

    history = signed_in_page(PAGES / "2_Imports.py").run()
    assert not history.exception
    assert scalar(pages_on, "SELECT status FROM imports") == "failed"
    assert scalar(pages_on, "SELECT error FROM imports") == INTERRUPTED_MESSAGE

    again = upload_and_import(signed_in_page(PAGES / "1_Upload.py"), data)
    assert not again.exception and not again.error
    assert f"Imported {LARGE_ROWS:,}".replace(",", ".") in again.success[0].value
    assert scalar(pages_on, "SELECT count(*) FROM charges") == LARGE_ROWS


_UPLOAD_SCRIPT = """
import sys
from tests.support.actors import signed_in_page
page = signed_in_page(sys.argv[1])
page.run()
page.file_uploader[0].set_value(("monthly.csv", open(sys.argv[2], "rb").read(), "text/csv"))
page.run()
page.button[0].click().run()
print("finished", [e.value for e in page.error])
"""


def test_an_upload_killed_mid_import_leaves_nothing_and_the_next_import_completes(
    pg: PgProcess, pages_on: Engine, tmp_path: Path
) -> None:
    """kill -9 of the dashboard's process while its Upload page imports."""
    path = large_debtor_file(tmp_path, LARGE_ROWS)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    dashboard = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD_SCRIPT, str(PAGES / "1_Upload.py"), str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _import_started(pg, timeout=120)
        dashboard.send_signal(signal.SIGKILL)
    finally:
        out = dashboard.communicate(timeout=30)[0]
    assert dashboard.returncode == -signal.SIGKILL, out
    assert scalar(pages_on, "SELECT count(*) FROM charges") == 0
    assert scalar(pages_on, "SELECT count(*) FROM debtors") == 0

    again = upload_and_import(signed_in_page(PAGES / "1_Upload.py"), path.read_bytes())
    assert not again.exception and not again.error
    assert scalar(pages_on, "SELECT count(*) FROM charges") == LARGE_ROWS
    statuses = scalar(pages_on, "SELECT string_agg(status, ',' ORDER BY id) FROM imports")
    assert statuses == "failed,done"  # the killed one closed when the next began
