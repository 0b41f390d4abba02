"""The import against a real PostgreSQL: counts, idempotency, atomicity, concurrency."""

from __future__ import annotations

import csv
import io
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import import_file, import_history, rejected_rows_csv
from db import imports as imports_db
from db.loading import ChargePartition
from tests.support.actors import OPERATOR
from tests.support.database import rows_per_partition, scalar, schema_of
from tests.support.debtor_files import VALID_CPFS, debtor_csv, run_import, sample_rows
from tests.support.spreadsheets import QUOTED_RECORD


def test_import_creates_debtors_and_charges(db: Engine) -> None:
    result = run_import(db, debtor_csv(sample_rows(10)))

    assert result.status == "done"
    assert (result.rows, result.imported, result.duplicates, result.rejected) == (10, 10, 0, 0)
    assert scalar(db, "SELECT count(*) FROM charges") == 10
    assert scalar(db, "SELECT count(*) FROM debtors") == len(VALID_CPFS)
    with db.connect() as conn:
        charge = conn.execute(
            text(
                "SELECT c.amount, c.due_date, c.payer_email, c.created_at, c.updated_at, "
                "d.government_id FROM charges c JOIN debtors d ON d.id = c.debtor_id "
                "WHERE c.debt_id = 'debt-000003'"
            )
        ).one()
    assert charge.amount == Decimal("103.50")
    assert str(charge.due_date) == "2024-05-10"
    assert charge.payer_email == "debtor3@example.com"
    assert charge.government_id == VALID_CPFS[3]
    assert charge.created_at is not None and charge.updated_at is not None
    record = imports_db.get_import(db, result.import_id)
    assert record["status"] == "done"
    assert (record["rows"], record["imported"], record["rejected"]) == (10, 10, 0)


def test_updated_at_is_kept_by_the_database(db: Engine) -> None:
    run_import(db, debtor_csv(sample_rows(1)))
    with db.begin() as conn:
        before = conn.execute(text("SELECT updated_at FROM charges")).scalar_one()
    with db.begin() as conn:
        conn.execute(text("UPDATE charges SET status = 'canceled'"))
    after = scalar(db, "SELECT updated_at FROM charges")
    assert after > before


def test_same_file_twice_creates_nothing_new(db: Engine) -> None:
    data = debtor_csv(sample_rows(20))
    first = run_import(db, data)
    second = run_import(db, data)

    assert first.imported == 20
    assert (second.status, second.imported, second.duplicates) == ("done", 0, 20)
    assert scalar(db, "SELECT count(*) FROM charges") == 20


def test_overlapping_file_adds_only_new_debt_ids(db: Engine) -> None:
    run_import(db, debtor_csv(sample_rows(10)))
    result = run_import(db, debtor_csv(sample_rows(10, start=5)))

    assert (result.imported, result.duplicates) == (5, 5)
    assert scalar(db, "SELECT count(*) FROM charges") == 15


def test_newest_file_updates_the_debtor_but_not_what_a_charge_billed(db: Engine) -> None:
    cpf = VALID_CPFS[0]
    run_import(db, debtor_csv([("Ana Souza", cpf, "ana@old.com", "10", "2024-01-01", "a1")]))
    run_import(db, debtor_csv([("Ana S. Lima", cpf, "ana@new.com", "20", "2024-02-01", "a2")]))

    with db.connect() as conn:
        debtor = conn.execute(text("SELECT name, email FROM debtors")).one()
        billed = dict(conn.execute(text("SELECT debt_id, payer_email FROM charges")).all())
    assert tuple(debtor) == ("Ana S. Lima", "ana@new.com")
    assert billed == {"a1": "ana@old.com", "a2": "ana@new.com"}


