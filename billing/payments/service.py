"""Payments received for charges, and what an operator does to a charge by hand.

A charge moves pending -> issued -> paid | partially_paid | canceled. "Overdue" is not a
status: it is derived from the due date and the status when read (`billing.core.statuses`).

Decisions, so a reader need not rediscover them:

- The money decides. After every payment the status is recomputed from the sum of all
  payments of the charge: sum >= amount -> paid, 0 < sum < amount -> partially_paid.
  An overpayment is recorded as received and reported (`overpaid_amount`, a warning in
  the log, a note on the charge's history); refunding it is an operator's decision.
- A payment for a canceled charge is recorded (the money did come in) but the charge
  stays canceled; the outcome says so (`charge_canceled`) and the history notes it, so
  someone can refund it or reopen the charge.
- Idempotency: a bank notification is identified by its (debtId, paidAt, paidAmount,
  paidBy), normalised (paidAt as an instant, the amount to cents, the payer's name
  case- and space-insensitive) and hashed; the same notification twice is recorded once.
  Two genuinely different payments identical in all four (same second, amount and
  payer) would be taken as one; banks do not send those.
- `mark_paid` records a payment with source 'operator' of the amount the operator
  typed (the outstanding one when none is given) on the day it was paid, through the
  same step as a bank's payment (`_insert_payment`): partially paid, paid or overpaid
  follow from the sum, exactly as for a webhook payment of that amount. Its key is a
  fresh uuid: two equal sums paid at the branch are two payments. The status stays a
  function of the payments, so a later bank payment cannot silently undo it, and
  reports of money received list it as what it is (source 'operator', paid_by the
  operator, the reason in its payload). If the bank's notification arrives afterwards
  it is recorded too and the charge shows as overpaid, which is exactly what someone
  reconciling should see.
- `cancel_charge` refuses a paid charge; a partially paid one can be canceled, and the
  result reports what was already received. `reopen_charge` undoes a cancel (its own
  event and audit action), back to the status before it, recomputed from the payments;
  refused once the boleto's baixa went to the bank or the bank reported it written off.
- Every use case is one transaction that first locks the charge's row
  (SELECT ... FOR UPDATE): concurrent payments for a charge are applied one after the
  other and the status always matches the sum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.core.errors import OperatorError
from billing.core.filters import parse_amount
from billing.core.formatting import date_br
from billing.core.i18n import _
from billing.core.settings import get_settings
from db import payments as payments_db
from db.payments import ChargeEvent, LockedCharge, Payment

log = logging.getLogger(__name__)

SOURCES = ("webhook", "operator", "retorno")  # retorno: a liquidação in a CNAB 240 file
NOTIFICATION_FIELDS = ("debtId", "paidAt", "paidAmount", "paidBy")

_CENT = Decimal("0.01")
_LARGEST_AMOUNT = Decimal("999999999999.99")  # numeric(14, 2)
_EARLIEST_PAYMENT = datetime(2000, 1, 1, tzinfo=UTC)
_CLOCK_TOLERANCE = timedelta(days=1)
_HAS_TIME = re.compile(r"\d[Tt ]\d")
_PLAIN_AMOUNT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")  # ASCII digits: no 1e3, 1_000, Arabic-Indic
# What a webhook body may hold: a bank's notification is flat and short; anything beyond
# these is refused with a 4xx before it reaches the database (jsonb keeps no NUL, no lone
# surrogate, and numbers of at most 16383 decimals).
MAX_JSON_DEPTH = 32
MAX_FIELD_CHARS = 200  # debtId, paidBy
_MAX_EXPONENT = 1000  # |exponent| of any number in the body
_SHOWN_CHARS = 40  # of a value quoted back in a message


class NotFound(OperatorError):
    """No charge with that debtId or id."""

    def __init__(self, message: str, *, title: str = "Not found") -> None:
        super().__init__(message, title=title)


class InvalidPayment(OperatorError):
    """A payment whose fields cannot be recorded (missing, negative, a bad date...)."""

    def __init__(self, message: str, *, title: str = "Invalid payment") -> None:
        super().__init__(message, title=title)


class UnreadableBody(InvalidPayment):
    """A notification that is not a JSON object at all."""


@dataclass(frozen=True)
class PaymentNotification:
    """A bank's payment notification, read and checked; `payload` is the body as received."""

    debt_id: str
    paid_at: datetime
    paid_amount: Decimal
    paid_by: str
    payload: str


