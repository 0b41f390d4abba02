"""Aggregates behind the Overview page: the charges' figures and the activity.

Each returns a few hundred rows at most, whatever the number of charges: the page adds
those up and never sees a charge. The charges' figures are kept up to date as charges and
payments change (table charge_totals, migration 009) and only added up here; the direct
computation over every charge stays as the reference a check compares them with.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from decimal import Decimal
from typing import TypedDict, cast

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


class ChargeTotalsRow(TypedDict):
    """Charges of one (status, due_month, aging_bucket): sums as the database gives them."""

    status: str
    due_month: date
    aging_bucket: int | None  # 0 not yet due .. 4 over 90 days late; None: no boleto out
    charges: int | Decimal  # a sum of counts
    amount: Decimal
    paid: Decimal


class TotalsDrift(TypedDict):
    """A (status, due_date) key whose kept figures differ from the charges; None where a
    side has no row."""

    status: str
    due_date: date
    kept_charges: int | Decimal | None
    charges: int | None
    kept_amount: Decimal | None
    amount: Decimal | None
    kept_received: Decimal | None
    received: Decimal | None


class ActivityRow(TypedDict):
    """One (series, day) of activity: 'received' (one row, no day), 'notices', 'imports'."""

    series: str
    day: date | None
    count: int
    total: int | Decimal | None  # money received, charges imported; None for notices


# The aging bucket of a (status, due_date) row d, and the months, from :today:
# set only where a boleto is out and unpaid (issued, registered, partially_paid): 0 not yet due,
# 1 = 1-30 days late, 2 = 31-60, 3 = 61-90, 4 = over 90.
_BY_MONTH_AND_BUCKET = """
    SELECT
        d.status,
        CAST(date_trunc('month', d.due_date) AS date) AS due_month,
        CASE
            WHEN d.status NOT IN ('issued', 'registered', 'partially_paid') THEN NULL
            WHEN d.due_date >= :today THEN 0
            WHEN d.due_date >= CAST(:today AS date) - 30 THEN 1
            WHEN d.due_date >= CAST(:today AS date) - 60 THEN 2
            WHEN d.due_date >= CAST(:today AS date) - 90 THEN 3
            ELSE 4
        END AS aging_bucket,
        sum(d.charges) AS charges,
        sum(d.amount) AS amount,
        coalesce(sum(CASE d.status WHEN 'paid' THEN d.amount ELSE d.paid END), 0) AS paid
    FROM by_day AS d
    GROUP BY 1, 2, 3
    ORDER BY 2, 1, 3
"""

# Charges grouped by status, due month and aging bucket, from the kept figures: their
# rows added up per (status, due date) (a few thousand keys, however many charges and
# however many rows of changes since the last compaction), then folded into months and
# buckets. Keys whose charges add up to none are gone (every charge of the key changed
# status). `received` is kept for partially paid charges only; a paid charge counts its
# amount (see _DIRECT_CHARGE_TOTALS for the definition of `paid`).
_CHARGE_TOTALS = text(
    """
    WITH by_day AS (
        SELECT status, due_date, sum(charges) AS charges, sum(amount) AS amount,
               sum(received) AS paid
        FROM charge_totals
        GROUP BY status, due_date
        HAVING sum(charges) <> 0
    )
    """
    + _BY_MONTH_AND_BUCKET
)

# The same figures computed directly from every charge: the reference for the kept ones.
#
# `by_day` is the one pass over charges (parallel, hashed on status and due date, a few
# thousand groups); the outer query folds those groups into months and aging buckets.
#
# `paid` is what was received on the charges of a group, each charge capped at its
# amount (an overpayment does not collect another charge): the whole amount of a 'paid'
# charge, the payments of a 'partially_paid' one (less than its amount, by definition),
# nothing otherwise: 'pending' and 'issued' have no payment, since the status follows
# the payments, and money received on a canceled charge is not collection. Only the
# partially paid charges look their payments up, each through payments_charge_idx.
_DIRECT_BY_DAY = """
    SELECT c.status, c.due_date, count(*) AS charges, sum(c.amount) AS amount,
           sum(CASE WHEN c.status = 'partially_paid' THEN
               (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = c.id)
           END) AS paid
    FROM charges AS c
    GROUP BY c.status, c.due_date
