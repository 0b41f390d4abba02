"""Aggregates behind the Overview page: one query over charges, one over the activity.

Each returns a few hundred rows at most, whatever the number of charges: the page adds
those up and never sees a charge.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

# Charges grouped by status, due month and aging bucket.
#
# `by_day` is the one pass over charges (parallel, hashed on status and due date, a few
# thousand groups); the outer query folds those groups into months and aging buckets.
#
# `paid` is what was received on the charges of a group, each charge capped at its
# amount (an overpayment does not collect another charge): the whole amount of a 'paid'
# charge, the payments of a 'partially_paid' one (less than its amount, by definition),
# nothing otherwise: 'pending' and 'issued' have no payment, since the status follows
# the payments, and money received on a canceled charge is not collection. Only the
# partially paid charges (a minority, found through charges_status_due_date_idx) look
# their payments up, each through payments_charge_idx: a correlated subquery, so the
# payments table, which grows with every charge ever paid, is never read whole.
#
# aging_bucket is set only where a boleto is out and unpaid (issued, partially_paid):
# 0 not yet due, 1 = 1-30 days late, 2 = 31-60, 3 = 61-90, 4 = over 90.
_CHARGE_TOTALS = text(
    """
    WITH by_day AS (
        SELECT status, due_date, count(*) AS charges, sum(amount) AS amount
        FROM charges
        GROUP BY status, due_date
    ),
    partially_paid AS (
        SELECT c.due_date,
               sum((SELECT sum(p.paid_amount) FROM payments p WHERE p.charge_id = c.id))
                   AS paid
        FROM charges c
        WHERE c.status = 'partially_paid'
        GROUP BY c.due_date
    )
    SELECT
        d.status,
        CAST(date_trunc('month', d.due_date) AS date) AS due_month,
        CASE
            WHEN d.status NOT IN ('issued', 'partially_paid') THEN NULL
            WHEN d.due_date >= :today THEN 0
            WHEN d.due_date >= CAST(:today AS date) - 30 THEN 1
            WHEN d.due_date >= CAST(:today AS date) - 60 THEN 2
            WHEN d.due_date >= CAST(:today AS date) - 90 THEN 3
            ELSE 4
        END AS aging_bucket,
        sum(d.charges) AS charges,
        sum(d.amount) AS amount,
        coalesce(sum(CASE d.status WHEN 'paid' THEN d.amount ELSE pp.paid END), 0) AS paid
    FROM by_day d
    LEFT JOIN partially_paid pp ON d.status = 'partially_paid' AND pp.due_date = d.due_date
    GROUP BY 1, 2, 3
    ORDER BY 2, 1, 3
    """
)

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


def charge_totals(conn: Connection, *, today: date) -> list[dict[str, Any]]:
    """Count, amount and amount received per (status, due_month, aging_bucket)."""
    return [dict(row) for row in conn.execute(_CHARGE_TOTALS, {"today": today}).mappings()]


def activity(
    conn: Connection,
    *,
    month_start: datetime,
    next_month_start: datetime,
    notices_since: datetime,
    timezone: str,
) -> list[dict[str, Any]]:
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
    return [dict(row) for row in rows]
