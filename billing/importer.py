"""The import of a debtor file: read, validate, load, record; the same for page, CLI and API.

An import is one row in `imports` and one transaction for its data: either every valid
row of the file is in `debtors`/`charges` (and every rejected row in
`import_rejections`), or nothing is. Re-importing a file, or an overlapping one, adds
only the charges whose debtId is new and counts the rest as duplicates.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from billing import audit
from billing.access import Actor, Permission, require
from billing.boletos import boletos_for_rows, issuable
from billing.errors import FileRefused
from billing.export import csv_chunks
from billing.reading import DebtorFile, read_debtor_file
from billing.search import fold_for_search
from billing.settings import Settings, get_settings
from billing.validation import ValidatedRows, validate_rows
from db import imports as imports_db
from db import loading

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
_T = TypeVar("_T")


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
    actor: Actor,
    data: bytes,
    file_name: str,
    lenient_documents: bool,
    prepared: PreparedFile | None = None,
    on_progress: Progress = _no_progress,
    settings: Settings | None = None,
) -> ImportResult:
    """Import a debtor file for `actor` (an operator or more); a refused file is recorded,
    audited and reported, never raised.

    `prepared` skips reading again a file the caller already validated (the page's preview).
    Unexpected errors roll everything back, record the import as failed and propagate.
    """
    require(actor, Permission.IMPORT)
    started = time.monotonic()
    imports_db.mark_interrupted_imports(engine)
    audited = _ImportAudit(
        actor=actor, file_name=file_name, sha256=hashlib.sha256(data).hexdigest()
    )
    with engine.connect() as conn:
        with conn.begin():
            import_id = imports_db.create_import(
                conn,
                file_name=file_name,
                sha256=audited.sha256,
                size_bytes=len(data),
                lenient_documents=lenient_documents,
            )
            imports_db.hold_import(conn, import_id)
        try:
            result = _run_import(
                conn,
                import_id=import_id,
                data=data,
                file_name=file_name,
                lenient_documents=lenient_documents,
                prepared=prepared,
                on_progress=on_progress,
                settings=settings,
                started=started,
                audited=audited,
            )
        except BaseException as exc:
            log.exception("import %s of %s failed", import_id, file_name)
            _record_failure(conn, import_id=import_id, started=started, exc=exc, audited=audited)
            raise
        finally:
            if not conn.invalidated:
                imports_db.release_import(conn, import_id)
                conn.commit()
    return result


@dataclass(frozen=True)
class _ImportAudit:
    """What the audit trail says of an import, whatever its end."""

    actor: Actor
    file_name: str
    sha256: str

    def record(self, conn: Connection, result: ImportResult) -> None:
        audit.record(
            conn,
            actor=self.actor,
            action=audit.Action.IMPORT,
            subject=f"import:{result.import_id}",
            details={
                "file": self.file_name,
                "sha256": self.sha256,
                "status": result.status,
                "rows": result.rows,
                "imported": result.imported,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
                "error": result.error,
            },
        )


def _record_failure(
    conn: Connection,
    *,
    import_id: int,
    started: float,
    exc: BaseException,
    audited: _ImportAudit,
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
        audited.record(
            conn,
            ImportResult(
                status="failed",
                import_id=import_id,
                file_name=audited.file_name,
                error=type(exc).__name__,
            ),
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
    audited: _ImportAudit,
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
            refused = ImportResult(
                status="refused",
                import_id=import_id,
                file_name=file_name,
                seconds=round(seconds, 3),
                error=refusal.message,
            )
            audited.record(conn, refused)
            return refused
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
        audited.record(conn, result)
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
    """Debtors upserted, then the new charges COPYed in already issued, in one transaction.

    The server's two look-ups (debtIds already charged, then the debtors' upsert) run on
    a helper thread while this one prepares what comes next: the debtors to upsert, then
    the first charge slices with their boletos. The connection is only ever used by one
    thread at a time: the helper while its future is pending, this thread otherwise.
    """
    on_progress(0.05, "Looking for charges already imported")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-db") as database:
        present_lines = database.submit(
            loading.lines_already_charged, conn, keys=rows.select(["line", "debt_id"])
        )
        debtors = _newest_debtor_rows(rows)
        present = present_lines.result()
        new_rows = rows.filter(pc.invert(pc.is_in(rows.column("line"), pa.array(present))))
        own_partition = loading.loads_into_own_partition(new_rows.num_rows)
        bulk_debtors = loading.worth_bulk_loading(conn, table="debtors", new_rows=debtors.num_rows)
        loading.lock_for_bulk_load(conn, ["debtors"] if bulk_debtors else [])
        if not own_partition:
            new_rows = new_rows.take(pc.sort_indices(new_rows, [("debt_id", "ascending")]))
        numbers = _nosso_numeros_of(conn, new_rows)
        charges = _ChargeRows(
            import_id=import_id, issued_at=loading.transaction_time(conn), settings=settings
        )
        slices = (
            (start, charges.with_boletos(part, nosso_numeros=numbers[start : start + len(part)]))
            for start, part in loading.numbered_slices(new_rows)
        )
        on_progress(0.15, "Updating debtors")
        upserted = database.submit(loading.upsert_debtors, conn, debtors=debtors, bulk=bulk_debtors)
        ready = list(_until_done(slices, upserted))
        debtor_ids = _debtor_ids_of(new_rows, upserted.result())

    on_progress(0.3, "Issuing boletos and creating charges")
    imported = loading.insert_charges(
        conn,
        slices=(
            _with_debtor_ids(part, debtor_ids.slice(start, part.num_rows))
            for start, part in itertools.chain(ready, slices)
        ),
        total_rows=new_rows.num_rows,
        own_partition=own_partition,
        on_progress=lambda fraction, message: on_progress(0.3 + 0.7 * fraction, message),
    )
    issued = int(np.count_nonzero(numbers >= 0))
    return _LoadCounts(imported=imported, duplicates=len(present), issued=issued)


def _until_done(items: Iterator[_T], future: Future[Any]) -> Iterator[_T]:
    """Items taken from `items` while `future` runs (at least one, if there is one)."""
    for item in items:
        yield item
        if future.done():
            return


def _newest_debtor_rows(rows: pa.Table) -> pa.Table:
    """One row per governmentId: the file's last, which speaks for the debtor now.

    The rows are numbered per governmentId (a hash pass) and the highest row number of
    each is kept; only those rows' names are folded for search.
    """
    government_ids = pc.dictionary_encode(rows.column("government_id").combine_chunks())
    codes = government_ids.indices.to_numpy()
    last_rows = np.full(len(government_ids.dictionary), -1, dtype=np.int64)
    np.maximum.at(last_rows, codes, np.arange(len(codes), dtype=np.int64))
    newest = rows.select(["name", "email"]).take(pa.array(last_rows))
    return pa.table(
        {
            "government_id": government_ids.dictionary,
            "name": newest.column("name"),
            "search_name": fold_for_search(newest.column("name")),
            "email": newest.column("email"),
        }
    )


def _debtor_ids_of(rows: pa.Table, debtor_ids: pa.Table) -> pa.Array:
    positions = pc.index_in(
        rows.column("government_id"), value_set=debtor_ids.column("government_id")
    )
    return pc.take(debtor_ids.column("id"), positions)


def _with_debtor_ids(charges: pa.Table, debtor_ids: pa.Array) -> pa.Table:
    return charges.append_column("debtor_id", debtor_ids).select(list(loading.CHARGE_COLUMNS))


def _nosso_numeros_of(conn: Connection, rows: pa.Table) -> np.ndarray:
    """A fresh nosso número for each row a barcode can carry, -1 for the others."""
    can_issue = issuable(rows).to_numpy(zero_copy_only=False)
    numbers = np.full(rows.num_rows, -1, dtype=np.int64)
    numbers[can_issue] = loading.allocate_nosso_numeros(conn, int(np.count_nonzero(can_issue)))
    return numbers


@dataclass(frozen=True)
class _ChargeRows:
    """Turns new rows into charge rows (loading.CHARGE_COLUMNS), each with its boleto."""

    import_id: int
    issued_at: datetime
    settings: Settings

    def with_boletos(self, rows: pa.Table, *, nosso_numeros: np.ndarray) -> pa.Table:
        """`rows` issued with the given numbers; a row numbered -1 stays pending.

        Every column of loading.CHARGE_COLUMNS but debtor_id, added once it is known.
        """
        can_issue = nosso_numeros >= 0
        boletos = boletos_for_rows(
            rows.filter(pa.array(can_issue)),
            nosso_numeros=nosso_numeros[can_issue],
            settings=self.settings,
        )
        # Row i of `rows` takes boleto position[i], or the null just past the end.
        position = np.where(can_issue, np.cumsum(can_issue) - 1, boletos.num_rows)

        def aligned(column: str) -> pa.Array:
            values = boletos.column(column).combine_chunks()
            padded = pa.concat_arrays([values, pa.nulls(1, values.type)])
            return padded.take(pa.array(position))

        issued = pa.array(can_issue)
        issued_at = pa.scalar(self.issued_at, pa.timestamp("us", tz="UTC"))
        return pa.table(
            {
                "debt_id": rows.column("debt_id"),
                "import_id": pa.array(np.full(rows.num_rows, self.import_id, dtype=np.int64)),
                "amount": rows.column("amount"),
                "due_date": rows.column("due_date"),
                "payer_name": rows.column("name"),
                "payer_email": rows.column("email"),
                "status": pc.if_else(issued, "issued", "pending"),
                "nosso_numero": aligned("nosso_numero"),
                "barcode": aligned("barcode"),
                "digitable_line": aligned("digitable_line"),
                "pix_code": aligned("pix_code"),
                "issued_at": pc.if_else(issued, issued_at, pa.scalar(None, issued_at.type)),
            }
        )


# The rejected-rows CSV's header, in db.imports.REJECTED_ROWS_COLUMNS' order: the line
# in the original file, the upload's own six column names, the reasons.
REJECTED_ROWS_HEADER = (
    "line", "name", "governmentId", "email", "debtAmount", "debtDueDate", "debtId", "reasons",
)  # fmt: skip


def rejected_rows_csv(engine: Engine, *, actor: Actor, import_id: int) -> bytes:
    """The rejected rows as a CSV to fix and upload again: original columns plus reasons.

    The `line` column says where each row was in the original file; the reader ignores
    it (and `reasons`) as extra columns when the fixed file comes back. Written like the
    charges export (`billing.export.csv_chunks`): UTF-8 with a BOM, every cell quoted, and
    a value that a spreadsheet would run as a formula (=1+1, +cmd, @x, -2) gets a leading
    apostrophe; the values came from an outside file, exactly the ones to distrust.
    They carry personal data: for the roles that may export, and the download is audited.
    """
    require(actor, Permission.EXPORT)
    with engine.connect() as conn:
        batches = list(imports_db.stream_rejected_rows(conn, import_id))
        data = b"".join(csv_chunks(batches, header=REJECTED_ROWS_HEADER))
    audit.record_now(
        engine,
        actor=actor,
        action=audit.Action.EXPORT_REJECTED,
        subject=f"import:{import_id}",
        details={"rows": sum(len(batch) for batch in batches)},
    )
    return data


def import_history(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """The newest imports first; imports left running by a dead process show as failed."""
    imports_db.mark_interrupted_imports(engine)
    return imports_db.list_imports(engine, limit=limit)
