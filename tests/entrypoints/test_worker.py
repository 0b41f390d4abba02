"""Crash safety and concurrency of sending, `dispatch --once`, and the PgQueuer worker.

Senders run as real subprocesses (`python -m billing ...`) against the test database and
an aiosmtpd server in this process; what that server received, grouped by Message-ID,
is the evidence.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from billing.entrypoints.worker import (
    DAILY_CYCLE_SCHEDULE,
    DUE_NOTICES_SCHEDULE,
    cron_for,
    enqueue_cycle_now,
    next_cycle_at,
)
from billing.notices.dispatch import GROUP_SIZE
from billing.notices.planning import notice_counts, plan_notices
from db import notices as notices_db
from tests.support.notices import add_pending_charge, create_charges, notice_settings
from tests.support.smtp_server import SmtpTestServer

FAR_DUE = date(2040, 6, 1)  # every charge here is due long after the real today


@pytest.fixture()
def queue(db: Engine, owner_engine: Engine) -> Engine:
    """The database with PgQueuer's tables emptied too (conftest empties ours)."""
    with owner_engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_schedules, pgqueuer_statistics"
        )
    return db


def sender_env(app_env: dict[str, str], smtp: SmtpTestServer) -> dict[str, str]:
    env = dict(app_env)
    env.update(smtp.settings_env())
    env.update(
        MAIL_FROM="Cobrança <cobranca@fundo.example>",
        MAIL_RATE_PER_SECOND="0",
        MAIL_ATTACH_PDF="false",
        NOTICE_ON_ISSUE="true",
        NOTICE_REMINDER_DAYS="0",
        NOTICE_ON_DUE_DATE="false",
        NOTICE_OVERDUE_DAYS="0",
        DAILY_CYCLE_AT="08:00",
        TIMEZONE="America/Sao_Paulo",
    )
    return env


def billing(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "billing", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expected_message_ids(db: Engine) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(text("SELECT message_id FROM notices")).scalars())


def charges(db: Engine, count: int) -> None:
    create_charges(db, {f"c{i:04d}": FAR_DUE for i in range(count)})


@pytest.mark.slow
def test_dispatch_once_prints_one_json_object(
    db: Engine, smtp: SmtpTestServer, app_env: dict[str, str]
) -> None:
    charges(db, 5)
    add_pending_charge(db, "no-boleto-yet", FAR_DUE)

    done = billing("dispatch", "--once", "--json", env=sender_env(app_env, smtp))
    out, err = done.communicate(timeout=60)

    assert done.returncode == 0, err
    result = json.loads(out)
    assert {k: result[k] for k in ("issued", "queued", "sent", "failed")} == {
        "issued": 1,
        "queued": 6,
        "sent": 6,
        "failed": 0,
    }
    assert result["queued_by_kind"]["issued"] == 6
    assert len(smtp.received) == 6


@pytest.mark.slow
def test_dispatch_says_when_the_mail_server_is_down(db: Engine, app_env: dict[str, str]) -> None:
    from tests.support.network import free_port

    charges(db, 2)
    env = dict(app_env, SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()))

    done = billing("dispatch", "--once", env=env)
    out, err = done.communicate(timeout=60)

    assert done.returncode == 1
    assert "0 boletos issued, 2 notices queued, 0 sent" in out
    assert "Cannot connect to the mail server" in err
    assert notice_counts(db)["queued"] == 2


@pytest.mark.slow
def test_a_killed_dispatch_resends_only_what_was_in_flight(
    db: Engine, smtp: SmtpTestServer, app_env: dict[str, str]
) -> None:
    charges(db, 240)
    env = sender_env(app_env, smtp)
    smtp.delay = 0.01  # about 100 messages a second: the kill lands mid-send

    first = billing("dispatch", "--once", env=env)
    smtp.wait_for(70, timeout=40)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    received_at_kill = len(smtp.received)
    assert received_at_kill < 240
    smtp.delay = 0

    again = billing("dispatch", "--once", "--json", env=env)
    out, err = again.communicate(timeout=60)

    assert again.returncode == 0, err
    assert notice_counts(db) == {"queued": 0, "sending": 0, "sent": 240, "failed": 0, "skipped": 0}
    counts = smtp.message_id_counts()
    assert set(counts) == expected_message_ids(db)  # every notice arrived
    sent_twice = [message_id for message_id, n in counts.items() if n > 1]
    assert max(counts.values()) <= 2
    # Only the group in flight at the kill went again, each with its own Message-ID.
    assert len(sent_twice) <= GROUP_SIZE
    assert json.loads(out)["sent"] == 240 - (received_at_kill - len(sent_twice))


@pytest.mark.slow
def test_two_dispatchers_at_once_never_send_a_notice_twice(
    db: Engine, smtp: SmtpTestServer, app_env: dict[str, str]
) -> None:
    charges(db, 200)
    env = sender_env(app_env, smtp)
    smtp.delay = 0.004

    runs = [billing("dispatch", "--once", "--json", env=env) for _ in range(2)]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        results.append(json.loads(out))

    assert sum(r["sent"] for r in results) == 200
    assert sum(r["queued"] for r in results) == 200
    counts = smtp.message_id_counts()
    assert len(counts) == 200 and set(counts.values()) == {1}