@dataclass(frozen=True)
class PaymentOutcome:
    """What recording a payment did to its charge."""

    status: str  # recorded, or duplicate (already recorded: nothing changed)
    payment_id: int
    charge_id: int
    debt_id: str
    previous_status: str
    charge_status: str
    charge_amount: Decimal
    paid_total: Decimal

    @property
    def charge_canceled(self) -> bool:
        return self.charge_status == "canceled"

    @property
    def overpaid_amount(self) -> Decimal:
        return max(self.paid_total - self.charge_amount, Decimal("0.00"))

    @property
    def outstanding(self) -> Decimal:
        if self.charge_canceled:
            return Decimal("0.00")
        return max(self.charge_amount - self.paid_total, Decimal("0.00"))

    @property
    def note(self) -> str | None:
        return _payment_note(
            charge_canceled=self.charge_canceled, overpaid_amount=self.overpaid_amount
        )

    def as_json(self) -> dict[str, Any]:
        """The API's answer; amounts as strings with two decimals, never floats."""
        return {
            "status": self.status,
            "chargeStatus": self.charge_status,
            "previousStatus": self.previous_status,
            "chargeId": self.charge_id,
            "debtId": self.debt_id,
            "paymentId": self.payment_id,
            "amount": _money(self.charge_amount),
            "paidTotal": _money(self.paid_total),
            "outstanding": _money(self.outstanding),
            "overpaidAmount": _money(self.overpaid_amount),
            "chargeCanceled": self.charge_canceled,
            "note": self.note,
        }


@dataclass(frozen=True)
class ChargeChange:
    """What an operator's action did to a charge."""

    charge_id: int
    debt_id: str
    from_status: str
    to_status: str
    paid_total: Decimal  # everything received for the charge, after the action
    payment_id: int | None = None  # the operator payment written by mark_paid
    paid_amount: Decimal | None = None  # what that payment was
    charge_amount: Decimal | None = None

    @property
    def overpaid_amount(self) -> Decimal:
        """Received beyond the charge's amount (after a payment recorded by hand)."""
        if self.charge_amount is None:
            return Decimal("0.00")
        return max(self.paid_total - self.charge_amount, Decimal("0.00"))


def check_timezone(name: str) -> None:
    """Fail fast on a TIMEZONE the payments code could not use."""
    _zone(name)


