"""What an operator does to a charge by hand (issue 12): a payment of any amount, a cancel
undone, a debtor's e-mail corrected; against the real database, bank files and SMTP."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from billing.accounts.access import WEBHOOK_ACTOR, Forbidden
from billing.charges.browsing import correct_debtor_email
from billing.cnab.service import generate_remessa
from billing.core.errors import OperatorError
from billing.core.settings import get_settings
from billing.notices.dispatch import send_due_notices
from billing.notices.planning import plan_notices, retry_failed_notices
from billing.payments.service import (
    cancel_charge,
    charge_history,
    charge_payments,
    mark_paid,
    record_payment,
    reopen_charge,
)
from db import overview as overview_db
from tests.support.actors import OPERATOR, VIEWER, operator
from tests.support.cnab_bank import bank_tables  # noqa: F401 (the bank_db fixture)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows
from tests.support.notices import create_charges, notice_settings
from tests.support.smtp_server import SmtpTestServer

TODAY = date(2040, 3, 10)


def one_charge(db: Engine, amount: str = "100.00") -> int:
    rows = [("Ana Souza", "52998224725", "ana@example.com", amount, "2030-01-31", "8291")]
    assert run_import(db, debtor_csv(rows)).imported == 1
    return scalar(db, "SELECT id FROM charges WHERE debt_id = '8291'")


def status_of(db: Engine, charge_id: int) -> str:
    return scalar(db, "SELECT status FROM charges WHERE id = :id", id=charge_id)


def last_audit(db: Engine, action: str) -> dict:
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT actor, subject, details FROM audit_events WHERE action = :a "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"a": action},
        ).one()
    return {"actor": row.actor, "subject": row.subject, **row.details}


def assert_kept_figures_right(db: Engine) -> None:
    """The Overview's kept figures (sql/009) equal a direct computation, key by key."""
    with db.connect() as conn:
        kept = overview_db.charge_totals(conn, today=TODAY)
        direct = overview_db.direct_charge_totals(conn, today=TODAY)
        assert overview_db.charge_totals_drift(conn) == []

    def key(rows: list) -> list:
        return sorted(
            (r["status"], r["due_month"], r["aging_bucket"], int(r["charges"]), r["amount"])
            for r in rows
        )

    assert key(kept) == key(direct)
    assert sorted(Decimal(r["paid"]) for r in kept) == sorted(Decimal(r["paid"]) for r in direct)


# --- a payment recorded by hand ---------------------------------------------------------


def test_a_part_paid_at_the_branch_then_the_rest_and_more(db: Engine) -> None:
    charge_id = one_charge(db)

    part = mark_paid(
        db, charge_id=charge_id, amount="30,00", reason="Paid part at the branch", actor=OPERATOR
    )

    assert (part.from_status, part.to_status) == ("issued", "partially_paid")
    assert part.paid_amount == Decimal("30.00") and part.paid_total == Decimal("30.00")
    assert status_of(db, charge_id) == "partially_paid"
    [payment] = charge_payments(db, charge_id)
    assert (payment["source"], payment["paid_amount"], payment["paid_by"]) == (
        "operator",
        Decimal("30.00"),
        OPERATOR.name,
    )
    event = charge_history(db, charge_id)[-1]
    assert (event["kind"], event["amount"], event["reason"]) == (
        "marked_paid",
        Decimal("30.00"),
        "Paid part at the branch",
    )
    audited = last_audit(db, "charge.mark_paid")
    assert (audited["amount"], audited["from"], audited["to"]) == (
        "30.00",
        "issued",
        "partially_paid",
    )

    # 1.000,50 read the Brazilian way: far more than the 70,00 still owed.
    rest = mark_paid(
        db, charge_id=charge_id, amount="1.000,50", reason="Paid twice", actor=OPERATOR
    )
    assert rest.to_status == "paid"
    assert rest.overpaid_amount == Decimal("930.50")
    assert "Overpaid by 930.50" in charge_history(db, charge_id)[-1]["reason"]
    assert_kept_figures_right(db)


def test_the_same_as_a_bank_payment_of_that_amount(db: Engine) -> None:
    """By hand or by the bank's webhook, 40 of 100 leaves the charge in the same state."""
    rows = [
        ("Ana Souza", "52998224725", "ana@example.com", "100.00", "2030-01-31", "by-hand"),
        ("Ana Souza", "52998224725", "ana@example.com", "100.00", "2030-01-31", "by-bank"),
    ]
    run_import(db, debtor_csv(rows))
    by_hand = scalar(db, "SELECT id FROM charges WHERE debt_id = 'by-hand'")
    mark_paid(db, charge_id=by_hand, amount=Decimal("40"), reason="Branch", actor=OPERATOR)
    record_payment(
        db,
        debt_id="by-bank",
        paid_at="2025-06-10 10:00:00",
        paid_amount="40.00",
        paid_by="Ana",
        source="webhook",
        payload={},
        actor=WEBHOOK_ACTOR,
    )
    assert scalar(db, "SELECT count(DISTINCT status) FROM charges") == 1
    assert scalar(db, "SELECT status FROM charges LIMIT 1") == "partially_paid"


