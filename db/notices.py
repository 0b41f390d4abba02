"""Queries on e-mail notices: planning (set-based), claiming, recording outcomes, reports.

Claiming and recording run on the sender's own connection, which holds the advisory lock
(NOTICE_CLAIM_LOCK_CLASS, token) for as long as the sender lives. A notice in 'sending'
names its sender's token in `claimed_by`; when that lock is free, the sender is gone
(its session ended with its process), and `requeue_abandoned` puts the notice back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple, TypedDict, cast

from sqlalchemy import Connection, Engine, text

NOTICE_CLAIM_LOCK_CLASS = 7_301_003  # pg_advisory_lock(class, token): a live sender's claim

UNPAID = ("issued", "registered", "partially_paid")


class ClaimedNotice(TypedDict):
    """A notice claimed by a sender, with what its e-mail needs from the charge."""

    id: int
    charge_id: int
    kind: str
    attempts: int
    message_id: str
    charge_status: str
    amount: Decimal
    due_date: date
    debt_id: str
    payer_name: str
    payer_email: str
    digitable_line: str | None  # None: the charge has no boleto (the notice is skipped)
    pix_code: str | None


class FailedNotice(TypedDict):
    """A notice that failed for good, with what the operator needs to act on it."""

    id: int
    kind: str
    attempts: int
    last_error: str | None
    updated_at: datetime
    debt_id: str
    payer_name: str
    payer_email: str
    due_date: date
    amount: Decimal


class NoticeOutcome(NamedTuple):
    """What became of one claimed notice (`outcome` as `record_outcomes` reads it)."""

    notice_id: int
    outcome: str  # sent | failed | retry | skipped | release
    error: str | None


# One statement per kind: INSERT ... SELECT ... ON CONFLICT DO NOTHING over all charges.
# NOT EXISTS skips the pairs already planned without going through the conflict path;
# ON CONFLICT still covers two planners racing. Message-ID is fixed here, once.
_PLAN_HEAD = """
INSERT INTO notices (charge_id, kind, message_id)
SELECT c.id, CAST(:kind AS text),
       '<notice-' || c.id || '-' || CAST(:kind AS text) || '@' || CAST(:domain AS text) || '>'
FROM charges AS c
WHERE NOT EXISTS (
        SELECT 1 FROM notices AS n WHERE n.charge_id = c.id AND n.kind = CAST(:kind AS text)
    )
"""
_PLAN_TAIL = """
ORDER BY c.id
ON CONFLICT (charge_id, kind) DO NOTHING
"""
# A notice that would land on the day the boleto was issued (or later) is left to the
# 'issued' e-mail, which says the same: one e-mail per charge per day is enough.
_ISSUED_BEFORE = """
  AND (NOT CAST(:on_issue AS boolean) OR c.issued_at IS NULL
       OR CAST(c.issued_at AT TIME ZONE CAST(:tz AS text) AS date) < {day})
"""
_PLAN_WHERE = {
    # The boleto exists and is not due yet (an overdue one gets the overdue notice).
    "issued": """
  AND c.status IN ('issued', 'registered') AND c.due_date >= CAST(:today AS date)
""",
    # Due within the next N days (a missed day still gets its reminder the day after).
    "reminder": """
  AND c.status IN ('issued', 'registered', 'partially_paid')
  AND c.due_date > CAST(:today AS date)
  AND c.due_date <= CAST(:today AS date) + CAST(:days AS integer)
"""
    + _ISSUED_BEFORE.format(day="c.due_date - CAST(:days AS integer)"),
    "due": """
  AND c.status IN ('issued', 'registered', 'partially_paid')
  AND c.due_date = CAST(:today AS date)
"""
    + _ISSUED_BEFORE.format(day="c.due_date"),
    # Still unpaid N days (or more) after the due date.
    "overdue": """
  AND c.status IN ('issued', 'registered', 'partially_paid')
  AND c.due_date <= CAST(:today AS date) - CAST(:days AS integer)
""",
}


# NOTICE_REQUIRES_REGISTRATION: only boletos the bank confirmed (a retorno's 02) are sent.
_REGISTERED_ONLY = """
  AND (NOT CAST(:requires_registration AS boolean) OR c.registered_at IS NOT NULL)