def test_known_changed_and_new_debtors_in_one_file(db: Engine) -> None:
    """One look-up serves all three: the known debtor untouched (no write, its updated_at
    kept), the changed one updated, the new one inserted, each charge on its own debtor."""
    same, changed, new = VALID_CPFS[0], VALID_CPFS[1], VALID_CPFS[2]
    run_import(
        db,
        debtor_csv(
            [
                ("Ana Souza", same, "ana@example.com", "10", "2024-01-01", "a1"),
                ("Bruno Dias", changed, "bruno@old.com", "10", "2024-01-01", "b1"),
            ]
        ),
    )
    with db.connect() as conn:
        written_before = dict(
            conn.execute(text("SELECT government_id, updated_at FROM debtors")).all()
        )
    result = run_import(
        db,
        debtor_csv(
            [
                ("Carla Nunes", new, "carla@example.com", "30", "2024-02-01", "c2"),
                ("Bruno Dias", changed, "bruno@new.com", "20", "2024-02-01", "b2"),
                ("Ana Souza", same, "ana@example.com", "20", "2024-02-01", "a2"),
            ]
        ),
    )

    assert (result.imported, result.duplicates) == (3, 0)
    with db.connect() as conn:
        debtors = {
            row.government_id: row
            for row in conn.execute(text("SELECT government_id, email, updated_at FROM debtors"))
        }
        charged = dict(
            conn.execute(
                text(
                    "SELECT c.debt_id, d.government_id FROM charges AS c "
                    "JOIN debtors AS d ON d.id = c.debtor_id"
                )
            ).all()
        )
    assert {gid: row.email for gid, row in debtors.items()} == {
        same: "ana@example.com",
        changed: "bruno@new.com",
        new: "carla@example.com",
    }
    assert debtors[same].updated_at == written_before[same]
    assert debtors[changed].updated_at > written_before[changed]
    assert charged == {"a1": same, "b1": changed, "a2": same, "b2": changed, "c2": new}


def test_within_a_file_the_last_row_of_a_debtor_speaks_for_it(db: Engine) -> None:
    first, second = VALID_CPFS[0], VALID_CPFS[1]
    rows = [
        ("Ana Souza", first, "ana@old.com", "10", "2024-01-01", "a1"),
        ("Bruno Dias", second, "bruno@example.com", "10", "2024-01-01", "b1"),
        ("Ana Conceição", first, "ana@new.com", "20", "2024-02-01", "a2"),
        ("Bruno Dias", second, "bruno@example.com", "30", "2024-03-01", "b2"),
    ]
    run_import(db, debtor_csv(rows))

    with db.connect() as conn:
        debtors = conn.execute(
            text("SELECT government_id, name, email, search_name FROM debtors")
        ).all()
        billed = dict(conn.execute(text("SELECT debt_id, payer_name FROM charges")).all())
    assert sorted(tuple(debtor) for debtor in debtors) == sorted(
        [
            (first, "Ana Conceição", "ana@new.com", "ana conceicao"),
            (second, "Bruno Dias", "bruno@example.com", "bruno dias"),
        ]
    )
    assert billed == {
        "a1": "Ana Souza",
        "b1": "Bruno Dias",
        "a2": "Ana Conceição",
        "b2": "Bruno Dias",
    }


def test_one_address_may_serve_several_debtors(db: Engine) -> None:
    rows = [
        ("Pai", VALID_CPFS[0], "familia@example.com", "10", "2024-01-01", "f1"),
        ("Filha", VALID_CPFS[1], "familia@example.com", "10", "2024-01-01", "f2"),
    ]
    assert run_import(db, debtor_csv(rows)).imported == 2
    assert scalar(db, "SELECT count(*) FROM debtors WHERE email = 'familia@example.com'") == 2


def test_rejected_rows_are_kept_with_every_reason_and_downloadable(db: Engine) -> None:
    rows = [
        *sample_rows(2),
        ("", "123", "not-an-email", "-5", "2024-02-30", "bad-1"),
        ("Dup", VALID_CPFS[0], "dup@example.com", "1", "2024-01-01", "debt-000000"),
    ]
    result = run_import(db, debtor_csv(rows))

    assert (result.imported, result.rejected) == (2, 2)
    assert result.reason_counts["duplicate debtId"] == 1
    download = rejected_rows_csv(db, actor=OPERATOR, import_id=result.import_id).decode("utf-8-sig")
    parsed = list(csv.DictReader(io.StringIO(download)))
    assert [row["line"] for row in parsed] == ["4", "5"]
    assert parsed[0]["debtAmount"] == "'-5"  # as read, kept from running as a formula
    assert set(parsed[0]["reasons"].split("; ")) == {
        "missing name",
        "invalid governmentId (not a valid CPF or CNPJ)",
        "invalid email",
        "debtAmount is negative",
        "2024-02-30 is not a date",
    }
    assert parsed[1]["reasons"] == "duplicate debtId: first on line 2"


FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "@SUM(A1:A9)", "-2"]


