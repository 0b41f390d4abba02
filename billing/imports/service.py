"""The import of a debtor file: read, validate, load, record; the same for page, CLI and API.

An import is one row in `imports` and one transaction for its data: either every valid
row of the file is in `debtors`/`charges` (and every rejected row in
`import_rejections`), or nothing is. Re-importing a file, or an overlapping one, adds
only the charges whose debtId is new and counts the rest as duplicates.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import io
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, TypedDict, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.boletos.issuing import boletos_for_rows, issuable
from billing.core.csv_files import PLAIN, csv_chunks, source_dialect
from billing.core.errors import FileRefused
from billing.core.i18n import _
from billing.core.search import fold_for_search
from billing.core.settings import Settings, get_settings
from billing.imports.reading import DebtorFile, file_pieces, file_size, read_debtor_file
from billing.imports.validation import REASONS, DebtIdSet, ValidatedRows, validate_rows
from db import imports as imports_db
from db import loading
from db.imports import ImportRow

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
_T = TypeVar("_T")


def _no_progress(fraction: float, message: str) -> None:
    return None


# One line of a preview's reasons table; its keys are the table's column names.
ReasonSummary = TypedDict("ReasonSummary", {"reason": str, "rows": int, "example lines": list[int]})


@dataclass(frozen=True)
class PreparedFile:
    """A file read and validated without writing anything: what the page's preview shows.

    Built a piece at a time (billing.imports.reading.file_pieces): it keeps the counts, the first
    rows and the first lines of each reason, never the whole file.
    """

    row_count: int
    valid_count: int
    rejected_count: int
    reason_counts: dict[str, int]  # reason -> rows having it, most frequent first
    example_lines: dict[str, list[int]]  # reason -> the first lines having it
    first_rows: pa.Table  # as parsed (trimmed strings)
    encoding: str
    delimiter: str
    extra_columns: list[str]
    first_reasons: dict[int, str] = field(default_factory=dict)  # line -> its reasons

    def preview(self, limit: int = 20) -> pa.Table:
        """The first rows as parsed (trimmed strings), for the operator to eyeball."""
        return self.first_rows.slice(0, limit)

    def marked_preview(self, limit: int = 20) -> pa.Table:
        """The first rows as parsed, with their line in the file first and, last, the
        reasons of the rows that will be rejected ("" for a valid row; English, as kept:
        billing.imports.validation.reasons_in_language shows them)."""
        rows = self.preview(limit)
        lines = list(range(2, 2 + rows.num_rows))  # the header is line 1
        reasons = [self.first_reasons.get(line, "") for line in lines]
        return rows.add_column(0, "line", pa.array(lines, pa.int32())).append_column(
            "reasons", pa.array(reasons, pa.string())
        )

    def reason_summary(self, examples: int = 3) -> list[ReasonSummary]:
        """One entry per reason: how many rows have it and the first lines that do."""
        return [
            {
                "reason": reason,
                "rows": count,
                "example lines": self.example_lines[reason][:examples],
            }
            for reason, count in self.reason_counts.items()
        ]


_EXAMPLE_LINES = 3
_PREVIEW_ROWS = 20


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
    data: bytes,
    *,
    lenient_documents: bool,
    mapping: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> PreparedFile:
    """Read and validate a file without writing anything; raises FileRefused
    (ColumnsNotFound when its header lacks required columns and `mapping` names none).

    `mapping`: required column -> the file's header name (billing.imports.mapping)."""
    settings = settings or get_settings()
    pieces = _read_pieces(
        io.BytesIO(data),
        max_bytes=settings.max_file_bytes,
        lenient_documents=lenient_documents,
        settings=settings,
        mapping=mapping,
    )
    first = next(pieces)
    reason_counts: Counter[str] = Counter()
    example_lines: dict[str, list[int]] = {}
    first_reasons: dict[int, str] = {}
    rows = valid = 0
    first_rows = [first.file.table.slice(0, _PREVIEW_ROWS)]
    for piece in itertools.chain([first], pieces):
        if rows and rows < _PREVIEW_ROWS:
            first_rows.append(piece.file.table.slice(0, _PREVIEW_ROWS - rows))
        rows += piece.file.row_count
        valid += piece.rows.valid.num_rows
        reason_counts.update(piece.rows.reason_counts)
        _add_example_lines(example_lines, piece.rows)
        _add_first_reasons(first_reasons, piece.rows.rejected)
    return PreparedFile(
        row_count=rows,
        valid_count=valid,
        rejected_count=rows - valid,
        reason_counts=dict(reason_counts.most_common()),
        example_lines=example_lines,
        first_rows=pa.concat_tables(first_rows),
        encoding=first.file.encoding,
        delimiter=first.file.delimiter,
        extra_columns=list(first.file.extra_columns),
        first_reasons=first_reasons,
    )