"""
_DIRECT_CHARGE_TOTALS = text("WITH by_day AS (" + _DIRECT_BY_DAY + ")" + _BY_MONTH_AND_BUCKET)

# Keys where the kept figures and the direct computation differ, read in one statement
# (one snapshot, so changes committing meanwhile cannot make them look apart).
_DRIFT = text(
    """
    WITH kept AS (
        SELECT status, due_date, sum(charges) AS charges, sum(amount) AS amount,
               sum(received) AS received
        FROM charge_totals
        GROUP BY status, due_date
        HAVING sum(charges) <> 0 OR sum(amount) <> 0 OR sum(received) <> 0
    ),
    direct AS (
        SELECT status, due_date, charges, amount, coalesce(paid, 0) AS received
        FROM ("""
    + _DIRECT_BY_DAY
    + """) AS d
    )
    SELECT coalesce(k.status, d.status) AS status,
           coalesce(k.due_date, d.due_date) AS due_date,
           k.charges AS kept_charges, d.charges AS charges,
           k.amount AS kept_amount, d.amount AS amount,
           k.received AS kept_received, d.received AS received
    FROM kept AS k
    FULL JOIN direct AS d ON d.status = k.status AND d.due_date = k.due_date
    WHERE (k.charges, k.amount, k.received) IS DISTINCT FROM (d.charges, d.amount, d.received)
    ORDER BY 2, 1
    """
)

_COMPACT = text("SELECT compact_charge_totals()")
_REBUILD = text("SELECT rebuild_charge_totals()")
_ADD_CHARGES_OF = text("SELECT add_charge_totals_of(CAST(:relation AS regclass))")
_RELATION_EXISTS = text("SELECT to_regclass(:relation) IS NOT NULL")
# A table name, optionally schema-qualified, as code writes it: no quoting needed.
_RELATION_NAME = re.compile(r"(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}")

# Activity in the other tables, as one list of (series, day, count, total) rows:
#   'received' one row: payments whose paid_at falls in [month_start, next_month_start);
#   'notices'  e-mails sent per day since `notices_since` (days in the fund's time zone);
#   'imports'  files received per day, with the charges they created.
_ACTIVITY = text(
    """
    SELECT 'received' AS series, NULL AS day, count(*) AS count,
           coalesce(sum(paid_amount), 0) AS total
    FROM payments
    WHERE paid_at >= :month_start AND paid_at < :next_month_start
    UNION ALL
    SELECT 'notices', CAST(sent_at AT TIME ZONE CAST(:tz AS text) AS date), count(*), NULL
    FROM notices
    WHERE status = 'sent' AND sent_at >= :notices_since
    GROUP BY 2
    UNION ALL
    SELECT 'imports', CAST(started_at AT TIME ZONE CAST(:tz AS text) AS date), count(*),
           coalesce(sum(imported), 0)
    FROM imports
    GROUP BY 2
    ORDER BY 1, 2
    """
)


def charge_totals(conn: Connection, *, today: date) -> list[ChargeTotalsRow]:
    """Count, amount and amount received per (status, due_month, aging_bucket), from the
    kept figures: read-only, so it runs on a replica too."""
    rows = conn.execute(_CHARGE_TOTALS, {"today": today}).mappings()
    return cast(list[ChargeTotalsRow], [dict(row) for row in rows])


def direct_charge_totals(conn: Connection, *, today: date) -> list[ChargeTotalsRow]:
    """The same rows as charge_totals computed from every charge: the reference (slow on
    millions of charges; for checks, never for a page)."""
    rows = conn.execute(_DIRECT_CHARGE_TOTALS, {"today": today}).mappings()
    return cast(list[ChargeTotalsRow], [dict(row) for row in rows])


def charge_totals_drift(conn: Connection) -> list[TotalsDrift]:
    """The (status, due_date) keys whose kept figures differ from a direct computation,
    with both sides (kept_charges, charges, kept_amount, amount, kept_received,
    received; None where a side has no row); empty when they agree. Reads every charge."""
    return cast(list[TotalsDrift], [dict(row) for row in conn.execute(_DRIFT).mappings()])


def compact_charge_totals(conn: Connection) -> int | None:
    """Fold the figures' rows of changes into one per key, in the caller's transaction
    (on the primary). Returns how many rows were folded, or None when another compaction
    or a rebuild is under way (it does the same)."""
    return conn.execute(_COMPACT).scalar_one()


def rebuild_charge_totals(conn: Connection) -> int:
    """Replace the figures by a direct computation over every charge (a repair after
    drift); returns the number of (status, due_date) keys. Reads every charge."""
    return conn.execute(_REBUILD).scalar_one()


def keep_charge_totals(engine: Engine) -> dict[str, int | None]:
    """The daily upkeep of the kept figures (the worker's cycle), on the primary.

    Folds the day's rows of changes into one per key, then checks the figures against a
    direct computation over every charge (seconds on millions of charges, once a day).
    Figures found apart are a bug: logged as an error with the keys, and rebuilt from
    the charges so the Overview is right again. Returns {"folded", "drifted"}.
    """
    with engine.begin() as conn:
        folded = compact_charge_totals(conn)
    with engine.begin() as conn:
        drift = charge_totals_drift(conn)
        if drift:
            log.error(
                "the Overview's figures differed from the charges on %d keys and were "
                "rebuilt; the first: %s",
                len(drift),
                drift[:5],
            )
            rebuild_charge_totals(conn)
    return {"folded": folded, "drifted": len(drift)}


def add_attached_charges(conn: Connection, relation: str) -> None:
    """Add the charges of `relation` to the figures, in the caller's transaction.

    For rows that enter `charges` without an INSERT on it (a table attached as a
    partition fires no trigger): call it in the transaction that attaches them, once.
    `relation` comes from code (a table name, optionally schema-qualified); it must be
    a table of the owner of `charges` other than `charges` itself.
    """
    if not _RELATION_NAME.fullmatch(relation):
        raise ValueError(f"not a table name: {relation!r}")
    if not conn.execute(_RELATION_EXISTS, {"relation": relation}).scalar_one():
        raise ValueError(f"no table named {relation!r}")
    conn.execute(_ADD_CHARGES_OF, {"relation": relation})


def activity(
    conn: Connection,
    *,
    month_start: datetime,
    next_month_start: datetime,
    notices_since: datetime,
    timezone: str,
) -> list[ActivityRow]:
    """Rows of (series, day, count, total) for 'received', 'notices' and 'imports'."""
    rows = conn.execute(
        _ACTIVITY,
        {
            "month_start": month_start,
            "next_month_start": next_month_start,
            "notices_since": notices_since,
            "tz": timezone,
        },
    ).mappings()
    return cast(list[ActivityRow], [dict(row) for row in rows])


# What the Overview shows changes only when one of these moves: a row of changes appended
# to the kept figures (any charge inserted, paid, canceled, issued, folded by a
# compaction), a payment (also on a paid charge: "received this month"), an import, a
# notice sent. Each is the right edge of an index: a few page reads at 5.5M charges.
_FIGURES_VERSION = text(
    """
    SELECT (SELECT max(id) FROM charge_totals), (SELECT max(id) FROM payments),
           (SELECT max(id) FROM imports),
           (SELECT max(sent_at) FROM notices WHERE status = 'sent')
    """
)


def figures_version(conn: Connection) -> tuple[object, ...]:
    """A value that changes whenever the Overview's figures may have: a cache key."""
    return tuple(conn.execute(_FIGURES_VERSION).one())
