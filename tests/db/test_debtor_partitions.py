"""Debtors partitioned by id (sql/015): a large file's new debtors in a partition of their
own, governmentId unique across partitions through debtor_keys, known debtors refreshed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from billing.imports import reading
from db import loading
from db.migrations import discover_migrations, migrate
from tests.support.debtor_files import debtor_csv, run_import


def debtor_rows(count: int, *, start: int = 0, debtors: int, name: str = "Devedor") -> list:
    """`count` charges of `debtors` debtors (lenient ids), debtIds from `start`."""
    return [
        (
            f"{name} {i % debtors}",
            f"9{i % debtors:07d}",
            f"d{i % debtors}@example.com",
            "100.50",
            "2030-01-10",
            f"c-{i:08d}",
        )
        for i in range(start, start + count)
    ]


def import_rows(db: Engine, rows: list, name: str = "debtors.csv") -> None:
    result = run_import(db, debtor_csv(rows), lenient=True, name=name)
    assert result.status == "done", result


def partitions_of_debtors(conn: Connection) -> dict[str, int]:
    """Each partition holding debtors, with how many."""
    rows = conn.execute(
        text("SELECT tableoid::regclass::text, count(*) FROM debtors GROUP BY 1")
    ).all()
    return dict(rows)


def keys_match_debtors(conn: Connection) -> bool:
    """debtor_keys holds exactly one row per debtor, with its governmentId and id."""
    return conn.execute(
        text(
            "SELECT NOT EXISTS (SELECT government_id, id FROM debtors "
            "EXCEPT ALL SELECT government_id, debtor_id FROM debtor_keys) "
            "AND NOT EXISTS (SELECT government_id, debtor_id FROM debtor_keys "
            "EXCEPT ALL SELECT government_id, id FROM debtors)"
        )
    ).scalar_one()


@pytest.fixture
def small_bulk_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)


@pytest.mark.usefixtures("small_bulk_loads")
def test_a_large_file_s_new_debtors_get_a_partition_of_their_own(db: Engine) -> None:
    import_rows(db, debtor_rows(60, debtors=30))
    import_rows(db, debtor_rows(60, start=60, debtors=45))  # 30 known, 15 new

    with db.connect() as conn:
        partitions = partitions_of_debtors(conn)
        assert sorted(partitions.values()) == [15, 30]
        assert all(name.startswith("debtors_file_") for name in partitions)
        # written frozen and analysed: every page all-visible, with no VACUUM
        visible = conn.execute(
            text(
                "SELECT bool_and(relallvisible = relpages AND relpages > 0) FROM pg_class "
                "WHERE relname = ANY(:names)"
            ),
            {"names": list(partitions)},
        ).scalar_one()
        assert visible
        assert keys_match_debtors(conn)
        # every charge points at its debtor, whatever partition holds it
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM charges AS c JOIN debtors AS d ON d.id = c.debtor_id "
                    "WHERE c.payer_name = d.name"
                )
            ).scalar_one()
            == 120
        )
        missing = conn.execute(  # each of the parent's indexes has its copy on each partition
            text(
                "SELECT count(*) FROM pg_index AS p, pg_inherits AS i "
                "WHERE p.indrelid = CAST('debtors' AS regclass) "
                "AND i.inhparent = p.indrelid AND NOT EXISTS ("
                "SELECT 1 FROM pg_inherits AS j JOIN pg_index AS q ON q.indexrelid = j.inhrelid "
                "WHERE j.inhparent = p.indexrelid AND q.indrelid = i.inhrelid)"
            )
        ).scalar_one()
        assert missing == 0
        found = conn.execute(
            text(
                "SELECT count(*) FROM debtors WHERE to_tsvector('simple', search_name) "
                "@@ to_tsquery('simple', 'devedor') AND lower(email) LIKE 'd%'"
            )
        ).scalar_one()
        assert found == 45


@pytest.mark.usefixtures("small_bulk_loads")
def test_a_file_of_known_debtors_leaves_no_empty_partition(db: Engine) -> None:
    count_partitions = text(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = CAST('debtors' AS regclass)"
    )
    import_rows(db, debtor_rows(60, debtors=30))
    with db.connect() as conn:
        before = conn.execute(count_partitions).scalar_one()
    import_rows(db, debtor_rows(60, start=60, debtors=30))  # new charges, no new debtor
    with db.connect() as conn:
        assert conn.execute(count_partitions).scalar_one() == before
        leftover = "SELECT count(*) FROM pg_class WHERE relname LIKE 'debtors_file_%'"
        assert conn.execute(text(f"{leftover} AND NOT relispartition")).scalar_one() == 0


@pytest.mark.usefixtures("small_bulk_loads")
def test_a_re_import_refreshes_changed_debtors_and_leaves_the_others(db: Engine) -> None:
    rows = debtor_rows(60, debtors=30)
    import_rows(db, rows)
    with db.connect() as conn:
        before = dict(conn.execute(text("SELECT government_id, xmin::text FROM debtors")).all())
    renamed = [(f"Nova {row[0]}", *row[1:]) if row[1] == "90000007" else row for row in rows]
    renamed = [
        (row[0], row[1], "new7@example.com", *row[3:]) if row[1] == "90000007" else row
        for row in renamed
    ]
    result = run_import(db, debtor_csv(renamed), lenient=True, name="again.csv")
    assert (result.imported, result.duplicates) == (0, 60)
    with db.connect() as conn:
        after = dict(conn.execute(text("SELECT government_id, xmin::text FROM debtors")).all())
        changed = {key for key in before if before[key] != after[key]}
        assert changed == {"90000007"}
        assert conn.execute(
            text("SELECT name, email, search_name FROM debtors WHERE government_id = '90000007'")
        ).one() == ("Nova Devedor 7", "new7@example.com", "nova devedor 7")


@pytest.mark.usefixtures("small_bulk_loads")
def test_the_file_s_last_row_names_a_debtor_met_in_several_pieces(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "PIECE_BYTES", 700)  # a dozen rows a piece
    rows = debtor_rows(60, debtors=20)  # each debtor in three pieces, renamed in the last
    rows = [(f"{row[0]} ({i})", *row[1:]) if i >= 40 else row for i, row in enumerate(rows)]
    import_rows(db, rows)
    last_names = {row[1]: row[0] for row in rows}
    with db.connect() as conn:
        names = dict(conn.execute(text("SELECT government_id, name FROM debtors")).all())
        assert len(conn.execute(text("SELECT DISTINCT tableoid FROM debtors")).all()) == 1
        assert keys_match_debtors(conn)
    assert names == last_names


def test_a_partition_rolled_back_leaves_debtors_as_they_were(db: Engine) -> None:
    insert = text(
        "INSERT INTO debtors (government_id, name, email, search_name) "
        "VALUES (:gid, 'Ana', 'ana@example.com', 'ana') RETURNING id"
    )
    with db.connect() as conn:
        with conn.begin():
            partition = loading.start_charge_partition(conn).debtors
            conn.exec_driver_sql(
                f"INSERT INTO {partition.relation} (id, government_id, name, email, search_name)"
                f" VALUES ({partition.first_id}, '1', 'Bia', 'bia@example.com', 'bia')"
            )
            attached = conn.execute(
                text("SELECT attach_debtors_partition(:r)"), {"r": partition.relation}
            ).scalar_one()
            assert attached == 1
            conn.rollback()
        with conn.begin():  # nothing of it is left, not even a sequence moved past it
            assert conn.execute(insert, {"gid": "2"}).scalar_one() < partition.first_id
            assert conn.execute(text("SELECT count(*) FROM debtors")).scalar_one() == 1


def test_government_id_stays_unique_across_partitions(db: Engine, owner_engine: Engine) -> None:
    insert = text(
        "INSERT INTO debtors (government_id, name, email, search_name) "
        "VALUES (:gid, 'Ana', 'ana@example.com', 'ana')"
    )
    with owner_engine.begin() as conn:
        conn.execute(insert, {"gid": "52998224725"})
    with pytest.raises(IntegrityError, match="debtor_keys_pkey"), owner_engine.begin() as conn:
        conn.execute(insert, {"gid": "52998224725"})
    with owner_engine.begin() as conn:  # a corrected governmentId keeps its key in step
        conn.execute(
            text("UPDATE debtors SET government_id = '11144477735' WHERE government_id = :g"),
            {"g": "52998224725"},
        )
        assert keys_match_debtors(conn)
        conn.execute(insert, {"gid": "52998224725"})
        conn.execute(text("DELETE FROM debtors WHERE government_id = '11144477735'"))
        assert keys_match_debtors(conn)
        conn.execute(text("TRUNCATE debtors CASCADE"))
        assert conn.execute(text("SELECT count(*) FROM debtor_keys")).scalar_one() == 0


def test_a_charge_must_point_at_a_debtor(db: Engine) -> None:
    with pytest.raises(IntegrityError, match="charges_debtor_id_fkey"), db.begin() as conn:
        import_id = conn.execute(
            text(
                "INSERT INTO imports (file_name, sha256, size_bytes, status) "
                "VALUES ('x.csv', 'x', 1, 'done') RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, "
                "payer_name, payer_email) VALUES ('x-1', 987654321, :i, 1, DATE '2030-01-01', "
                "'Ana', 'ana@example.com')"
            ),
            {"i": import_id},
        )


def test_debtors_of_an_older_release_become_the_first_partition_whole(
    empty_database: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    for migration in discover_migrations():
        if migration.name < "015":
            shutil.copy(migration.path, folder / migration.name)
    migrate(empty_database, folder)
    with empty_database.begin() as conn:
        conn.exec_driver_sql(
            """
            INSERT INTO imports (file_name, sha256, size_bytes, status)
                VALUES ('a.csv', 'x', 1, 'done');
            INSERT INTO debtors (government_id, name, email, search_name)
                VALUES ('52998224725', 'Ana', 'ana@example.com', 'ana'),
                       ('11144477735', 'Bia', 'bia@example.com', 'bia');
            INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, payer_name,
                                 payer_email)
            SELECT 'debt-' || id, id, 1, 10, DATE '2030-01-01', name, email FROM debtors;
            """
        )
        before = conn.execute(text("SELECT id, government_id FROM debtors ORDER BY id")).all()

    assert "015_debtors_partitions.sql" in migrate(empty_database)

    with empty_database.begin() as conn:
        after = conn.execute(
            text("SELECT id, government_id, tableoid::regclass::text FROM debtors ORDER BY id")
        ).all()
        assert [tuple(row[:2]) for row in after] == [tuple(row) for row in before]
        assert {row[2] for row in after} == {"debtors_legacy"}
        assert keys_match_debtors(conn)
        new_id = conn.execute(
            text(
                "INSERT INTO debtors (government_id, name, email, search_name) "
                "VALUES ('12345678909', 'Caio', 'caio@example.com', 'caio') RETURNING id"
            )
        ).scalar_one()
        assert new_id > max(row[0] for row in before)
        assert keys_match_debtors(conn)
        referenced = conn.execute(
            text(
                "SELECT confrelid::regclass::text FROM pg_constraint "
                "WHERE conname = 'charges_debtor_id_fkey' AND conparentid = 0"
            )
        ).scalar_one()
        assert referenced == "debtors"