"""


def plan_kind(
    conn: Connection,
    *,
    kind: str,
    today: date,
    days: int,
    domain: str,
    on_issue: bool,
    timezone: str,
    requires_registration: bool = False,
) -> int:
    """Queue the notices of one kind due on `today`; return how many are new."""
    sql = _PLAN_HEAD + _PLAN_WHERE[kind] + _REGISTERED_ONLY + _PLAN_TAIL
    return conn.execute(
        text(sql),
        {
            "kind": kind,
            "today": today,
            "days": days,
            "domain": domain,
            "on_issue": on_issue,
            "tz": timezone,
            "requires_registration": requires_registration,
        },
    ).rowcount


def new_claim_token(conn: Connection) -> int:
    """A token no live sender uses, and its lock taken on this session."""
    token = conn.execute(text("SELECT nextval('notice_claim_tokens')")).scalar_one()
    conn.execute(
        text("SELECT pg_advisory_lock(:class, :token)"),
        {"class": NOTICE_CLAIM_LOCK_CLASS, "token": token},
    )
    return int(token)


def drop_claim_token(conn: Connection, token: int) -> None:
    conn.execute(
        text("SELECT pg_advisory_unlock(:class, :token)"),
        {"class": NOTICE_CLAIM_LOCK_CLASS, "token": token},
    )


def open_sender(conn: Connection) -> int:
    """Make this session a sender's: its claim token, and commits that do not wait for
    the disk. Expects an AUTOCOMMIT connection: each statement commits on its own.

    Without the wait, only a crash of PostgreSQL itself (not of the sender) can lose
    the last few hundred milliseconds of records, which makes those messages go again
    with the same Message-ID, like the group in flight when a sender is killed. Waiting
    for the disk after every group costs more than the e-mails on a local relay.
    """
    conn.execute(text("SET synchronous_commit = off"))
    return new_claim_token(conn)


def close_sender(conn: Connection, token: int) -> None:
    """Put back what the sender did not send, and leave the session as it was."""
    release_claimed(conn, token=token)
    drop_claim_token(conn, token)
    conn.execute(text("RESET synchronous_commit"))


_REQUEUE_ABANDONED = """
WITH gone AS MATERIALIZED (
    SELECT token FROM (
        SELECT DISTINCT claimed_by AS token FROM notices
        WHERE status = 'sending' AND claimed_by <> :own
    ) AS claimed
    WHERE pg_try_advisory_xact_lock(:class, token)
)
UPDATE notices SET status = 'queued', claimed_by = NULL
WHERE status = 'sending' AND claimed_by IN (SELECT token FROM gone)
"""


def requeue_abandoned(conn: Connection, *, own_token: int = 0) -> int:
    """Put back the notices of senders that died while sending them.

    A sender's lock is free only once its session has ended, so a slow sender never
    loses its notices, however long it takes; a dead one loses them at once.
    """
    return conn.execute(
        text(_REQUEUE_ABANDONED), {"own": own_token, "class": NOTICE_CLAIM_LOCK_CLASS}
    ).rowcount


_CLAIM = """
WITH picked AS (
    SELECT id FROM notices
    WHERE status = 'queued' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notices AS n SET status = 'sending', claimed_by = :token
    FROM picked
    WHERE n.id = picked.id
    RETURNING n.id, n.charge_id, n.kind, n.attempts, n.message_id
)
SELECT cl.id, cl.charge_id, cl.kind, cl.attempts, cl.message_id,
       c.status AS charge_status, c.amount, c.due_date, c.debt_id,
       c.payer_name, c.payer_email, c.digitable_line, c.pix_code
FROM claimed AS cl
JOIN charges AS c ON c.id = cl.charge_id
ORDER BY cl.id
"""


def claim_batch(conn: Connection, *, token: int, limit: int) -> list[ClaimedNotice]:
    """Take up to `limit` due notices for this sender; other senders skip them."""
    requeue_abandoned(conn, own_token=token)
    rows = conn.execute(text(_CLAIM), {"token": token, "limit": limit}).mappings()
    return [cast(ClaimedNotice, dict(row)) for row in rows]


# outcome: sent | failed (permanent) | retry (transient: counts an attempt) | skipped |
# release (never tried: back to the queue without counting an attempt).
_RECORD = """
UPDATE notices AS n SET
    status = CASE
        WHEN r.outcome = 'retry' AND n.attempts + 1 >= :max_attempts THEN 'failed'
        WHEN r.outcome IN ('retry', 'release') THEN 'queued'
        ELSE r.outcome
    END,
    attempts = n.attempts + CASE WHEN r.outcome IN ('skipped', 'release') THEN 0 ELSE 1 END,
    last_error = CASE
        WHEN r.outcome = 'sent' THEN n.last_error
        WHEN r.outcome = 'retry' AND n.attempts + 1 >= :max_attempts
            THEN r.error || ' (gave up after ' || (n.attempts + 1) || ' attempts)'
        ELSE r.error
    END,
    sent_at = CASE WHEN r.outcome = 'sent' THEN now() END,
    next_attempt_at = CASE
        WHEN r.outcome = 'retry' THEN now() + make_interval(
            secs => LEAST(:retry_base * power(2, n.attempts), :retry_max))
        WHEN r.outcome = 'release' THEN now() + make_interval(secs => :retry_base)
        ELSE n.next_attempt_at
    END,
    claimed_by = NULL