def test_rejected_rows_cannot_run_as_formulas_in_a_spreadsheet(db: Engine) -> None:
    rows = [(formula, VALID_CPFS[0], formula, "10", "2024-01-01", formula) for formula in FORMULAS]
    rows.append(("Maria", VALID_CPFS[1], "maria@example", "=HYPERLINK(1)", "@x", "plain-1"))
    result = run_import(db, debtor_csv([tuple(f'"{v}"' for v in row) for row in rows]))
    assert (result.imported, result.rejected) == (0, len(rows))

    download = rejected_rows_csv(db, actor=OPERATOR, import_id=result.import_id)

    assert download.startswith(b"\xef\xbb\xbf")
    text_lines = download.decode("utf-8-sig").split("\r\n")
    assert text_lines[-1] == ""
    assert all(QUOTED_RECORD.fullmatch(line) for line in text_lines[:-1]), text_lines
    parsed = list(csv.DictReader(io.StringIO(download.decode("utf-8-sig"), newline="")))
    for row, formula in zip(parsed[: len(FORMULAS)], FORMULAS, strict=True):
        assert (row["name"], row["email"], row["debtId"]) == (f"'{formula}",) * 3
    plain = parsed[-1]
    assert (plain["name"], plain["email"], plain["debtId"]) == ("Maria", "maria@example", "plain-1")
    assert (plain["debtAmount"], plain["debtDueDate"]) == ("'=HYPERLINK(1)", "'@x")
    assert plain["line"] == str(len(rows) + 1)


def test_fixed_rejected_rows_import_when_uploaded_again(db: Engine) -> None:
    rows = [("Fix Me", VALID_CPFS[2], "fix@example", "10", "2024-01-01", "fix-1")]
    first = run_import(db, debtor_csv(rows))
    assert (first.imported, first.rejected) == (0, 1)

    fixed = rejected_rows_csv(db, actor=OPERATOR, import_id=first.import_id).replace(
        b"fix@example", b"fix@example.com"
    )
    second = run_import(db, fixed)
    assert (second.imported, second.rejected) == (1, 0)
    assert sorted(second.extra_columns) == ["line", "reasons"]


@pytest.mark.parametrize(
    ("data", "message_part"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (b"name,email\nAna,ana@example.com\n", "missing"),
    ],
)
def test_refused_file_is_recorded_and_writes_nothing(
    db: Engine, data: bytes, message_part: str
) -> None:
    result = run_import(db, data)

    assert result.status == "refused"
    assert message_part in result.error.lower()
    assert scalar(db, "SELECT count(*) FROM charges") == 0
    record = imports_db.get_import(db, result.import_id)
    assert record["status"] == "refused"
    assert record["error"] == result.error


def test_a_failure_mid_load_leaves_nothing_behind(db: Engine, owner_engine: Engine) -> None:
    rows = sample_rows(50)
    with owner_engine.begin() as conn:  # the application's role may not add triggers
        conn.exec_driver_sql(
            """
            CREATE FUNCTION fail_on_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.debt_id = 'debt-000040' THEN RAISE EXCEPTION 'disk on fire'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison BEFORE INSERT ON charges
                FOR EACH ROW EXECUTE FUNCTION fail_on_poison();
            """
        )
    try:
        with pytest.raises(Exception, match="disk on fire"):
            run_import(db, debtor_csv(rows))
    finally:
        with owner_engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER poison ON charges; DROP FUNCTION fail_on_poison()")

    assert scalar(db, "SELECT count(*) FROM charges") == 0
    assert scalar(db, "SELECT count(*) FROM debtors") == 0
    failed = import_history(db)[0]
    assert failed["status"] == "failed"
    assert "nothing was saved" in failed["error"]

    again = run_import(db, debtor_csv(rows))
    assert (again.status, again.imported) == ("done", 50)


