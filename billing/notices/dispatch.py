"""One notice cycle: issue pending boletos, queue the notices due today, send them.

Sending is safe to run in several processes at once and to kill at any moment:

* A sender claims a batch with ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
  LOCKED LIMIT n)``, so two senders never take the same notice.
* It records what happened after every small group (GROUP_SIZE messages or
  GROUP_SECONDS), in one UPDATE. Killed mid-group, at most that group's messages go
  out again, and with the same Message-ID (fixed when the notice was planned), so mail
  clients show them once.
* A claimed notice names its sender's token, whose advisory lock the sender holds on its
  database session. The session ends with the process, so the next sender to claim
  finds that lock free and puts the dead sender's notices back in the queue at once. No
  time-out is involved: a slow but live sender (a slow server, a long rate limit) keeps
  its notices, and nobody waits minutes for a dead one's to come back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.boletos.issuing import boleto_pdf_for_charge, issue_boletos
from billing.core.settings import Settings, get_settings
from billing.notices.mailer import (
    DeliveryError,
    MailServerUnavailable,
    NoticeMail,
    SmtpConnection,
    envelope_sender,
    rate_limiter,
    render_notice,
)
from billing.notices.planning import plan_notices, today_in
from db import notices as notices_db
from db.notices import ClaimedNotice, NoticeOutcome

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # notices claimed at once by one sender
# A group is recorded after GROUP_SIZE messages or GROUP_SECONDS, whichever comes first:
# at most that much goes out again after a kill, however fast or slow the server.
GROUP_SIZE = 50
GROUP_SECONDS = 0.5
RETRY_BASE_SECONDS = 120.0  # first wait after a transient failure; doubles each time
RETRY_MAX_SECONDS = 6 * 3600.0

MAIL_SERVER_WAIT_MAX_SECONDS = 15 * 60.0  # the longest wait for a mail server that is down

COUNT_KEYS = ("sent", "failed", "skipped", "retrying", "released")


@dataclass
class SendCounts:
    """What a sender did: sent, failed for good, skipped, queued again to retry later."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retrying: int = 0
    released: int = 0
    waiting: int = 0  # put off: the mail server could not be reached

    def add(self, counts: dict[str, int]) -> None:
        for key in COUNT_KEYS:
            setattr(self, key, getattr(self, key) + counts.get(key, 0))

    @property
    def handled(self) -> int:
        """Notices taken off the queue's "due now" so far: sent, failed, skipped, put
        back to retry later or released."""
        return sum(getattr(self, key) for key in COUNT_KEYS)


@dataclass(frozen=True)
class CycleProgress:
    """Where a cycle is, for a screen to show while it runs: `stage` is "issuing" (the
    pending boletos) or "sending"; while sending, `handled` of the `due` notices that
    were due when sending began (another sender may take some: `handled` can stay below)."""

    stage: str
    handled: int = 0
    due: int = 0


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did, as `dispatch --once --json` and the page report it."""

    issued: int
    queued: int
    sent: int
    failed: int
    retrying: int
    skipped: int
    seconds: float
    queued_by_kind: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    waiting: int = 0  # notices put off because the mail server could not be reached

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def issue_and_plan(
    engine: Engine, *, today: date, settings: Settings | None = None
) -> tuple[int, dict[str, int]]:
    """Issue every pending boleto, then queue the notices due on `today`."""
    settings = settings or get_settings()
    issued = issue_boletos(engine, settings=settings)
    planned = plan_notices(engine, today=today, settings=settings)
    log.info("cycle for %s: %d boletos issued, notices queued %s", today, issued, planned)
    return issued, planned


def run_cycle(
    engine: Engine,
    *,
    actor: Actor,
    settings: Settings | None = None,
    today: date | None = None,
    progress: Callable[[CycleProgress], None] | None = None,
) -> CycleResult:
    """Issue, plan and send now, in this process (Send now, `python -m billing dispatch
    --once`); audited with its counts. `progress`, if given, hears where the cycle is:
    once before issuing, then after every group of notices recorded.

    A mail server that cannot be reached stops the sending, not the cycle: the result
    carries the reason in `error` and the notices stay queued for the next cycle.
    """
    require(actor, Permission.SEND_NOTICES)
    settings = settings or get_settings()
    started = time.monotonic()
    today = today or today_in(settings)
    if progress:
        progress(CycleProgress("issuing"))
    issued, planned = issue_and_plan(engine, today=today, settings=settings)
    error = None
    counts = SendCounts()
    try:
        send_due_notices(
            engine,
            settings=settings,
            today=today,
            counts=counts,
            progress=_sending_progress(engine, progress),
        )
    except MailServerUnavailable as exc:
        error = exc.message
    result = CycleResult(
        issued=issued,
        queued=sum(planned.values()),
        sent=counts.sent,
        failed=counts.failed,
        retrying=counts.retrying,
        skipped=counts.skipped,
        seconds=round(time.monotonic() - started, 3),
        queued_by_kind=planned,
        error=error,
        waiting=counts.waiting,
    )
    audit.record_now(engine, actor=actor, action=audit.Action.SEND_NOW, details=result.as_dict())
    return result


def _sending_progress(
    engine: Engine, progress: Callable[[CycleProgress], None] | None
) -> Callable[[SendCounts], None] | None:
    """Counts so far told as a cycle's progress, over the notices due as sending begins."""
    if progress is None:
        return None
    due = notices_db.queue_parts(engine)["due"]
    progress(CycleProgress("sending", 0, due))
    return lambda counts: progress(CycleProgress("sending", counts.handled, due))


