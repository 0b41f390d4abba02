"""The operators' overview: what is owed, late, received and collected.

Two SQL aggregates feed everything (db/overview.py): charge totals per status, due month
and aging bucket (a few hundred rows, whatever the number of charges: added up from
figures kept as charges and payments change, migration 009), and the activity of
payments, notices and imports. The functions below only add those rows up, so the page
can recompute a KPI for another period without asking the database again.

Definitions, the same ones the page states:

- Outstanding: what is still owed on pending, issued, registered and partially paid
  charges, their amounts minus what was already received on them.
- Overdue: issued, registered or partially paid charges due before today (a pending
  charge has no boleto yet, so it cannot be late); their outstanding amount and count.
- Received this month: payments whose paid_at falls in the current calendar month where
  the fund works (TIMEZONE), on any charge.
- Collection rate of a period: over the charges due in that period, canceled ones left
  out, the amount received on them (each capped at its amount) divided by the amount due.
- Aging: the outstanding amount of issued, registered and partially paid charges by days
  past due; those not yet due are their own bucket, shown apart from the late ones.

Every sentence built here (the charts' hover texts) is in the reader's language
(billing.core.i18n): build them per reader, never cache them across readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TypedDict, cast
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine

from billing.core.formatting import brl, count_br, date_br, month_br
from billing.core.i18n import N_, _, ngettext
from billing.core.statuses import OPEN_STATUSES, STATUS_LABELS, STATUSES
from db import overview as overview_db

# English labels, marked for the catalogs and shown with _(): the first bucket is not
# late at all (due today or later), the page shows it apart from the overdue ones.
NOT_YET_DUE = N_("Not yet due")
AGING_BUCKETS = (
    NOT_YET_DUE,
    N_("1-30 days"),
    N_("31-60 days"),
    N_("61-90 days"),
    N_("Over 90 days"),
)
NOTICE_DAYS = 90  # the notices chart shows this many days, today included

_ZERO = Decimal("0.00")


class ChargeTotal(TypedDict):
    """Charges of one (status, due_month, aging_bucket): how many, their amount, and what
    was received on them."""

    status: str
    due_month: date
    aging_bucket: int | None  # an index of AGING_BUCKETS; None: no boleto out, unpaid
    charges: int
    amount: Decimal
    paid: Decimal


class Received(TypedDict):
    payments: int
    amount: Decimal


class Activity(TypedDict):
    received: Received  # this month
    notices: pd.DataFrame  # day, sent, hover
    imports: pd.DataFrame  # day, files, rows, hover


class Kpis(TypedDict):
    charges: int
    outstanding: Decimal
    overdue_amount: Decimal
    overdue_count: int


class CollectionRate(TypedDict):
    charges: int
    due: Decimal
    received: Decimal
    rate: Decimal | None  # None when nothing falls due in the period


# --- reading --------------------------------------------------------------------------


def figures_version(engine: Engine) -> tuple[object, ...]:
    """A value that changes whenever the figures below may have (a payment, an import, a
    charge paid, canceled or issued, a notice sent): the pages key their caches on it, so
    the next view after any change, by anyone, adds up the figures again. Cheap (the
    right edges of four indexes), whatever the number of charges."""
    with engine.connect() as conn:
        return overview_db.figures_version(conn)


def charge_totals(engine: Engine, *, today: date) -> list[ChargeTotal]:
    """Charges per (status, due_month, aging_bucket): count, amount and amount received.

    aging_bucket indexes AGING_BUCKETS for issued and partially paid charges, None for
    the others. Amounts are Decimals; the list is empty when there is no charge.
    """
    with engine.connect() as conn:
        rows = overview_db.charge_totals(conn, today=today)
    return [
        ChargeTotal(
            status=row["status"],
            due_month=row["due_month"],
            aging_bucket=row["aging_bucket"],
            charges=int(row["charges"]),
            amount=Decimal(row["amount"]),
            paid=Decimal(row["paid"]),
        )
        for row in rows
    ]


def activity(
    engine: Engine, *, today: date, timezone: str, notice_days: int = NOTICE_DAYS
) -> Activity:
    """Money received this month, notices sent per day and imports per day.

    Returns {"received": {"payments", "amount"}, "notices": DataFrame(day, sent, hover),
    "imports": DataFrame(day, files, rows, hover)}; days are local dates in `timezone`.
    """
    zone = ZoneInfo(timezone)
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=31)).replace(day=1)
    first_notice_day = today - timedelta(days=notice_days - 1)
    with engine.connect() as conn:
        rows = overview_db.activity(
            conn,
            month_start=datetime.combine(month_start, time(), zone),
            next_month_start=datetime.combine(next_month, time(), zone),
            notices_since=datetime.combine(first_notice_day, time(), zone),
            timezone=timezone,
        )
    received = next(row for row in rows if row["series"] == "received")
    notices = pd.DataFrame(
        [(row["day"], int(row["count"])) for row in rows if row["series"] == "notices"],
        columns=["day", "sent"],
    )
    notices["hover"] = [
        ngettext("{day}: {count} notice sent", "{day}: {count} notices sent", n).format(
            day=date_br(d), count=count_br(n)
        )
        for d, n in notices.itertuples(False)
    ]
    imports = pd.DataFrame(
        [
            (row["day"], int(row["count"]), int(row["total"] or 0))
            for row in rows
            if row["series"] == "imports"
        ],
        columns=["day", "files", "rows"],
    )
    imports["hover"] = [
        _("{day}: {charges} imported from {files}").format(
            day=date_br(d),
            charges=_counted(ngettext("{count} charge", "{count} charges", r), r),
            files=_counted(ngettext("{count} file", "{count} files", f), f),
        )
        for d, f, r in imports[["day", "files", "rows"]].itertuples(False)
    ]
    return Activity(
        received=Received(
            payments=int(received["count"]),
            amount=Decimal(cast(Decimal, received["total"])),  # coalesce(sum, 0): never None
        ),
        notices=notices,
        imports=imports,
    )


# --- KPIs ------------------------------------------------------------------------------


def kpis(totals: Iterable[ChargeTotal]) -> Kpis:
    """Outstanding and overdue amounts, overdue count, and the count of charges."""
    totals = list(totals)
    outstanding = sum(
        (row["amount"] - row["paid"] for row in totals if row["status"] in OPEN_STATUSES),
        _ZERO,
    )
    overdue = [row for row in totals if (row["aging_bucket"] or 0) > 0]
    return Kpis(
        charges=sum(row["charges"] for row in totals),
        outstanding=outstanding,
        overdue_amount=sum((row["amount"] - row["paid"] for row in overdue), _ZERO),
        overdue_count=sum(row["charges"] for row in overdue),
    )


def collection_rate(
    totals: Iterable[ChargeTotal], *, first_month: date, last_month: date
) -> CollectionRate:
    """Received ÷ due over the charges due from `first_month` to `last_month` (inclusive).

    Canceled charges are left out of both. `rate` is a Decimal fraction, None when
    nothing falls due in the period.
    """
    first, last = _month(first_month), _month(last_month)
    rows = [
        row for row in totals if first <= row["due_month"] <= last and row["status"] != "canceled"
    ]
    due = sum((row["amount"] for row in rows), _ZERO)
    received = sum((row["paid"] for row in rows), _ZERO)
    return CollectionRate(
        charges=sum(row["charges"] for row in rows),
        due=due,
        received=received,
        rate=received / due if due else None,
    )


def due_months(totals: Iterable[ChargeTotal]) -> list[date]:
    """The months in which some charge falls due, oldest first."""
    return sorted({row["due_month"] for row in totals})


def default_month(months: list[date], today: date) -> date | None:
    """The month the page opens on: this month if anything is due in it, otherwise the
    latest month before it with charges, otherwise the first month after it."""
    if not months:
        return None
    current = _month(today)
    earlier = [month for month in months if month <= current]
    return earlier[-1] if earlier else months[0]


# --- chart data -------------------------------------------------------------------------


def charges_by_status(totals: Iterable[ChargeTotal]) -> pd.DataFrame:
    """One row per status, in lifecycle order: status, label, charges, amount, hover."""
    counts = dict.fromkeys(STATUSES, 0)
    amounts = dict.fromkeys(STATUSES, _ZERO)
    for row in totals:
        counts[row["status"]] += row["charges"]
        amounts[row["status"]] += row["amount"]
    frame = pd.DataFrame(
        {
            "status": list(STATUSES),
            "label": [STATUS_LABELS[s] for s in STATUSES],
            "charges": [counts[s] for s in STATUSES],
            "amount": [float(amounts[s]) for s in STATUSES],
        }
    )
    frame["hover"] = [
        _("{label}: {charges}, {amount}").format(
            label=_(STATUS_LABELS[s]), charges=_charges(counts[s]), amount=brl(amounts[s])
        )
        for s in STATUSES
    ]
    return frame


def amounts_by_due_month(totals: Iterable[ChargeTotal]) -> pd.DataFrame:
    """Amount due per month and status: due_month, month ("jan/2024"), label, amount, hover."""
    grouped: dict[tuple[date, str], list] = {}
    for row in totals:
        entry = grouped.setdefault((row["due_month"], row["status"]), [0, _ZERO])
        entry[0] += row["charges"]
        entry[1] += row["amount"]
    order = {status: i for i, status in enumerate(STATUSES)}
    keys = sorted(grouped, key=lambda key: (key[0], order[key[1]]))
    frame = pd.DataFrame(
        {
            "due_month": [month for month, _status in keys],
            "month": [month_br(month) for month, _status in keys],
            "status": [status for _month_key, status in keys],
            "label": [STATUS_LABELS[status] for _month_key, status in keys],
            "charges": [grouped[key][0] for key in keys],
            "amount": [float(grouped[key][1]) for key in keys],
        }
    )
    frame["hover"] = [
        _("{month} · {label}: {amount} ({charges})").format(
            month=month_br(month),
            label=_(STATUS_LABELS[status]),
            amount=brl(grouped[(month, status)][1]),
            charges=_charges(grouped[(month, status)][0]),
        )
        for month, status in keys
    ]
    return frame


def aging(totals: Iterable[ChargeTotal]) -> pd.DataFrame:
    """Outstanding on issued, registered and partially paid charges per bucket of days
    past due.

    Always the five buckets, in order, the first NOT_YET_DUE (English labels): bucket,
    charges, outstanding, late (False for the first), hover.
    """
    counts = [0] * len(AGING_BUCKETS)
    outstanding = [_ZERO] * len(AGING_BUCKETS)
    for row in totals:
        bucket = row["aging_bucket"]
        if bucket is not None:
            counts[bucket] += row["charges"]
            outstanding[bucket] += row["amount"] - row["paid"]
    frame = pd.DataFrame(
        {
            "bucket": list(AGING_BUCKETS),
            "charges": counts,
            "outstanding": [float(amount) for amount in outstanding],
            "late": [bucket != NOT_YET_DUE for bucket in AGING_BUCKETS],
        }
    )
    frame["hover"] = [
        _("{bucket}: {amount} ({charges})").format(
            bucket=_(name), amount=brl(amount), charges=_charges(count)
        )
        for name, amount, count in zip(AGING_BUCKETS, outstanding, counts, strict=True)
    ]
    return frame


def _month(day: date) -> date:
    return day.replace(day=1)


def _counted(message: str, n: int) -> str:
    """A message from ngettext with its {count} filled in the pt-BR way (1.234)."""
    return message.format(count=count_br(n))


def _charges(n: int) -> str:
    """ "1 charge", "1.234 charges", in the reader's language."""
    return _counted(ngettext("{count} charge", "{count} charges", n), n)
