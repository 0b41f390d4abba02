"""Bulk loading of a validated debtor file: COPY into a staging table, then set-based SQL.

Everything here runs inside the caller's transaction, under an advisory lock that
serialises imports, so an import commits all its rows or none and two operators
importing at once never create the same charge twice.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import numpy as np
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

# Rows whose debtId is already a charge are dropped from the staging table (and
# counted as duplicates) before anything is numbered, so a re-import uses no number.
_DROP_PRESENT_CHARGES = """
WITH present AS (
    DELETE FROM import_rows AS r
    USING charges AS c
    WHERE c.debt_id = r.debt_id
    RETURNING r.line
)
SELECT coalesce(array_agg(line), '{}') FROM present
"""

_ALLOCATE_NOSSO_NUMEROS = """
SELECT coalesce(array_agg(nextval('nosso_numero_seq')), '{}') FROM generate_series(1, :count)
"""

_CREATE_STAGED_BOLETOS = """
CREATE TEMP TABLE import_boletos (
    line integer PRIMARY KEY,
    nosso_numero bigint NOT NULL,
    barcode text NOT NULL,
    digitable_line text NOT NULL,
    pix_code text
) ON COMMIT DROP
"""
_BOLETO_COLUMNS = "line, nosso_numero, barcode, digitable_line, pix_code"

# Every charge is born with its boleto (a row the barcode cannot represent stays
# pending for the daily cycle to report). Sorted by debt_id, with nosso números handed
# out in the same order, so both unique indexes grow at their right edge. Only imports
# insert charges, one at a time under IMPORT_LOCK_KEY, so the rows dropped above are
# all there is to skip; the unique key would refuse anything else.
_INSERT_NEW_CHARGES = """
INSERT INTO charges (
    debt_id, debtor_id, import_id, amount, due_date, payer_name, payer_email,
    status, nosso_numero, barcode, digitable_line, pix_code, issued_at
)
SELECT r.debt_id, d.id, :import_id, r.amount, r.due_date, r.name, r.email,
       CASE WHEN b.line IS NULL THEN 'pending' ELSE 'issued' END,
       b.nosso_numero, b.barcode, b.digitable_line, b.pix_code,
       CASE WHEN b.line IS NULL THEN NULL ELSE now() END
FROM import_rows AS r
JOIN debtors AS d ON d.government_id = r.government_id
LEFT JOIN import_boletos AS b ON b.line = r.line
ORDER BY r.debt_id
"""

_STAGING_COLUMNS = "line, debt_id, government_id, name, email, amount, due_date, search_name"
_REJECTION_COLUMNS = (
    "line, name, government_id, email, debt_amount, debt_due_date, debt_id, reasons"
)


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


def stage_rows(conn: Connection, *, rows: pa.Table, on_progress: Progress = _no_progress) -> None:
    """COPY the valid rows (validated columns plus `search_name`) into `import_rows`."""
    conn.exec_driver_sql(_CREATE_STAGING)
    copy_csv(
        conn, table=rows, target="import_rows", columns=_STAGING_COLUMNS, on_progress=on_progress
    )
    conn.exec_driver_sql("ANALYZE import_rows")


def upsert_debtors(conn: Connection) -> tuple[int, int]:
    """Insert new debtors, refresh name and e-mail of known ones; return (new, updated)."""
    conn.exec_driver_sql(_CREATE_STAGED_DEBTORS)
    updated = conn.exec_driver_sql(_UPDATE_CHANGED_DEBTORS).rowcount
    inserted = conn.exec_driver_sql(_INSERT_NEW_DEBTORS).rowcount
    return inserted, updated


def drop_present_charges(conn: Connection) -> np.ndarray:
    """Remove staged rows whose debtId is already a charge; return their lines."""
    lines = conn.execute(text(_DROP_PRESENT_CHARGES)).scalar_one()
    return np.array(lines, dtype=np.int32)


def allocate_nosso_numeros(conn: Connection, count: int) -> np.ndarray:
    """`count` fresh numbers from nosso_numero_seq, ascending; never handed out again."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    numbers = conn.execute(text(_ALLOCATE_NOSSO_NUMEROS), {"count": count}).scalar_one()
    return np.sort(np.array(numbers, dtype=np.int64))


def stage_boletos(conn: Connection, *, boletos: pa.Table) -> None:
    """COPY the computed boletos (columns line, nosso_numero, barcode, ...) for the insert."""
    conn.exec_driver_sql(_CREATE_STAGED_BOLETOS)
    if boletos.num_rows:
        copy_csv(conn, table=boletos, target="import_boletos", columns=_BOLETO_COLUMNS)


def insert_charges(conn: Connection, *, import_id: int) -> int:
    """Create the staged charges, each with its staged boleto; return how many."""
    return conn.execute(text(_INSERT_NEW_CHARGES), {"import_id": import_id}).rowcount


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