def _add_example_lines(example_lines: dict[str, list[int]], rows: ValidatedRows) -> None:
    """Add the first lines of `rows` rejected for each reason, up to a few per reason."""
    for reason in REASONS:
        found = example_lines.setdefault(reason, [])
        if len(found) >= _EXAMPLE_LINES:
            continue
        lines = rows.lines_with(reason)[: _EXAMPLE_LINES - len(found)]
        found.extend(int(line) for line in lines)


def _add_first_reasons(first_reasons: dict[int, str], rejected: pa.Table) -> None:
    """The reasons of the rejected rows among the preview's first rows, by line."""
    first = rejected.filter(pc.less(rejected.column("line"), 2 + _PREVIEW_ROWS))
    lines, reasons = first.column("line").to_pylist(), first.column("reasons").to_pylist()
    first_reasons.update(zip(lines, reasons, strict=True))


@dataclass(frozen=True)
class _Piece:
    """A piece of a file (billing.imports.reading.file_pieces), read and validated."""

    file: DebtorFile
    rows: ValidatedRows
    size: int  # its bytes
    bytes_after: int  # the file's bytes in the pieces that follow
    # One row per debtor of its valid rows, the file's newest (_newest_debtor_rows), made
    # while it was read: folding names for search is the heaviest of a piece's own work.
    debtors: pa.Table
    # The lines of its valid rows whose debtId is a charge already, when looked up while
    # it was read (_CommittedKeys); None: to look up when it loads.
    present: np.ndarray | None = None

    @property
    def last(self) -> bool:
        return self.bytes_after == 0


