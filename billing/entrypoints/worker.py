"""The notice worker (`python -m billing worker`), on PgQueuer: PostgreSQL as the queue.

Start as many worker processes as you like, on one machine or several; they share:

* the schedule ``daily_notice_cycle``, at DAILY_CYCLE_AT in TIMEZONE (a cron expression
  evaluated in that zone). One worker wins it and enqueues one ``notice_cycle`` job;
* ``notice_cycle``: issue the pending boletos, queue the notices due today, then enqueue
  PARALLEL_SENDERS ``send_notices`` jobs, which workers pick up in parallel;
* ``send_notices``: one sender (billing.notices.dispatch.send_due_notices) that sends until no
  notice is due. Senders share the work by claiming notices with SKIP LOCKED;
* the schedule ``due_notices``, every minute: when notices are due (retries whose wait
  is over, notices a dead sender left), it enqueues senders again.

Jobs carry dedupe keys, so a cycle is never queued twice and at most PARALLEL_SENDERS
senders run at once across all workers. PgQueuer's tables come with migration 003.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

import psycopg
from croniter import croniter
from pgqueuer import PgQueuer
from pgqueuer.core.executors import ScheduleExecutor
from pgqueuer.domain.models import Job, Schedule
from pgqueuer.ports import RepositoryPort
from sqlalchemy import Engine

from billing.core.errors import OperatorError
from billing.core.i18n import _
from billing.core.settings import Settings, get_settings
from billing.notices.dispatch import MailServerOutage, issue_and_plan, send_due_notices
from billing.notices.mailer import MailServerUnavailable
from billing.notices.planning import today_in, zone
from db import notices as notices_db
from db import overview as overview_db
from db.engine import database_trouble

log = logging.getLogger(__name__)

DAILY_CYCLE_SCHEDULE = "daily_notice_cycle"
DUE_NOTICES_SCHEDULE = "due_notices"
DUE_NOTICES_EVERY = "* * * * *"
CYCLE_JOB = "notice_cycle"
SEND_JOB = "send_notices"
PARALLEL_SENDERS = 4  # senders at once, across all workers
JOBS_PER_WORKER = 2  # jobs one worker process runs at once (PgQueuer needs 2x its batch of 1)

_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def cron_for(daily_cycle_at: str) -> str:
    """The cron expression of a time of day: "08:00" -> "0 8 * * *"."""
    found = _TIME_OF_DAY.fullmatch(daily_cycle_at.strip())
    if not found:
        raise OperatorError(
            _("DAILY_CYCLE_AT must be a time of day as HH:MM, such as 08:00, not {value}.").format(
                value=repr(daily_cycle_at)
            )
        )
    return f"{int(found.group(2))} {int(found.group(1))} * * *"


@dataclass
class ZonedScheduleExecutor(ScheduleExecutor):
    """PgQueuer's schedule executor with the cron expression read in a time zone
    (PgQueuer reads it in UTC): "0 8 * * *" is 08:00 in São Paulo, summer time or not."""

    zone: tzinfo = UTC

    def get_next(self) -> datetime:
        start = datetime.now(self.zone)
        following = croniter(self.parameters.expression, start_time=start).get_next(datetime)
        return following.astimezone(UTC)


def next_cycle_at(settings: Settings, *, after: datetime | None = None) -> datetime:
    """When the next daily cycle runs (aware, in TIMEZONE)."""
    start = (after or datetime.now(UTC)).astimezone(zone(settings))
    return croniter(cron_for(settings.daily_cycle_at), start_time=start).get_next(datetime)


async def enqueue_senders(queries: RepositoryPort, count: int = PARALLEL_SENDERS) -> int:
    """Enqueue up to `count` senders; the ones already queued or running are not doubled."""
    ids = await queries.enqueue(
        [SEND_JOB] * count,
        [None] * count,
        [0] * count,
        dedupe_key=[f"{SEND_JOB}-{n}" for n in range(count)],
        on_conflict="skip",
    )
    return sum(1 for job_id in ids if job_id is not None)


async def enqueue_cycle(queries: RepositoryPort, *, today: date | None = None) -> bool:
    """Enqueue one notice cycle (for `today`, or the day it runs); False if one is pending."""
    payload = today.isoformat().encode() if today else None
    ids = await queries.enqueue(CYCLE_JOB, payload, dedupe_key=CYCLE_JOB, on_conflict="skip")
    return ids[0] is not None


def build_worker(
    connection: psycopg.AsyncConnection,
    *,
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
) -> PgQueuer:
    """A PgQueuer with the notice jobs and schedules registered (not yet running)."""
    pgq = PgQueuer.from_psycopg_connection(connection)
    queries = pgq.qm.queries
    cycle_zone = zone(settings)

    @pgq.entrypoint(CYCLE_JOB)
    async def notice_cycle(job: Job) -> None:
        today = date.fromisoformat(job.payload.decode()) if job.payload else today_in(settings)
        await asyncio.to_thread(issue_and_plan, engine, today=today, settings=settings)
        await enqueue_senders(queries)
        # The Overview's figures: the day's changes folded and checked (db/overview.py).
        await asyncio.to_thread(overview_db.keep_charge_totals, engine)

    outage = MailServerOutage(float(settings.mail_server_retry_seconds))

    @pgq.entrypoint(SEND_JOB)
    async def send_notices(job: Job) -> None:
        try:
            counts = await asyncio.to_thread(
                send_due_notices,
                engine,
                settings=settings,
                stop=stop,
                mail_server_wait=outage.next_wait(),
            )
        except MailServerUnavailable as exc:
            # Not the job's fault: the notices wait, queued, and `due_notices` comes back.
            log.error("%s", exc.message)
            return
        outage.over()
        log.info("sender job %s: %s", job.id, counts)

    @pgq.schedule(
        DAILY_CYCLE_SCHEDULE,
        cron_for(settings.daily_cycle_at),
        executor_factory=lambda parameters: ZonedScheduleExecutor(parameters, zone=cycle_zone),
    )
    async def daily_notice_cycle(schedule: Schedule) -> None:
        await enqueue_cycle(queries)

    @pgq.schedule(DUE_NOTICES_SCHEDULE, DUE_NOTICES_EVERY)
    async def due_notices(schedule: Schedule) -> None:
        if await asyncio.to_thread(notices_db.has_due_notices, engine):
            await enqueue_senders(queries)

    return pgq


async def forget_moved_cycle(queries: RepositoryPort, settings: Settings) -> int:
    """Drop the stored daily schedule if DAILY_CYCLE_AT or TIMEZONE changed since it was
    stored, so it is stored again with the new time. A run already due is kept."""
    expression = cron_for(settings.daily_cycle_at)
    expected = next_cycle_at(settings)
    now = datetime.now(UTC)
    moved = {
        schedule.id
        for schedule in await queries.peek_schedule()
        if schedule.entrypoint == DAILY_CYCLE_SCHEDULE
        and (
            schedule.expression != expression
            or (
                schedule.status == "queued"
                and schedule.next_run > now
                and abs(schedule.next_run - expected) > timedelta(minutes=1)
            )
        )
    }
    if moved:
        await queries.delete_schedule(moved, set())
    return len(moved)


# After the database stops answering, the worker connects again after these waits (in
# seconds), the last one repeated: quick after a restart, gentle during a long outage.
RECONNECT_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Reconnecting:
    """The back-off between tries to reach the database again; reset once connected."""

    def __init__(self, waits: tuple[float, ...] = RECONNECT_WAITS) -> None:
        self.waits = waits
        self.tries = 0

    def next_wait(self) -> float:
        wait = self.waits[min(self.tries, len(self.waits) - 1)]
        self.tries += 1
        return wait

    def connected(self) -> None:
        self.tries = 0


async def run_worker(*, engine: Engine | None = None, settings: Settings | None = None) -> None:
    """Run jobs and schedules until SIGTERM or SIGINT, then finish the current group.

    When PostgreSQL restarts or cannot be reached, the worker waits (RECONNECT_WAITS) and
    connects again, for as long as it takes: jobs are in the database, so nothing is
    lost, and a send job cut short leaves its notices to the next sender (at most the
    group in flight goes again, with the same Message-ID).
    """
    from db.engine import connect_arguments, get_engine, libpq_url
    from db.migrations import migrate, migrate_database

    settings = settings or get_settings()
    cron_for(settings.daily_cycle_at)  # refuse a bad time before connecting
    url = libpq_url((engine or get_engine()).url.render_as_string(hide_password=False))
    stop = threading.Event()
    shutdown = asyncio.Event()
    running: list[PgQueuer] = []

    def shut_down() -> None:
        stop.set()
        shutdown.set()
        for pgq in running:
            pgq.shutdown.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shut_down)
    reconnecting = Reconnecting()
    migrated = False
    while not stop.is_set():
        try:
            if not migrated:
                if engine is None:
                    migrate_database()
                    engine = get_engine()
                else:
                    migrate(engine)
                migrated = True
            assert engine is not None  # set on the first pass, before `migrated`
            await _serve(
                url,
                engine=engine,
                settings=settings,
                stop=stop,
                running=running,
                connect_args=connect_arguments(settings),
                connected=reconnecting,
            )
        except Exception as exc:
            if database_trouble(exc) is None:
                raise
            wait = reconnecting.next_wait()
            log.warning(
                "The database is not answering (%s); connecting again in %.0f s.",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                wait,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shutdown.wait(), timeout=wait)


async def _serve(
    url: str,
    *,
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    running: list[PgQueuer],
    connect_args: dict,
    connected: Reconnecting,
) -> None:
    """One connection's life: register the jobs, run them until shut down or the
    connection is lost (raised)."""
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, **connect_args
    ) as connection:
        pgq = build_worker(connection, engine=engine, settings=settings, stop=stop)
        await forget_moved_cycle(pgq.qm.queries, settings)
        running[:] = [pgq]
        if stop.is_set():
            return
        connected.connected()
        log.info(
            "worker ready: daily cycle at %s %s (next %s)",
            settings.daily_cycle_at,
            settings.timezone,
            next_cycle_at(settings).isoformat(timespec="minutes"),
        )
        try:
            await pgq.run(batch_size=1, max_concurrent_tasks=JOBS_PER_WORKER)
        finally:
            running.clear()


def enqueue_cycle_now(engine: Engine, *, today: date | None = None) -> bool:
    """Ask the workers for a cycle now (for `today` if given); False if one is pending."""
    from db.engine import libpq_url

    async def enqueue() -> bool:
        url = libpq_url(engine.url.render_as_string(hide_password=False))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            return await enqueue_cycle(
                PgQueuer.from_psycopg_connection(connection).qm.queries, today=today
            )

    return asyncio.run(enqueue())