def _skip_reason(row: ClaimedNotice, today: date) -> str | None:
    """Why a claimed notice must not go out any more, or None."""
    status, kind = row["charge_status"], row["kind"]
    if status in ("paid", "canceled"):
        return f"Not sent: the charge was {status.replace('_', ' ')} before the notice went out."
    if status not in notices_db.UNPAID or (
        kind == "issued" and status not in ("issued", "registered")
    ):
        return f"Not sent: the charge is {status.replace('_', ' ')}."
    if not row["digitable_line"]:
        return "Not sent: the charge has no boleto."
    if kind == "reminder" and row["due_date"] <= today:
        return "Not sent: the due date came before the reminder could go out."
    if kind == "due" and row["due_date"] < today:
        return "Not sent: the due date passed before the notice could go out."
    return None


def _mail_of(row: ClaimedNotice) -> NoticeMail:
    """The e-mail of a claimed notice that `_skip_reason` lets through (it has a boleto)."""
    digitable_line = row["digitable_line"]
    assert digitable_line is not None, "a notice without a boleto is skipped, never sent"
    return NoticeMail(
        kind=row["kind"],
        charge_id=row["charge_id"],
        message_id=row["message_id"],
        to_name=row["payer_name"],
        to_address=row["payer_email"].strip(),
        amount=row["amount"],
        due_date=row["due_date"],
        debt_id=row["debt_id"],
        digitable_line=digitable_line,
        pix_code=row["pix_code"],
    )


def send_due_notices(
    engine: Engine,
    *,
    settings: Settings | None = None,
    today: date | None = None,
    batch_size: int = BATCH_SIZE,
    group_size: int = GROUP_SIZE,
    stop: threading.Event | None = None,
    retry_base_seconds: float = RETRY_BASE_SECONDS,
    retry_max_seconds: float = RETRY_MAX_SECONDS,
    counts: SendCounts | None = None,
    mail_server_wait: float | None = None,
    progress: Callable[[SendCounts], None] | None = None,
) -> SendCounts:
    """Send every notice due now over one SMTP connection, until none is left or `stop`;
    `progress`, if given, is called with the counts so far after each group recorded.

    Raises MailServerUnavailable when the server cannot be reached at all: then every
    notice due now waits `mail_server_wait` seconds (MAIL_SERVER_RETRY_SECONDS unless
    given), queued, without losing an attempt, and is counted as waiting for the mail
    server (`counts.waiting`); none goes twice.
    """
    settings = settings or get_settings()
    counts = counts if counts is not None else SendCounts()
    sender = envelope_sender(settings)
    limiter = rate_limiter(settings.mail_rate_per_second)
    pdf_for = _boleto_pdfs(engine, settings)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # one round trip a statement
        token = notices_db.open_sender(conn)
        try:
            with SmtpConnection(settings) as smtp:
                pipeline = _Pipeline(
                    smtp=smtp,
                    sender=sender,
                    settings=settings,
                    pdf_for=pdf_for,
                    limiter_wait=limiter.wait,
                    group_size=group_size,
                    record=_outcome_recorder(
                        conn,
                        token=token,
                        counts=counts,
                        max_attempts=max(settings.mail_max_attempts, 1),
                        retry_base_seconds=retry_base_seconds,
                        retry_max_seconds=retry_max_seconds,
                        progress=progress,
                    ),
                )
                with _outcomes_kept_on_error(pipeline):
                    _send_batches(
                        conn,
                        pipeline,
                        token=token,
                        settings=settings,
                        counts=counts,
                        batch_size=batch_size,
                        today=today,
                        stop=stop,
                        mail_server_wait=mail_server_wait,
                    )
                    pipeline.finish()
        finally:
            _let_go(conn, token)
    log.info("sender %d: %s", token, counts)
    return counts


