"""Queries on payments and the history of charges (charge_events).

Every function takes the caller's connection: billing.payments.service runs each use case in one
transaction that starts by locking the charge's row.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, text

from db.charges import CHARGE_OF_DEBT_ID


class LockedCharge(TypedDict):
    """A charge's row as a payment or an operator's action reads it, locked."""

    id: int
    debt_id: str
    amount: Decimal
    status: str
    due_date: date


class ChargeEvent(TypedDict):
    """One row of a charge's history, with the payment behind a payment event."""

    id: int
    kind: str
    from_status: str | None
    to_status: str | None
    amount: Decimal | None
    reason: str | None
    actor: str
    created_at: datetime
    payment_id: int | None
    paid_at: datetime | None
    paid_amount: Decimal | None
    paid_by: str | None
    source: str | None


class Payment(TypedDict):
    """A payment recorded for a charge; `payload` is the notification as stored (jsonb)."""

    id: int
    paid_at: datetime
    paid_amount: Decimal
    paid_by: str
    source: str
    idempotency_key: str
    payload: Any
    created_at: datetime


_CHARGE_COLUMNS = "id, debt_id, amount, status, due_date"


def lock_charge_by_debt_id(conn: Connection, debt_id: str) -> LockedCharge | None:
    """The charge of a debtId, its row locked until the transaction ends."""
    row = (
        conn.execute(
            text(
                f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE id = ({CHARGE_OF_DEBT_ID}) FOR UPDATE"
            ),
            {"debt_id": debt_id},
        )
        .mappings()
        .first()
    )
    return cast(LockedCharge, dict(row)) if row else None