class _CommittedKeys:
    """Which of a piece's debtIds are charges already, looked up on a connection of its
    own from the thread that reads the pieces: the next piece's look-up runs while the
    current one loads, on the other core, instead of before it on the import's connection
    (the look-up is what grows with the months: bench_growth, docs/scaling.md item 9).

    Only charges committed before this import can be found: imports are the only writers
    of charges, one at a time under the import lock, and a debtId repeated within the file
    is a duplicate already (validation's DebtIdSet). So a look-up waits until this import
    holds the lock (`allow`): every charge committed before is then visible, and none can
    be committed until this import ends.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._allowed = threading.Event()
        self._conn: Connection | None = None

    def allow(self) -> None:
        """Let look-ups run: the import holds the lock, or has given up (they are moot)."""
        self._allowed.set()

    def lines_already_charged(self, keys: pa.Table) -> np.ndarray:
        self._allowed.wait()
        if self._conn is None:
            self._conn = self._engine.connect()
        with self._conn.begin():
            loading.commits_without_waiting_for_the_disk(self._conn)  # it writes nothing
            return loading.lines_already_charged(self._conn, keys=keys)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _read_pieces(
    source: BinaryIO,
    *,
    max_bytes: int,
    lenient_documents: bool,
    settings: Settings,
    mapping: Mapping[str, str] | None = None,
    committed: _CommittedKeys | None = None,
) -> Iterator[_Piece]:
    """The file's pieces in order, each read and validated; raises FileRefused.

    A debtId repeated in a later piece is a duplicate as within one (DebtIdSet). With
    `committed`, each piece after the first comes with its debtIds already charged (the
    first is read before the import lock is held: it is looked up when it loads).
    """
    try:
        earlier_debt_ids = DebtIdSet()
        next_line = 2  # the header is line 1
        for number, piece in enumerate(file_pieces(source, max_bytes=max_bytes)):
            debtor_file = read_debtor_file(
                piece.data,
                max_bytes=len(piece.data),
                lines_before=piece.lines_before,
                mapping=mapping,
            )
            rows = validate_rows(
                debtor_file,
                lenient_documents=lenient_documents,
                max_amount=settings.max_debt_amount,
                first_line=next_line,
                earlier_debt_ids=None if number == 0 and piece.last else earlier_debt_ids,
            )
            next_line += debtor_file.row_count
            present = None
            if committed is not None and number > 0:
                present = committed.lines_already_charged(rows.valid.select(["line", "debt_id"]))
            yield _Piece(
                file=debtor_file,
                rows=rows,
                size=len(piece.data),
                bytes_after=piece.bytes_after,
                debtors=_newest_debtor_rows(rows.valid),
                present=present,
            )
    finally:
        if committed is not None:
            committed.close()  # on the thread that used it


def _read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """`items` in order, each next one made on a thread of its own while the caller works
    on the current one: the next piece is read and validated (Arrow and numpy, which let
    go of the GIL) while the server loads the one before. At most two pieces in memory.
    Each is made in the caller's context, so a refusal comes in the operator's language."""
    end = object()

    def next_in(context: contextvars.Context) -> _T | object:
        return context.run(next, items, end)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-read") as reader:
        following = reader.submit(next_in, contextvars.copy_context())
        while (item := following.result()) is not end:
            following = reader.submit(next_in, contextvars.copy_context())
            yield item  # type: ignore[misc]


def import_file(
    *,
    engine: Engine,
    actor: Actor,
    file_name: str,
    lenient_documents: bool,
    data: bytes | None = None,
    source: BinaryIO | None = None,
    on_progress: Progress = _no_progress,
    settings: Settings | None = None,
    mapping: Mapping[str, str] | None = None,
    mapping_name: str | None = None,
) -> ImportResult:
    """Import a debtor file for `actor` (an operator or more); a refused file is recorded,
    audited and reported, never raised.

    `mapping` (required column -> the file's header name, billing.imports.mapping) reads a
    file from another system; the audit row says which (`mapping_name`, if saved).

    The file is `data` (the dashboard's upload, already in memory; at most MAX_FILE_MB) or
    `source`, an open binary file (the CLI's, the API's; at most MAX_IMPORT_FILE_MB). Either
    is read a piece at a time (billing.imports.reading.file_pieces), so memory does not grow with
    the file. Unexpected errors roll everything back, record the import as failed and
    propagate.
    """
    require(actor, Permission.IMPORT)
    if (data is None) == (source is None):
        raise TypeError("import_file takes the file's data or a source to read, one of them")
    settings = settings or get_settings()
    source, max_bytes = _source_and_limit(data=data, source=source, settings=settings)
    started = time.monotonic()
    imports_db.mark_interrupted_imports(engine)
    size, sha256 = file_size(source), _sha256_of(source)
    audited = _ImportAudit(
        actor=actor,
        file_name=file_name,
        sha256=sha256,
        mapping=dict(mapping) if mapping else None,
        mapping_name=mapping_name,
    )
    with engine.connect() as conn:
        import_id = _create_held_import(
            conn, audited=audited, size=size, lenient_documents=lenient_documents
        )
        try:
            result = _run_import(
                conn,
                import_id=import_id,
                source=source,
                size=size,
                max_bytes=max_bytes,
                file_name=file_name,
                lenient_documents=lenient_documents,
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


def _source_and_limit(
    *, data: bytes | None, source: BinaryIO | None, settings: Settings
) -> tuple[BinaryIO, int]:
    """The file to read and its size limit: an upload in memory (MAX_FILE_MB) or an open
    file (MAX_IMPORT_FILE_MB)."""
    if source is not None:
        return source, settings.max_import_file_bytes
    if data is None:
        raise TypeError("import_file takes the file's data or a source to read, one of them")
    return io.BytesIO(data), settings.max_file_bytes


def _create_held_import(
    conn: Connection, *, audited: _ImportAudit, size: int, lenient_documents: bool
) -> int:
    """The import's row, committed as running and held by this connection (so a later
    run does not take it for interrupted); returns its id."""
    with conn.begin():
        import_id = imports_db.create_import(
            conn,
            file_name=audited.file_name,
            sha256=audited.sha256,
            size_bytes=size,
            lenient_documents=lenient_documents,
        )
        imports_db.hold_import(conn, import_id)
    return import_id


def _sha256_of(source: BinaryIO) -> str:
    """The file's SHA-256, read in 1 MB blocks; `source` left at its start."""
    digest = hashlib.sha256()
    source.seek(0)
    while block := source.read(1 << 20):
        digest.update(block)
    source.seek(0)
    return digest.hexdigest()


@dataclass(frozen=True)
class _ImportAudit:
    """What the audit trail says of an import, whatever its end."""

    actor: Actor
    file_name: str
    sha256: str
    mapping: dict[str, str] | None = None  # the columns read from another system's file
    mapping_name: str | None = None  # the saved mapping it came from, if any

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
            }
            | (
                {"mapping": {"name": self.mapping_name, "columns": self.mapping}}
                if self.mapping
                else {}
            ),
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
    source: BinaryIO,
    size: int,
    max_bytes: int,
    file_name: str,
    lenient_documents: bool,
    on_progress: Progress,
    settings: Settings,
    started: float,
    audited: _ImportAudit,
) -> ImportResult:
    """Load the file in the import's transaction and record how it ended: done or refused
    (a refusal writes no row of the file), then tidy up after a large load.

    A large file's charges table is filled on a connection of its own (_ChargesBeside),
    closed once the import's transaction has ended, whichever way it ended.
    """
    beside = _ChargesBeside(conn.engine)
    try:
        with conn.begin():
            on_progress(0.02, _("Reading and validating the file"))
            try:
                first, load = _load_file(
                    conn,
                    import_id=import_id,
                    source=source,
                    size=size,
                    max_bytes=max_bytes,
                    lenient_documents=lenient_documents,
                    on_progress=on_progress,
                    settings=settings,
                    mapping=audited.mapping,
                    beside=beside,
                )
            except FileRefused as refusal:
                return _record_refusal(
                    conn, import_id=import_id, refusal=refusal, started=started, audited=audited
                )
            result = _record_done(
                conn, import_id=import_id, first=first, load=load, started=started, audited=audited
            )
    finally:
        beside.close()
    _tidy_after_load(conn, result, on_progress=on_progress)
    on_progress(1.0, _("Done"))
    log.info("import %s of %s: %s", import_id, file_name, result)
    return result


