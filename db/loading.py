"""Bulk loading of a validated debtor file: COPY and set-based SQL, no row-by-row inserts.

Everything here runs inside the caller's transaction, under an advisory lock that
serialises imports, so an import commits all its rows or none and two operators
importing at once never create the same charge twice. The one exception, a large file's
own tables (ChargePartition: its charges, its new debtors' search rows), are filled on a
connection of their own but seen by no one until the import's transaction attaches them,
and dropped if that transaction does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from billing.core.formatting import count_br
from db import binary_copy
from db.binary_copy import PgType
from db.driver import driver_connection, server_major_version

log = logging.getLogger(__name__)

IMPORT_LOCK_KEY = 7_301_002  # pg_advisory_xact_lock key: one import writes at a time
# Rows written as CSV at a time: about 20 MB of charge rows, sent while the next are written.
COPY_SLICE_ROWS = 65_536

# Temporary tables of an import, refilled for each piece of its file.
_CREATE_STAGED_KEYS = """
CREATE TEMP TABLE IF NOT EXISTS import_keys (
    line integer NOT NULL, debt_id text COLLATE "C" NOT NULL
) ON COMMIT DROP;
TRUNCATE import_keys
"""

_STAGED_KEY_TYPES: dict[str, PgType] = {"line": "integer", "debt_id": "text"}

# Lines of the file whose debtId is already a charge: counted as duplicates and never
# numbered, so a re-import uses no nosso número.
_PRESENT_LINES = """
SELECT coalesce(array_agg(k.line), '{}')
FROM import_keys AS k
JOIN charge_keys AS c ON c.debt_id = k.debt_id
"""

_CREATE_STAGED_DEBTORS = """
CREATE TEMP TABLE IF NOT EXISTS import_debtors (
    government_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    search_name text NOT NULL,
    email text NOT NULL,
    id bigint,  -- the debtor's, when known (filled by _FIND_KNOWN_DEBTORS)
    changed boolean NOT NULL DEFAULT false,  -- known, with another name or e-mail
    inserted_here boolean NOT NULL DEFAULT false  -- known, and inserted by this transaction
) ON COMMIT DROP;
TRUNCATE import_debtors
"""
_DEBTOR_COLUMNS = "government_id, name, search_name, email"
_STAGED_DEBTOR_TYPES: dict[str, PgType] = dict.fromkeys(_DEBTOR_COLUMNS.split(", "), "text")

# The piece's debtors looked up once, in government_id order (the rows were staged so):
# the unique index is walked forward, not probed at random, and nothing after this probes
# it again (imports are the only writers of new debtors, one at a time).
# A debtor inserted by this transaction has created_at = now() (its start); one inserted
# by another has that only by a coincidence of microseconds, which costs one needless
# refresh (refresh_debtor_search), never a missed one.
_FIND_KNOWN_DEBTORS = """
UPDATE import_debtors AS n
SET id = d.id, changed = (d.name, d.email) IS DISTINCT FROM (n.name, n.email),
    inserted_here = d.created_at = now()
FROM debtors AS d
WHERE d.government_id = n.government_id
"""

_UPDATE_CHANGED_DEBTORS = """
UPDATE debtors AS d
SET name = n.name, search_name = n.search_name, email = n.email
FROM import_debtors AS n
WHERE n.changed AND d.id = n.id
"""

# Returns the new debtors' government_ids and ids, the known ones', and the ids of the
# debtors this transaction inserted and this piece renames (or gives another e-mail).
_INSERT_NEW_DEBTORS = """
WITH inserted AS (
    INSERT INTO debtors (government_id, name, search_name, email)
    SELECT government_id, name, search_name, email
    FROM import_debtors
    WHERE id IS NULL
    ORDER BY government_id
    RETURNING government_id, id
)
SELECT new.government_ids, new.ids, known.government_ids, known.ids, renamed.ids
FROM (
    SELECT coalesce(array_agg(government_id), '{}') AS government_ids,
           coalesce(array_agg(id), '{}') AS ids
    FROM inserted
) AS new, (
    SELECT coalesce(array_agg(government_id), '{}') AS government_ids,
           coalesce(array_agg(id), '{}') AS ids
    FROM import_debtors WHERE id IS NOT NULL AND :with_known
) AS known, (
    SELECT coalesce(array_agg(id), '{}') AS ids
    FROM import_debtors WHERE changed AND inserted_here
) AS renamed
"""

# The numbers come back as their bounds when they are one run (nothing else took numbers
# meanwhile: the usual case), as an array only when not: a piece's 135,000 numbers sent
# and parsed one by one cost about 0.1 s of every piece, before its debtors can be sent.
_ALLOCATE_NOSSO_NUMEROS = """
WITH taken AS MATERIALIZED (
    SELECT nextval('nosso_numero_seq') AS number FROM generate_series(1, :count)
), bounds AS (
    SELECT min(number) AS low, max(number) AS high FROM taken
)
SELECT low, high,
       CASE WHEN high - low + 1 = :count THEN NULL ELSE (SELECT array_agg(number) FROM taken) END
