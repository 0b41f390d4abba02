"""The Overview's kept figures (migration 009) against a direct computation.

Every way charges and payments change goes through the domain functions, as in
production: imports small and large, the worker issuing pending boletos, payments
(partial, full, over, repeated), marking paid, cancelling; then the calendar moves on,
the rows of changes are compacted, and writers run at the same time. After each, the
figures the page reads (db.overview.charge_totals) must equal the direct computation
over every charge (db.overview.direct_charge_totals), and the per-key check must find
nothing apart.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bench.generate import write_debtor_file
from billing.accounts.access import WEBHOOK_ACTOR
from billing.boletos.issuing import issue_boletos
from billing.charges import overview
from billing.charges.browsing import charge_totals as charge_totals_of_filter
from billing.core.filters import ChargeFilter
from billing.core.statuses import REGISTRATION_REJECTED, UNPAID_STATUSES
from billing.imports.service import import_file
from billing.payments.service import cancel_charge, mark_paid, record_payment
from db import loading
from db import overview as overview_db
from tests.support.actors import OPERATOR, operator
from tests.support.charges import NO_PIX, add_pending_charges
from tests.support.database import scalar
from tests.support.debtor_files import VALID_CPFS, debtor_csv
from tests.support.ledger import TODAY, TZ, load_ledger

# --- helpers ---------------------------------------------------------------------------


def _normalised(rows: list[dict[str, Any]]) -> list[tuple]:
    return sorted(
        (
            row["status"],
            row["due_month"],
            row["aging_bucket"],
            int(row["charges"]),
            Decimal(row["amount"]),
            Decimal(row["paid"]),
        )
        for row in rows
    )


def assert_figures_match(db: Engine, *, today: date = TODAY) -> list[tuple]:
    """The kept figures equal the direct computation (for `today`), key by key too."""
    with db.connect() as conn:
        kept = _normalised(overview_db.charge_totals(conn, today=today))
        direct = _normalised(overview_db.direct_charge_totals(conn, today=today))
        drift = overview_db.charge_totals_drift(conn)
    assert kept == direct
    assert drift == []
    return kept


def figure_rows(db: Engine) -> int:
    return scalar(db, "SELECT count(*) FROM charge_totals")


def charge_id(db: Engine, debt_id: str) -> int:
    return scalar(db, "SELECT id FROM charges WHERE debt_id = :debt_id", debt_id=debt_id)


def pay(db: Engine, debt_id: str, amount: str, paid_at: str = "2024-06-10 10:00:00") -> str:
    return record_payment(
        db,
        actor=WEBHOOK_ACTOR,
        debt_id=debt_id,
        paid_at=paid_at,
        paid_amount=amount,
        paid_by="Devedor",
        source="webhook",
        payload={},
        timezone=TZ,
    ).status


def small_file(count: int, *, prefix: str, start_day: date = date(2024, 3, 1)) -> bytes:
    """`count` charges over a few due dates and amounts."""
    return debtor_csv(
        [
            (
                f"Devedor {i}",
                VALID_CPFS[i % len(VALID_CPFS)],
                f"d{i}@example.com",
                f"{100 + 7 * i}.{i % 100:02d}",
                (start_day + timedelta(days=11 * (i % 12))).isoformat(),
                f"{prefix}-{i:06d}",
            )
            for i in range(count)
        ]
    )


def import_bytes(db: Engine, data: bytes, name: str = "file.csv", **kw: Any):
    return import_file(
        actor=OPERATOR, engine=db, data=data, file_name=name, lenient_documents=False, **kw
    )


# --- every kind of change ----------------------------------------------------------------


def test_a_new_install_has_no_figures(db: Engine) -> None:
    assert assert_figures_match(db) == []
    assert figure_rows(db) == 0


def test_the_ledger_s_figures_are_the_direct_ones(db: Engine) -> None:
    """Import, a charge written straight in as pending, partial payments, an
    overpayment and a cancellation (tests/charges/test_overview.py's ledger)."""
    load_ledger(db)
    kept = assert_figures_match(db)
    assert overview.kpis(overview.charge_totals(db, today=TODAY))["outstanding"] == Decimal(
        "1430.00"
    )
    assert len(kept) == 8


def test_payments_partial_full_over_and_repeated(db: Engine) -> None:
    import_bytes(db, small_file(12, prefix="p"))
    assert_figures_match(db)

    assert pay(db, "p-000001", "40.00") == "recorded"  # partially paid: 40 received
    assert_figures_match(db)
    assert pay(db, "p-000001", "40.00") == "duplicate"  # the same notification again
    assert pay(db, "p-000001", "20.00", "2024-06-11 10:00:00") == "recorded"  # still partial
    assert_figures_match(db)
    assert pay(db, "p-000001", "47.01", "2024-06-12 10:00:00") == "recorded"  # now paid
    assert scalar(db, "SELECT status FROM charges WHERE debt_id = 'p-000001'") == "paid"
    assert_figures_match(db)

    assert pay(db, "p-000002", "500.00") == "recorded"  # overpaid at once
    assert pay(db, "p-000003", "10.00") == "recorded"
    assert pay(db, "p-000003", "999.00", "2024-06-13 10:00:00") == "recorded"  # overpaid later
    assert pay(db, "p-000003", "5.00", "2024-06-14 10:00:00") == "recorded"  # after paid
    assert_figures_match(db)

    # Marked paid by an operator after a partial payment; a partially paid one canceled.
    assert pay(db, "p-000004", "30.00") == "recorded"
    mark_paid(db, charge_id=charge_id(db, "p-000004"), reason="At the counter", actor=OPERATOR)
    assert pay(db, "p-000005", "30.00") == "recorded"
    assert_figures_match(db)
    cancel_charge(db, charge_id=charge_id(db, "p-000005"), reason="Renegotiated", actor=OPERATOR)
    mark_paid(db, charge_id=charge_id(db, "p-000006"), reason="Settled", actor=OPERATOR)
    cancel_charge(db, charge_id=charge_id(db, "p-000007"), reason="Duplicate", actor=OPERATOR)
    assert_figures_match(db)

    by_status = overview.charges_by_status(overview.charge_totals(db, today=TODAY))
    assert dict(zip(by_status["status"], by_status["charges"], strict=True)) == {
        "pending": 0,
        "issued": 5,
        "registered": 0,
        "partially_paid": 0,
        "paid": 5,
        "canceled": 2,
    }


def test_payments_written_by_other_paths_count_too(db: Engine) -> None:
    """A payment inserted, changed or deleted by hand (a correction in SQL) moves what a
    partially paid charge received, like the domain's."""
    import_bytes(db, small_file(3, prefix="h"))
    assert pay(db, "h-000000", "10.00") == "recorded"
    partial = charge_id(db, "h-000000")
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO payments (charge_id, paid_at, paid_amount, paid_by, source, "
                "idempotency_key) VALUES (:id, now(), 5.00, 'x', 'operator', 'hand:1')"
            ),
            {"id": partial},
        )
    assert_figures_match(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE payments SET paid_amount = paid_amount + 1"))
    assert_figures_match(db)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM charge_events"))
        conn.execute(text("DELETE FROM payments WHERE idempotency_key = 'hand:1'"))
    assert_figures_match(db)
    # A charge's amount or due date corrected in SQL moves it between keys.
    with db.begin() as conn:
        conn.execute(
            text("UPDATE charges SET amount = amount * 2, due_date = due_date + 40 WHERE id = :id"),
            {"id": partial},
        )
    assert_figures_match(db)


def test_the_worker_issuing_pending_charges(db: Engine) -> None:
    add_pending_charges(db, 30, due=date(2024, 6, 1))
    add_pending_charges(db, 20, due=date(2024, 7, 1))
    before = assert_figures_match(db)
    assert {row[0] for row in before} == {"pending"}
    assert issue_boletos(db, batch_size=7, settings=NO_PIX) == 50
    after = assert_figures_match(db)
    assert {row[0] for row in after} == {"issued"}


def test_an_update_that_moves_no_figure_writes_none(db: Engine) -> None:
    import_bytes(db, small_file(20, prefix="u"))
    assert pay(db, "u-000001", "10.00") == "recorded"
    rows = figure_rows(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE charges SET payer_email = upper(payer_email)"))
    assert figure_rows(db) == rows
    assert_figures_match(db)


def test_the_passing_of_a_due_date_needs_no_write(db: Engine) -> None:
    load_ledger(db)
    rows = figure_rows(db)
    for today in (TODAY, TODAY + timedelta(days=6), date(2024, 9, 1), date(2023, 1, 1)):
        assert_figures_match(db, today=today)
    assert figure_rows(db) == rows
    # The charge due on June 20th is current on the 15th and 1-30 days late on the 21st.
    june = overview.aging(overview.charge_totals(db, today=date(2024, 6, 21)))
    assert list(june["charges"]) == [0, 2, 1, 1, 1]


@pytest.mark.slow
def test_imports_small_and_large(db: Engine, tmp_path: Path) -> None:
    """A large file (the bulk path when the table is empty), a small one after it, and
    the large one again (every row a duplicate)."""
    rows = loading.BULK_LOAD_MIN_ROWS + 1_000
    large = write_debtor_file(tmp_path / "large.csv", rows=rows).read_bytes()
    result = import_bytes(db, large, "large.csv")
    assert (result.status, result.imported) == ("done", rows)
    kept = assert_figures_match(db, today=date(2023, 10, 15))
    assert sum(row[3] for row in kept) == rows, (
        "the figures missed charges of a large import: is add_attached_charges called "
        "where the import attaches its charges?"
    )
    assert figure_rows(db) < 2_000  # one row per (status, due date) of the file at most

    import_bytes(db, small_file(40, prefix="s"), "small.csv")
    assert_figures_match(db, today=date(2023, 10, 15))
    again = import_bytes(db, large, "large-again.csv")
    assert (again.imported, again.duplicates) == (0, rows)
    assert_figures_match(db, today=date(2023, 10, 15))


def test_an_import_that_fails_leaves_no_figure(db: Engine) -> None:
    import_bytes(db, small_file(5, prefix="f"))
    rows = figure_rows(db)

    def fail_after_the_charges(fraction: float, message: str) -> None:
        if message == "Keeping the rejected rows":
            raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="the disk is full"):
        import_bytes(db, small_file(8, prefix="g"), on_progress=fail_after_the_charges)
    assert figure_rows(db) == rows
    assert_figures_match(db)


# --- compaction, checks and repair ---------------------------------------------------------


def test_compaction_folds_the_rows_and_changes_no_figure(db: Engine) -> None:
    load_ledger(db)
    import_bytes(db, small_file(30, prefix="c"))
    before = assert_figures_match(db)
    rows = figure_rows(db)
    with db.begin() as conn:
        folded = overview_db.compact_charge_totals(conn)
    assert folded == rows
    keys = scalar(db, "SELECT count(DISTINCT (status, due_date)) FROM charge_totals")
    assert figure_rows(db) == keys < rows
    assert assert_figures_match(db) == before
    # Changes after a compaction add rows on top of the folded ones.
    mark_paid(db, charge_id=charge_id(db, "c-000003"), reason="Settled", actor=OPERATOR)
    assert figure_rows(db) > keys
    assert_figures_match(db)


def test_two_compactions_at_once_do_the_work_once(db: Engine) -> None:
    import_bytes(db, small_file(30, prefix="t"))
    before = assert_figures_match(db)
    with db.connect() as first, db.connect() as second:
        first.begin()
        assert overview_db.compact_charge_totals(first) > 0
        second.begin()
        assert overview_db.compact_charge_totals(second) is None  # no wait, nothing done
        second.rollback()
        first.commit()
    assert assert_figures_match(db) == before


def test_the_check_finds_figures_apart_and_the_daily_upkeep_rebuilds_them(
    db: Engine, owner_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    load_ledger(db)
    rows = figure_rows(db)
    assert overview_db.keep_charge_totals(db) == {"folded": rows, "drifted": 0}
    # Only the owner can write the figures: a wrong row, as a bug would leave.
    with owner_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO charge_totals (status, due_date, charges, amount, received) "
                "VALUES ('issued', DATE '2024-06-01', 1, 1000.00, 0)"
            )
        )
    with db.connect() as conn:
        drift = overview_db.charge_totals_drift(conn)
    assert drift == [
        {
            "status": "issued",
            "due_date": date(2024, 6, 1),
            "kept_charges": 2,
            "charges": 1,
            "kept_amount": Decimal("1200.00"),
            "amount": Decimal("200.00"),
            "kept_received": Decimal("0"),
            "received": Decimal("0"),
        }
    ]
    with caplog.at_level("ERROR", logger="db.overview"):
        assert overview_db.keep_charge_totals(db)["drifted"] == 1
    assert "differed from the charges on 1 keys" in caplog.text
    assert_figures_match(db)


