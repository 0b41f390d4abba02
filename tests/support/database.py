"""Reading and writing the test database directly, for what a test sets up or checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


def scalar(db: Engine, sql: str, **params: object) -> Any:
    with db.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def execute(db: Engine, sql: str, **params: object) -> None:
    with db.begin() as conn:
        conn.execute(text(sql), params)


def schema_of(db: Engine, table: str) -> set[tuple[str, str]]:
    """The indexes and constraints of `table`, by name and definition."""
    with db.connect() as conn:
        indexes = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass)"
            ),
            {"t": table},
        ).all()
    return {tuple(row) for row in [*indexes, *constraints]}


def rows_per_partition(db: Engine, table: str) -> dict[str, int]:
    """How many rows each partition of `table` (a name of ours) holds, empty ones left out."""
    with db.connect() as conn:
        rows = conn.execute(
            text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
        ).all()
    return {name: count for name, count in rows}
