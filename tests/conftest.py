"""Fixtures: a real PostgreSQL for the whole run, emptied between tests.

By default an embedded server is started in a temporary folder and deleted at the end.
With DATABASE_URL set, a fresh database is created on that server for this run and
dropped afterwards, so the suite never touches the data behind that URL.

Two roles, as in production: the schema's owner migrates and empties tables; the tests
exercise the product as the application's role, which owns nothing (`engine`, `db`, and
the environment of subprocesses and pages). On a DATABASE_URL server that role is created
for the run and dropped after; the embedded server has its own (db.engine.APP_ROLE).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

from billing.core.settings import get_settings
from db.engine import APP_ROLE, get_engine, libpq_url, make_engine, start_embedded_server, url_as
from db.migrations import migrate
from tests.support.smtp_server import SmtpTestServer

# The suite reads the product in English (its source strings), whatever the machine's
# LANGUAGE: tests in Portuguese ask for it (tests/core/test_i18n.py, tests/pages/).
os.environ["LANGUAGE"] = "en"

_TABLES = (
    "payments",
    "notices",
    "charges",
    "debtors",
    "import_rejections",
    "imports",
    "column_mappings",
)


def _fresh_database_on(server_url: str) -> tuple[str, str]:
    """Create a throw-away database on the server of `server_url`; return (url, name)."""
    name = f"billing_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(libpq_url(server_url)).set(database=name).render_as_string(False), name


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server_url = os.environ.get("DATABASE_URL", "").strip()
    if server_url:
        url, name = _fresh_database_on(server_url)
        yield url
        admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        return
    folder = Path(tempfile.mkdtemp(prefix="billing-test-pg-"))
    url = start_embedded_server(folder, cleanup_mode="delete")
    yield url
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def app_database_url(database_url: str) -> Iterator[str]:
    """The test database as the application's role (a throw-away one on DATABASE_URL)."""
    if not os.environ.get("DATABASE_URL", "").strip():
        yield url_as(database_url, APP_ROLE)
        return
    role, password = f"billing_test_app_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield url_as(database_url, role, password)
    with admin.connect() as conn:  # its grants in the test database, then the role
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")
    admin.dispose()


@pytest.fixture(scope="session")
def app_role(app_database_url: str) -> str:
    role = make_url(app_database_url).username
    assert role
    return role


@pytest.fixture(scope="session")
def owner_engine(database_url: str, app_role: str) -> Iterator[Engine]:
    """The schema's owner on the test database, migrated and granting `app_role`."""
    engine = make_engine(database_url)
    migrate(engine, app_role=app_role)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def engine(owner_engine: Engine, app_database_url: str) -> Iterator[Engine]:
    """The application's engine: the migrated test database as the role that owns nothing."""
    engine = make_engine(app_database_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def empty_database(database_url: str) -> Iterator[Engine]:
    """An engine on a new database with nothing in it, dropped after the test."""
    url, name = _fresh_database_on(database_url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture()
def db(engine: Engine, owner_engine: Engine) -> Engine:
    """The application's engine, on tables emptied (by their owner) before the test."""
    with owner_engine.begin() as conn:
        existing = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        )
        tables = [t for t in _TABLES if t in existing]
        conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    return engine


@pytest.fixture()
def no_accounts(db: Engine) -> Engine:
    """A fresh install's accounts: none, and no session (the audit trail is append-only
    and keeps what earlier tests did)."""
    with db.begin() as conn:
        conn.execute(text("DELETE FROM account_sessions"))
        conn.execute(text("DELETE FROM accounts"))
    return db


def _clear_engine_caches() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture()
def app_env(database_url: str, app_database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess (CLI, dashboard, API) pointed at the test database:
    the application's role, and the owner for its migrations."""
    env = dict(os.environ)
    env["DATABASE_URL"] = app_database_url
    env["MIGRATION_DATABASE_URL"] = database_url
    env["BILLING_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


@pytest.fixture()
def dashboard_db(
    db: Engine, database_url: str, app_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """Point the pages' engine at the test database, as the application's role."""
    monkeypatch.setenv("DATABASE_URL", app_database_url)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", database_url)
    _clear_engine_caches()
    yield db
    get_engine().dispose()
    _clear_engine_caches()


@pytest.fixture()
def smtp() -> Iterator[SmtpTestServer]:
    """A real SMTP server on a free port, recording what it receives."""
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _main_module_as_it_was() -> Iterator[None]:
    """A page run by AppTest can be left as `__main__`; a benchmark test then starts its
    processes with multiprocessing's spawn, which runs `__main__`'s file again in the child
    (a page, outside the app): put back the real one after each test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