# --- charges that arrive without their triggers ------------------------------------------------


@pytest.fixture()
def attached_table(owner_engine: Engine):
    """A table the owner filled, shaped like charges, as a partition about to be attached."""
    with owner_engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS charges_attached_test"))
        conn.execute(
            text(
                "CREATE TABLE charges_attached_test "
                "(status text NOT NULL, due_date date NOT NULL, amount numeric(14, 2) NOT NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO charges_attached_test (status, due_date, amount) "
                "SELECT 'issued', DATE '2024-05-01' + (g % 3), 10.00 + g FROM "
                "generate_series(1, 300) AS g"
            )
        )
    yield "charges_attached_test"
    with owner_engine.begin() as conn:
        conn.execute(text("DROP TABLE charges_attached_test"))


def test_attached_charges_are_added_in_the_caller_s_transaction(
    db: Engine, attached_table: str
) -> None:
    load_ledger(db)
    with pytest.raises(RuntimeError), db.begin() as conn:
        overview_db.add_attached_charges(conn, attached_table)
        raise RuntimeError("the attach failed")  # rolled back: nothing added
    assert_figures_match(db)

    with db.begin() as conn:
        overview_db.add_attached_charges(conn, attached_table)
    with db.connect() as conn:
        kept = overview_db.charge_totals(conn, today=TODAY)
        drift = overview_db.charge_totals_drift(conn)
    assert sum(int(row["charges"]) for row in kept) == 8 + 300
    added = sum(
        Decimal(row["amount"])
        for row in kept
        if row["due_month"] == date(2024, 5, 1) and row["status"] == "issued"
    )
    assert added == sum(Decimal(10 + g) for g in range(1, 301))
    # The check compares with `charges`, which does not hold them (never attached here):
    # exactly their three keys differ, the ledger's own figures are untouched.
    assert [(row["status"], row["due_date"], row["charges"]) for row in drift] == [
        ("issued", date(2024, 5, 1), None),
        ("issued", date(2024, 5, 2), None),
        ("issued", date(2024, 5, 3), None),
    ]