def _load_file(
    conn: Connection,
    *,
    import_id: int,
    source: BinaryIO,
    size: int,
    max_bytes: int,
    lenient_documents: bool,
    on_progress: Progress,
    settings: Settings,
    beside: _ChargesBeside,
    mapping: Mapping[str, str] | None = None,
) -> tuple[DebtorFile, _FileLoad]:
    """Every piece of the file loaded in a savepoint, under the import lock; returns the
    first piece's file (its encoding, delimiter, extra columns) and the load's counts.

    Raises FileRefused; a piece refused further on takes every row back (the savepoint).
    The next piece is read on a thread while the current one loads (_read_ahead).
    """
    committed = _CommittedKeys(conn.engine)
    pieces = _read_ahead(
        _read_pieces(
            source,
            max_bytes=max_bytes,
            lenient_documents=lenient_documents,
            settings=settings,
            mapping=mapping,
            committed=committed,
        )
    )
    try:
        first = next(pieces)  # most refusals come with it, before waiting for the lock
        on_progress(0.05, _("Waiting for other imports to finish"))
        loading.lock_imports(conn)
        committed.allow()
        with conn.begin_nested():  # a piece refused further on takes every row back
            load = _FileLoad(conn, import_id=import_id, settings=settings, beside=beside)
            _load_pieces(
                load,
                itertools.chain([first], pieces),
                source=source,
                size=size,
                on_progress=on_progress,
            )
            on_progress(0.95, _("Indexing the new charges"))
            load.finish()
    finally:
        committed.allow()  # the reading thread never waits for a lock no longer sought
    return first.file, load


def _load_pieces(
    load: _FileLoad, pieces: Iterator[_Piece], *, source: BinaryIO, size: int, on_progress: Progress
) -> None:
    """Each piece added to the load, its progress reported as its share of the file."""
    done = 0.0  # the share of the file loaded
    for piece in pieces:
        upto = 1.0 if piece.last else min(source.tell() / max(size, 1), 1.0)
        load.add(piece, on_progress=_between(on_progress, done, upto))
        done = upto


def _record_refusal(
    conn: Connection,
    *,
    import_id: int,
    refusal: FileRefused,
    started: float,
    audited: _ImportAudit,
) -> ImportResult:
    """The import recorded and audited as refused, with the refusal's message."""
    seconds = time.monotonic() - started
    imports_db.finish_import(
        conn, import_id=import_id, status="refused", seconds=seconds, error=refusal.message
    )
    refused = ImportResult(
        status="refused",
        import_id=import_id,
        file_name=audited.file_name,
        seconds=round(seconds, 3),
        error=refusal.message,
    )
    audited.record(conn, refused)
    return refused