FROM bounds
"""

# Only imports insert charges, one at a time under IMPORT_LOCK_KEY, so the lines found
# present above are all there is to skip; charge_keys (sql/010) would refuse anything else.
# Each column with its type in `charges`, for the binary COPY (db/binary_copy.py).
CHARGE_COLUMN_TYPES: dict[str, PgType] = {
    "id": "bigint",
    "debt_id": "text",
    "debtor_id": "bigint",
    "import_id": "bigint",
    "amount": "numeric",
    "due_date": "date",
    "payer_name": "text",
    "payer_email": "text",
    "status": "text",
    "nosso_numero": "bigint",
    "barcode": "text",
    "digitable_line": "text",
    "pix_code": "text",
    "issued_at": "timestamptz",
}
CHARGE_COLUMNS = tuple(name for name in CHARGE_COLUMN_TYPES if name != "id")
_REJECTION_COLUMNS = (
    "line, name, government_id, email, debt_amount, debt_due_date, debt_id, reasons"
)


Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


def lock_imports(conn: Connection) -> None:
    """Wait for any other import to commit; held until this transaction ends. Then new
    charges' ids come from the newest open partition, committed by an earlier import's
    attach (sql/019: never moved inside the transaction that creates it)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK_KEY})
    conn.execute(text("SELECT charges_ids_to_open_partition()"))