def _boleto_pdfs(engine: Engine, settings: Settings) -> Callable[[int], bytes] | None:
    """The boleto PDF of a charge, to attach (MAIL_ATTACH_PDF); None when not attached."""
    if not settings.mail_attach_pdf:
        return None

    def pdf_for(charge_id: int) -> bytes:
        return boleto_pdf_for_charge(engine, charge_id, settings=settings)

    return pdf_for


def _outcome_recorder(
    conn: Connection,
    *,
    token: int,
    counts: SendCounts,
    max_attempts: int,
    retry_base_seconds: float,
    retry_max_seconds: float,
    progress: Callable[[SendCounts], None] | None = None,
) -> Callable[[list[NoticeOutcome]], None]:
    """Writes a group of outcomes on the sender's connection, adds them to `counts` and
    tells `progress`."""

    def record(outcomes: list[NoticeOutcome]) -> None:
        counts.add(
            notices_db.record_outcomes(
                conn,
                token=token,
                outcomes=outcomes,
                max_attempts=max_attempts,
                retry_base_seconds=retry_base_seconds,
                retry_max_seconds=retry_max_seconds,
            )
        )
        if progress:
            progress(counts)

    return record


def _send_batches(
    conn: Connection,
    pipeline: _Pipeline,
    *,
    token: int,
    settings: Settings,
    counts: SendCounts,
    batch_size: int,
    today: date | None,
    stop: threading.Event | None,
    mail_server_wait: float | None,
) -> None:
    """Claim a batch and send it, again and again, until none is left or `stop`.

    When the mail server cannot be reached, what went before is recorded and the notices
    due now are put off (`_put_off_for_mail_server`) before MailServerUnavailable goes on.
    """
    while not _stopped(stop):
        # Claimed while the batch's last message is still with the server.
        rows = notices_db.claim_batch(conn, token=token, limit=batch_size)
        if not rows:
            return
        try:
            _send_batch(pipeline, rows, today=today or today_in(settings), stop=stop)
        except MailServerUnavailable as exc:
            counts.waiting += _put_off_for_mail_server(
                conn,
                pipeline,
                token=token,
                reason=exc.message,
                seconds=_server_wait(mail_server_wait, settings),
            )
            raise


def _send_batch(
    pipeline: _Pipeline,
    rows: list[ClaimedNotice],
    *,
    today: date,
    stop: threading.Event | None,
) -> None:
    """Send a claimed batch in order; on `stop`, the rest is put back by _let_go."""
    for row in rows:
        if _stopped(stop):
            return
        pipeline.send(row, today=today)


def _put_off_for_mail_server(
    conn: Connection, pipeline: _Pipeline, *, token: int, reason: str, seconds: float
) -> int:
    """Record what was sent before the outage, then put off every notice due now by
    `seconds`; return how many now wait for the mail server."""
    pipeline.finish()
    return notices_db.wait_for_mail_server(conn, token=token, reason=reason, seconds=seconds)


@contextmanager
def _outcomes_kept_on_error(pipeline: _Pipeline) -> Iterator[None]:
    """On an error, record the outcomes known so far, then let the error go on (a mail
    server out of reach has recorded them already)."""
    try:
        yield
    except MailServerUnavailable:
        raise
    except BaseException:
        pipeline.finish_quietly()
        raise


def _server_wait(wait: float | None, settings: Settings) -> float:
    return max(wait if wait is not None else float(settings.mail_server_retry_seconds), 0.0)


