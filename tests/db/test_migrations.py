"""Migrations that change data: what they leave must equal what the code writes today."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Engine, text

from billing.charges.browsing import debtor_page
from billing.core.search import fold
from db.migrations import discover_migrations, migrate


def _migrate_up_to(engine: Engine, last: str, folder: Path) -> None:
    """Apply the migrations up to and including `last`, as an older release would have."""
    folder.mkdir()
    for migration in discover_migrations():
        if migration.name <= last:
            shutil.copy(migration.path, folder / migration.name)
    migrate(engine, folder)


def _insert_debtors_folded_as_before(engine: Engine, debtors: dict[str, tuple[str, str]]) -> None:
    """governmentId -> (name, search_name as an older release stored it)."""
    with engine.begin() as conn:
        for government_id, (name, search_name) in debtors.items():
            conn.execute(
                text(
                    "INSERT INTO debtors (government_id, name, email, search_name) "
                    "VALUES (:government_id, :name, 'x@example.com', :search_name)"
                ),
                {"government_id": government_id, "name": name, "search_name": search_name},
            )


def test_names_imported_before_006_are_found_by_their_joined_form(
    empty_database: Engine, tmp_path: Path
) -> None:
    _migrate_up_to(empty_database, "005_dashboard_indexes.sql", tmp_path / "sql")
    # search_name as the import folded names until 006: accents gone, apostrophes as written.
    before = {
        "52998224725": ("José D\u2019Ávila", "jose d\u2019avila"),
        "11144477735": ("Ana Sant'Ana", "ana sant'ana"),
        "12345678909": ("Maria da Conceição", "maria da conceicao"),
    }
    _insert_debtors_folded_as_before(empty_database, before)

    assert migrate(empty_database)[0] == "006_search_apostrophes.sql"

    with empty_database.connect() as conn:
        stored = dict(conn.execute(text("SELECT name, search_name FROM debtors")).all())
        found = conn.execute(
            text(
                "SELECT name FROM debtors WHERE to_tsvector('simple', search_name) "
                "@@ to_tsquery('simple', :query) ORDER BY name"
            ),
            {"query": "davila:* | santana:*"},
        ).scalars()
        assert list(found) == ["Ana Sant'Ana", "José D\u2019Ávila"]
    assert stored == {name: fold(name) for name, _ in before.values()}


def test_names_folded_before_023_are_found_by_the_words_a_search_is_cut_into(
    empty_database: Engine, tmp_path: Path
) -> None:
    _migrate_up_to(empty_database, "022_charges_status_index_dropped.sql", tmp_path / "sql")
    # search_name as the import folded names until 023: apostrophes, hyphens and letters
    # no accent folds away (here "ø") kept as written.
    before = {
        "52998224725": ("José D'Ávila", "jose d'avila jose davila"),
        "11144477735": ("Ana-Lúcia Sørensen", "ana-lucia sørensen"),
        "12345678909": ("Maria da Conceição", "maria da conceicao"),
    }
    _insert_debtors_folded_as_before(empty_database, before)

    assert migrate(empty_database)[0] == "023_search_words.sql"

    with empty_database.connect() as conn:
        stored = dict(conn.execute(text("SELECT name, search_name FROM debtors")).all())
        searchable = dict(conn.execute(text("SELECT name, search_name FROM debtor_search")).all())
    assert stored == searchable == {name: fold(name) for name, _ in before.values()}

    def found(term: str) -> list[str]:
        return [row["name"] for row in debtor_page(empty_database, text=term).rows]

    assert found("Sørensen") == found("lucia") == found("ana-lu") == ["Ana-Lúcia Sørensen"]
    assert found("davila") == found("d'avila") == ["José D'Ávila"]
    assert found("conceição") == ["Maria da Conceição"]


def test_charges_of_an_older_release_become_the_first_partition_whole(
    empty_database: Engine, tmp_path: Path
) -> None:
    _migrate_up_to(empty_database, "009_~", tmp_path / "sql")  # everything before 010
    with empty_database.begin() as conn:
        conn.exec_driver_sql(
            """
            INSERT INTO imports (file_name, sha256, size_bytes, status)
                VALUES ('a.csv', 'x', 1, 'done');
            INSERT INTO debtors (government_id, name, email, search_name)
                VALUES ('52998224725', 'Ana', 'ana@example.com', 'ana');
            INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, payer_name,
                                 payer_email)
            SELECT 'debt-' || n, 1, 1, n * 10, DATE '2030-01-01', 'Ana', 'ana@example.com'
            FROM generate_series(1, 3) AS n;
            INSERT INTO payments (charge_id, paid_amount, paid_at, paid_by, idempotency_key, source)
            SELECT id, 10, now(), 'Ana', 'pay-1', 'webhook' FROM charges WHERE debt_id = 'debt-1';
            """
        )
        before = conn.execute(text("SELECT id, debt_id, amount FROM charges ORDER BY id")).all()

    assert "010_charges_partitions.sql" in migrate(empty_database)

    with empty_database.begin() as conn:
        after = conn.execute(
            text("SELECT id, debt_id, amount, tableoid::regclass::text FROM charges ORDER BY id")
        ).all()
        assert [tuple(row[:3]) for row in after] == [tuple(row) for row in before]
        assert {row[3] for row in after} == {"charges_legacy"}
        # Each debtId's charge is found through charge_keys (021), and Ana by her name
        # through debtor_search (020).
        keys = conn.execute(text("SELECT debt_id, charge_id FROM charge_keys ORDER BY 1")).all()
        assert [tuple(key) for key in keys] == [(row[1], row[0]) for row in before]
        found = conn.execute(text("SELECT debtor_id, name FROM debtor_search")).all()
        assert [tuple(row) for row in found] == [(1, "Ana")]
        # New charges take ids after the old ones, in the open partition; payments still
        # point at charges (now the partitioned parent).
        new_id = conn.execute(
            text(
                "INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, "
                "payer_name, payer_email) VALUES ('debt-4', 1, 1, 5, DATE '2030-01-01', 'Ana', "
                "'ana@example.com') RETURNING id"
            )
        ).scalar_one()
        assert new_id > max(row[0] for row in before)
        assert (
            conn.execute(
                text("SELECT charge_id FROM charge_keys WHERE debt_id = 'debt-4'")
            ).scalar_one()
            == new_id
        )
        referenced = conn.execute(
            text(
                "SELECT confrelid::regclass::text FROM pg_constraint "
                "WHERE conname = 'payments_charge_id_fkey'"
            )
        ).scalar_one()
        assert referenced == "charges"