FROM unnest(CAST(:ids AS bigint[]), CAST(:outcomes AS text[]), CAST(:errors AS text[]))
    AS r (id, outcome, error)
WHERE n.id = r.id AND n.status = 'sending' AND n.claimed_by = :token
RETURNING n.status, r.outcome
"""


def record_outcomes(
    conn: Connection,
    *,
    token: int,
    outcomes: Sequence[NoticeOutcome],
    max_attempts: int,
    retry_base_seconds: float,
    retry_max_seconds: float,
) -> dict[str, int]:
    """Store what became of each (notice id, outcome, error).

    Returns counts of sent, failed, skipped, retrying (queued again after a transient
    failure) and released (queued again untried). Rows this sender no longer owns are
    left alone and not counted.
    """
    counts = dict.fromkeys(("sent", "failed", "skipped", "retrying", "released"), 0)
    if not outcomes:
        return counts
    ids, kinds, errors = zip(*outcomes, strict=True)
    rows = conn.execute(
        text(_RECORD),
        {
            "ids": list(ids),
            "outcomes": list(kinds),
            "errors": list(errors),
            "token": token,
            "max_attempts": max_attempts,
            "retry_base": float(retry_base_seconds),
            "retry_max": float(retry_max_seconds),
        },
    )
    for status, outcome in rows:
        if status == "queued":
            counts["released" if outcome == "release" else "retrying"] += 1
        else:
            counts[status] += 1
    return counts


def release_claimed(conn: Connection, *, token: int) -> int:
    """Put back, untouched, what this sender claimed and did not send."""
    return conn.execute(
        text(
            "UPDATE notices SET status = 'queued', claimed_by = NULL "
            "WHERE status = 'sending' AND claimed_by = :token"
        ),
        {"token": token},
    ).rowcount


# The start of `last_error` on a notice put off because the mail server could not be
# reached at all: no attempt counted, the Notifications page counts them apart.
WAITING_FOR_MAIL_SERVER = "Waiting for the mail server: "

_WAIT_FOR_MAIL_SERVER = """
UPDATE notices SET status = 'queued', claimed_by = NULL,
    last_error = :error,
    next_attempt_at = now() + make_interval(secs => :seconds)
WHERE (status = 'sending' AND claimed_by = :token)
   OR id IN (
        SELECT id FROM notices
        WHERE status = 'queued' AND next_attempt_at <= now()
        FOR UPDATE SKIP LOCKED
   )
"""


def wait_for_mail_server(conn: Connection, *, token: int, reason: str, seconds: float) -> int:
    """Put off, for `seconds`, what this sender holds and every notice due now: the mail
    server cannot be reached, so trying them one by one would only fail each. No attempt
    is counted. Returns how many now wait."""
    return conn.execute(
        text(_WAIT_FOR_MAIL_SERVER),
        {
            "token": token,
            "error": (WAITING_FOR_MAIL_SERVER + reason)[:2000],
            "seconds": float(seconds),
        },
    ).rowcount


def waiting_for_mail_server(engine: Engine) -> int:
    """How many queued notices were put off because the mail server could not be reached."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM notices "
                "WHERE status = 'queued' AND starts_with(last_error, :prefix)"
            ),
            {"prefix": WAITING_FOR_MAIL_SERVER},
        ).scalar_one()