@pytest.mark.parametrize("piece_bytes", [None, 20_000], ids=["one piece", "in pieces"])
def test_two_imports_at_once_neither_deadlock_nor_duplicate(
    db: Engine, monkeypatch: pytest.MonkeyPatch, piece_bytes: int | None
) -> None:
    """In pieces, the later pieces' debtIds are looked up while they are read, on a
    connection of their own: only once the import holds the lock, or the second import
    would miss the first's charges and fail on them."""
    from billing.imports import reading

    if piece_bytes:
        monkeypatch.setattr(reading, "PIECE_BYTES", piece_bytes)  # about 15 pieces
    first = debtor_csv(sample_rows(3000))
    second = debtor_csv(sample_rows(3000, start=1500))
    results = {}
    errors = []

    def worker(name: str, data: bytes) -> None:
        try:
            results[name] = run_import(db, data, name=name)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=("a.csv", first)),
        threading.Thread(target=worker, args=("b.csv", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert scalar(db, "SELECT count(*) FROM charges") == 4500
    assert results["a.csv"].imported + results["b.csv"].imported == 4500
    assert results["a.csv"].duplicates + results["b.csv"].duplicates == 1500


def test_a_file_in_pieces_waits_for_the_import_before_it_to_look_up_its_debt_ids(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pieces after the first are looked up as they are read, on a connection of their
    own (service._CommittedKeys), but only once this import holds the lock: started while
    another import loads, a file sharing its debtIds finds them all as duplicates."""
    from billing.imports import reading
    from db import loading

    monkeypatch.setattr(reading, "PIECE_BYTES", 20_000)  # about 200 rows a piece
    loading_first = threading.Thread(
        target=run_import, args=(db, debtor_csv(sample_rows(12_000))), kwargs={"name": "a.csv"}
    )
    loading_first.start()
    deadline = time.monotonic() + 60
    while not scalar(
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND granted",
        key=loading.IMPORT_LOCK_KEY,
    ):
        assert time.monotonic() < deadline, "the first import never took the lock"
        time.sleep(0.01)
    second = run_import(db, debtor_csv(sample_rows(3000, start=10_000)), name="b.csv")
    loading_first.join(timeout=120)

    assert (second.status, second.imported, second.duplicates) == ("done", 1000, 2000)
    assert scalar(db, "SELECT count(*) FROM charges") == 13_000


def test_an_import_left_running_by_a_dead_process_shows_as_failed(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO imports (file_name, sha256, size_bytes, started_at) "
                "VALUES ('ghost.csv', 'x', 1, now() - interval '1 hour')"
            )
        )
    history = import_history(db)
    assert history[0]["status"] == "failed"
    assert history[0]["error"] == imports_db.INTERRUPTED_MESSAGE


def test_a_live_import_is_not_mistaken_for_a_dead_one(db: Engine) -> None:
    with db.begin() as conn:
        import_id = imports_db.create_import(
            conn, file_name="live.csv", sha256="x", size_bytes=1, lenient_documents=False
        )
        conn.execute(
            text("UPDATE imports SET started_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": import_id},
        )
    with db.connect() as holder:
        imports_db.hold_import(holder, import_id)
        holder.commit()
        try:
            assert imports_db.mark_interrupted_imports(db) == 0
            assert imports_db.get_import(db, import_id)["status"] == "running"
        finally:
            imports_db.release_import(holder, import_id)
            holder.commit()
    assert imports_db.mark_interrupted_imports(db) == 1


def test_lenient_documents_accept_short_ids(db: Engine) -> None:
    rows = [("Elijah Santos", "9558", "elijah@example.net", "7811", "2024-01-19", "u-1")]
    assert run_import(db, debtor_csv(rows)).rejected == 1
    assert run_import(db, debtor_csv(rows), lenient=True).imported == 1


def test_names_are_found_without_accents(db: Engine) -> None:
    rows = [
        ("Maria da Conceição", VALID_CPFS[0], "m@example.com", "10", "2024-01-01", "c1"),
        ("JOÃO ANTÔNIO", VALID_CPFS[1], "j@example.com", "10", "2024-01-01", "c2"),
    ]
    run_import(db, debtor_csv(rows))
    with db.connect() as conn:
        found = (
            conn.execute(
                text(
                    "SELECT name FROM debtors WHERE to_tsvector('simple', search_name) "
                    "@@ to_tsquery('simple', :query) ORDER BY name"
                ),
                {"query": "conceicao"},
            )
            .scalars()
            .all()
        )
        stored = conn.execute(text("SELECT search_name FROM debtors ORDER BY id")).scalars()
        assert found == ["Maria da Conceição"]
        assert sorted(stored) == ["joao antonio", "maria da conceicao"]


def test_a_large_file_s_partition_gets_every_index_and_key_of_charges(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    before = {table: schema_of(db, table) for table in ("charges", "debtors")}

    result = run_import(db, debtor_csv(sample_rows(200)))

    assert (result.imported, result.issued) == (200, 200)
    assert {table: schema_of(db, table) for table in before} == before
    with db.connect() as conn:  # each of the parent's indexes has its copy on the partition
        missing = conn.execute(
            text(
                "SELECT p.indexrelid::regclass::text FROM pg_index AS p "
                "WHERE p.indrelid = CAST('charges' AS regclass) AND NOT EXISTS ("
                "  SELECT 1 FROM pg_inherits AS i JOIN pg_index AS x ON x.indexrelid = i.inhrelid"
                "  JOIN pg_class AS c ON c.oid = x.indrelid"
                "  WHERE i.inhparent = p.indexrelid AND c.relname LIKE 'charges_file_%')"
            )
        ).scalars()
        assert list(missing) == []
    assert run_import(db, debtor_csv(sample_rows(200))).duplicates == 200  # keys are there
    with pytest.raises(Exception, match="foreign key"), db.begin() as conn:
        conn.execute(text("UPDATE charges SET debtor_id = -1 WHERE debt_id = 'debt-000001'"))


@pytest.mark.parametrize(
    "failing_table",
    [
        "debtors",  # while the pieces load: a piece's debtors being inserted
        "charge_keys",  # at the end: as the partition's debtIds are kept
    ],
)
def test_a_failed_large_load_leaves_no_partition_and_the_indexes_as_they_were(
    db: Engine, owner_engine: Engine, monkeypatch: pytest.MonkeyPatch, failing_table: str
) -> None:
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    before = {table: schema_of(db, table) for table in ("charges", "debtors")}
    partitions = _charge_partitions(db)
    with owner_engine.begin() as conn:
        conn.exec_driver_sql(
            f"""
            CREATE FUNCTION fail_late() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'power cut'; END $$;
            CREATE TRIGGER fail_late AFTER INSERT ON {failing_table}
                FOR EACH STATEMENT EXECUTE FUNCTION fail_late();
            """
        )
    try:
        with pytest.raises(Exception, match="power cut"):  # the cause, not what followed it
            run_import(db, debtor_csv(sample_rows(50)))
    finally:
        with owner_engine.begin() as conn:
            conn.exec_driver_sql(
                f"DROP TRIGGER fail_late ON {failing_table}; DROP FUNCTION fail_late()"
            )

    assert {table: schema_of(db, table) for table in ("charges", "debtors")} == before
    assert _charge_partitions(db) == partitions
    # The charges' table, committed beside the import before its attach, went with it.
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 0
    assert scalar(db, "SELECT count(*) FROM charges") == 0
    assert scalar(db, "SELECT count(*) FROM debtors") == 0


def test_a_charges_table_left_by_an_import_that_died_goes_at_the_next_large_import(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    with db.connect() as conn:  # an import that died once its charges' table was committed
        with conn.begin():
            loading.lock_imports(conn)
            left = loading.start_charge_partition(db)
            loading.commit_charge_partition(left)
        left.conn.close()  # and nothing else: no close_charge_partition
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 2  # its charges', its debtors' search

    result = run_import(db, debtor_csv(sample_rows(50)))

    assert (result.status, result.imported) == ("done", 50)
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 0
    # The new import's table took the name the one left behind held.
    assert left.relation in {name for name, _ in _charge_partitions(db)}
    assert scalar(db, "SELECT count(*) FROM charges") == 50


def test_a_charges_table_is_never_dropped_while_the_import_may_still_attach_it(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed too early (the import's transaction still open), the partition's connection
    does not wait for that transaction, nor take the table from it."""
    from db import loading

    monkeypatch.setattr(loading, "DROP_LOCK_TIMEOUT", "200ms")
    with db.connect() as conn, conn.begin():
        loading.lock_imports(conn)
        partition = loading.start_charge_partition(db)
        _attach_beside(conn, partition)
        loading.close_charge_partition(partition)  # returns: gives up on the lock
    assert partition.relation in {name for name, _ in _charge_partitions(db)}
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 0


def test_a_charges_table_is_attached_only_once_its_debt_ids_are_kept(db: Engine) -> None:
    """charge_keys is what keeps a debtId from being charged twice: a table whose debtIds
    were not put there in the attaching transaction is refused."""
    from db import loading

    with db.connect() as conn:
        with conn.begin():
            loading.lock_imports(conn)
            partition = loading.start_charge_partition(db)
            loading.commit_charge_partition(partition)
            loading.index_charge_partition(partition)
            with pytest.raises(DBAPIError, match="was not registered"):
                loading.attach_charge_partition(conn, partition)
        loading.close_charge_partition(partition)
    assert partition.relation not in {name for name, _ in _charge_partitions(db)}
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 0


def _attach_beside(conn: Connection, partition: ChargePartition) -> None:
    """An empty large import's end (as billing.imports.service's _FileLoad.finish)."""
    from db import loading

    loading.commit_charge_partition(partition)  # committed beside the import
    loading.index_charge_partition(partition)
    loading.index_debtor_search_partition(conn.engine, partition)
    loading.register_charge_partition(conn, partition)
    loading.attach_debtor_search_partition(conn, partition)
    loading.attach_charge_partition(conn, partition)


def _charge_partitions(db: Engine) -> list[tuple[str, str]]:
    """(name, bounds) of every partition of charges, in order."""
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
                "JOIN pg_class AS c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST('charges' AS regclass) ORDER BY c.relname"
            )
        ).all()
    return [(name, bounds) for name, bounds in rows]


def test_a_large_file_gets_a_partition_of_its_own_and_a_small_one_the_open_partition(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 30)
    rows = sample_rows(60)

    large = run_import(db, debtor_csv(rows[:40]))
    small = run_import(db, debtor_csv(rows[40:]))

    assert (large.imported, small.imported) == (40, 20)
    counts = rows_per_partition(db, "charges")
    [own] = [name for name in counts if name.startswith("charges_file_")]
    [open_partition] = [name for name in counts if name.startswith("charges_open_")]
    assert (counts[own], counts[open_partition]) == (40, 20)
    in_partition = "FROM charges WHERE tableoid = CAST(:name AS regclass)"  # through the parent
    with db.connect() as conn:
        [(first_id, last_id)] = conn.execute(
            text(f"SELECT min(id), max(id) {in_partition}"), {"name": own}
        ).all()
        small_ids = conn.execute(
            text(f"SELECT min(id) {in_partition}"), {"name": open_partition}
        ).scalar_one()
    assert last_id - first_id == 39 and small_ids > last_id  # ids in order of arrival
    # Both partitions answer through charges like one table, with every key in place.
    assert run_import(db, debtor_csv(rows)).duplicates == 60
    assert scalar(db, "SELECT count(DISTINCT nosso_numero) FROM charges") == 60


def test_an_import_undone_after_its_attach_leaves_the_next_import_its_ids(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence is not undone by a rollback: moved inside an import that then failed, it
    pointed at ids no partition holds, and every later insert of a charge failed."""
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 30)
    rows = sample_rows(80)
    assert run_import(db, debtor_csv(rows[:40])).imported == 40  # a partition of its own
    with db.connect() as conn:  # a large import cut short after its attach
        cut_short = conn.begin()
        loading.lock_imports(conn)
        partition = loading.start_charge_partition(db)
        _attach_beside(conn, partition)
        cut_short.rollback()
        loading.close_charge_partition(partition)
    assert scalar(db, _CHARGES_TABLES_NOT_ATTACHED) == 0  # dropped once the import ended

    small = run_import(db, debtor_csv(rows[40:50]))  # through the open partition
    large = run_import(db, debtor_csv(rows[50:]))  # and a partition of its own again

    assert (small.status, small.imported, large.status, large.imported) == ("done", 10, "done", 30)
    assert scalar(db, "SELECT count(*) FROM charges") == 80
    ids = [row[0] for row in _ids_in_arrival_order(db, rows)]
    assert ids == sorted(ids)  # each import's charges after the ones before


# A large import's own tables (its charges', its new debtors' search rows) not attached.
_CHARGES_TABLES_NOT_ATTACHED = """
SELECT count(*) FROM pg_class
WHERE relname ~ '^(charges_file|debtor_search)_[0-9]+$' AND relkind = 'r' AND NOT relispartition
"""


def _ids_in_arrival_order(db: Engine, rows: list[tuple]) -> list[tuple[int]]:
    with db.connect() as conn:
        found = dict(conn.execute(text("SELECT debt_id, id FROM charges")).all())
    return [(found[row[-1]],) for row in rows]


def test_a_debt_id_is_charged_once_across_partitions_whatever_the_path(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    run_import(db, debtor_csv(sample_rows(20)))  # a partition of its own
    with pytest.raises(Exception, match="charge_keys_pkey"), db.begin() as conn:
        conn.execute(  # straight into the open partition, past the importer's own check
            text(
                "INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, "
                "payer_name, payer_email) SELECT debt_id, debtor_id, import_id, amount, "
                "due_date, payer_name, payer_email FROM charges WHERE debt_id = 'debt-000003'"
            )
        )
    with pytest.raises(Exception, match="keeps its debtId"), db.begin() as conn:
        conn.execute(text("UPDATE charges SET debt_id = 'other' WHERE debt_id = 'debt-000003'"))
    assert scalar(db, "SELECT count(*) FROM charges") == 20


def test_a_load_sent_in_slices_gives_each_charge_its_own_boleto(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.boletos.codes import amount_to_cents, issue_code
    from billing.boletos.issuing import beneficiary_from_settings
    from billing.core.settings import get_settings
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    monkeypatch.setattr(loading, "COPY_SLICE_ROWS", 7)  # 50 rows: 8 slices, the last short
    # Every fifth charge falls due before the first date a barcode can carry: it stays
    # pending, so slices hold issued and pending rows side by side.
    rows = [
        (*row[:4], "2000-01-15", row[5]) if i % 5 == 0 else row
        for i, row in enumerate(sample_rows(50))
    ]
    fractions: list[float] = []

    result = import_file(
        actor=OPERATOR,
        engine=db,
        data=debtor_csv(rows),
        file_name="sliced.csv",
        lenient_documents=False,
        on_progress=lambda fraction, _message: fractions.append(fraction),
    )

    assert (result.imported, result.issued) == (50, 40)
    with db.connect() as conn:
        charges = conn.execute(
            text(
                "SELECT debt_id, status, amount, due_date, nosso_numero, barcode, "
                "digitable_line FROM charges"
            )
        ).all()
    pending = {charge.debt_id for charge in charges if charge.status == "pending"}
    assert pending == {f"debt-{i:06d}" for i in range(0, 50, 5)}
    issued = [charge for charge in charges if charge.status == "issued"]
    assert len({charge.nosso_numero for charge in issued}) == 40
    beneficiary = beneficiary_from_settings(get_settings())
    for charge in issued:
        assert (charge.barcode, charge.digitable_line) == issue_code(
            beneficiary=beneficiary,
            nosso_numero=charge.nosso_numero,
            amount_cents=amount_to_cents(charge.amount),
            due_date=charge.due_date,
        )
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_nosso_numeros_taken_by_others_meanwhile_are_never_handed_out_twice(
    db: Engine, owner_engine: Engine
) -> None:
    """An import's numbers come back as a run when nothing else took numbers meanwhile;
    when something did (here: every other number taken, as a step of 2 makes it look),
    they come back one by one, each still fresh."""
    from db import loading

    with db.begin() as conn:
        run = loading.allocate_nosso_numeros(conn, 5)
    assert run.tolist() == list(range(int(run[0]), int(run[0]) + 5))
    with owner_engine.begin() as conn:
        conn.execute(text("ALTER SEQUENCE nosso_numero_seq INCREMENT BY 2"))
    try:
        with db.begin() as conn:
            gapped = loading.allocate_nosso_numeros(conn, 5)
            again = loading.allocate_nosso_numeros(conn, 3)
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("ALTER SEQUENCE nosso_numero_seq INCREMENT BY 1"))
    assert gapped.tolist() == [int(run[-1]) + 2 * step for step in range(1, 6)]
    assert again.tolist() == [int(gapped[-1]) + 2 * step for step in range(1, 4)]


@pytest.mark.parametrize("bulk", [False, True], ids=["open-partition", "own-partition"])
def test_a_failure_while_slices_are_being_sent_leaves_nothing_behind(
    db: Engine, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    """Our side fails mid-COPY (a slice that cannot be built): the COPY is abandoned, the
    transaction rolled back, the indexes as they were, and the next import completes."""
    from billing.imports import service as importer
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10 if bulk else 10_000)
    monkeypatch.setattr(loading, "COPY_SLICE_ROWS", 7)
    schema_before = schema_of(db, "charges")
    built = importer._ChargeRows.with_boletos
    calls = {"count": 0}

    def fails_on_the_fifth_slice(self, rows, *, nosso_numeros):
        calls["count"] += 1
        if calls["count"] == 5:
            raise RuntimeError("out of memory while building a slice")
        return built(self, rows, nosso_numeros=nosso_numeros)

    monkeypatch.setattr(importer._ChargeRows, "with_boletos", fails_on_the_fifth_slice)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_import(db, debtor_csv(sample_rows(50)))

    assert scalar(db, "SELECT count(*) FROM charges") == 0
    assert scalar(db, "SELECT count(*) FROM debtors") == 0
    assert import_history(db)[0]["status"] == "failed"
    assert schema_of(db, "charges") == schema_before
    monkeypatch.setattr(importer._ChargeRows, "with_boletos", built)
    again = run_import(db, debtor_csv(sample_rows(50)))
    assert (again.status, again.imported, again.issued) == ("done", 50, 50)


def test_a_large_file_again_with_a_few_corrected_rows_joins_the_open_partition(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of many pieces, nearly all new, gets a partition of its own; the same file
    imported again after three rejected rows were corrected (three new debtIds, spread over
    its pieces) adds its three charges to the open partition, not a partition of three."""
    from billing.imports import reading
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 60)
    monkeypatch.setattr(reading, "PIECE_BYTES", 700)  # about 7 rows a piece, 17 pieces
    rows = sample_rows(120)
    first = run_import(db, debtor_csv(rows))
    corrected = [
        (*row[:5], f"{row[5]}-fixed") if line in (2, 60, 110) else row
        for line, row in enumerate(rows)
    ]
    again = run_import(db, debtor_csv(corrected))

    assert (first.imported, again.imported, again.duplicates) == (120, 3, 117)
    partitions = rows_per_partition(db, "charges")
    assert [count for name, count in partitions.items() if name.startswith("charges_file_")] == [
        120
    ]
    assert [count for name, count in partitions.items() if name.startswith("charges_open_")] == [3]


# --- a file read a piece at a time -------------------------------------------------------


def _rejections(db: Engine, import_id: int) -> list[tuple[int, str, list[str]]]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT line, debt_id, reasons FROM import_rejections "
                "WHERE import_id = :id ORDER BY line"
            ),
            {"id": import_id},
        ).all()
    return [(line, debt_id, list(reasons)) for line, debt_id, reasons in rows]