def parse_paid_amount(value: object) -> Decimal:
    """A positive amount in reais with at most two decimals (a JSON number or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise InvalidPayment("paidAmount must be a number, such as 100000.00.")
    if isinstance(value, str) and not _PLAIN_AMOUNT.fullmatch(value.strip()):
        raise InvalidPayment(f"paidAmount must be a number, not {_shown(value)}.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidPayment(f"paidAmount must be a number, not {_shown(value)}.") from exc
    if not amount.is_finite():
        raise InvalidPayment(f"paidAmount must be a number, not {_shown(value)}.")
    if amount <= 0:
        raise InvalidPayment(f"paidAmount must be greater than zero, not {_clipped(amount)}.")
    # Before quantize: 1e30 has no room for cents within Decimal's precision.
    if amount > _LARGEST_AMOUNT:
        raise InvalidPayment(f"paidAmount is too large: {_clipped(amount)}.")
    if amount != amount.quantize(_CENT):
        raise InvalidPayment(f"paidAmount has more than two decimals: {_clipped(amount)}.")
    return amount.quantize(_CENT)


def parse_paid_at(value: object, *, timezone: str, now: datetime | None = None) -> datetime:
    """When the payment was made, as an aware datetime.

    Accepts "YYYY-MM-DD HH:MM:SS" and ISO 8601; without an offset the time is local to
    `timezone` (the TIMEZONE setting, America/Sao_Paulo by default).
    """
    if isinstance(value, datetime):
        paid_at = value
    elif isinstance(value, str):
        text = value.strip()
        if not _HAS_TIME.search(text):
            raise InvalidPayment(
                f"paidAt must be a date and time such as 2022-06-09 10:00:00, not {_shown(value)}."
            )
        try:
            paid_at = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidPayment(
                f"paidAt is not a valid date and time: {_shown(value)} "
                "(expected YYYY-MM-DD HH:MM:SS or ISO 8601)."
            ) from exc
    else:
        raise InvalidPayment("paidAt must be a string such as 2022-06-09 10:00:00.")
    if paid_at.tzinfo is None:
        paid_at = paid_at.replace(tzinfo=_zone(timezone))
    now = now or datetime.now(UTC)
    if not _EARLIEST_PAYMENT <= paid_at <= now + _CLOCK_TOLERANCE:
        raise InvalidPayment(f"paidAt is not a plausible payment time: {_shown(value)}.")
    return paid_at


def read_payment_notification(body: bytes, *, timezone: str) -> PaymentNotification:
    """Read a webhook body: a JSON object with debtId, paidAt, paidAmount and paidBy.

    Raises UnreadableBody (a 400) when it is not a JSON object that can be stored as it
    came, InvalidPayment (a 422) for a field. Other fields are allowed and kept in the
    stored payload.
    """
    text, data = _json_object(body)
    missing = [name for name in NOTIFICATION_FIELDS if data.get(name) in (None, "")]
    if missing:
        raise InvalidPayment("Missing field: " + ", ".join(missing) + ".")
    return PaymentNotification(
        debt_id=_debt_id(data["debtId"]),
        paid_at=parse_paid_at(data["paidAt"], timezone=timezone),
        paid_amount=parse_paid_amount(data["paidAmount"]),
        paid_by=_short_text(data["paidBy"], "paidBy"),
        payload=text,
    )


def _json_object(body: bytes) -> tuple[str, dict[str, Any]]:
    """The body as text and as a JSON object that jsonb stores unchanged."""
    try:
        text = body.decode("utf-8")
        data = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_object_without_repeated_keys,
        )
    except UnicodeDecodeError as exc:
        raise UnreadableBody("The body is not UTF-8 text.") from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    except json.JSONDecodeError as exc:
        raise UnreadableBody(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except ValueError as exc:  # NaN, Infinity, an integer of more than 4300 digits
        raise UnreadableBody(f"The body is not valid JSON: {_clipped(exc)}.") from exc
    if not isinstance(data, dict):
        raise UnreadableBody(
            "The body must be a JSON object with " + ", ".join(NOTIFICATION_FIELDS) + "."
        )
    _check_storable(data)
    return text, data


def idempotency_key(*, debt_id: str, paid_at: datetime, paid_amount: Decimal, paid_by: str) -> str:
    """The same bank payment always hashes to the same key, however it was written."""
    normalised = [
        debt_id.strip(),
        paid_at.astimezone(UTC).isoformat(timespec="microseconds"),
        str(Decimal(paid_amount).quantize(_CENT)),
        " ".join(paid_by.split()).casefold(),
    ]
    return hashlib.sha256(json.dumps(normalised).encode()).hexdigest()


@dataclass(frozen=True)
class _NewPayment:
    """A payment's values, checked and normalised, with their idempotency key."""

    debt_id: str
    paid_at: datetime
    paid_amount: Decimal
    paid_by: str
    key: str