def _record_done(
    conn: Connection,
    *,
    import_id: int,
    first: DebtorFile,
    load: _FileLoad,
    started: float,
    audited: _ImportAudit,
) -> ImportResult:
    """The import recorded and audited as done, with the load's counts."""
    seconds = time.monotonic() - started
    result = ImportResult(
        status="done",
        import_id=import_id,
        file_name=audited.file_name,
        rows=load.rows,
        imported=load.imported,
        duplicates=load.duplicates,
        rejected=load.rejected,
        issued=load.issued,
        seconds=round(seconds, 3),
        reason_counts=dict(load.reason_counts.most_common()),
        extra_columns=list(first.extra_columns),
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
        encoding=first.encoding,
        delimiter=first.delimiter,
        extra_columns=result.extra_columns,
    )
    audited.record(conn, result)
    return result


def _tidy_after_load(conn: Connection, result: ImportResult, *, on_progress: Progress) -> None:
    """After a large load (committed), the new charges vacuumed for the dashboard."""
    if result.imported >= loading.BULK_LOAD_MIN_ROWS:
        on_progress(0.98, _("Preparing the new charges for the dashboard"))
        loading.vacuum_after_large_load(conn.engine)


def _between(on_progress: Progress, start: float, end: float) -> Progress:
    """A piece's progress as the import's: the piece spans `start` to `end` of the file,
    and loading the file spans 5 % to 95 % of the import."""

    def report(fraction: float, message: str) -> None:
        share = start + (end - start) * min(fraction, 1.0)
        on_progress(round(0.05 + 0.9 * share, 6), message)

    return report


@dataclass(frozen=True)
class _LoadCounts:
    imported: int
    duplicates: int
    issued: int