def _charges(db: Engine) -> list[tuple[str, str, str, int]]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.debt_id, CAST(c.amount AS text), d.government_id, d.name "
                "FROM charges AS c JOIN debtors AS d ON d.id = c.debtor_id ORDER BY c.debt_id"
            )
        ).all()
    return [tuple(row) for row in rows]


def _piecewise_file() -> bytes:
    """Rows for several pieces: a debtId repeated across pieces, a bad row late in the file,
    a debtor whose name changes further on (the file's last row speaks for the debtor)."""
    rows = sample_rows(120)
    rows[90] = (*rows[90][:5], rows[3][5])  # line 92 repeats line 5's debtId
    rows[100] = (*rows[100][:3], "abc", *rows[100][4:])  # line 102: invalid amount
    last = max(i for i in range(len(rows)) if rows[i][1] == VALID_CPFS[0])
    rows[last] = ("Renamed Debtor", *rows[last][1:])  # the CPF's last row, in the last piece
    return debtor_csv(rows)


@pytest.mark.parametrize("piece_bytes", [700, 10**9])
def test_a_file_read_in_pieces_imports_as_it_would_whole(
    db: Engine, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    from billing.imports import reading
    from db import loading

    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)  # every path of a large file
    monkeypatch.setattr(reading, "PIECE_BYTES", piece_bytes)
    data = _piecewise_file()

    result = run_import(db, data)

    assert (result.rows, result.imported, result.duplicates, result.rejected) == (120, 118, 0, 2)
    assert result.reason_counts == {
        "duplicate debtId": 1,
        "debtAmount is not a number in an accepted form": 1,
    }
    assert _rejections(db, result.import_id) == [
        (92, "debt-000003", ["duplicate debtId: first on line 5"]),  # in an earlier piece
        (102, "debt-000100", ["debtAmount is not a number in an accepted form"]),
    ]
    charges = _charges(db)
    assert len(charges) == 118 and len({charge[0] for charge in charges}) == 118
    renamed = {name for _, _, government_id, name in charges if government_id == VALID_CPFS[0]}
    assert renamed == {"Renamed Debtor"}
    assert len([n for n in rows_per_partition(db, "charges") if n.startswith("charges_file_")]) == 1
    again = run_import(db, data)
    assert (again.imported, again.duplicates, again.rejected) == (0, 118, 2)


