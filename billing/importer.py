"""The import of a debtor file: read, validate, load, record; the same for page, CLI and API.

An import is one row in `imports` and one transaction for its data: either every valid
row of the file is in `debtors`/`charges` (and every rejected row in
`import_rejections`), or nothing is. Re-importing a file, or an overlapping one, adds
only the charges whose debtId is new and counts the rest as duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from billing.boletos import boletos_for_rows, issuable
from billing.errors import FileRefused
from billing.reading import DebtorFile, read_debtor_file
from billing.search import fold_for_search
from billing.settings import Settings, get_settings
from billing.validation import ValidatedRows, validate_rows
from db import imports as imports_db
from db import loading

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass(frozen=True)
class PreparedFile:
    """A file read and validated, not yet written anywhere (what the preview shows)."""

    file: DebtorFile
    rows: ValidatedRows
    lenient_documents: bool

    @property
    def row_count(self) -> int:
        return self.file.row_count

    @property
    def valid_count(self) -> int:
        return self.rows.valid.num_rows

    @property
    def rejected_count(self) -> int:
        return self.rows.rejected.num_rows

    def preview(self, limit: int = 20) -> pa.Table:
        """The first rows as parsed (trimmed strings), for the operator to eyeball."""
        return self.file.table.slice(0, limit)

    def reason_summary(self, examples: int = 3) -> list[dict[str, Any]]:
        """One entry per reason: how many rows have it and the first lines that do."""
        rejected = self.rows.rejected
        lines = rejected.column("line").to_pylist()
        reasons = rejected.column("reasons").to_pylist()
        summary = []
        for reason, count in self.rows.reason_counts.items():
            first = [line for line, text in zip(lines, reasons, strict=True) if reason in text]
            summary.append({"reason": reason, "rows": count, "example lines": first[:examples]})
        return summary


@dataclass(frozen=True)
class ImportResult:
    """What an import did, as the page, the CLI's --json and the API report it."""

    status: str  # done, refused or failed
    import_id: int | None
    file_name: str
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    issued: int = 0  # new charges born with their boleto (the rest wait, pending)
    seconds: float = 0.0
    reason_counts: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_file(
    data: bytes, *, lenient_documents: bool, settings: Settings | None = None
) -> PreparedFile:
    """Read and validate a file without writing anything; raises FileRefused."""
    settings = settings or get_settings()
    debtor_file = read_debtor_file(data, max_bytes=settings.max_file_bytes)
    rows = validate_rows(
        debtor_file,
        lenient_documents=lenient_documents,
        max_amount=settings.max_debt_amount,
    )
    return PreparedFile(file=debtor_file, rows=rows, lenient_documents=lenient_documents)


def import_file(
    *,
    engine: Engine,
    data: bytes,
    file_name: str,
    lenient_documents: bool,
    prepared: PreparedFile | None = None,
    on_progress: Progress = _no_progress,
    settings: Settings | None = None,
) -> ImportResult:
    """Import a debtor file; a refused file is recorded and reported, never raised.

    `prepared` skips reading again a file the caller already validated (the page's preview).
    Unexpected errors roll everything back, record the import as failed and propagate.
    """
    started = time.monotonic()
    imports_db.mark_interrupted_imports(engine)
    with engine.connect() as conn:
        with conn.begin():
            import_id = imports_db.create_import(
                conn,
                file_name=file_name,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                lenient_documents=lenient_documents,
            )
            imports_db.hold_import(conn, import_id)
        try:
            return _run_import(
                conn,
                import_id=import_id,
                data=data,
                file_name=file_name,
                lenient_documents=lenient_documents,
                prepared=prepared,
                on_progress=on_progress,
                settings=settings,
                started=started,
            )
        except BaseException as exc:
            log.exception("import %s of %s failed", import_id, file_name)
            _record_failure(conn, import_id=import_id, started=started, exc=exc)
            raise
        finally:
            if not conn.invalidated:
                imports_db.release_import(conn, import_id)
                conn.commit()


