"""Bad days for the worker and the senders: PostgreSQL restarting under them, the mail
server down for a while, a sender killed mid-dispatch.

Real processes (`python -m billing worker`, `dispatch --once`) against a private
PostgreSQL that the test restarts (tests/support/pg_process.py) and a real SMTP server in this
process; what that server received, by Message-ID, is the evidence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billing.entrypoints.worker import PARALLEL_SENDERS
from billing.notices.dispatch import GROUP_SIZE
from billing.notices.planning import notice_counts
from db.engine import make_engine
from tests.support.notices import create_charges
from tests.support.pg_process import PgProcess, migrated_database
from tests.support.smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow  # a PostgreSQL of its own, restarted under the worker

FAR_DUE = date(2040, 6, 1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def pg() -> Iterator[PgProcess]:
    with PgProcess() as server:
        yield server


@pytest.fixture()
def app_url(pg: PgProcess) -> str:
    return migrated_database(pg)


@pytest.fixture()
def pg_db(app_url: str) -> Iterator[Engine]:
    engine = make_engine(app_url)
    yield engine
    engine.dispose()


def process_env(pg: PgProcess, app_url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=app_url,
        MIGRATION_DATABASE_URL=pg.url,
        BILLING_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
        MAIL_FROM="Cobrança <cobranca@fundo.example>",
        MAIL_RATE_PER_SECOND="0",
        NOTICE_ON_ISSUE="true",
        NOTICE_REMINDER_DAYS="0",
        NOTICE_ON_DUE_DATE="false",
        NOTICE_OVERDUE_DAYS="0",
        DATABASE_CONNECT_TIMEOUT_SECONDS="3",
    )
    env.update(more)
    return env


def billing(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[str]:
    out = log.open("w") if log else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "billing", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if log else subprocess.PIPE,
        text=True,
    )


def wait_until(condition, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = log.read_text()[-4000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: not after {timeout} s\n{shown}")
        time.sleep(0.2)


def counts_or_none(engine: Engine) -> dict[str, int] | None:
    try:
        return notice_counts(engine)
    except Exception:
        return None


def message_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT message_id FROM notices")).scalars())


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_the_worker_rides_through_a_database_restart(
    pg: PgProcess, app_url: str, pg_db: Engine, tmp_path: Path
) -> None:
    """Restarted mid-send: the worker reconnects, sends the rest, none goes twice beyond
    the group in flight; restarted again while idle, it still runs the next cycle."""
    create_charges(pg_db, {f"c{i:04d}": FAR_DUE for i in range(300)})
    log = tmp_path / "worker.log"
    with SmtpTestServer() as smtp:
        smtp.delay = 0.01  # about 100 a second: the restart lands mid-send
        env = process_env(pg, app_url, tmp_path, **smtp.settings_env())
        worker = billing("-v", "worker", env=env, log=log)
        try:
            wait_until(lambda: "worker ready" in log.read_text(), timeout=60, what="ready", log=log)
            from billing.entrypoints.worker import enqueue_cycle_now

            assert enqueue_cycle_now(pg_db)
            smtp.wait_for(60, timeout=60)

            pg.restart()  # mid-send
            assert worker.poll() is None, log.read_text()[-4000:]
            smtp.delay = 0
            pg_db.dispose()  # this test's own pool holds connections the restart closed

            def all_sent() -> bool:
                counts = counts_or_none(pg_db)
                return counts is not None and counts["sent"] == 300

            wait_until(all_sent, timeout=150, what="all 300 sent", log=log)
            assert worker.poll() is None

            counts = smtp.message_id_counts()
            assert set(counts) == message_ids(pg_db)
            assert max(counts.values()) <= 2  # only what was in flight went again
            # Each of the senders had at most one group unrecorded when the server went.
            assert sum(n - 1 for n in counts.values()) <= PARALLEL_SENDERS * GROUP_SIZE

            # Restarted while idle: the worker still takes the next cycle's work.
            pg.restart()
            pg_db.dispose()
            create_charges(pg_db, {f"d{i:04d}": FAR_DUE for i in range(5)})
            wait_until(lambda: _enqueued(pg_db), timeout=60, what="a cycle enqueued after restart")
            wait_until(
                lambda: (counts_or_none(pg_db) or {}).get("sent") == 305,
                timeout=120,
                what="the next cycle sent",
                log=log,
            )
            assert "connecting again" in log.read_text()
        finally:
            stop_process(worker)
    assert worker.returncode == 0, log.read_text()[-4000:]


def _enqueued(engine: Engine) -> bool:
    from billing.entrypoints.worker import enqueue_cycle_now

    try:
        return enqueue_cycle_now(engine)
    except Exception:
        return False


def test_the_cli_import_says_in_a_sentence_that_the_database_is_not_answering(
    pg: PgProcess, app_url: str, tmp_path: Path
) -> None:
    from billing.entrypoints.cli import DATABASE_UNREACHABLE
    from tests.support.debtor_files import debtor_csv, sample_rows

    path = tmp_path / "debtors.csv"
    path.write_bytes(debtor_csv(sample_rows(3)))
    pg.stop()

    done = subprocess.run(
        [sys.executable, "-m", "billing", "import", str(path), "--json"],
        env=process_env(pg, app_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == DATABASE_UNREACHABLE
    assert done.stderr.strip() == f"Failed: {DATABASE_UNREACHABLE}"
