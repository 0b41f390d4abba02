"""Apply the numbered SQL files in sql/ in order, recording each one that ran.

Each file runs in its own transaction together with its record, under an advisory
lock, so the dashboard, the CLI and workers starting together apply it once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text

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
    conn.execute(
        text(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    )


def applied_migrations(conn: Connection) -> set[str]:
    return set(conn.execute(text("SELECT name FROM schema_migrations")).scalars())


def migrate(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    applied_now: list[str] = []
    for migration in discover_migrations(sql_dir):
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            _ensure_ledger(conn)
            if migration.name in applied_migrations(conn):
                continue
            # Straight to the driver: without parameters psycopg runs the file as written
            # (several statements, and '%' in RAISE messages is not a placeholder).
            conn.connection.driver_connection.execute(migration.sql)
            conn.execute(
                text("INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)"),
                {"name": migration.name, "checksum": migration.checksum},
            )
            applied_now.append(migration.name)
    return applied_now


def pending_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    with engine.begin() as conn:
        _ensure_ledger(conn)
        done = applied_migrations(conn)
    return [m.name for m in discover_migrations(sql_dir) if m.name not in done]