@pytest.mark.parametrize(
    ("relation", "message"),
    [
        ("charges_attached_test; DROP TABLE charges", "not a table name"),
        ('"Charges"', "not a table name"),
        ("no_such_table", "no table named"),
    ],
)
def test_attached_charges_take_a_table_name_only(
    db: Engine, attached_table: str, relation: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message), db.begin() as conn:
        overview_db.add_attached_charges(conn, relation)


def test_the_application_role_cannot_make_figures_of_its_own(db: Engine) -> None:
    load_ledger(db)
    with db.connect() as conn:
        for statement in (
            "INSERT INTO charge_totals (status, due_date, charges, amount, received) "
            "VALUES ('issued', DATE '2024-06-01', 1, 1, 0)",
            "UPDATE charge_totals SET amount = 0",
            "DELETE FROM charge_totals",
        ):
            with pytest.raises(DBAPIError) as refused, conn.begin_nested():
                conn.exec_driver_sql(statement)
            assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
        # Its own temporary table, or charges itself, are refused by the function.
        conn.exec_driver_sql("CREATE TEMP TABLE mine (status text, due_date date, amount numeric)")
        conn.exec_driver_sql("INSERT INTO mine VALUES ('issued', '2024-06-01', 1000000)")
        for relation in ("mine", "charges"):
            with pytest.raises(DBAPIError, match="is not a table of charges"), conn.begin_nested():
                overview_db.add_attached_charges(conn, relation)
        conn.rollback()
    assert_figures_match(db)


