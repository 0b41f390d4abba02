"""What every benchmark needs: a server to measure on, and a database of its own there."""

from __future__ import annotations

import argparse
import atexit
import resource
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from billing.core.settings import get_settings
from db.engine import libpq_url, start_embedded_server, url_as

SCRATCH_DATABASE = "a scratch database is created on it and dropped at the end"


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the report (or its JSON)."""
    print(message, file=sys.stderr, flush=True)


def benchmark_server(database_url: str | None, *, prefix: str) -> tuple[str, str]:
    """The URL of the server to use and how to name it in the report.

    Without a URL an embedded server starts in a temporary folder, deleted at exit.
    """
    if database_url:
        parsed = make_url(database_url)
        return database_url, f"{parsed.host or 'local socket'}:{parsed.port or 5432}"
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}_pg_"))
    # atexit runs handlers last-registered first: the server registers its own
    # stop-and-delete when it starts, after this one, so the folder goes once it stopped.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    progress(f"starting an embedded PostgreSQL in {folder}")
    return start_embedded_server(folder, cleanup_mode="delete"), "embedded"


@contextmanager
def scratch_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """A new database on the server of `server_url`, dropped when the benchmark ends,
    so a DATABASE_URL pointing at real data is never written to."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(libpq_url(server_url)).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def application_role(database_url: str, *, prefix: str) -> Iterator[tuple[str, str]]:
    """A role that owns nothing, for the product's code to run as (the application's role):
    yields its name and its URL on the database of `database_url`, whose owner creates it.
    Dropped at the end, with what it was granted."""
    role = f"{prefix}_app_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    try:
        yield role, url_as(database_url, role, password)
    finally:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def add_database_url_option(
    parser: argparse.ArgumentParser, *, where_data_goes: str = SCRATCH_DATABASE
) -> None:
    """--database-url: the server to measure on, DATABASE_URL by default, else embedded."""
    parser.add_argument(
        "--database-url",
        default=get_settings().database_url or None,
        help="a PostgreSQL server to use (default DATABASE_URL, else an embedded server); "
        + where_data_goes,
    )


def server_version(url: str) -> str:
    """How the report names the server: "PostgreSQL 18.4"."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return f"PostgreSQL {str(row[0]).split()[0]}"


def checkpoint(url: str) -> None:
    """Write out every dirty page now, so the next step starts from a clean server."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def peak_memory_bytes() -> int:
    """This process's peak resident memory.

    On Linux from VmHWM, the high-water mark of this process's own memory: ru_maxrss
    would also count what the parent held when it forked the child, before the exec.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux counts kilobytes
