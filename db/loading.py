"""Bulk loading of a validated debtor file: COPY into a staging table, then set-based SQL.

Everything here runs inside the caller's transaction, under an advisory lock that
serialises imports, so an import commits all its rows or none and two operators
importing at once never create the same charge twice.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pcsv
from sqlalchemy import Connection, text

IMPORT_LOCK_KEY = 7_301_002  # pg_advisory_xact_lock key: one import writes at a time
_COPY_CHUNK_BYTES = 4 * 1024 * 1024

_CREATE_STAGING = """
CREATE TEMP TABLE import_rows (
    line integer NOT NULL,
    debt_id text COLLATE "C" NOT NULL,
    government_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    search_name text NOT NULL,
    email text NOT NULL,
    amount numeric(14, 2) NOT NULL,
    due_date date NOT NULL
) ON COMMIT DROP
"""

# The newest row of the file speaks for each debtor (its last occurrence).
_CREATE_STAGED_DEBTORS = """
CREATE TEMP TABLE import_debtors ON COMMIT DROP AS
SELECT DISTINCT ON (government_id) government_id, name, search_name, email
FROM import_rows
ORDER BY government_id, line DESC
"""

_UPDATE_CHANGED_DEBTORS = """
UPDATE debtors AS d
SET name = n.name, search_name = n.search_name, email = n.email
FROM import_debtors AS n
WHERE d.government_id = n.government_id
  AND (d.name, d.email) IS DISTINCT FROM (n.name, n.email)
"""

_INSERT_NEW_DEBTORS = """
INSERT INTO debtors (government_id, name, search_name, email)
SELECT n.government_id, n.name, n.search_name, n.email
FROM import_debtors AS n
WHERE NOT EXISTS (SELECT 1 FROM debtors AS d WHERE d.government_id = n.government_id)
ORDER BY n.government_id
"""

# Sorted by debt_id so the unique index grows at its right edge instead of at random.
_INSERT_NEW_CHARGES = """
INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, payer_name, payer_email)
SELECT r.debt_id, d.id, :import_id, r.amount, r.due_date, r.name, r.email
FROM import_rows AS r
JOIN debtors AS d ON d.government_id = r.government_id
WHERE NOT EXISTS (SELECT 1 FROM charges AS c WHERE c.debt_id = r.debt_id)
ORDER BY r.debt_id
"""

_STAGING_COLUMNS = "line, debt_id, government_id, name, email, amount, due_date, search_name"
_REJECTION_COLUMNS = (
    "line, name, government_id, email, debt_amount, debt_due_date, debt_id, reasons"
)


@dataclass(frozen=True)
class LoadCounts:
    new_debtors: int
    updated_debtors: int
    imported: int
    duplicates: int


Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


def lock_imports(conn: Connection) -> None:
    """Wait for any other import to commit; held until this transaction ends."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK_KEY})


def _csv_chunks(table: pa.Table) -> Iterator[bytes]:
    buffer = io.BytesIO()
    pcsv.write_csv(table, buffer, pcsv.WriteOptions(include_header=False))
    data = buffer.getbuffer()
    for start in range(0, len(data), _COPY_CHUNK_BYTES):
        yield bytes(data[start : start + _COPY_CHUNK_BYTES])


def copy_csv(
    conn: Connection,
    *,
    table: pa.Table,
    target: str,
    columns: str,
    on_progress: Progress = _no_progress,
) -> None:
    """COPY an Arrow table into `target` (identifiers come from this module, never input)."""
    chunks = list(_csv_chunks(table))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for index, chunk in enumerate(chunks, start=1):
            copy.write(chunk)
            on_progress(index / len(chunks), "Copying rows to the database")


def load_valid_rows(
    conn: Connection,
    *,
    import_id: int,
    rows: pa.Table,
    on_progress: Progress = _no_progress,
) -> LoadCounts:
    """Upsert debtors and insert the charges not yet present; return what changed.

    `rows` has the validated columns plus `search_name` (see billing.search).
    """
    conn.exec_driver_sql(_CREATE_STAGING)
    copy_csv(
        conn,
        table=rows,
        target="import_rows",
        columns=_STAGING_COLUMNS,
        on_progress=lambda f, m: on_progress(0.5 * f, m),
    )
    conn.exec_driver_sql("ANALYZE import_rows")
    on_progress(0.55, "Updating debtors")
    conn.exec_driver_sql(_CREATE_STAGED_DEBTORS)
    updated = conn.exec_driver_sql(_UPDATE_CHANGED_DEBTORS).rowcount
    inserted_debtors = conn.exec_driver_sql(_INSERT_NEW_DEBTORS).rowcount
    on_progress(0.7, "Creating charges")
    imported = conn.execute(text(_INSERT_NEW_CHARGES), {"import_id": import_id}).rowcount
    return LoadCounts(
        new_debtors=inserted_debtors,
        updated_debtors=updated,
        imported=imported,
        duplicates=rows.num_rows - imported,
    )


def store_rejections(conn: Connection, *, import_id: int, rejected: pa.Table) -> None:
    """Keep every rejected row with its values as read and all its reasons."""
    if rejected.num_rows == 0:
        return
    cursor = conn.connection.driver_connection.cursor()
    columns = _REJECTION_COLUMNS.split(", ")
    sql = f"COPY import_rejections (import_id, {_REJECTION_COLUMNS}) FROM STDIN"
    reasons = rejected.column("reasons").to_pylist()
    values = {
        "line": rejected.column("line").to_pylist(),
        "name": rejected.column("name").to_pylist(),
        "government_id": rejected.column("governmentId").to_pylist(),
        "email": rejected.column("email").to_pylist(),
        "debt_amount": rejected.column("debtAmount").to_pylist(),
        "debt_due_date": rejected.column("debtDueDate").to_pylist(),
        "debt_id": rejected.column("debtId").to_pylist(),
    }
    with cursor.copy(sql) as copy:
        for index, reason_text in enumerate(reasons):
            copy.write_row(
                [import_id]
                + [values[column][index] for column in columns[:-1]]
                + [reason_text.split("; ")]
            )
