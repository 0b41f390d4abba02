"""Apply the numbered SQL files in sql/ in order, recording each one that ran.

Each file runs in its own transaction together with its record, under an advisory
lock, so the dashboard, the CLI and workers starting together apply it once. They run as
the schema's owner; in the same transaction the application's role, when it is another
one, is granted what it needs on the schema as it now stands (db/roles.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, text

from billing.core.errors import OperatorError
from db.driver import driver_connection
from db.roles import grant_application_role

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 7_301_001  # pg_advisory_xact_lock key reserved for migrations


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = [Migration(p.name, p) for p in sql_dir.glob("*.sql") if _MIGRATION_NAME.match(p.name)]
    return sorted(found, key=lambda m: m.name)


def _ensure_ledger(conn: Connection) -> None:
    # Looked up first: CREATE ... IF NOT EXISTS would need the right to create, which the
    # application's role, checking that nothing is pending, does not have.
    if conn.execute(text("SELECT to_regclass('schema_migrations') IS NOT NULL")).scalar_one():
        return
    try:
        driver_connection(conn).execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _needs_the_owner("The database has no schema yet") from exc


def applied_migrations(conn: Connection) -> set[str]:
    return set(conn.execute(text("SELECT name FROM schema_migrations")).scalars())


def migrate(engine: Engine, sql_dir: Path = SQL_DIR, *, app_role: str | None = None) -> list[str]:
    """Apply pending migrations; return the names applied now.

    `engine` connects as the schema's owner. With `app_role`, that role is granted what
    the application needs, in each migration's transaction (so no table is ever reachable
    with more than the policy allows) and once more when nothing was pending.
    """
    applied_now: list[str] = []
    for migration in discover_migrations(sql_dir):
        with engine.begin() as conn:
            _lock(conn)
            _ensure_ledger(conn)
            if migration.name in applied_migrations(conn):
                continue
            _apply(conn, migration)
            if app_role:
                grant_application_role(conn, role=app_role)
            applied_now.append(migration.name)
    if app_role and not applied_now:
        with engine.begin() as conn:
            _lock(conn)
            grant_application_role(conn, role=app_role)
    return applied_now


def migrate_database() -> list[str]:
    """Bring the configured database up to date as its schema's owner, and grant the
    application's role (see db/engine.py) what it needs; return the names applied now."""
    from db.engine import application_role, get_migration_engine

    engine = get_migration_engine()
    try:
        return migrate(engine, app_role=application_role())
    finally:
        engine.dispose()


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _apply(conn: Connection, migration: Migration) -> None:
    try:
        # Straight to the driver: without parameters psycopg runs the file as written
        # (several statements, and '%' in RAISE messages is not a placeholder).
        driver_connection(conn).execute(migration.sql)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _needs_the_owner(f"Migration {migration.name} is pending") from exc
    conn.execute(
        text("INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)"),
        {"name": migration.name, "checksum": migration.checksum},
    )


def _needs_the_owner(situation: str) -> OperatorError:
    return OperatorError(
        f"{situation} and this database role may not change the schema. Migrations run "
        "as the schema's owner: set MIGRATION_DATABASE_URL to the owner's URL, or run "
        "`python -m billing migrate` with the owner's DATABASE_URL.",
        title="The database needs a migration",
    )


def pending_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    with engine.begin() as conn:
        _ensure_ledger(conn)
        done = applied_migrations(conn)
    return [m.name for m in discover_migrations(sql_dir) if m.name not in done]
