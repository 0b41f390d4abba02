"""Queries on the import history: one row per file received, and its rejected rows."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, Engine, Row, text


class ImportRow(TypedDict):
    """An import as the history lists it; the counts are None until it is done."""

    id: int
    file_name: str
    status: str  # running, done, failed or refused
    rows: int | None
    imported: int | None
    duplicates: int | None
    rejected: int | None
    duration_seconds: Decimal | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    lenient_documents: bool
    extra_columns: list[str]
    reason_counts: dict[str, int]  # reason -> rows having it
    size_bytes: int
    sha256: str


class ImportRecord(ImportRow):
    """An import's whole row."""

    encoding: str | None
    delimiter: str | None
    created_at: datetime
    updated_at: datetime


# What an import cut short says, on its row (closed at the next look by
# mark_interrupted_imports) and to whoever started it (page or CLI).
INTERRUPTED_MESSAGE = (
    "The import stopped before it finished: the program running it ended, or its "
    "connection to the database was lost. Nothing from this file was saved. "
    "Import the file again."
)
IMPORT_CONNECTION_LOST = (
    "The import stopped because the database connection was lost; nothing from this "
    "file was saved. Import the file again once the database answers."
)


def create_import(
    conn: Connection, *, file_name: str, sha256: str, size_bytes: int, lenient_documents: bool
) -> int:
    return conn.execute(
        text(
            """
            INSERT INTO imports (file_name, sha256, size_bytes, lenient_documents)
            VALUES (:file_name, :sha256, :size_bytes, :lenient_documents)
            RETURNING id
            """
        ),
        {
            "file_name": file_name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "lenient_documents": lenient_documents,
        },
    ).scalar_one()


_LIVE_IMPORT_LOCK = 7301  # first key of the session lock that says "this import is alive"


def hold_import(conn: Connection, import_id: int) -> None:
    """Take the session lock that marks the import alive until released or disconnected.

    Taken in the transaction that creates the row, so no other session ever sees the row
    'running' without its lock; a session lock outlives that transaction and dies with
    the connection, so a killed process frees it at once.
    """
    conn.execute(
        text("SELECT pg_advisory_lock(:ns, CAST(:id AS integer))"),
        {"ns": _LIVE_IMPORT_LOCK, "id": import_id},
    )


def release_import(conn: Connection, import_id: int) -> None:
    conn.execute(
        text("SELECT pg_advisory_unlock(:ns, CAST(:id AS integer))"),
        {"ns": _LIVE_IMPORT_LOCK, "id": import_id},
    )


def finish_import(
    conn: Connection,
    *,
    import_id: int,
    status: str,
    seconds: float,
    counts: dict[str, int] | None = None,
    reason_counts: dict[str, int] | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    extra_columns: list[str] | None = None,
    error: str | None = None,
) -> None:
    counts = counts or {}
    conn.execute(
        text(
            """
            UPDATE imports SET
                status = :status,
                rows = :rows, imported = :imported,
                duplicates = :duplicates, rejected = :rejected,
                reason_counts = CAST(:reason_counts AS jsonb),
                encoding = :encoding, delimiter = :delimiter,
                extra_columns = :extra_columns,
                finished_at = now(), duration_seconds = :seconds, error = :error
            WHERE id = :id
            """
        ),
        {
            "id": import_id,
            "status": status,
            "rows": counts.get("rows"),
            "imported": counts.get("imported"),
            "duplicates": counts.get("duplicates"),
            "rejected": counts.get("rejected"),
            "reason_counts": json.dumps(reason_counts or {}),
            "encoding": encoding,
            "delimiter": delimiter,
            "extra_columns": extra_columns or [],
            "seconds": round(seconds, 3),
            "error": error,
        },
    )


def mark_interrupted_imports(engine: Engine) -> int:
    """Close imports left 'running' by a process that died: nobody holds their lock."""
    with engine.begin() as conn:
        running = (
            conn.execute(
                text("SELECT id FROM imports WHERE status = 'running' FOR UPDATE SKIP LOCKED")
            )
            .scalars()
            .all()
        )
        orphans = [
            import_id
            for import_id in running
            if conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, CAST(:id AS integer))"),
                {"ns": _LIVE_IMPORT_LOCK, "id": import_id},
            ).scalar_one()
        ]
        if not orphans:
            return 0
        return conn.execute(
            text(
                "UPDATE imports SET status = 'failed', error = :error, finished_at = now() "
                "WHERE id = ANY(:ids)"
            ),
            {"error": INTERRUPTED_MESSAGE, "ids": orphans},
        ).rowcount


def list_imports(engine: Engine, *, limit: int = 200) -> list[ImportRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT id, file_name, status, rows, imported, duplicates, rejected,
                       duration_seconds, started_at, finished_at, error, lenient_documents,
                       extra_columns, reason_counts, size_bytes, sha256
                FROM imports
                ORDER BY started_at DESC, id DESC
                LIMIT :limit
                """
            ),
            {"limit": limit},
        ).mappings()
        return cast(list[ImportRow], [dict(row) for row in rows])


def get_import(engine: Engine, import_id: int) -> ImportRecord | None:
    with engine.connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM imports WHERE id = :id"), {"id": import_id})
            .mappings()
            .first()
        )
        return cast(ImportRecord, dict(row)) if row else None


# The rejected rows' columns, in the order `stream_rejected_rows` returns them: where the
# row was in the file, the file's six columns as read, and every reason joined by "; ".
REJECTED_ROWS_COLUMNS = (
    "line", "name", "government_id", "email", "debt_amount", "debt_due_date", "debt_id",
    "reasons",
)  # fmt: skip


def stream_rejected_rows(
    conn: Connection, import_id: int, *, batch_rows: int = 5000
) -> Iterator[Sequence[Row[Any]]]:
    """The rejected rows of an import in file order (REJECTED_ROWS_COLUMNS), `batch_rows`
    at a time from a server-side cursor: never all of them in memory."""
    result = conn.execution_options(yield_per=batch_rows).execute(
        text(
            """
            SELECT line, name, government_id, email, debt_amount, debt_due_date, debt_id,
                   array_to_string(reasons, '; ') AS reasons
            FROM import_rejections
            WHERE import_id = :import_id
            ORDER BY line
            """
        ),
        {"import_id": import_id},
    )
    yield from result.partitions(batch_rows)
