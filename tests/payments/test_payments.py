"""Recording payments and operator actions on charges, against the real database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from billing.accounts.access import WEBHOOK_ACTOR, Forbidden
from billing.core.errors import OperatorError
from billing.payments.service import (
    InvalidPayment,
    NotFound,
    UnreadableBody,
    cancel_charge,
    charge_history,
    charge_payments,
    idempotency_key,
    mark_paid,
    parse_paid_amount,
    parse_paid_at,
    read_payment_notification,
    record_payment,
)
from tests.support.actors import VIEWER, operator
from tests.support.database import scalar
from tests.support.debtor_files import import_charges

SAO_PAULO = "America/Sao_Paulo"


def pay(db: Engine, debt_id: str, amount: str, *, paid_at: str = "2022-06-09 10:00:00", **kw):
    return record_payment(
        db,
        actor=WEBHOOK_ACTOR,
        debt_id=debt_id,
        paid_at=paid_at,
        paid_amount=Decimal(amount),
        paid_by=kw.pop("paid_by", "John Doe"),
        source=kw.pop("source", "webhook"),
        payload=kw.pop("payload", {"debtId": debt_id}),
        timezone=SAO_PAULO,
        **kw,
    )


def charge_status(db: Engine, debt_id: str) -> str:
    return scalar(db, "SELECT status FROM charges WHERE debt_id = :d", d=debt_id)


def test_a_full_payment_pays_the_charge_and_is_in_its_history(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100000.00"))
    before = charge_status(db, "8291")  # pending, or issued when the import issues boletos

    outcome = pay(db, "8291", "100000.00")

    assert outcome.status == "recorded"
    assert (outcome.previous_status, outcome.charge_status) == (before, "paid")
    assert outcome.paid_total == Decimal("100000.00")
    assert outcome.outstanding == outcome.overpaid_amount == Decimal("0.00")
    assert outcome.note is None
    assert charge_status(db, "8291") == "paid"
    [payment] = charge_payments(db, ids["8291"])
    assert payment["paid_at"] == datetime(2022, 6, 9, 13, 0, tzinfo=UTC)  # 10:00 in São Paulo
    assert payment["source"] == "webhook"
    assert payment["payload"] == {"debtId": "8291"}
    [event] = charge_history(db, ids["8291"])
    assert event["kind"] == "payment"
    assert (event["from_status"], event["to_status"]) == (before, "paid")
    assert event["payment_id"] == outcome.payment_id
    assert event["amount"] == Decimal("100000.00")
    assert event["actor"] == "bank-webhook"


def test_the_same_payment_twice_is_recorded_once(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100000.00"))
    first = pay(db, "8291", "40000.00")

    # The same notification, written differently: same instant, amount and payer.
    again = pay(
        db, "8291", "40000", paid_at="2022-06-09T13:00:00Z", paid_by="  john   DOE ", payload="{}"
    )

    assert first.status == "recorded"
    assert again.status == "duplicate"
    assert again.payment_id == first.payment_id
    assert again.charge_status == "partially_paid"
    assert again.paid_total == Decimal("40000.00")
    assert scalar(db, "SELECT count(*) FROM payments") == 1
    assert len(charge_history(db, ids["8291"])) == 1


def test_a_partial_payment_then_the_rest(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    before = charge_status(db, "8291")

    first = pay(db, "8291", "30.00")
    assert first.charge_status == "partially_paid"
    assert first.outstanding == Decimal("70.00")

    rest = pay(db, "8291", "70.00", paid_at="2022-06-10 09:00:00")
    assert (rest.previous_status, rest.charge_status) == ("partially_paid", "paid")
    assert rest.paid_total == Decimal("100.00")
    assert [(e["from_status"], e["to_status"]) for e in charge_history(db, ids["8291"])] == [
        (before, "partially_paid"),
        ("partially_paid", "paid"),
    ]


def test_an_overpayment_is_recorded_and_flagged(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))

    outcome = pay(db, "8291", "110.50")

    assert outcome.charge_status == "paid"
    assert outcome.overpaid_amount == Decimal("10.50")
    assert outcome.as_json()["overpaidAmount"] == "10.50"
    assert charge_history(db, ids["8291"])[0]["reason"] == "Overpaid by 10.50."
    # Paying a paid charge again keeps it paid and grows the overpayment.
    again = pay(db, "8291", "5.00", paid_at="2022-06-11 09:00:00")
    assert (again.previous_status, again.charge_status) == ("paid", "paid")
    assert again.overpaid_amount == Decimal("15.50")


def test_a_payment_for_a_canceled_charge_is_recorded_and_it_stays_canceled(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    cancel_charge(db, charge_id=ids["8291"], reason="Debt renegotiated", actor=operator("maria"))

    outcome = pay(db, "8291", "100.00")

    assert outcome.status == "recorded"
    assert outcome.charge_status == "canceled"
    assert outcome.charge_canceled
    assert outcome.outstanding == Decimal("0.00")
    assert "canceled" in outcome.as_json()["note"]
    assert charge_status(db, "8291") == "canceled"
    assert scalar(db, "SELECT count(*) FROM payments") == 1
    last = charge_history(db, ids["8291"])[-1]
    assert (last["kind"], last["from_status"], last["to_status"]) == (
        "payment",
        "canceled",
        "canceled",
    )


def test_an_unknown_debt_id_is_not_found(db: Engine) -> None:
    import_charges(db, ("8291", "100.00"))
    with pytest.raises(NotFound, match="9999"):
        pay(db, "9999", "100.00")
    assert scalar(db, "SELECT count(*) FROM payments") == 0


def test_concurrent_payments_for_one_charge_end_consistent(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    before = charge_status(db, "8291")
    barrier = threading.Barrier(8)
    outcomes = []
    errors: list[BaseException] = []

    def send(index: int) -> None:
        barrier.wait()
        try:
            # Four distinct payments of 25.00, each delivered twice.
            outcomes.append(pay(db, "8291", "25.00", paid_at=f"2022-06-09 10:00:0{index % 4}"))
        except BaseException as exc:  # reported below, on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert sorted(o.status for o in outcomes) == ["duplicate"] * 4 + ["recorded"] * 4
    assert scalar(db, "SELECT count(*) FROM payments") == 4
    assert charge_status(db, "8291") == "paid"
    history = charge_history(db, ids["8291"])
    assert [(e["from_status"], e["to_status"]) for e in history] == [
        (before, "partially_paid"),
        ("partially_paid", "partially_paid"),
        ("partially_paid", "partially_paid"),
        ("partially_paid", "paid"),
    ]


def test_mark_paid_records_an_operator_payment_for_the_outstanding_amount(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    pay(db, "8291", "30.00")

    change = mark_paid(
        db, charge_id=ids["8291"], reason="Paid at the branch", actor=operator("maria")
    )

    assert (change.from_status, change.to_status) == ("partially_paid", "paid")
    assert change.paid_total == Decimal("100.00")
    assert charge_status(db, "8291") == "paid"
    operator_payment = charge_payments(db, ids["8291"])[-1]
    assert operator_payment["id"] == change.payment_id
    assert operator_payment["source"] == "operator"
    assert operator_payment["paid_amount"] == Decimal("70.00")
    assert operator_payment["paid_by"] == "maria"
    assert operator_payment["payload"]["reason"] == "Paid at the branch"
    event = charge_history(db, ids["8291"])[-1]
    assert (event["kind"], event["reason"], event["actor"]) == (
        "marked_paid",
        "Paid at the branch",
        "maria",
    )
    assert event["amount"] == Decimal("70.00")

    with pytest.raises(OperatorError, match="already paid"):
        mark_paid(db, charge_id=ids["8291"], reason="Again", actor=operator("maria"))
    assert scalar(db, "SELECT count(*) FROM payments") == 2


def test_cancel_records_the_reason_and_the_operator(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    before = charge_status(db, "8291")

    change = cancel_charge(db, charge_id=ids["8291"], reason="Debt sold", actor=operator("joão"))

    assert (change.from_status, change.to_status) == (before, "canceled")
    assert charge_status(db, "8291") == "canceled"
    [event] = charge_history(db, ids["8291"])
    assert (event["kind"], event["reason"], event["actor"]) == ("canceled", "Debt sold", "joão")
    with pytest.raises(OperatorError, match="already canceled"):
        cancel_charge(db, charge_id=ids["8291"], reason="Again", actor=operator("joão"))
    with pytest.raises(OperatorError, match="canceled charge can't be marked paid"):
        mark_paid(db, charge_id=ids["8291"], reason="Paid", actor=operator("joão"))


def test_a_partially_paid_charge_can_be_canceled_and_reports_what_was_received(
    db: Engine,
) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    pay(db, "8291", "30.00")

    change = cancel_charge(
        db, charge_id=ids["8291"], reason="Settled for less", actor=operator("maria")
    )

    assert change.paid_total == Decimal("30.00")
    assert charge_history(db, ids["8291"])[-1]["amount"] == Decimal("30.00")


def test_a_paid_charge_cannot_be_canceled(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    pay(db, "8291", "100.00")

    with pytest.raises(OperatorError, match="paid charge can't be canceled"):
        cancel_charge(db, charge_id=ids["8291"], reason="Mistake", actor=operator("maria"))

    assert charge_status(db, "8291") == "paid"
    assert [e["kind"] for e in charge_history(db, ids["8291"])] == ["payment"]


@pytest.mark.parametrize("action", [mark_paid, cancel_charge])
@pytest.mark.parametrize("reason", ["", "   "])
def test_operator_actions_need_a_reason(db: Engine, action, reason: str) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    before = charge_status(db, "8291")
    with pytest.raises(OperatorError, match="reason"):
        action(db, charge_id=ids["8291"], reason=reason, actor=operator("maria"))
    assert charge_status(db, "8291") == before
    assert charge_history(db, ids["8291"]) == []


@pytest.mark.parametrize("action", [mark_paid, cancel_charge])
def test_a_viewer_cannot_change_a_charge(db: Engine, action) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    before, audited = charge_status(db, "8291"), audit_count(db)
    with pytest.raises(Forbidden, match="viewer"):
        action(db, charge_id=ids["8291"], reason="Because", actor=VIEWER)
    with pytest.raises(TypeError):  # a name typed in a field is not an identity
        action(db, charge_id=ids["8291"], reason="Because", actor="maria")
    assert charge_status(db, "8291") == before
    assert charge_history(db, ids["8291"]) == []
    assert audit_count(db) == audited


@pytest.mark.parametrize(
    ("action", "name", "status"),
    [(mark_paid, "charge.mark_paid", "paid"), (cancel_charge, "charge.cancel", "canceled")],
)
def test_an_operator_action_leaves_an_audit_row(db: Engine, action, name: str, status: str) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    action(db, charge_id=ids["8291"], reason="Settled at the branch", actor=operator("ana@x.com"))
    assert charge_status(db, "8291") == status
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT actor, subject, details FROM audit_events WHERE action = :a "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"a": name},
        ).one()
    assert row.actor == "ana@x.com"
    assert row.subject == f"charge:{ids['8291']}"
    assert row.details["reason"] == "Settled at the branch"
    assert row.details["debtId"] == "8291"


def audit_count(db: Engine) -> int:
    with db.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()


@pytest.mark.parametrize("action", [mark_paid, cancel_charge])
def test_operator_actions_on_an_unknown_charge(db: Engine, action) -> None:
    with pytest.raises(NotFound):
        action(db, charge_id=404, reason="Why", actor=operator("maria"))
    with pytest.raises(NotFound):
        charge_history(db, 404)


def test_the_database_requires_a_reason_for_operator_events(db: Engine) -> None:
    ids = import_charges(db, ("8291", "100.00"))
    with pytest.raises(IntegrityError, match="charge_events_reason_required"), db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO charge_events (charge_id, kind, actor, reason) "
                "VALUES (:id, 'canceled', 'maria', ' ')"
            ),
            {"id": ids["8291"]},
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("100000.00"), Decimal("100000.00")),
        (100000, Decimal("100000.00")),
        ("0.01", Decimal("0.01")),
        (" 12.5 ", Decimal("12.50")),
        (Decimal("999999999999.99"), Decimal("999999999999.99")),
    ],
)
def test_paid_amounts(value, expected: Decimal) -> None:
    assert parse_paid_amount(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("0"), "greater than zero"),
        (Decimal("-10.00"), "greater than zero"),
        ("-1", "greater than zero"),
        (Decimal("10.001"), "two decimals"),
        (Decimal("1000000000000"), "too large"),
        ("abc", "must be a number"),
        ("NaN", "must be a number"),
        ("Infinity", "must be a number"),
        (True, "must be a number"),
        (None, "must be a number"),
        ([1], "must be a number"),
        (Decimal("1E+30"), "too large"),  # no room for cents in Decimal's 28 digits
        (Decimal("1E+999999999"), "too large"),
        (10**40, "too large"),
        ("1e30", "must be a number"),  # strings are plain decimals
        ("1_000", "must be a number"),
        ("\u0661\u0660\u0660", "must be a number"),  # Arabic-Indic 100
        ("9" * 5000, "too large: 99999999"),
    ],
)
def test_bad_paid_amounts(value, message: str) -> None:
    with pytest.raises(InvalidPayment, match=message) as refused:
        parse_paid_amount(value)
    assert len(refused.value.message) < 120  # the value is quoted short


NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-06-09 10:00:00", datetime(2022, 6, 9, 13, 0, tzinfo=UTC)),
        ("2022-06-09T10:00:00", datetime(2022, 6, 9, 13, 0, tzinfo=UTC)),
        ("2022-06-09T10:00:00Z", datetime(2022, 6, 9, 10, 0, tzinfo=UTC)),
        ("2022-06-09T10:00:00-03:00", datetime(2022, 6, 9, 13, 0, tzinfo=UTC)),
        ("2022-06-09T10:00:00.250+00:00", datetime(2022, 6, 9, 10, 0, 0, 250000, tzinfo=UTC)),
        # Brazil had daylight saving time until 2019: -02:00 in January 2019.
        ("2019-01-15 10:00:00", datetime(2019, 1, 15, 12, 0, tzinfo=UTC)),
    ],
)
def test_paid_at_formats(value: str, expected: datetime) -> None:
    assert parse_paid_at(value, timezone=SAO_PAULO, now=NOW) == expected


def test_paid_at_without_offset_follows_the_timezone_setting() -> None:
    paid_at = parse_paid_at("2022-06-09 10:00:00", timezone="UTC", now=NOW)
    assert paid_at == datetime(2022, 6, 9, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2022-02-30 10:00:00", "not a valid date"),
        ("2022-06-09 25:00:00", "not a valid date"),
        ("09/06/2022 10:00:00", "not a valid date"),
        ("2022-06-09", "date and time"),
        ("yesterday", "date and time"),
        ("", "date and time"),
        (20220609, "must be a string"),
        ("1999-12-31 10:00:00", "plausible"),
        ("2024-01-03 10:00:00", "plausible"),  # two days after NOW
    ],
)
def test_bad_paid_at(value, message: str) -> None:
    with pytest.raises(InvalidPayment, match=message):
        parse_paid_at(value, timezone=SAO_PAULO, now=NOW)


def test_an_unknown_timezone_is_an_operator_error() -> None:
    with pytest.raises(OperatorError, match="TIMEZONE"):
        parse_paid_at("2022-06-09 10:00:00", timezone="Mars/Olympus", now=NOW)


def test_reading_a_notification_keeps_the_body_as_received() -> None:
    body = (
        b'{"debtId": "8291", "paidAt": "2022-06-09 10:00:00", "paidAmount": 100000.00,'
        b' "paidBy": "John Doe", "bank": "104"}'
    )
    notification = read_payment_notification(body, timezone=SAO_PAULO)
    assert notification.debt_id == "8291"
    assert notification.paid_amount == Decimal("100000.00")
    assert notification.paid_by == "John Doe"
    assert notification.paid_at == datetime(2022, 6, 9, 13, 0, tzinfo=UTC)
    assert notification.payload == body.decode()


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"{not json", UnreadableBody, "not valid JSON"),
        (b"", UnreadableBody, "not valid JSON"),
        (b"\xff\xfe", UnreadableBody, "UTF-8"),
        (b"[1, 2]", UnreadableBody, "JSON object"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": NaN, "paidBy": "J"}',
         UnreadableBody, "NaN"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidBy": "J"}',
         InvalidPayment, "Missing field: paidAmount"),
        (b"{}", InvalidPayment, "Missing field: debtId, paidAt, paidAmount, paidBy"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": -5, "paidBy": "J"}',
         InvalidPayment, "greater than zero"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": "5", "paidBy": " "}',
         InvalidPayment, "paidBy"),
        (b'{"debtId": true, "paidAt": "2022-06-09 10:00:00", "paidAmount": 5, "paidBy": "J"}',
         InvalidPayment, "debtId"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": 5, "paidBy": "J\\u0000"}',
         InvalidPayment, "NUL"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": 5, "paidBy": "\\ud800"}',
         UnreadableBody, "lone surrogate"),
        (b'{"debtId": "1", "debtId": "2", "paidAt": "2022-06-09 10:00:00", "paidAmount": 5}',
         UnreadableBody, "key 'debtId' more than once"),
        (b'{"debtId": "1", "x": ' + b"[" * 33 + b"]" * 33 + b"}", UnreadableBody, "deeper than 32"),
        (b"[" * 50_000 + b"]" * 50_000, UnreadableBody, "deeper than 32"),
        (b'{"debtId": "1", "x": 1e999999}', UnreadableBody, "too large or too precise"),
        (b'{"debtId": "1", "paidAt": "2022-06-09 10:00:00", "paidAmount": 5, "paidBy": "-"}',
         InvalidPayment, "paidBy must contain a letter or a digit"),
        (b'{"debtId": "' + b"1" * 201 + b'", "paidAt": "2022-06-09 10:00:00", "paidAmount": 5,'
         b' "paidBy": "J"}', InvalidPayment, "debtId is longer than 200"),
    ],
)  # fmt: skip
def test_unusable_notifications(body: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        read_payment_notification(body, timezone=SAO_PAULO)


def test_the_idempotency_key_ignores_how_a_payment_is_written() -> None:
    key = idempotency_key(
        debt_id="8291",
        paid_at=datetime(2022, 6, 9, 13, 0, tzinfo=UTC),
        paid_amount=Decimal("100"),
        paid_by="John Doe",
    )
    same = idempotency_key(
        debt_id=" 8291 ",
        paid_at=parse_paid_at("2022-06-09 10:00:00", timezone=SAO_PAULO),
        paid_amount=Decimal("100.00"),
        paid_by="JOHN  doe",
    )
    other = idempotency_key(
        debt_id="8291",
        paid_at=datetime(2022, 6, 9, 13, 0, 1, tzinfo=UTC),
        paid_amount=Decimal("100"),
        paid_by="John Doe",
    )
    assert key == same != other