def record_payment(
    engine: Engine,
    *,
    debt_id: str,
    paid_at: datetime | str,
    paid_amount: Decimal | int | str,
    paid_by: str,
    source: str,
    payload: str | Mapping[str, Any],
    actor: Actor,
    timezone: str | None = None,
) -> PaymentOutcome:
    """Record a payment for the charge of `debt_id` and recompute the charge's status.

    Idempotent: a payment already recorded (same normalised debtId, paidAt, paidAmount,
    paidBy) returns status 'duplicate' and changes nothing. Raises NotFound for an
    unknown debtId and InvalidPayment for unusable values. Audited either way.
    """
    require(actor, Permission.CHANGE_CHARGES)
    if source not in SOURCES:
        raise InvalidPayment(f"source must be one of {', '.join(SOURCES)}, not {source!r}.")
    zone, payment = _new_payment(
        debt_id=debt_id,
        paid_at=paid_at,
        paid_amount=paid_amount,
        paid_by=paid_by,
        timezone=timezone,
    )
    payload_text = payload if isinstance(payload, str) else _json(payload)
    with engine.begin() as conn:
        charge = payments_db.lock_charge_by_debt_id(conn, payment.debt_id)
        if charge is None:
            raise NotFound(f"No charge has debtId {payment.debt_id!r}.")
        outcome = None
        if source == "webhook":  # a retorno file may have reported this liquidação already
            outcome = _reported_by_retorno(conn, charge, payment, timezone=zone)
        if outcome is None:
            outcome = _insert_payment(
                conn, charge, payment, source=source, payload=payload_text, actor=actor
            )
        _audit_payment(conn, actor, outcome, source=source, paid_amount=payment.paid_amount)
    if outcome.status == "recorded" and outcome.note:
        log.warning(
            "payment %s for debtId %s: %s", outcome.payment_id, payment.debt_id, outcome.note
        )
    return outcome


def _new_payment(
    *,
    debt_id: str,
    paid_at: datetime | str,
    paid_amount: Decimal | int | str,
    paid_by: str,
    timezone: str | None,
) -> tuple[str, _NewPayment]:
    """The time zone of local times (TIMEZONE unless given) and the payment's values,
    checked; raises InvalidPayment."""
    debt_id = _debt_id(debt_id)
    zone = timezone or get_settings().timezone
    when = parse_paid_at(paid_at, timezone=zone)
    amount = parse_paid_amount(paid_amount)
    paid_by = _required_text(paid_by, "paidBy")
    key = idempotency_key(debt_id=debt_id, paid_at=when, paid_amount=amount, paid_by=paid_by)
    return zone, _NewPayment(
        debt_id=debt_id, paid_at=when, paid_amount=amount, paid_by=paid_by, key=key
    )


def _reported_by_retorno(
    conn: Connection, charge: LockedCharge, payment: _NewPayment, *, timezone: str
) -> PaymentOutcome | None:
    """A duplicate when a retorno file already recorded this liquidação (same charge,
    amount and local day), else None."""
    earlier = payments_db.payment_like(
        conn,
        charge_id=charge["id"],
        source="retorno",
        paid_amount=payment.paid_amount,
        paid_on=payment.paid_at.astimezone(ZoneInfo(timezone)).date(),
        timezone=timezone,
    )
    if earlier is None:
        return None
    total, status = payments_db.paid_total(conn, charge["id"]), charge["status"]
    return _outcome("duplicate", earlier, charge, status, status, total)


def _insert_payment(
    conn: Connection,
    charge: LockedCharge,
    payment: _NewPayment,
    *,
    source: str,
    payload: str,
    actor: Actor,
    event_kind: str = "payment",
    reason: str | None = None,
) -> PaymentOutcome:
    """The payment inserted and the charge's status recomputed, or a duplicate when its
    idempotency key is already recorded. The history's event says `event_kind`, with
    `reason` (an operator's) before any note for whoever reconciles."""
    payment_id = payments_db.insert_payment(
        conn,
        charge_id=charge["id"],
        paid_at=payment.paid_at,
        paid_amount=payment.paid_amount,
        paid_by=payment.paid_by,
        source=source,
        idempotency_key=payment.key,
        payload=payload,
    )
    total = payments_db.paid_total(conn, charge["id"])
    previous = charge["status"]
    if payment_id is None:
        # The conflict was on this key, for this charge, committed before our lock.
        existing = _payment_id_by_key(conn, payment.key)
        return _outcome("duplicate", existing, charge, previous, previous, total)
    status = _status_after_payment(previous, total=total, amount=charge["amount"])
    if status != previous:
        payments_db.set_charge_status(conn, charge["id"], status)
    outcome = _outcome("recorded", payment_id, charge, previous, status, total)
    payments_db.insert_event(
        conn,
        charge_id=charge["id"],
        kind=event_kind,
        from_status=previous,
        to_status=status,
        payment_id=payment_id,
        amount=payment.paid_amount,
        reason=" ".join(part for part in (reason, outcome.note) if part) or None,
        actor=actor.name,
    )
    return outcome