def numbered_slices(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """The table in slices of COPY_SLICE_ROWS rows, each with the position of its first row."""
    for start in range(0, table.num_rows, COPY_SLICE_ROWS):
        yield start, table.slice(start, COPY_SLICE_ROWS)


def copy_table(
    conn: Connection,
    *,
    table: pa.Table,
    target: str,
    columns: str,
    freeze: bool = False,
    binary_types: Mapping[str, PgType] | None = None,
    on_progress: Progress = _no_progress,
) -> int:
    """COPY an Arrow table into `target` (identifiers come from this module, never input),
    as CSV or, given each column's type, in the binary format (see copy_slices); return
    how many rows went."""
    return copy_slices(
        conn,
        slices=(rows for _, rows in numbered_slices(table)),
        total_rows=table.num_rows,
        target=target,
        columns=columns,
        freeze=freeze,
        binary_types=binary_types,
        on_progress=on_progress,
    )


def copy_slices(
    conn: Connection,
    *,
    slices: Iterable[pa.Table],
    total_rows: int,
    target: str,
    columns: str,
    freeze: bool = False,
    binary_types: Mapping[str, PgType] | None = None,
    on_progress: Progress = _no_progress,
) -> int:
    """COPY Arrow tables into `target` one after the other; return how many rows went.

    `freeze` writes the rows frozen, for a table created in this transaction.
    `binary_types` (each column's type in `target`) sends the rows in the binary format,
    which the server reads at about twice the speed of CSV (db/binary_copy.py).

    Each slice is encoded while the server is still reading the one before: the queued
    writer sends from a thread of its own, and Arrow's encoders, like the work that
    produces the slices, release the GIL. So the client's share of a large load overlaps
    the server's instead of preceding it.
    """
    options = ["FORMAT binary" if binary_types else "FORMAT csv"] + (["FREEZE"] if freeze else [])
    cursor = driver_connection(conn).cursor()
    statement = f"COPY {target} ({columns}) FROM STDIN ({', '.join(options)})"
    copied = 0
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        if binary_types:
            copy.write(binary_copy.HEADER)
        for rows in slices:
            copy.write(memoryview(_encoded(rows, binary_types)))
            copied += rows.num_rows
            message = f"Copied {count_br(copied)} of {count_br(total_rows)} rows"
            on_progress(copied / max(total_rows, 1), message)
        if binary_types:
            copy.write(binary_copy.TRAILER)
    return copied


_CSV_OPTIONS = pcsv.WriteOptions(include_header=False)


def _encoded(rows: pa.Table, binary_types: Mapping[str, PgType] | None) -> pa.Buffer:
    """`rows` as COPY reads them: binary tuples when their types are given, else CSV."""
    if binary_types:
        return binary_copy.encode_rows(rows, binary_types)
    sink = pa.BufferOutputStream()
    pcsv.write_csv(rows, sink, _CSV_OPTIONS)
    return sink.getvalue()


# The staging tables are not ANALYZEd: the joins below are told their plan, and the
# planner counts an unanalysed table's rows from its size (16 ANALYZEs took about 1.4 s
# of a 1.1M-row import, bench_import --debtors 1100000, for the same plans).
#
# A piece's look-ups in tables that hold every month (charge_keys, debtors) go through their
# unique indexes, one probe per row of the piece: a hash or merge join would read the whole
# table for each piece, a cost that grows with the history (measured: 0.6 s a piece at 1.1M
# charges, the re-import's largest step). The planner, costing one piece at a time, prefers
# the hash join up to a few million rows; these statements are told not to.
_PROBE_BY_INDEX = """
SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)
"""
_PLAN_FREELY = """
SELECT set_config('enable_hashjoin', :hash, true), set_config('enable_mergejoin', :merge, true)
"""


@contextmanager
def probing_by_index(conn: Connection) -> Iterator[None]:
    """Joins in the block probe indexes row by row (for a piece against a whole table).

    The settings are local to the transaction; they are put back when the block ends
    well. A statement that fails in it leaves the transaction aborted: its error is what
    the caller gets (not a refusal to put them back), and the rollback undoes them.
    """
    hash_join, merge_join = conn.execute(
        text("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
    ).one()
    conn.exec_driver_sql(_PROBE_BY_INDEX)
    yield
    conn.execute(text(_PLAN_FREELY), {"hash": hash_join, "merge": merge_join})


def lines_already_charged(conn: Connection, *, keys: pa.Table) -> np.ndarray:
    """The lines (of a table line, debt_id) whose debtId is already a charge.

    The keys are staged in debtId order, so the look-ups walk charge_keys' index forward:
    each of its pages is read once for all the piece's keys it holds, not once per key,
    which keeps the look-up's cost from growing with the months the table holds.
    """
    conn.exec_driver_sql(_CREATE_STAGED_KEYS)
    in_order = keys.take(pc.sort_indices(keys, [("debt_id", "ascending")]))
    copy_table(
        conn,
        table=in_order,
        target="import_keys",
        columns="line, debt_id",
        binary_types=_STAGED_KEY_TYPES,
    )
    with probing_by_index(conn):
        return np.array(conn.execute(text(_PRESENT_LINES)).scalar_one(), dtype=np.int32)


def commits_without_waiting_for_the_disk(conn: Connection) -> None:
    """This transaction's commit does not wait for its WAL to reach the disk: for one
    that writes nothing to keep (a look-up's temporary table). While an import writes
    gigabytes, pg_stat_activity showed those commits lasting 0.4-1.0 s a piece."""
    conn.execute(text("SET LOCAL synchronous_commit = off"))


@dataclass(frozen=True)
class UpsertedDebtors:
    """What upsert_debtors did with a piece's debtors."""

    ids: pa.Table  # government_id, id: every debtor of the piece (with_ids), else the new
    new: pa.Table  # government_id, id: the debtors it inserted
    renamed_here: np.ndarray  # ids of debtors this transaction inserted, now changed


def upsert_debtors(
    conn: Connection, *, debtors: pa.Table, with_ids: bool = True
) -> UpsertedDebtors:
    """Insert new debtors and refresh the name and e-mail of known ones.

    `debtors` has one row per government_id (columns government_id, name, search_name,
    email); a piece with no new charge needs only the new ones' ids (not `with_ids`). The
    unique index on government_id is looked up once per debtor, in government_id order;
    new debtors' keys are added row by row in that order (the key grows at its right edge
    on a new install), and no lock keeps a reader of `debtors` waiting. Their search rows
    follow by trigger (sql/020) into the open partition of debtor_search, unless the
    import writes them itself (search_rows_written_by_the_import).
    """
    conn.exec_driver_sql(_CREATE_STAGED_DEBTORS)
    in_order = debtors.take(pc.sort_indices(debtors, [("government_id", "ascending")]))
    copy_table(
        conn,
        table=in_order,
        target="import_debtors",
        columns=_DEBTOR_COLUMNS,
        binary_types=_STAGED_DEBTOR_TYPES,
    )
    with probing_by_index(conn):
        conn.exec_driver_sql(_FIND_KNOWN_DEBTORS)
        conn.exec_driver_sql(_UPDATE_CHANGED_DEBTORS)
        new_government_ids, new_ids, known_government_ids, known_ids, renamed = conn.execute(
            text(_INSERT_NEW_DEBTORS), {"with_known": with_ids}
        ).one()
    new = _debtor_ids_table(new_government_ids, new_ids)
    known = _debtor_ids_table(known_government_ids, known_ids)
    return UpsertedDebtors(
        ids=pa.concat_tables([new, known]),
        new=new,
        renamed_here=np.array(renamed, dtype=np.int64),
    )


def _debtor_ids_table(government_ids: list[str], ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "government_id": pa.array(government_ids, pa.string()),
            "id": pa.array(ids, pa.int64()),
        }
    )


def search_rows_written_by_the_import(conn: Connection) -> None:
    """From now on in this transaction, new debtors get no search row from the insert
    trigger (sql/025): the import writes them (copy_debtor_search_rows) and attaches them."""
    conn.execute(text("SELECT set_config('billing.debtor_search_by_import', 'on', true)"))


def allocate_nosso_numeros(conn: Connection, count: int) -> np.ndarray:
    """`count` fresh numbers from nosso_numero_seq, ascending; never handed out again."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    low, high, numbers = conn.execute(text(_ALLOCATE_NOSSO_NUMEROS), {"count": count}).one()
    if numbers is None:  # one run, low to high
        return np.arange(low, high + 1, dtype=np.int64)
    return np.sort(np.array(numbers, dtype=np.int64))


def transaction_time(conn: Connection) -> datetime:
    return conn.execute(text("SELECT now()")).scalar_one()


@dataclass
class ChargePartition:
    """A large file's tables of its own, filled on a connection of their own (`conn`,
    sql/024 and 025), then attached in the import's transaction: its charges
    (`relation`) and its new debtors' search rows (debtor_search_<search_batch>).

    `conn` is used by one thread at a time and closed by close_charge_partition.
    """

    relation: str  # a name new_charges_partition gave
    next_id: int  # the id the next charge copied into it gets
    search_batch: int  # the number new_debtor_search_partition gave
    conn: Connection  # in the transaction that created the tables, until commit_charge_partition
    committed: bool = False

    @property
    def search_relation(self) -> str:
        return f"debtor_search_{self.search_batch}"


def start_charge_partition(engine: Engine) -> ChargePartition:
    """New tables for a file's charges and its new debtors' search rows (see
    copy_into_partition, copy_debtor_search_rows), created on a connection of their own, in
    a transaction of their own. Only under the import lock (lock_imports): the tables left
    by imports that died are dropped first (their names would be these).
    """
    conn = engine.connect()
    try:
        with conn.begin():
            left = conn.execute(text("SELECT drop_charges_partitions_left_behind()")).scalar_one()
        if left:
            log.warning("dropped %s table(s) left by a large import that did not end", left)
        conn.begin()
        relation, first_id = conn.execute(text(_NEW_PARTITION)).one()
        search_batch = conn.execute(text("SELECT new_debtor_search_partition()")).scalar_one()
    except BaseException:
        conn.close()
        raise
    return ChargePartition(
        relation=relation, next_id=first_id, search_batch=search_batch, conn=conn
    )


def insert_charges(
    conn: Connection,
    *,
    slices: Iterable[pa.Table],
    total_rows: int,
    on_progress: Progress = _no_progress,
) -> int:
    """COPY new charges (columns CHARGE_COLUMNS) through `charges` into its open partition;
    return how many. They are best given in debt_id order, so the debtId index of
    charge_keys grows at its right edge. A large file's go to copy_into_partition.
    """
    return copy_slices(
        conn,
        slices=slices,
        total_rows=total_rows,
        target="charges",
        columns=", ".join(CHARGE_COLUMNS),
        binary_types=CHARGE_COLUMN_TYPES,
        on_progress=on_progress,
    )


def copy_into_partition(
    partition: ChargePartition, *, slices: Iterable[pa.Table], total_rows: int
) -> int:
    """COPY new charges (columns CHARGE_COLUMNS) into `partition`, on its own connection;
    return how many. They get their ids here, in order."""
    copied = copy_slices(
        partition.conn,
        slices=_with_ids(slices, first_id=partition.next_id),
        total_rows=total_rows,
        target=partition.relation,
        columns=", ".join(("id", *CHARGE_COLUMNS)),
        freeze=True,
        binary_types=CHARGE_COLUMN_TYPES,
    )
    partition.next_id += copied
    return copied


SEARCH_ROW_TYPES: dict[str, PgType] = {
    "batch": "bigint",
    "debtor_id": "bigint",
    "name": "text",
    "search_name": "text",
    "email": "text",
}


def copy_debtor_search_rows(partition: ChargePartition, *, debtors: pa.Table) -> int:
    """COPY new debtors' search rows (columns debtor_id, name, search_name, email, as
    debtors holds them) into the partition's search table, on its own connection; return
    how many. Only for debtors the import's transaction inserted with
    search_rows_written_by_the_import."""
    batch = pa.array(np.full(debtors.num_rows, partition.search_batch, dtype=np.int64))
    rows = debtors.select(["debtor_id", "name", "search_name", "email"]).add_column(
        0, "batch", batch
    )
    return copy_table(
        partition.conn,
        table=rows,
        target=partition.search_relation,
        columns=", ".join(SEARCH_ROW_TYPES),
        freeze=True,
        binary_types=SEARCH_ROW_TYPES,
    )


def commit_charge_partition(partition: ChargePartition) -> None:
    """Once every row is in: the charges' primary key added, and both tables committed
    (not attached: no reader sees them), so that other connections may read and index
    them."""
    partition.conn.execute(
        text("SELECT add_charges_partition_primary_key(:relation)"),
        {"relation": partition.relation},
    )
    partition.conn.commit()
    partition.committed = True


def index_charge_partition(partition: ChargePartition) -> None:
    """Build on the committed charges table every other index `charges` has, on its own
    connection."""
    with partition.conn.begin():
        partition.conn.execute(
            text("SELECT index_charges_partition(:relation)"), {"relation": partition.relation}
        )


def index_debtor_search_partition(engine: Engine, partition: ChargePartition) -> None:
    """Build on the committed search table every index debtor_search has, on a connection
    of its own (beside index_charge_partition)."""
    with engine.begin() as conn:
        conn.execute(
            text("SELECT index_debtor_search_partition(:batch)"),
            {"batch": partition.search_batch},
        )


def register_charge_partition(conn: Connection, partition: ChargePartition) -> int:
    """In the import's transaction, the committed charges' debtIds kept in charge_keys and
    their amounts added to the Overview's figures (while their indexes are built beside);
    returns how many. attach_charge_partition comes after, in the same transaction."""
    return conn.execute(
        text("SELECT register_charges_partition(:relation)"), {"relation": partition.relation}
    ).scalar_one()


def attach_debtor_search_partition(conn: Connection, partition: ChargePartition) -> int:
    """Attach the search table index_debtor_search_partition indexed; return how many
    debtors it holds."""
    return conn.execute(
        text("SELECT attach_debtor_search_partition(:batch)"), {"batch": partition.search_batch}
    ).scalar_one()


_REFRESH_DEBTOR_SEARCH = """
UPDATE debtor_search AS s
SET name = d.name, search_name = d.search_name, email = d.email
FROM debtors AS d
WHERE s.debtor_id = d.id AND d.id = ANY(:ids)
  AND (s.name, s.search_name, s.email) IS DISTINCT FROM (d.name, d.search_name, d.email)