def has_due_notices(engine: Engine) -> bool:
    """Whether a sender would find work: notices due now, or left by a dead sender."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                """
                SELECT EXISTS (
                    SELECT 1 FROM notices
                    WHERE status = 'queued' AND next_attempt_at <= now()
                ) OR EXISTS (
                    SELECT 1 FROM notices AS n
                    WHERE n.status = 'sending' AND NOT EXISTS (
                        SELECT 1 FROM pg_locks AS l
                        WHERE l.locktype = 'advisory' AND l.granted
                          AND l.classid = CAST(:class AS oid)
                          AND l.objid = CAST(n.claimed_by AS oid)
                          AND l.objsubid = 2
                    )
                )
                """
            ),
            {"class": NOTICE_CLAIM_LOCK_CLASS},
        ).scalar_one()


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status"))
        return {status: count for status, count in rows}


# The queue now, in parts that add up to queued + sending (partial indexes: as cheap as
# the queue is short). A notice put off for the mail server stays in `waiting` until it
# goes out, whatever its next attempt.
_QUEUE_PARTS = text(
    """
    SELECT (SELECT count(*) FROM notices WHERE status = 'sending') AS sending, q.*
    FROM (
        SELECT count(*) FILTER (WHERE mail_server) AS waiting,
               count(*) FILTER (WHERE NOT mail_server AND next_attempt_at <= now()) AS due,
               count(*) FILTER (WHERE NOT mail_server AND next_attempt_at > now()) AS later
        FROM (
            SELECT next_attempt_at,
                   coalesce(starts_with(last_error, :prefix), false) AS mail_server
            FROM notices WHERE status = 'queued'
        ) AS queued
    ) AS q
    """
)


def queue_parts(engine: Engine) -> dict[str, int]:
    """The queue now: due (to send now), sending (claimed by a sender), later (to be
    tried again after a failure or a release) and waiting (for the mail server)."""
    with engine.connect() as conn:
        row = conn.execute(_QUEUE_PARTS, {"prefix": WAITING_FOR_MAIL_SERVER}).mappings().one()
        return {key: int(row[key]) for key in ("due", "sending", "later", "waiting")}


# Changes when the counts of the Notifications page may have: a notice planned, one sent,
# one failed, the queue growing or shrinking (each an index's edge or a partial index).
_NOTICES_VERSION = text(
    """
    SELECT (SELECT max(id) FROM notices),
           (SELECT max(sent_at) FROM notices WHERE status = 'sent'),
           (SELECT max(updated_at) FROM notices WHERE status = 'failed'),
           (SELECT count(*) FROM notices WHERE status = 'queued'),
           (SELECT count(*) FROM notices WHERE status = 'sending')
    """
)


def notices_version(engine: Engine) -> tuple[object, ...]:
    """A cache key for the notices' counts: it moves whenever they may have."""
    with engine.connect() as conn:
        return tuple(conn.execute(_NOTICES_VERSION).one())


def failed_notices(engine: Engine, *, limit: int = 500) -> list[FailedNotice]:
    """The failed notices, newest first, with what the operator needs to act on them."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT n.id, n.kind, n.attempts, n.last_error, n.updated_at,
                       c.debt_id, c.payer_name, c.payer_email, c.due_date, c.amount
                FROM notices AS n
                JOIN charges AS c ON c.id = n.charge_id
                WHERE n.status = 'failed'
                ORDER BY n.updated_at DESC, n.id DESC
                LIMIT :limit
                """
            ),
            {"limit": limit},
        ).mappings()
        return [cast(FailedNotice, dict(row)) for row in rows]


def requeue_failed(conn: Connection) -> int:
    """Give every failed notice a fresh set of attempts, starting now."""
    return conn.execute(
        text(
            "UPDATE notices SET status = 'queued', attempts = 0, next_attempt_at = now() "
            "WHERE status = 'failed'"
        )
    ).rowcount


def requeue_notice(conn: Connection, *, charge_id: int, kind: str) -> bool:
    """Queue one finished notice again (an operator's resend); False if none to resend.

    The resent message gets its own Message-ID (the pair's, tagged with the time), so
    a mail client that already holds the first one does not drop it as a duplicate.
    """
    return bool(
        conn.execute(
            text(
                """
                UPDATE notices
                SET status = 'queued', attempts = 0, next_attempt_at = now(),
                    last_error = NULL, sent_at = NULL,
                    message_id = regexp_replace(message_id, '(\\.resend[0-9]+)?@',
                        '.resend' || floor(extract(epoch FROM now()))::bigint || '@')
                WHERE charge_id = :charge_id AND kind = :kind
                  AND status IN ('sent', 'failed', 'skipped')
                """
            ),
            {"charge_id": charge_id, "kind": kind},
        ).rowcount
    )