def _payment_id_by_key(conn: Connection, key: str) -> int:
    """The id of the payment recorded with an idempotency key that just conflicted."""
    payment_id = payments_db.payment_id_by_key(conn, key)
    if payment_id is None:  # the conflict says it is there: a bug otherwise
        raise RuntimeError(f"no payment has the idempotency key {key} that conflicted")
    return payment_id


def _audit_payment(
    conn: Connection, actor: Actor, outcome: PaymentOutcome, *, source: str, paid_amount: Decimal
) -> None:
    audit.record(
        conn,
        actor=actor,
        action=audit.Action.WEBHOOK_PAYMENT if source == "webhook" else audit.Action.PAYMENT,
        subject=f"charge:{outcome.charge_id}",
        details={
            "debtId": outcome.debt_id,
            "status": outcome.status,
            "paymentId": outcome.payment_id,
            "paidAmount": _money(paid_amount),
            "chargeStatus": outcome.charge_status,
        },
    )


def mark_paid(
    engine: Engine,
    *,
    charge_id: int,
    reason: str,
    actor: Actor,
    amount: Decimal | str | None = None,
    paid_on: date | None = None,
) -> ChargeChange:
    """Record a payment an operator vouches for (paid at the branch, settled...).

    `amount` is what was paid, as typed ("1.000,50") or a Decimal; None pays the whole
    outstanding amount. `paid_on` is the day it was paid (today, in TIMEZONE, if None).
    The payment goes through the same steps as a bank's (`_insert_payment`): the charge
    becomes partially paid, paid or overpaid from the sum of its payments. Recorded as a
    'marked_paid' event with the reason, and audited with the amount. Refused for a
    charge already paid or canceled.
    """
    require(actor, Permission.CHANGE_CHARGES)
    reason = _operator_reason(reason)
    zone = get_settings().timezone
    paid_at = _operator_paid_at(paid_on, timezone=zone)
    typed = _operator_amount(amount)
    with engine.begin() as conn:
        charge = _locked_charge(conn, charge_id)
        total = payments_db.paid_total(conn, charge_id)
        outstanding = _outstanding_to_mark_paid(charge, total=total)
        paid_amount = outstanding if typed is None else typed
        payment = _NewPayment(
            debt_id=charge["debt_id"],
            paid_at=paid_at,
            paid_amount=paid_amount,
            paid_by=actor.name,
            key=f"operator:{uuid.uuid4().hex}",  # two equal sums at the branch are two
        )
        payload = {
            "action": "mark_paid",
            "reason": reason,
            "actor": actor.name,
            "amount": _money(paid_amount),
            "outstanding": _money(outstanding),
            "paidOn": paid_at.astimezone(ZoneInfo(zone)).date().isoformat(),
            "at": datetime.now(UTC).isoformat(),
        }
        outcome = _insert_payment(
            conn,
            charge,
            payment,
            source="operator",
            payload=_json(payload),
            actor=actor,
            event_kind="marked_paid",
            reason=reason,
        )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.MARK_PAID,
            subject=f"charge:{charge_id}",
            details={
                "debtId": charge["debt_id"],
                "reason": reason,
                "amount": _money(paid_amount),
                "paidOn": payload["paidOn"],
                "from": charge["status"],
                "to": outcome.charge_status,
                "paymentId": outcome.payment_id,
            },
        )
    log.info(
        "charge %s: %s recorded by hand by %s: %s",
        charge_id,
        _money(paid_amount),
        actor.name,
        reason,
    )
    return ChargeChange(
        charge_id=charge_id,
        debt_id=charge["debt_id"],
        from_status=charge["status"],
        to_status=outcome.charge_status,
        paid_total=outcome.paid_total,
        payment_id=outcome.payment_id,
        paid_amount=paid_amount,
        charge_amount=charge["amount"],
    )