class _FileLoad:
    """The rows of a file loaded piece after piece, in the import's transaction.

    Debtors are upserted and charges copied for each piece, the keys of `debtors` kept row
    by row (no lock keeps a reader waiting, whatever the tables hold). Whether the charges
    get a partition of their own (db.loading.loads_into_own_partition) is decided at the first
    piece holding new charges; with it, the charges and the new debtors' search rows are
    copied into tables of their own on a connection of their own (_ChargesBeside, sql/024
    and 025), indexed there and on a third connection at finish, then attached.
    """

    def __init__(
        self, conn: Connection, *, import_id: int, settings: Settings, beside: _ChargesBeside
    ) -> None:
        self.conn = conn
        self.import_id = import_id
        self.settings = settings
        self._beside = beside
        self.rows = self.imported = self.duplicates = self.rejected = self.issued = 0
        self.reason_counts: Counter[str] = Counter()
        self._partition: loading.ChargePartition | None = None
        self._decided_partition = False
        self._searchable = 0  # new debtors whose search rows went into the partition's table
        self._renamed_here: list[np.ndarray] = [np.empty(0, dtype=np.int64)]

    def add(self, piece: _Piece, *, on_progress: Progress) -> None:
        self.rows += piece.file.row_count
        self.rejected += piece.rows.rejected.num_rows
        self.reason_counts.update(piece.rows.reason_counts)
        counts = self._load_rows(piece, on_progress=on_progress)
        on_progress(1.0, _("Keeping the rejected rows"))
        loading.store_rejections(self.conn, import_id=self.import_id, rejected=piece.rows.rejected)
        self.imported += counts.imported
        self.duplicates += counts.duplicates
        self.issued += counts.issued

    def finish(self) -> None:
        """Attach the file's own tables, if it has them (sql/025): once committed beside
        the import, their indexes are built on two connections while the import's
        registers the charges' debtIds and figures; then both are attached."""
        partition = self._partition
        if partition is None:
            return
        self._beside.run(functools.partial(loading.commit_charge_partition, partition))
        self._beside.wait()
        self._beside.run(functools.partial(loading.index_charge_partition, partition))
        indexing_search = self._beside.run_apart(
            functools.partial(loading.index_debtor_search_partition, self.conn.engine, partition)
        )
        registered = loading.register_charge_partition(self.conn, partition)
        indexing_search.result()
        searchable = loading.attach_debtor_search_partition(self.conn, partition)
        loading.refresh_debtor_search(self.conn, debtor_ids=np.concatenate(self._renamed_here))
        self._beside.wait()
        loading.attach_charge_partition(self.conn, partition)
        # Every new charge and every new debtor went into them: else a bug.
        if (registered, searchable) != (self.imported, self._searchable):
            raise RuntimeError(
                f"{registered} charges and {searchable} debtors attached, "
                f"{self.imported} and {self._searchable} imported"
            )

    def _load_rows(self, piece: _Piece, *, on_progress: Progress) -> _LoadCounts:
        """Debtors upserted, then the piece's new charges COPYed in already issued.

        The server's two look-ups (debtIds already charged, unless the piece came with
        them, then the debtors' upsert) run on a helper thread while this one prepares
        what comes next: the new rows, then the first charge slices with their boletos
        (the debtors to upsert were made while the piece was read). The connection is only
        ever used by one thread at a time: the helper while its future is pending, this
        thread otherwise.
        """
        conn, rows = self.conn, piece.rows.valid
        on_progress(0.05, _("Looking for charges already imported"))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-db") as database:
            if piece.present is None:
                present_lines = database.submit(
                    loading.lines_already_charged, conn, keys=rows.select(["line", "debt_id"])
                )
            present = piece.present if piece.present is not None else present_lines.result()
            new_rows = self._new_rows(rows, present=present, piece=piece)
            numbers = _nosso_numeros_of(conn, new_rows)
            slices = self._charge_slices(new_rows, nosso_numeros=numbers)
            on_progress(0.15, _("Updating debtors"))
            upserting = database.submit(
                loading.upsert_debtors, conn, debtors=piece.debtors, with_ids=new_rows.num_rows > 0
            )
            ready = list(_until_done(slices, upserting))
            upserted = upserting.result()
            debtor_ids = _debtor_ids_of(new_rows, upserted.ids)

        on_progress(0.3, _("Issuing boletos and creating charges"))
        imported = self._insert_charges(
            itertools.chain(ready, slices),
            debtor_ids=debtor_ids,
            total_rows=new_rows.num_rows,
            upserted=upserted,
            debtors=piece.debtors,
            on_progress=on_progress,
        )
        issued = int(np.count_nonzero(numbers >= 0))
        return _LoadCounts(imported=imported, duplicates=len(present), issued=issued)

    def _new_rows(self, rows: pa.Table, *, present: np.ndarray, piece: _Piece) -> pa.Table:
        """The rows whose debtId no charge has yet, in debtId order unless they go into a
        partition of their own; the partition is decided here, at the first such piece."""
        new_rows = rows.filter(pc.invert(pc.is_in(rows.column("line"), pa.array(present))))
        self._decide_partition(new_rows=new_rows.num_rows, piece=piece)
        if self._partition is None:
            new_rows = new_rows.take(pc.sort_indices(new_rows, [("debt_id", "ascending")]))
        return new_rows

    def _charge_slices(
        self, new_rows: pa.Table, *, nosso_numeros: np.ndarray
    ) -> Iterator[tuple[int, pa.Table]]:
        """The new rows' charge rows with their boletos, a slice at a time (lazily), each
        with the position of its first row."""
        charges = _ChargeRows(
            import_id=self.import_id,
            issued_at=loading.transaction_time(self.conn),
            settings=self.settings,
        )
        return (
            (start, charges.with_boletos(part, nosso_numeros=nosso_numeros[start:][: len(part)]))
            for start, part in loading.numbered_slices(new_rows)
        )

    def _insert_charges(
        self,
        slices: Iterator[tuple[int, pa.Table]],
        *,
        debtor_ids: pa.Array,
        total_rows: int,
        upserted: loading.UpsertedDebtors,
        debtors: pa.Table,
        on_progress: Progress,
    ) -> int:
        """The charge slices COPYed in with their debtors' ids; returns how many.

        Into the file's partition, the COPY runs beside the import (_ChargesBeside) while
        the next piece's debtors are upserted, after the search rows of the piece's new
        debtors (`upserted.new`, their names and e-mails in `debtors`): its count is
        checked there.
        """
        with_ids = (
            _with_debtor_ids(part, debtor_ids.slice(start, part.num_rows)) for start, part in slices
        )
        partition = self._partition
        if partition is None:
            return loading.insert_charges(
                self.conn,
                slices=with_ids,
                total_rows=total_rows,
                on_progress=lambda fraction, message: on_progress(0.3 + 0.7 * fraction, message),
            )

        new_debtors = _search_rows_of(debtors, new=upserted.new)
        self._searchable += new_debtors.num_rows
        self._renamed_here.append(upserted.renamed_here)

        def copy_into_partition() -> None:
            loading.copy_debtor_search_rows(partition, debtors=new_debtors)
            copied = loading.copy_into_partition(partition, slices=with_ids, total_rows=total_rows)
            if copied != total_rows:  # every slice was given: else a bug
                raise RuntimeError(f"{copied} charges copied, {total_rows} given")

        self._beside.run(copy_into_partition)
        return total_rows

    def _decide_partition(self, *, new_rows: int, piece: _Piece) -> None:
        if not self._decided_partition and new_rows:
            self._decided_partition = True
            if loading.loads_into_own_partition(
                new_rows, piece_bytes=piece.size, bytes_after=piece.bytes_after
            ):
                self._partition = self._beside.start()
                loading.search_rows_written_by_the_import(self.conn)