def test_the_day_it_was_paid(db: Engine) -> None:
    charge_id = one_charge(db)
    zone = ZoneInfo(get_settings().timezone)
    yesterday = datetime.now(zone).date() - timedelta(days=1)

    mark_paid(db, charge_id=charge_id, paid_on=yesterday, reason="Cheque", actor=OPERATOR)

    [payment] = charge_payments(db, charge_id)
    assert payment["paid_at"].astimezone(zone).date() == yesterday
    assert payment["paid_amount"] == Decimal("100.00")  # no amount: what was owed
    assert last_audit(db, "charge.mark_paid")["paidOn"] == yesterday.isoformat()


@pytest.mark.parametrize(
    ("amount", "paid_on", "message"),
    [
        ("dez reais", None, "is not an amount"),
        ("1,234.50", None, "is not an amount"),
        ("0,00", None, "more than zero"),
        (Decimal("-5"), None, "more than zero"),
        ("10,001", None, "is not an amount"),
        ("10,00", date(2999, 1, 1), "in the future"),
        ("10,00", date(1999, 12, 31), "too long ago"),
    ],
)
def test_an_amount_or_a_day_that_can_t_be_recorded(
    db: Engine, amount: object, paid_on: date | None, message: str
) -> None:
    charge_id = one_charge(db)
    with pytest.raises(OperatorError, match=message):
        mark_paid(
            db, charge_id=charge_id, amount=amount, paid_on=paid_on, reason="X", actor=OPERATOR
        )
    assert charge_payments(db, charge_id) == []
    assert charge_history(db, charge_id) == []


# --- cancel, then reopen -----------------------------------------------------------------


def test_reopen_goes_back_to_the_status_before_the_cancel(db: Engine) -> None:
    charge_id = one_charge(db)
    cancel_charge(db, charge_id=charge_id, reason="Sent twice", actor=OPERATOR)
    assert_kept_figures_right(db)

    change = reopen_charge(
        db, charge_id=charge_id, reason="It was not a duplicate", actor=operator("maria")
    )

    assert (change.from_status, change.to_status) == ("canceled", "issued")
    assert status_of(db, charge_id) == "issued"
    event = charge_history(db, charge_id)[-1]
    assert (event["kind"], event["from_status"], event["to_status"], event["actor"]) == (
        "reopened",
        "canceled",
        "issued",
        "maria",
    )
    audited = last_audit(db, "charge.reopen")
    assert (audited["actor"], audited["subject"], audited["reason"], audited["to"]) == (
        "maria",
        f"charge:{charge_id}",
        "It was not a duplicate",
        "issued",
    )
    assert_kept_figures_right(db)
    with pytest.raises(OperatorError, match="not canceled"):
        reopen_charge(db, charge_id=charge_id, reason="Again", actor=OPERATOR)


def test_reopen_counts_what_was_paid_before_and_during_the_cancel(db: Engine) -> None:
    charge_id = one_charge(db)
    mark_paid(db, charge_id=charge_id, amount="10,00", reason="Branch", actor=OPERATOR)
    cancel_charge(db, charge_id=charge_id, reason="Renegotiated", actor=OPERATOR)
    record_payment(  # the bank's money still came in: the charge stayed canceled
        db,
        debt_id="8291",
        paid_at="2025-06-10 10:00:00",
        paid_amount="90.00",
        paid_by="Ana",
        source="webhook",
        payload={},
        actor=WEBHOOK_ACTOR,
    )
    assert status_of(db, charge_id) == "canceled"

    change = reopen_charge(db, charge_id=charge_id, reason="Deal undone", actor=OPERATOR)

    assert change.to_status == "paid"
    assert status_of(db, charge_id) == "paid"
    assert_kept_figures_right(db)


def test_reopen_needs_a_reason_and_an_operator(db: Engine) -> None:
    charge_id = one_charge(db)
    cancel_charge(db, charge_id=charge_id, reason="Sent twice", actor=OPERATOR)
    with pytest.raises(OperatorError, match="reason is required"):
        reopen_charge(db, charge_id=charge_id, reason="  ", actor=OPERATOR)
    with pytest.raises(Forbidden):
        reopen_charge(db, charge_id=charge_id, reason="Why not", actor=VIEWER)
    assert status_of(db, charge_id) == "canceled"
    assert [e["kind"] for e in charge_history(db, charge_id)] == ["canceled"]