def test_a_dead_senders_notices_come_back_at_once_a_live_ones_never(db: Engine) -> None:
    """Detection by lock, not by time: a claim is abandoned exactly when its sender's
    database session is gone."""
    create_charges(db, {f"c{i}": FAR_DUE for i in range(3)})
    plan_notices(db, today=date(2040, 1, 1), settings=notice_settings())
    live = db.connect()
    token = notices_db.new_claim_token(live)
    assert len(notices_db.claim_batch(live, token=token, limit=10)) == 3
    live.commit()

    with db.connect() as other:
        other_token = notices_db.new_claim_token(other)
        assert notices_db.claim_batch(other, token=other_token, limit=10) == []
        other.commit()

        live.invalidate()  # the sender's process dies: its session closes
        deadline = time.monotonic() + 10
        rows: list[dict] = []
        while not rows and time.monotonic() < deadline:
            rows = notices_db.claim_batch(other, token=other_token, limit=10)
            other.commit()
            time.sleep(0.02)
        assert len(rows) == 3
        notices_db.release_claimed(other, token=other_token)
        notices_db.drop_claim_token(other, other_token)
        other.commit()


@pytest.mark.parametrize(
    ("at", "cron"), [("08:00", "0 8 * * *"), ("7:05", "5 7 * * *"), ("23:59", "59 23 * * *")]
)
def test_cron_for(at: str, cron: str) -> None:
    assert cron_for(at) == cron


@pytest.mark.parametrize("at", ["8", "24:00", "08:60", "eight"])
def test_a_bad_cycle_time_is_refused(at: str) -> None:
    from billing.core.errors import OperatorError

    with pytest.raises(OperatorError, match="DAILY_CYCLE_AT"):
        cron_for(at)


def test_the_cycle_time_is_read_in_the_funds_time_zone() -> None:
    settings = notice_settings(daily_cycle_at="08:00", timezone="America/Sao_Paulo")
    after = datetime(2040, 3, 10, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo
    assert next_cycle_at(settings, after=after).astimezone(UTC) == datetime(
        2040, 3, 11, 11, 0, tzinfo=UTC
    )


@pytest.mark.slow
def test_workers_run_the_cycle_and_send_each_notice_once(
    queue: Engine, smtp: SmtpTestServer, app_env: dict[str, str]
) -> None:
    charges(queue, 150)
    env = sender_env(app_env, smtp)
    smtp.delay = 0.002
    workers = [billing("-v", "worker", env=env) for _ in range(2)]
    try:
        assert enqueue_cycle_now(queue, today=date(2040, 5, 1))
        deadline = time.monotonic() + 40
        while notice_counts(queue)["sent"] < 150:
            assert time.monotonic() < deadline, notice_counts(queue)
            assert all(w.poll() is None for w in workers), workers[0].communicate()[1]
            time.sleep(0.1)

        counts = smtp.message_id_counts()
        assert len(counts) == 150 and set(counts.values()) == {1}
        with queue.connect() as conn:
            schedules = {
                row.entrypoint: row
                for row in conn.execute(
                    text("SELECT entrypoint, expression, next_run FROM pgqueuer_schedules")
                )
            }
        assert schedules[DAILY_CYCLE_SCHEDULE].expression == "0 8 * * *"
        # 08:00 in São Paulo (UTC-3) is 11:00 UTC.
        assert schedules[DAILY_CYCLE_SCHEDULE].next_run.astimezone(UTC).hour == 11
        next_run = schedules[DAILY_CYCLE_SCHEDULE].next_run
        assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)
        assert DUE_NOTICES_SCHEDULE in schedules
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]


def test_a_moved_cycle_time_replaces_the_stored_schedule(queue: Engine) -> None:
    """Changing DAILY_CYCLE_AT or TIMEZONE takes effect at the next worker start."""
    import asyncio

    import psycopg
    from pgqueuer import PgQueuer
    from pgqueuer.domain.models import CronExpressionEntrypoint

    from billing.entrypoints.worker import forget_moved_cycle
    from db.engine import libpq_url

    settings = notice_settings(daily_cycle_at="08:00", timezone="America/Sao_Paulo")

    async def stored_after(expression: str, next_run: datetime) -> tuple[int, list[str]]:
        url = libpq_url(queue.url.render_as_string(hide_password=False))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            queries = PgQueuer.from_psycopg_connection(conn).qm.queries
            await queries.delete_schedule(set(), {DAILY_CYCLE_SCHEDULE})
            key = CronExpressionEntrypoint(entrypoint=DAILY_CYCLE_SCHEDULE, expression=expression)
            await queries.insert_schedule({key: next_run - datetime.now(UTC)})
            removed = await forget_moved_cycle(queries, settings)
            return removed, [s.expression for s in await queries.peek_schedule()]

    right = next_cycle_at(settings)
    assert asyncio.run(stored_after("0 8 * * *", right)) == (0, ["0 8 * * *"])
    assert asyncio.run(stored_after("0 7 * * *", right)) == (1, [])  # DAILY_CYCLE_AT moved
    other_zone = right + timedelta(hours=3)  # stored under another TIMEZONE
    assert asyncio.run(stored_after("0 8 * * *", other_zone)) == (1, [])


def test_workers_are_woken_only_when_notices_are_due(db: Engine) -> None:
    """What the every-minute schedule asks before enqueueing senders."""
    create_charges(db, {"a": FAR_DUE})
    assert notices_db.has_due_notices(db) is False
    plan_notices(db, today=date(2040, 1, 1), settings=notice_settings())
    assert notices_db.has_due_notices(db) is True

    with db.connect() as sender:
        token = notices_db.new_claim_token(sender)
        notices_db.claim_batch(sender, token=token, limit=10)
        sender.commit()
        assert notices_db.has_due_notices(db) is False  # a live sender holds it
        sender.invalidate()  # ... until it dies
    deadline = time.monotonic() + 10
    while not notices_db.has_due_notices(db):
        assert time.monotonic() < deadline
        time.sleep(0.02)