class _ChargesBeside:
    """A large file's own tables (its charges, its new debtors' search rows), filled and
    indexed on a connection of their own, from a thread of its own, beside the import's
    connection (sql/024, 025): a piece's rows are COPYed while the import's connection
    upserts the next piece's debtors; at the end the charges' indexes are built there and
    the search table's on a connection and thread apart (`run_apart`), while the import's
    connection registers the charges.

    One piece of work at a time on the thread: `run` waits for the one before (and raises
    its error), so at most one piece's rows are in flight. `close` comes once the import's
    transaction has ended, whichever way: it waits for the work in flight, then the tables
    are dropped unless they were attached for good (db.loading.close_charge_partition).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._partition: loading.ChargePartition | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-charges")
        self._apart = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-search")
        self._pending: Future[None] | None = None
        self._pending_apart: Future[None] | None = None

    def start(self) -> loading.ChargePartition:
        self._partition = loading.start_charge_partition(self._engine)
        return self._partition

    def run(self, work: Callable[[], None]) -> None:
        """`work` started on the thread, in this context, once the work before is done."""
        self.wait()
        self._pending = self._worker.submit(contextvars.copy_context().run, work)

    def run_apart(self, work: Callable[[], None]) -> Future[None]:
        """`work` started at once on a thread of its own (once, at the end of the load)."""
        self._pending_apart = self._apart.submit(contextvars.copy_context().run, work)
        return self._pending_apart

    def wait(self) -> None:
        """Until the work in flight is done; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            for pending in (self._pending, self._pending_apart):
                if pending is not None:
                    pending.exception()  # its error, if any, already ended the import
            self._worker.shutdown()
            self._apart.shutdown()
        finally:
            if self._partition is not None:
                loading.close_charge_partition(self._partition)


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


def _search_rows_of(debtors: pa.Table, *, new: pa.Table) -> pa.Table:
    """The search rows (debtor_id, name, search_name, email) of the `new` debtors (columns
    government_id, id), from a piece's `debtors` (one row per government_id)."""
    rows = debtors.take(pc.index_in(new.column("government_id"), debtors.column("government_id")))
    return rows.select(["name", "search_name", "email"]).add_column(0, "debtor_id", new["id"])


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
    it (and `reasons`) as extra columns when the fixed file comes back. In the dialect of
    the file they came from (its delimiter and encoding, kept on the import's row: a
    semicolon cp1252 file's rows come back semicolon cp1252), every cell quoted, and a
    value that a spreadsheet would run as a formula (=1+1, +cmd, @x, -2) gets a leading
    apostrophe; the values came from an outside file, exactly the ones to distrust.
    They carry personal data: for the roles that may export, and the download is audited.
    """
    require(actor, Permission.EXPORT)
    record = imports_db.get_import(engine, import_id)
    dialect = PLAIN
    if record is not None and record["delimiter"] and record["encoding"]:
        dialect = source_dialect(delimiter=record["delimiter"], encoding=record["encoding"])
    with engine.connect() as conn:
        batches = list(imports_db.stream_rejected_rows(conn, import_id))
        data = b"".join(csv_chunks(batches, header=REJECTED_ROWS_HEADER, dialect=dialect))
    audit.record_now(
        engine,
        actor=actor,
        action=audit.Action.EXPORT_REJECTED,
        subject=f"import:{import_id}",
        details={"rows": sum(len(batch) for batch in batches)},
    )
    return data


def import_history(engine: Engine, *, limit: int = 200) -> list[ImportRow]:
    """The newest imports first; imports left running by a dead process show as failed."""
    imports_db.mark_interrupted_imports(engine)
    return imports_db.list_imports(engine, limit=limit)