def lock_charge(conn: Connection, charge_id: int) -> LockedCharge | None:
    """A charge by id, its row locked until the transaction ends."""
    row = (
        conn.execute(
            text(f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE id = :id FOR UPDATE"),
            {"id": charge_id},
        )
        .mappings()
        .first()
    )
    return cast(LockedCharge, dict(row)) if row else None


def charge_exists(conn: Connection, charge_id: int) -> bool:
    return (
        conn.execute(text("SELECT 1 FROM charges WHERE id = :id"), {"id": charge_id}).first()
        is not None
    )


def insert_payment(
    conn: Connection,
    *,
    charge_id: int,
    paid_at: datetime,
    paid_amount: Decimal,
    paid_by: str,
    source: str,
    idempotency_key: str,
    payload: str,
) -> int | None:
    """Insert a payment; None when its idempotency key is already recorded."""
    return conn.execute(
        text(
            """
            INSERT INTO payments
                (charge_id, paid_at, paid_amount, paid_by, source, idempotency_key, payload)
            VALUES
                (:charge_id, :paid_at, :paid_amount, :paid_by, :source, :idempotency_key,
                 CAST(:payload AS jsonb))
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id
            """
        ),
        {
            "charge_id": charge_id,
            "paid_at": paid_at,
            "paid_amount": paid_amount,
            "paid_by": paid_by,
            "source": source,
            "idempotency_key": idempotency_key,
            "payload": payload,
        },
    ).scalar_one_or_none()


def payment_id_by_key(conn: Connection, idempotency_key: str) -> int | None:
    return conn.execute(
        text("SELECT id FROM payments WHERE idempotency_key = :key"), {"key": idempotency_key}
    ).scalar_one_or_none()


def paid_total(conn: Connection, charge_id: int) -> Decimal:
    """The sum of every payment recorded for a charge (0 when none)."""
    return conn.execute(
        text("SELECT coalesce(sum(paid_amount), 0) FROM payments WHERE charge_id = :id"),
        {"id": charge_id},
    ).scalar_one()


def set_charge_status(conn: Connection, charge_id: int, status: str) -> None:
    conn.execute(
        text("UPDATE charges SET status = :status WHERE id = :id"),
        {"id": charge_id, "status": status},
    )


def insert_event(
    conn: Connection,
    *,
    charge_id: int,
    kind: str,
    actor: str,
    from_status: str | None = None,
    to_status: str | None = None,
    payment_id: int | None = None,
    amount: Decimal | None = None,
    reason: str | None = None,
) -> int:
    """Append one row to a charge's history."""
    return conn.execute(
        text(
            """
            INSERT INTO charge_events
                (charge_id, kind, from_status, to_status, payment_id, amount, reason, actor)
            VALUES
                (:charge_id, :kind, :from_status, :to_status, :payment_id, :amount, :reason,
                 :actor)
            RETURNING id
            """
        ),
        {
            "charge_id": charge_id,
            "kind": kind,
            "from_status": from_status,
            "to_status": to_status,
            "payment_id": payment_id,
            "amount": amount,
            "reason": reason,
            "actor": actor,
        },
    ).scalar_one()


def charge_events(conn: Connection, charge_id: int) -> list[ChargeEvent]:
    """A charge's history, oldest first, with the payment behind each payment event."""
    rows = conn.execute(
        text(
            """
            SELECT e.id, e.kind, e.from_status, e.to_status, e.amount, e.reason, e.actor,
                   e.created_at, e.payment_id, p.paid_at, p.paid_amount, p.paid_by, p.source
            FROM charge_events AS e
            LEFT JOIN payments AS p ON p.id = e.payment_id
            WHERE e.charge_id = :id
            ORDER BY e.created_at, e.id
            """
        ),
        {"id": charge_id},
    ).mappings()
    return cast(list[ChargeEvent], [dict(row) for row in rows])


def payments_of_charge(conn: Connection, charge_id: int) -> list[Payment]:
    rows = conn.execute(
        text(
            """
            SELECT id, paid_at, paid_amount, paid_by, source, idempotency_key, payload,
                   created_at
            FROM payments
            WHERE charge_id = :id
            ORDER BY paid_at, id
            """
        ),
        {"id": charge_id},
    ).mappings()
    return cast(list[Payment], [dict(row) for row in rows])


def payment_like(
    conn: Connection,
    *,
    charge_id: int,
    source: str,
    paid_amount: Decimal,
    paid_on: date,
    timezone: str,
) -> int | None:
    """A payment from `source` for the same charge and amount on the same local day: the same
    liquidação reported by the bank twice, once by its webhook and once in a retorno file
    (their idempotency keys differ: the retorno knows no paidBy or time of day)."""
    return conn.execute(
        text(
            """
            SELECT id FROM payments
            WHERE charge_id = :charge_id AND source = :source AND paid_amount = :amount
              AND CAST(paid_at AT TIME ZONE CAST(:tz AS text) AS date) = :day
            ORDER BY id LIMIT 1
            """
        ),
        {
            "charge_id": charge_id,
            "source": source,
            "amount": paid_amount,
            "day": paid_on,
            "tz": timezone,
        },
    ).scalar_one_or_none()


def status_before_cancel(conn: Connection, charge_id: int) -> str | None:
    """The status a charge had when it was last canceled (its latest 'canceled' event), or
    None when no operator canceled it (a bank's baixa, say)."""
    return conn.execute(
        text(
            """
            SELECT from_status FROM charge_events
            WHERE charge_id = :id AND kind = 'canceled'
            ORDER BY created_at DESC, id DESC
            LIMIT 1
            """
        ),
        {"id": charge_id},
    ).scalar_one_or_none()


class BankWriteOff(TypedDict):
    """What the bank was told or said about writing a charge's boleto off (a baixa)."""

    remessa_nsa: int | None  # the remessa that asked for it, if one did
    written_off_at: datetime | None  # when a retorno reported it done


def bank_write_off(conn: Connection, charge_id: int) -> BankWriteOff | None:
    """The baixa of a charge's boleto asked of the bank or reported by it; None if neither."""
    row = (
        conn.execute(
            text(
                """
                SELECT (SELECT r.nsa FROM remessa_items AS i
                        JOIN remessas AS r ON r.id = i.remessa_id
                        WHERE i.charge_id = c.id AND i.kind = 'write_off'
                        ORDER BY r.id DESC LIMIT 1) AS remessa_nsa,
                       c.written_off_at
                FROM charges AS c
                WHERE c.id = :id
                """
            ),
            {"id": charge_id},
        )
        .mappings()
        .first()
    )
    if row is None or (row["remessa_nsa"] is None and row["written_off_at"] is None):
        return None
    return cast(BankWriteOff, dict(row))


def has_boleto(conn: Connection, charge_id: int) -> bool:
    return bool(
        conn.execute(
            text("SELECT barcode IS NOT NULL FROM charges WHERE id = :id"), {"id": charge_id}
        ).scalar_one_or_none()
    )