def _operator_amount(amount: Decimal | str | None) -> Decimal | None:
    """The amount an operator typed, read the Brazilian way; None: the outstanding."""
    if amount is None:
        return None
    if isinstance(amount, str):
        if not amount.strip():
            return None
        value = parse_amount(amount)
        if value is None:
            raise OperatorError(
                _("“{amount}” is not an amount: write it as 1.000,50.").format(
                    amount=_clipped(amount.strip())
                ),
                title=_("Amount not recorded"),
            )
    else:
        value = Decimal(amount)
    if value <= 0:
        raise OperatorError(
            _("The amount paid must be more than zero."), title=_("Amount not recorded")
        )
    if value > _LARGEST_AMOUNT or value != value.quantize(_CENT):
        raise OperatorError(
            _("“{amount}” is not an amount: write it as 1.000,50.").format(amount=value),
            title=_("Amount not recorded"),
        )
    return value.quantize(_CENT)


def _operator_paid_at(paid_on: date | None, *, timezone: str) -> datetime:
    """When a payment recorded by hand was made: now for today, else noon of that day."""
    zone = _zone(timezone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    if paid_on is None or paid_on == today:
        return now
    if paid_on > today:
        raise OperatorError(
            _("A payment can't be dated in the future ({day}).").format(day=date_br(paid_on)),
            title=_("Date not accepted"),
        )
    paid_at = datetime.combine(paid_on, time(12), zone)
    if paid_at < _EARLIEST_PAYMENT:
        raise OperatorError(
            _("{day} is too long ago for a payment.").format(day=date_br(paid_on)),
            title=_("Date not accepted"),
        )
    return paid_at


def _outstanding_to_mark_paid(charge: LockedCharge, *, total: Decimal) -> Decimal:
    """What is still owed on a charge an operator records a payment for; refused when
    nothing is, or when the charge is canceled."""
    if charge["status"] == "canceled":
        raise OperatorError(
            _(
                "Charge {debt_id} is canceled; a canceled charge can't be marked paid. "
                "Reopen it first."
            ).format(debt_id=charge["debt_id"])
        )
    outstanding = charge["amount"] - total
    if charge["status"] == "paid" or outstanding <= 0:
        raise OperatorError(
            _("Charge {debt_id} is already paid.").format(debt_id=charge["debt_id"])
        )
    return outstanding


def cancel_charge(engine: Engine, *, charge_id: int, reason: str, actor: Actor) -> ChargeChange:
    """Cancel a charge, recording why and by whom; a paid charge can't be canceled.

    A partially paid charge can be: what was received stays recorded and is reported in
    `paid_total`, for a refund if one is due.
    """
    require(actor, Permission.CHANGE_CHARGES)
    reason = _operator_reason(reason)
    with engine.begin() as conn:
        charge = _locked_charge(conn, charge_id)
        _check_cancelable(charge)
        total = payments_db.paid_total(conn, charge_id)
        payments_db.set_charge_status(conn, charge_id, "canceled")
        record_charge_change(
            conn,
            actor=actor,
            action=audit.Action.CANCEL,
            charge_id=charge_id,
            debt_id=charge["debt_id"],
            kind="canceled",
            from_status=charge["status"],
            to_status="canceled",
            amount=total if total else None,
            reason=reason,
            details={"from": charge["status"], "paidTotal": _money(total)},
        )
    log.info("charge %s canceled by %s: %s", charge_id, actor.name, reason)
    return ChargeChange(
        charge_id=charge_id,
        debt_id=charge["debt_id"],
        from_status=charge["status"],
        to_status="canceled",
        paid_total=total,
    )


def _check_cancelable(charge: LockedCharge) -> None:
    if charge["status"] == "paid":
        raise OperatorError(
            _("Charge {debt_id} is paid; a paid charge can't be canceled.").format(
                debt_id=charge["debt_id"]
            )
        )
    if charge["status"] == "canceled":
        raise OperatorError(
            _("Charge {debt_id} is already canceled.").format(debt_id=charge["debt_id"])
        )


def reopen_charge(engine: Engine, *, charge_id: int, reason: str, actor: Actor) -> ChargeChange:
    """Undo a cancel: the charge goes back to the status it had before it (issued,
    registered, pending), or to partially paid / paid when money came in meanwhile.

    Refused when the bank was asked to write its boleto off (a remessa carried the baixa)
    or reported it written off: the bank no longer collects that boleto, and registering
    the same nosso número again is not something a remessa does; the sentence says so.
    A cancel whose baixa has not gone out yet is simply undone: the next remessa does not
    ask for it. Notices skipped while it was canceled stay as they were (Resend sends
    one); those planned from now on go out as usual. A 'reopened' event with the reason,
    and an audit row.
    """
    require(actor, Permission.CHANGE_CHARGES)
    reason = _operator_reason(reason)
    with engine.begin() as conn:
        charge = _locked_charge(conn, charge_id)
        if charge["status"] != "canceled":
            raise OperatorError(
                _("Charge {debt_id} is not canceled: there is nothing to reopen.").format(
                    debt_id=charge["debt_id"]
                ),
                title=_("Nothing to reopen"),
            )
        _check_not_written_off(conn, charge)
        total = payments_db.paid_total(conn, charge_id)
        status = _status_after_payment(
            _status_before_cancel(conn, charge_id), total=total, amount=charge["amount"]
        )
        payments_db.set_charge_status(conn, charge_id, status)
        record_charge_change(
            conn,
            actor=actor,
            action=audit.Action.REOPEN,
            charge_id=charge_id,
            debt_id=charge["debt_id"],
            kind="reopened",
            from_status="canceled",
            to_status=status,
            amount=total if total else None,
            reason=reason,
            details={"to": status, "paidTotal": _money(total)},
        )
    log.info("charge %s reopened by %s (now %s): %s", charge_id, actor.name, status, reason)
    return ChargeChange(
        charge_id=charge_id,
        debt_id=charge["debt_id"],
        from_status="canceled",
        to_status=status,
        paid_total=total,
        charge_amount=charge["amount"],
    )


def _status_before_cancel(conn: Connection, charge_id: int) -> str:
    """The status of the charge before its last cancel; issued (or pending, without a
    boleto) when no cancel event says."""
    before = payments_db.status_before_cancel(conn, charge_id)
    if before is None or before == "canceled":
        return "issued" if payments_db.has_boleto(conn, charge_id) else "pending"
    return before


def _check_not_written_off(conn: Connection, charge: LockedCharge) -> None:
    write_off = payments_db.bank_write_off(conn, charge["id"])
    if write_off is None:
        return
    if write_off["remessa_nsa"] is not None:
        said = _("the write-off (baixa) of its boleto went to the bank in remessa {nsa}").format(
            nsa=write_off["remessa_nsa"]
        )
    else:
        said = _("the bank reported its boleto written off (baixa)")
    raise OperatorError(
        _(
            "Charge {debt_id} can't be reopened: {said}, so the bank no longer collects it. "
            "To charge this debt again, import it with a new debtId: it gets a new boleto."
        ).format(debt_id=charge["debt_id"], said=said),
        title=_("Not reopened"),
    )


def charge_history(engine: Engine, charge_id: int) -> list[ChargeEvent]:
    """A charge's events, oldest first: payments, status changes, operator actions."""
    with engine.connect() as conn:
        if not payments_db.charge_exists(conn, charge_id):
            raise NotFound(f"No charge has id {charge_id}.")
        return payments_db.charge_events(conn, charge_id)


def charge_payments(engine: Engine, charge_id: int) -> list[Payment]:
    """Every payment recorded for a charge, in the order they were made."""
    with engine.connect() as conn:
        if not payments_db.charge_exists(conn, charge_id):
            raise NotFound(f"No charge has id {charge_id}.")
        return payments_db.payments_of_charge(conn, charge_id)


def _status_after_payment(previous: str, *, total: Decimal, amount: Decimal) -> str:
    if previous == "canceled":
        return "canceled"
    if total >= amount:
        return "paid"
    return "partially_paid" if total > 0 else previous


def _outcome(
    status: str,
    payment_id: int,
    charge: LockedCharge,
    previous: str,
    charge_status: str,
    total: Decimal,
) -> PaymentOutcome:
    return PaymentOutcome(
        status=status,
        payment_id=payment_id,
        charge_id=charge["id"],
        debt_id=charge["debt_id"],
        previous_status=previous,
        charge_status=charge_status,
        charge_amount=charge["amount"],
        paid_total=total,
    )


def _payment_note(*, charge_canceled: bool, overpaid_amount: Decimal) -> str | None:
    """What someone reconciling must look at, or None when the payment is unremarkable."""
    notes = []
    if charge_canceled:
        notes.append("Received for a canceled charge, which stays canceled.")
    if overpaid_amount > 0:
        notes.append(f"Overpaid by {_money(overpaid_amount)}.")
    return " ".join(notes) or None


def _locked_charge(conn: Connection, charge_id: int) -> LockedCharge:
    charge = payments_db.lock_charge(conn, charge_id)
    if charge is None:
        raise NotFound(f"No charge has id {charge_id}.")
    return charge


def _debt_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidPayment('debtId must be a string such as "8291".')
    return _short_text(str(value), "debtId")


def _short_text(value: object, name: str) -> str:
    """A name or an id: a few printable words, at least one letter or digit among them."""
    text = _required_text(value, name)
    if len(text) > MAX_FIELD_CHARS:
        raise InvalidPayment(f"{name} is longer than {MAX_FIELD_CHARS} characters.")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InvalidPayment(f"{name} contains a control character.")
    if not any(char.isalnum() for char in text):
        raise InvalidPayment(f"{name} must contain a letter or a digit.")
    return text


def _required_text(value: object, name: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidPayment(f"{name} must be a non-empty string.")


def _operator_reason(value: object) -> str:
    """Why an operator acts: required, for the history and the audit trail."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise OperatorError(_("A reason is required."), title=_("Nothing was changed"))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OperatorError(f"TIMEZONE {name!r} is not a known time zone.") from exc


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(_CENT))


def _json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; one whose key repeats is ambiguous (which debtId was signed?)."""
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise UnreadableBody(f"The body gives the key {_shown(key)} more than once.")
        seen.add(key)
    return dict(pairs)


def _check_storable(data: dict[str, Any]) -> None:
    """Refuse what jsonb cannot keep as received, and nesting no bank sends."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_storable_text(value)
        elif isinstance(value, Decimal) and _too_precise(value):
            raise UnreadableBody(
                f"The body holds a number too large or too precise to store: {_clipped(value)}."
            )


def _too_precise(value: Decimal) -> bool:
    """Whether a number's exponent is beyond what jsonb keeps (JSON has no NaN)."""
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and abs(exponent) > _MAX_EXPONENT


def _check_storable_text(value: str) -> None:
    if "\x00" in value:
        raise UnreadableBody("The body contains a NUL character (\\u0000).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnreadableBody(
            "The body contains a lone surrogate escape such as \\ud800, which is no character."
        ) from exc


def _too_deep() -> UnreadableBody:
    return UnreadableBody(f"The body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels.")


def _shown(value: object) -> str:
    """A value from the body quoted for a message: escaped, and cut short."""
    return _clipped(repr(value))


def _clipped(value: object) -> str:
    text = str(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def record_charge_change(
    conn: Connection,
    *,
    actor: Actor,
    action: str,
    charge_id: int,
    debt_id: str,
    kind: str,
    from_status: str,
    to_status: str,
    reason: str,
    details: Mapping[str, Any],
    amount: Decimal | None = None,
) -> None:
    """What an operator's change to a charge leaves behind: a line in the charge's history
    and a row in the audit trail, with the reason in both."""
    payments_db.insert_event(
        conn,
        charge_id=charge_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        amount=amount,
        reason=reason,
        actor=actor.name,
    )
    audit.record(
        conn,
        actor=actor,
        action=action,
        subject=f"charge:{charge_id}",
        details={"debtId": debt_id, "reason": reason, **details},
    )