def _record_failure(
    conn: Connection, *, import_id: int, started: float, exc: BaseException
) -> None:
    if conn.invalidated:  # the connection died with the import; the next run reconciles
        return
    if conn.in_transaction():
        conn.rollback()
    with conn.begin():
        imports_db.finish_import(
            conn,
            import_id=import_id,
            status="failed",
            seconds=time.monotonic() - started,
            error=f"The import failed and nothing was saved ({type(exc).__name__}: {exc})"[:2000],
        )


def _run_import(
    conn: Connection,
    *,
    import_id: int,
    data: bytes,
    file_name: str,
    lenient_documents: bool,
    prepared: PreparedFile | None,
    on_progress: Progress,
    settings: Settings | None,
    started: float,
) -> ImportResult:
    with conn.begin():
        on_progress(0.02, "Reading and validating the file")
        try:
            prepared = prepared or prepare_file(
                data, lenient_documents=lenient_documents, settings=settings
            )
        except FileRefused as refusal:
            seconds = time.monotonic() - started
            imports_db.finish_import(
                conn, import_id=import_id, status="refused", seconds=seconds, error=refusal.message
            )
            return ImportResult(
                status="refused",
                import_id=import_id,
                file_name=file_name,
                seconds=round(seconds, 3),
                error=refusal.message,
            )
        on_progress(0.1, "Waiting for other imports to finish")
        loading.lock_imports(conn)
        counts = _load_rows(
            conn,
            import_id=import_id,
            rows=prepared.rows.valid,
            settings=settings or get_settings(),
            on_progress=lambda f, m: on_progress(0.1 + 0.85 * f, m),
        )
        on_progress(0.96, "Keeping the rejected rows")
        loading.store_rejections(conn, import_id=import_id, rejected=prepared.rows.rejected)
        seconds = time.monotonic() - started
        result = ImportResult(
            status="done",
            import_id=import_id,
            file_name=file_name,
            rows=prepared.row_count,
            imported=counts.imported,
            duplicates=counts.duplicates,
            rejected=prepared.rejected_count,
            issued=counts.issued,
            seconds=round(seconds, 3),
            reason_counts=prepared.rows.reason_counts,
            extra_columns=list(prepared.file.extra_columns),
        )
        imports_db.finish_import(
            conn,
            import_id=import_id,
            status="done",
            seconds=seconds,
            counts={
                "rows": result.rows,
                "imported": result.imported,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
            },
            reason_counts=result.reason_counts,
            encoding=prepared.file.encoding,
            delimiter=prepared.file.delimiter,
            extra_columns=result.extra_columns,
        )
    if result.imported >= loading.BULK_LOAD_MIN_ROWS:
        on_progress(0.98, "Preparing the new charges for the dashboard")
        loading.vacuum_after_large_load(conn.engine)
    on_progress(1.0, "Done")
    log.info("import %s of %s: %s", import_id, file_name, result)
    return result


@dataclass(frozen=True)
class _LoadCounts:
    imported: int
    duplicates: int
    issued: int


def _load_rows(
    conn: Connection, *, import_id: int, rows: pa.Table, settings: Settings, on_progress: Progress
) -> _LoadCounts:
    """Debtors upserted, then the new charges COPYed in already issued, in one transaction."""
    on_progress(0.05, "Looking for charges already imported")
    present = loading.lines_already_charged(conn, keys=rows.select(["line", "debt_id"]))
    on_progress(0.2, "Updating debtors")
    debtor_ids = loading.upsert_debtors(conn, debtors=_newest_debtor_rows(rows))
    new_rows = rows.filter(pc.invert(pc.is_in(rows.column("line"), pa.array(present))))
    new_rows = new_rows.take(pc.sort_indices(new_rows, [("debt_id", "ascending")]))
    on_progress(0.4, "Issuing boletos")
    charges = _charges_with_boletos(conn, import_id=import_id, rows=new_rows, settings=settings)
    on_progress(0.6, "Creating charges")
    imported = loading.insert_charges(
        conn, charges=_with_debtor_ids(charges, debtor_ids=debtor_ids)
    )
    issued = charges.num_rows - charges.column("nosso_numero").null_count
    return _LoadCounts(imported=imported, duplicates=len(present), issued=issued)