"""


def refresh_debtor_search(conn: Connection, *, debtor_ids: np.ndarray) -> None:
    """The search rows of `debtor_ids` made equal to their debtors: for debtors a large
    import inserted and then renamed in a later piece, once their search table is attached
    (until then the update trigger could not reach it)."""
    if len(debtor_ids):
        conn.execute(text(_REFRESH_DEBTOR_SEARCH), {"ids": np.unique(debtor_ids).tolist()})


def attach_charge_partition(conn: Connection, partition: ChargePartition) -> None:
    """Attach a charges table register_charge_partition registered in this transaction (its
    indexes found built, its foreign keys validated)."""
    conn.execute(text(_ATTACH_PARTITION), {"relation": partition.relation})


def close_charge_partition(partition: ChargePartition) -> None:
    """Once the import's transaction has ended: the partition's connection closed, and its
    tables gone unless the import attached them and committed (never committed, they go
    with their transaction; committed, they are dropped).

    The drop waits at most DROP_LOCK_TIMEOUT for each table: a transaction of the import
    still holding it (called too early, or the import's connection lost while its server
    session lives on) leaves it to the next large import (start_charge_partition), rather
    than this one waiting for a transaction that waits for it.
    """
    try:
        if partition.committed:
            with partition.conn.begin():
                partition.conn.execute(
                    text("SELECT set_config('lock_timeout', :timeout, true)"),
                    {"timeout": DROP_LOCK_TIMEOUT},
                )
                partition.conn.execute(
                    text("SELECT drop_charges_partition_not_attached(:relation)"),
                    {"relation": partition.relation},
                )
                partition.conn.execute(
                    text("SELECT drop_debtor_search_partition_not_attached(:batch)"),
                    {"batch": partition.search_batch},
                )
    except OperationalError as exc:
        log.warning("%s left for the next large import to drop: %s", partition.relation, exc)
    finally:
        partition.conn.close()


def _with_ids(slices: Iterable[pa.Table], *, first_id: int) -> Iterator[pa.Table]:
    """The slices with an `id` column in front, numbered on from `first_id`."""
    next_id = first_id
    for rows in slices:
        ids = pa.array(np.arange(next_id, next_id + rows.num_rows, dtype=np.int64))
        next_id += rows.num_rows
        yield rows.add_column(0, "id", ids)


# A file's new charges, when there are at least BULK_LOAD_MIN_ROWS of them, go into a
# partition of their own (sql/010): a table created for them on a connection of its own
# (sql/024), filled by COPY with no index (FREEZE: created in that transaction, its pages
# are written frozen and all-visible, so the dashboard's counts answer from the indexes at
# once, with no VACUUM), indexed in one sorted pass per index and committed, then attached
# in the import's transaction. The cost is that of the file alone, whatever `charges`
# holds, and attaching takes only SHARE UPDATE EXCLUSIVE on `charges`: no reader waits.
# Measured with bench_growth: see the README. Smaller files go through `charges` into its
# open partition, their index entries added row by row.
_NEW_PARTITION = "SELECT relation, first_id FROM new_charges_partition()"
DROP_LOCK_TIMEOUT = "5s"  # close_charge_partition's longest wait for its table
_ATTACH_PARTITION = "SELECT attach_charges_partition(:relation)"


def loads_into_own_partition(new_rows: int, *, piece_bytes: int, bytes_after: int) -> bool:
    """Whether a file's new charges get a partition of their own, decided at its first
    piece holding any: `new_rows` in that piece (of `piece_bytes`), and as many again for
    each piece's worth of the `bytes_after` still to read make BULK_LOAD_MIN_ROWS or more.

    So a new month's file (nearly every row new) gets one, and a file imported again with
    a few corrected rows (a few new in each piece) joins the open partition instead of
    adding a partition of a few thousand rows each time."""
    expected = new_rows * (1 + bytes_after / max(piece_bytes, 1))
    return expected >= BULK_LOAD_MIN_ROWS


# A file's new charges get a partition of their own from this many on (see
# loads_into_own_partition); below it they join the open partition, and a smaller import
# leaves the VACUUM of debtors to autovacuum.
BULK_LOAD_MIN_ROWS = 50_000

# Whether the current role may VACUUM (ANALYZE) every one of :tables: their owner (or a
# superuser) may, and from PostgreSQL 17 a role granted MAINTAIN (see db/roles.py).
_MAY_VACUUM = """
SELECT bool_and(pg_has_role(relowner, 'USAGE')) FROM pg_class
WHERE oid = ANY (CAST(:tables AS regclass[]))
"""
_MAY_VACUUM_SINCE_17 = """
SELECT bool_and(pg_has_role(relowner, 'USAGE') OR has_table_privilege(oid, 'MAINTAIN'))
FROM pg_class WHERE oid = ANY (CAST(:tables AS regclass[]))
"""
VACUUMED_TABLES = ("debtors",)


def may_vacuum(conn: Connection, *, tables: tuple[str, ...] = VACUUMED_TABLES) -> bool:
    """Whether this connection's role may VACUUM (and ANALYZE) all of `tables`."""
    since_17 = server_major_version(conn) >= 17
    query = _MAY_VACUUM_SINCE_17 if since_17 else _MAY_VACUUM
    return bool(conn.execute(text(query), {"tables": list(tables)}).scalar_one())