def test_reopen_before_the_baixa_went_out_keeps_it_from_the_bank(bank_db: Engine) -> None:
    charge_id = one_charge(bank_db)
    assert generate_remessa(bank_db, actor=OPERATOR).registrations == 1
    cancel_charge(bank_db, charge_id=charge_id, reason="Sent twice", actor=OPERATOR)

    reopen_charge(bank_db, charge_id=charge_id, reason="Not a duplicate", actor=OPERATOR)

    assert status_of(bank_db, charge_id) == "issued"
    # Nothing to ask of the bank: no write-off, no second registration.
    assert generate_remessa(bank_db, actor=OPERATOR).write_offs == 0
    assert scalar(bank_db, "SELECT count(*) FROM remessa_items") == 1


def test_reopen_after_the_baixa_went_out_is_refused_with_a_sentence(bank_db: Engine) -> None:
    charge_id = one_charge(bank_db)
    generate_remessa(bank_db, actor=OPERATOR)
    cancel_charge(bank_db, charge_id=charge_id, reason="Sold", actor=OPERATOR)
    assert generate_remessa(bank_db, actor=OPERATOR).write_offs == 1

    with pytest.raises(OperatorError, match=r"remessa 2.*import it with a new debtId"):
        reopen_charge(bank_db, charge_id=charge_id, reason="Deal undone", actor=OPERATOR)
    assert status_of(bank_db, charge_id) == "canceled"


# --- a debtor's e-mail ------------------------------------------------------------------


def test_correct_an_email_then_retry_failed_sends_to_the_new_address(
    db: Engine, smtp: SmtpTestServer
) -> None:
    create_charges(db, {"bounced": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_permanently("bounced@example.com")
    assert send_due_notices(db, settings=settings, today=TODAY).failed == 1
    debtor_id = scalar(db, "SELECT debtor_id FROM charges WHERE debt_id = 'bounced'")

    corrected = correct_debtor_email(
        db, actor=OPERATOR, debtor_id=debtor_id, email=" ana.souza@example.org "
    )
    assert retry_failed_notices(db, actor=OPERATOR) == 1
    counts = send_due_notices(db, settings=settings, today=TODAY)

    assert (corrected.old_email, corrected.new_email) == (
        "bounced@example.com",
        "ana.souza@example.org",
    )
    assert counts.sent == 1
    assert [message.rcpt_tos for message in smtp.received] == [("ana.souza@example.org",)]
    audited = last_audit(db, "debtor.email_changed")
    assert (audited["subject"], audited["old"], audited["new"]) == (
        f"debtor:{debtor_id}",
        "bounced@example.com",
        "ana.souza@example.org",
    )


def test_an_email_correction_leaves_paid_charges_billed_as_they_were(db: Engine) -> None:
    rows = [(*row[:2], "old@example.com", *row[3:]) for row in sample_rows(2)]
    rows = [(r[0], rows[0][1], *r[2:]) for r in rows]  # one debtor, two charges
    run_import(db, debtor_csv(rows))
    paid = scalar(db, "SELECT id FROM charges ORDER BY id LIMIT 1")
    mark_paid(db, charge_id=paid, reason="Branch", actor=OPERATOR)
    debtor_id = scalar(db, "SELECT debtor_id FROM charges WHERE id = :id", id=paid)

    assert (
        correct_debtor_email(
            db, actor=OPERATOR, debtor_id=debtor_id, email="new@example.com"
        ).charges
        == 1
    )

    with db.connect() as conn:
        billed = dict(conn.execute(text("SELECT status, payer_email FROM charges")).all())
    assert billed == {"paid": "old@example.com", "issued": "new@example.com"}
    assert scalar(db, "SELECT email FROM debtors") == "new@example.com"


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Type the new e-mail"),
        ("ana@", "not an e-mail address"),
        ("ana souza@example.com", "not an e-mail address"),
        ("joão@example.com", "not an e-mail address"),
        ("ana@example.com", "already this debtor's e-mail"),
    ],
)
def test_an_email_an_import_would_refuse_is_refused(db: Engine, email: str, message: str) -> None:
    one_charge(db)
    debtor_id = scalar(db, "SELECT id FROM debtors")
    audited = scalar(db, "SELECT count(*) FROM audit_events")
    with pytest.raises(OperatorError, match=message):
        correct_debtor_email(db, actor=OPERATOR, debtor_id=debtor_id, email=email)
    assert scalar(db, "SELECT email FROM debtors") == "ana@example.com"
    assert scalar(db, "SELECT count(*) FROM audit_events") == audited


def test_a_viewer_may_not_correct_an_email(db: Engine) -> None:
    one_charge(db)
    debtor_id = scalar(db, "SELECT id FROM debtors")
    with pytest.raises(Forbidden, match="viewer may not correct a debtor's e-mail"):
        correct_debtor_email(db, actor=VIEWER, debtor_id=debtor_id, email="x@example.com")
    assert scalar(db, "SELECT email FROM debtors") == "ana@example.com"