def _newest_debtor_rows(rows: pa.Table) -> pa.Table:
    """One row per governmentId: the file's last, which speaks for the debtor now."""
    folded = rows.append_column("search_name", fold_for_search(rows.column("name")))
    newest = folded.group_by("government_id", use_threads=False).aggregate(
        [("name", "last"), ("search_name", "last"), ("email", "last")]
    )
    return pa.table(
        {
            "government_id": newest.column("government_id"),
            "name": newest.column("name_last"),
            "search_name": newest.column("search_name_last"),
            "email": newest.column("email_last"),
        }
    )


def _charges_with_boletos(
    conn: Connection, *, import_id: int, rows: pa.Table, settings: Settings
) -> pa.Table:
    """The charges to insert, each issued with its boleto unless no barcode can carry it."""
    can_issue = issuable(rows)
    to_issue = rows.filter(can_issue)
    boletos = boletos_for_rows(
        to_issue,
        nosso_numeros=loading.allocate_nosso_numeros(conn, to_issue.num_rows),
        settings=settings,
    )
    # Row i of `rows` takes boleto number position[i], or the null past the end.
    issued_so_far = np.cumsum(can_issue.to_numpy(zero_copy_only=False)) - 1
    position = np.where(can_issue.to_numpy(zero_copy_only=False), issued_so_far, boletos.num_rows)

    def aligned(column: str) -> pa.Array:
        values = boletos.column(column).combine_chunks()
        padded = pa.concat_arrays([values, pa.nulls(1, values.type)])
        return padded.take(pa.array(position))

    issued_at = pa.scalar(loading.transaction_time(conn), pa.timestamp("us", tz="UTC"))
    status = pc.if_else(can_issue, "issued", "pending")
    return pa.table(
        {
            "debt_id": rows.column("debt_id"),
            "government_id": rows.column("government_id"),
            "import_id": pa.array(np.full(rows.num_rows, import_id, dtype=np.int64)),
            "amount": rows.column("amount"),
            "due_date": rows.column("due_date"),
            "payer_name": rows.column("name"),
            "payer_email": rows.column("email"),
            "status": status,
            "nosso_numero": aligned("nosso_numero"),
            "barcode": aligned("barcode"),
            "digitable_line": aligned("digitable_line"),
            "pix_code": aligned("pix_code"),
            "issued_at": pc.if_else(can_issue, issued_at, pa.scalar(None, issued_at.type)),
        }
    )


def _with_debtor_ids(charges: pa.Table, *, debtor_ids: pa.Table) -> pa.Table:
    positions = pc.index_in(
        charges.column("government_id"), value_set=debtor_ids.column("government_id")
    )
    debtor_id = pc.take(debtor_ids.column("id"), positions)
    with_ids = charges.set_column(1, "debtor_id", debtor_id)
    return with_ids.select(list(loading.CHARGE_COLUMNS))


def rejected_rows_csv(engine: Engine, import_id: int) -> bytes:
    """The rejected rows as a CSV to fix and upload again: original columns plus reasons.

    The `line` column says where each row was in the original file; the reader ignores
    it (and `reasons`) as extra columns when the fixed file comes back. UTF-8 with a BOM,
    so spreadsheet programs read the accents right.
    """
    return b"\xef\xbb\xbf" + imports_db.rejected_rows_csv(engine, import_id)


def import_history(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """The newest imports first; imports left running by a dead process show as failed."""
    imports_db.mark_interrupted_imports(engine)
    return imports_db.list_imports(engine, limit=limit)
