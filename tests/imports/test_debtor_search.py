"""Debtors are found (name words, e-mail, name order) through debtor_search (sql/020),
whichever way their file was loaded.

A large file's new debtors get search rows in a table of their own, indexed in one pass
and attached when the import commits; a small file's go into the open partition row by
row. Either way a debtor is found the moment the import commits, by the name and e-mail
it has now (a later file or an operator's correction changes them), and never partly.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from billing.charges.browsing import correct_debtor_email, debtor_page
from billing.core.filters import DebtorCursor
from billing.imports import reading
from db import loading
from tests.support.actors import OPERATOR
from tests.support.database import rows_per_partition
from tests.support.debtor_files import debtor_csv, run_import


def rows(
    count: int, *, start: int = 0, name: str = "Zuleica", tag: str = "a"
) -> list[tuple[str, ...]]:
    """`count` charges of as many debtors (lenient documents), debtIds tagged `tag`."""
    return [
        (
            f"{name} Quaresma {i}",
            f"doc-{i:06d}",
            f"{name.lower()}.{i}@example.com",
            "100.50",
            "2030-01-10",
            f"{tag}-{i:06d}",
        )
        for i in range(start, start + count)
    ]


def imported(db: Engine, data: list[tuple[str, ...]]) -> int:
    result = run_import(db, debtor_csv(data), lenient=True)
    assert result.status == "done", result
    return result.imported


def out_of_step(db: Engine) -> int:
    """Debtors whose search row is missing, doubled or differs from them (and rows of none)."""
    with db.connect() as conn:
        return conn.execute(
            text(
                """
                SELECT count(*) FROM debtors AS d
                FULL JOIN (SELECT debtor_id, min(name) AS name, min(search_name) AS search_name,
                                  min(email) AS email, count(*) AS copies
                           FROM debtor_search GROUP BY debtor_id) AS s ON s.debtor_id = d.id
                WHERE d.id IS NULL OR s.debtor_id IS NULL OR s.copies <> 1
                   OR (d.name, d.search_name, d.email) <> (s.name, s.search_name, s.email)
                """
            )
        ).scalar_one()


def names_found(db: Engine, term: str) -> list[str]:
    return [row["name"] for row in debtor_page(db, text=term).rows]


@pytest.fixture
def large_from(monkeypatch: pytest.MonkeyPatch) -> int:
    """Files of 30 new charges or more load in bulk; pieces of about 7 rows."""
    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 30)
    monkeypatch.setattr(reading, "PIECE_BYTES", 700)
    return 30


def test_a_large_files_debtors_are_found_once_it_commits(db: Engine, large_from: int) -> None:
    assert imported(db, rows(60)) == 60
    assert imported(db, rows(5, start=60, name="Abigail", tag="b")) == 5  # small: row by row

    partitions = rows_per_partition(db, "debtor_search")
    assert sorted(partitions.values()) == [5, 60]
    assert partitions["debtor_search_open"] == 5
    assert names_found(db, "zuleica 17") == ["Zuleica Quaresma 17"]
    assert names_found(db, "abigail 61") == ["Abigail Quaresma 61"]
    assert names_found(db, "zuleica.42@example") == ["Zuleica Quaresma 42"]
    assert names_found(db, "abigail.62@") == ["Abigail Quaresma 62"]
    assert names_found(db, "doc-000033") == ["Zuleica Quaresma 33"]
    assert out_of_step(db) == 0

    # The Debtors page walks both partitions in name order, a page after the other.
    first = debtor_page(db, page_size=40)
    assert first.next_cursor is not None
    second = debtor_page(db, page_size=40, after=first.next_cursor)
    listed = [row["name"] for row in first.rows + second.rows]
    assert listed == sorted(f"{name} Quaresma {i}" for name, i in _everyone())
    assert second.next_cursor is None


def _everyone() -> list[tuple[str, int]]:
    return [("Zuleica", i) for i in range(60)] + [("Abigail", i) for i in range(60, 65)]


def test_a_debtor_is_found_by_the_name_and_email_it_has_now(db: Engine, large_from: int) -> None:
    """A large file's debtor renamed by a later file, one whose name changes within the
    same large file (an early piece, then a later one), and an operator's correction."""
    renamed_within = [
        (*row[:1], "doc-000003", *row[2:]) if index == 50 else row
        for index, row in enumerate(rows(60))
    ]
    assert imported(db, renamed_within) == 60  # line 52 speaks last for doc-000003
    assert names_found(db, "zuleica quaresma 50") == ["Zuleica Quaresma 50"]
    assert "Zuleica Quaresma 3" not in names_found(db, "zuleica quaresma 3")

    later = [("Zélia Prado", "doc-000007", "zelia@novo.com.br", "80.00", "2030-02-10", "c-1")]
    assert imported(db, later) == 1
    assert names_found(db, "zelia prado") == ["Zélia Prado"]
    assert names_found(db, "zuleica quaresma 7") == []
    assert names_found(db, "zelia@novo") == ["Zélia Prado"]

    debtor_id = debtor_page(db, text="zuleica quaresma 11").rows[0]["id"]
    correct_debtor_email(db, actor=OPERATOR, debtor_id=debtor_id, email="onze@correto.com")
    assert names_found(db, "onze@correto") == ["Zuleica Quaresma 11"]
    assert names_found(db, "zuleica.11@") == []
    assert out_of_step(db) == 0


def test_an_import_undone_leaves_no_search_rows(db: Engine, large_from: int) -> None:
    """A large file refused in its last piece (a row of three fields), after its first
    pieces were loaded: neither its debtors, nor their search rows, nor their table stay."""
    data = debtor_csv(rows(60)) + b"broken,row,here\n"
    result = run_import(db, data, lenient=True, name="broken.csv")
    assert result.status == "refused", result
    assert rows_per_partition(db, "debtor_search") == {}
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM debtors")).scalar_one() == 0
        leftover = conn.execute(
            text(
                "SELECT count(*) FROM pg_class "
                "WHERE relname ~ '^debtor_search_[0-9]+$' AND NOT relispartition"
            )
        ).scalar_one()
    assert leftover == 0
    assert imported(db, rows(60)) == 60  # and the same file, fixed, loads whole
    assert names_found(db, "zuleica 59") == ["Zuleica Quaresma 59"]
    assert out_of_step(db) == 0


def test_keyset_pages_of_debtors_in_name_order(db: Engine) -> None:
    """Names shared by several debtors: pages go on by id within a name."""
    same = [
        ("Ana Lima", f"doc-{i:06d}", f"a{i}@x.com", "10.00", "2030-01-01", f"s-{i}")
        for i in range(5)
    ]
    assert imported(db, same + rows(3, start=10)) == 8
    page = debtor_page(db, page_size=2, after=DebtorCursor(name="Ana Lima", id=0))
    first_ids = [row["id"] for row in page.rows]
    assert [row["name"] for row in page.rows] == ["Ana Lima", "Ana Lima"]
    assert first_ids == sorted(first_ids)
    assert page.next_cursor is not None
    rest = debtor_page(db, page_size=10, after=page.next_cursor)
    assert [row["name"] for row in rest.rows] == ["Ana Lima"] * 3 + [
        f"Zuleica Quaresma {i}" for i in (10, 11, 12)
    ]