def test_truncating_charges_empties_the_figures(db: Engine, owner_engine: Engine) -> None:
    load_ledger(db)
    assert figure_rows(db) > 0
    with owner_engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE payments, notices, charges RESTART IDENTITY CASCADE")
    assert figure_rows(db) == 0
    assert assert_figures_match(db) == []


# --- writers at the same time ---------------------------------------------------------------


def test_an_operator_never_waits_for_an_import(db: Engine) -> None:
    """An import has written its charges (and their figures) and is still running: an
    operator marks a charge paid and the worker compacts meanwhile, without waiting."""
    load_ledger(db)
    inside = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def hold_before_commit(fraction: float, message: str) -> None:
        if message == "Keeping the rejected rows":  # the charges are in, not committed
            inside.set()
            assert release.wait(60), "the test never let the import finish"

    def run_import() -> None:
        try:
            outcome["import"] = import_bytes(
                db, small_file(500, prefix="w"), "while.csv", on_progress=hold_before_commit
            )
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    importer = threading.Thread(target=run_import)
    importer.start()
    try:
        assert inside.wait(60), f"the import never got to its charges: {outcome}"

        def operator_work() -> None:
            try:
                late = charge_id(db, "late-14")
                mark_paid(db, charge_id=late, reason="Paid", actor=operator())
                outcome["payment"] = pay(db, "late-75", "100.00")
                with db.begin() as conn:
                    outcome["folded"] = overview_db.compact_charge_totals(conn)
            except BaseException as exc:  # reported by the main thread
                outcome["operator error"] = exc

        worker = threading.Thread(target=operator_work)
        worker.start()
        worker.join(15)
        assert not worker.is_alive(), "the operator waited for the import"
        assert "operator error" not in outcome, outcome.get("operator error")
        assert outcome["payment"] == "recorded"
        assert outcome["folded"] > 0
        kept = assert_figures_match(db)  # what committed: the operator's, not the import's
        assert sum(row[3] for row in kept) == 8
    finally:
        release.set()
        importer.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["import"].imported == 500
    kept = assert_figures_match(db)
    assert sum(row[3] for row in kept) == 8 + 500