def test_a_file_refused_in_a_later_piece_writes_nothing(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.imports import reading

    monkeypatch.setattr(reading, "PIECE_BYTES", 700)
    lines = debtor_csv(sample_rows(60)).decode().splitlines()
    lines.insert(50, "Ana,1,2")  # line 51 of the file: three fields

    result = run_import(db, ("\n".join(lines) + "\n").encode())

    assert result.status == "refused"
    assert result.error.startswith("Line 51 has 3 fields, the header has 6")
    for table in ("charges", "debtors", "import_rejections", "charge_keys"):
        assert scalar(db, f"SELECT count(*) FROM {table}") == 0, table
    assert imports_db.get_import(db, result.import_id)["status"] == "refused"


def test_the_preview_of_a_file_in_pieces_counts_the_whole_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from billing.imports import reading
    from billing.imports.service import prepare_file

    monkeypatch.setattr(reading, "PIECE_BYTES", 700)
    prepared = prepare_file(_piecewise_file(), lenient_documents=False)

    assert (prepared.row_count, prepared.valid_count, prepared.rejected_count) == (120, 118, 2)
    assert prepared.preview().num_rows == 20
    assert prepared.reason_summary() == [
        {"reason": "duplicate debtId", "rows": 1, "example lines": [92]},
        {
            "reason": "debtAmount is not a number in an accepted form",
            "rows": 1,
            "example lines": [102],
        },
    ]


def test_the_preview_numbers_the_lines_and_marks_the_rejected_rows() -> None:
    from billing.imports.service import prepare_file

    rows = [*sample_rows(3), ("Ana", VALID_CPFS[0], "ana@example.com", "-1", "31/02/2024", "z")]
    marked = prepare_file(debtor_csv(rows), lenient_documents=False).marked_preview()

    assert marked.column_names == ["line", *REQUIRED_COLUMNS, "reasons"]
    assert marked.column("line").to_pylist() == [2, 3, 4, 5]
    assert marked.column("reasons").to_pylist() == [
        "",
        "",
        "",
        "debtAmount is negative; 31/02/2024 is not a date",
    ]