def vacuum_after_large_load(engine: Engine) -> None:
    """VACUUM `debtors` once a large import that filled it has committed.

    Until pages are marked all-visible, the Debtors page's counts cannot answer from the
    indexes alone (index-only scans) and read the table, until autovacuum comes by. VACUUM
    cannot run in a transaction, hence its own connection in autocommit. (A large file's
    charges need none: their partition is written frozen, see copy_into_partition.)

    Before PostgreSQL 17 only the table's owner may VACUUM it, not the application's role:
    autovacuum, which a large insert wakes, then refreshes the statistics and sets the
    pages all-visible within minutes.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not may_vacuum(conn):
            log.info(
                "VACUUM of %s left to autovacuum: role %s may not run it before PostgreSQL 17",
                ", ".join(VACUUMED_TABLES),
                conn.exec_driver_sql("SELECT current_user").scalar_one(),
            )
            return
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(VACUUMED_TABLES)}")


def store_rejections(conn: Connection, *, import_id: int, rejected: pa.Table) -> None:
    """Keep every rejected row with its values as read and all its reasons.

    `reasons` arrives "; "-joined from a fixed vocabulary (no quotes, commas or braces),
    so it becomes a text[] literal by plain replacement, vectorised like the rest.
    """
    if rejected.num_rows == 0:
        return
    reasons = pc.binary_join_element_wise(
        "{", pc.replace_substring(rejected.column("reasons"), "; ", ","), "}", ""
    )
    rows = pa.table(
        {
            "import_id": pa.array(np.full(rejected.num_rows, import_id, dtype=np.int64)),
            "line": rejected.column("line"),
            "name": rejected.column("name"),
            "government_id": rejected.column("governmentId"),
            "email": rejected.column("email"),
            "debt_amount": rejected.column("debtAmount"),
            "debt_due_date": rejected.column("debtDueDate"),
            "debt_id": rejected.column("debtId"),
            "reasons": reasons,
        }
    )
    copy_table(
        conn,
        table=rows,
        target="import_rejections",
        columns=f"import_id, {_REJECTION_COLUMNS}",
    )