# --- the Charges page's count and sum -------------------------------------------------------


@pytest.mark.parametrize(
    "charge_filter",
    [
        ChargeFilter(),
        ChargeFilter(statuses=("paid",)),
        ChargeFilter(statuses=("overdue",)),
        ChargeFilter(statuses=("overdue", "pending", "canceled")),
        ChargeFilter(due_from=date(2024, 5, 1), due_to=date(2024, 6, 10)),
        ChargeFilter(statuses=("issued", "overdue"), due_to=date(2024, 6, 1)),
        ChargeFilter(statuses=("paid",), amount_min=Decimal("150")),  # read from charges
        ChargeFilter(statuses=("paid", REGISTRATION_REJECTED)),  # read from charges
    ],
)
def test_the_charges_page_s_count_and_sum_equal_the_charges(
    db: Engine, charge_filter: ChargeFilter
) -> None:
    """Filters on status and due dates alone are answered from the kept figures."""
    load_ledger(db)
    import_bytes(db, small_file(30, prefix="q"))
    mark_paid(db, charge_id=charge_id(db, "q-000004"), reason="Settled", actor=OPERATOR)
    with db.connect() as conn:
        charges = conn.execute(text("SELECT status, due_date, amount FROM charges")).all()

    def matches(status: str, due: date, amount: Decimal) -> bool:
        overdue = status in UNPAID_STATUSES and due < TODAY
        wanted = charge_filter.statuses
        return (
            (not wanted or status in wanted or ("overdue" in wanted and overdue))
            and (charge_filter.due_from is None or due >= charge_filter.due_from)
            and (charge_filter.due_to is None or due <= charge_filter.due_to)
            and (charge_filter.amount_min is None or amount >= charge_filter.amount_min)
        )

    chosen = [row for row in charges if matches(*row)]
    totals = charge_totals_of_filter(db, charge_filter=charge_filter, today=TODAY)
    assert (totals.count, totals.amount) == (len(chosen), sum((r.amount for r in chosen), 0))
    assert totals.count > 0


@pytest.mark.slow
def test_a_payment_and_a_status_change_at_once_are_both_counted(db: Engine) -> None:
    """A payment written in SQL without the charge's lock, on an issued charge, while
    another transaction makes that charge partially paid: the second waits for the
    first (the payment's trigger locks the charge), so the payment is counted."""
    import_bytes(db, small_file(3, prefix="r"))
    issued = charge_id(db, "r-000001")
    outcome: dict[str, Any] = {}
    with db.connect() as first:
        first.begin()
        first.execute(
            text(
                "INSERT INTO payments (charge_id, paid_at, paid_amount, paid_by, source, "
                "idempotency_key) VALUES (:id, now(), 7.00, 'x', 'operator', 'race:1')"
            ),
            {"id": issued},
        )

        def make_it_partially_paid() -> None:
            try:
                with db.begin() as conn:
                    conn.execute(
                        text("UPDATE charges SET status = 'partially_paid' WHERE id = :id"),
                        {"id": issued},
                    )
            except BaseException as exc:  # reported by the main thread
                outcome["error"] = exc

        second = threading.Thread(target=make_it_partially_paid)
        second.start()
        second.join(2)
        waited = second.is_alive()
        first.commit()
    second.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert waited, "the status change did not wait for the payment's transaction"
    kept = assert_figures_match(db)
    partial = [row for row in kept if row[0] == "partially_paid"]
    assert [(count, paid) for *_, count, _, paid in partial] == [(1, Decimal("7.00"))]