class MailServerOutage:
    """How long notices wait while the mail server cannot be reached: as long as the
    outage has lasted so far, at least MAIL_SERVER_RETRY_SECONDS and at most 15 minutes,
    so the tries space out (doubling) however many senders meet the outage at once.
    One per process; `over()` once a sender got through."""

    def __init__(self, first_seconds: float, most_seconds: float = MAIL_SERVER_WAIT_MAX_SECONDS):
        self.first_seconds = first_seconds
        self.most_seconds = most_seconds
        self._lock = threading.Lock()
        self._since: float | None = None

    def next_wait(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self._since is None:
                self._since = now
            lasted = now - self._since
        return min(self.most_seconds, max(self.first_seconds, lasted))

    def over(self) -> None:
        with self._lock:
            self._since = None


def mail_server_waiting(engine: Engine) -> int:
    """How many notices wait for the mail server to answer again (the Notifications page)."""
    return notices_db.waiting_for_mail_server(engine)


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


class _Pipeline:
    """Sends claimed notices one after the other, never waiting idle for the server.

    While the server takes in a message (the slow step of the exchange), the sender
    renders the next one, and every GROUP_SIZE messages or GROUP_SECONDS writes the
    outcomes so far to the database. At any moment, at most GROUP_SIZE messages have
    been sent without their outcome recorded: a kill sends at most those again.
    """

    def __init__(
        self,
        *,
        smtp: SmtpConnection,
        sender: str,
        settings: Settings,
        pdf_for: Callable[[int], bytes] | None,
        limiter_wait: Callable[[], None],
        group_size: int,
        record: Callable[[list[NoticeOutcome]], None],
    ) -> None:
        self.smtp = smtp
        self.sender = sender
        self.settings = settings
        self.pdf_for = pdf_for
        self.limiter_wait = limiter_wait
        self.group_size = max(group_size, 1)
        self.record = record
        self.outcomes: list[NoticeOutcome] = []  # known, not yet recorded
        self.in_flight: int | None = None  # the notice whose verdict is still unread
        self.group_started = time.monotonic()

    def send(self, row: ClaimedNotice, *, today: date) -> None:
        """Skip the notice or start it, then record the group once it is full or old."""
        reason = _skip_reason(row, today)
        if reason:
            self.outcomes.append(NoticeOutcome(row["id"], "skipped", reason))
        else:
            self._start(row)
        if self._group_is_due():
            self._record()

    def _start(self, row: ClaimedNotice) -> None:
        """Render the notice, read the previous verdict, and hand this one to the server."""
        mail = _mail_of(row)
        pdf = self.pdf_for(mail.charge_id) if self.pdf_for else None
        message = render_notice(mail, settings=self.settings, pdf=pdf)
        self._read_verdict()
        self.limiter_wait()
        try:
            self.smtp.start(sender=self.sender, recipient=mail.to_address, message=message)
        except DeliveryError as exc:
            self.outcomes.append(NoticeOutcome(row["id"], _failure(exc), exc.reason))
        else:
            self.in_flight = row["id"]

    def _group_is_due(self) -> bool:
        """GROUP_SIZE outcomes unrecorded (the one in flight included), or GROUP_SECONDS."""
        unrecorded = len(self.outcomes) + (self.in_flight is not None)
        return unrecorded >= self.group_size or bool(
            self.outcomes and time.monotonic() - self.group_started > GROUP_SECONDS
        )

    def finish(self, more: list[NoticeOutcome] | None = None) -> None:
        """Read the last verdict and record everything known (plus `more`)."""
        self._read_verdict()
        self.outcomes += more or []
        self._record()

    def finish_quietly(self) -> None:
        """`finish` on the way out of an error, which stays the one reported."""
        try:
            self.finish()
        except Exception:
            log.warning("could not record the last outcomes; they go again", exc_info=True)

    def _read_verdict(self) -> None:
        if self.in_flight is None:
            return
        notice_id, self.in_flight = self.in_flight, None
        try:
            self.smtp.finish()
        except DeliveryError as exc:
            self.outcomes.append(NoticeOutcome(notice_id, _failure(exc), exc.reason))
        else:
            self.outcomes.append(NoticeOutcome(notice_id, "sent", None))

    def _record(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        self.group_started = time.monotonic()
        if outcomes:
            self.record(outcomes)


def _failure(exc: DeliveryError) -> str:
    return "retry" if exc.transient else "failed"


def _let_go(conn: Connection, token: int) -> None:
    """Put back what this sender still holds and drop its token (a lost session has
    already dropped both: the next claim puts its notices back)."""
    try:
        notices_db.close_sender(conn, token)
    except Exception:
        log.warning("sender %d could not release its notices; the next sender will", token)
        conn.invalidate()
