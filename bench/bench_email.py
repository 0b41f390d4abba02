"""E-mail throughput: the project's sender against a bare smtplib loop, same server, one run.

Both send N messages into one local aiosmtpd server (started here, in its own process,
discarding what it receives) over one reused connection:

* bare: ``smtplib.SMTP.sendmail`` in a loop, the same pre-rendered notice N times;
* dispatch: ``billing.notices.dispatch.send_due_notices`` on N queued notices: claim batches,
  render each message, send, record outcomes in PostgreSQL after every group.

The two alternate for a few rounds (the notices queued again between rounds); prints
the median messages per second of each and their ratio (goal: dispatch >= 0.8 of bare).

Usage: ``python -m bench.bench_email [--count 5000] [--rounds 3]``. With DATABASE_URL set, a
throw-away database is created on that server and dropped at the end; without it, an
embedded PostgreSQL runs in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import shutil
import smtplib
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path

from billing.accounts.access import cli_actor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, make_url, text

from billing.core.settings import Settings, get_settings
from billing.imports.service import import_file
from billing.notices.dispatch import send_due_notices
from billing.notices.mailer import NoticeMail, envelope_sender, render_notice
from billing.notices.planning import plan_notices
from db.engine import libpq_url, make_engine, start_embedded_server
from db.migrations import migrate

TODAY = date(2040, 1, 2)


class _Discard:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok: discarded"


def _serve(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    from aiosmtpd.controller import Controller

    controller = Controller(_Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


@contextmanager
def smtp_server() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    process.start()
    if not ready.wait(20):
        raise RuntimeError("the SMTP server did not start")
    try:
        yield port
    finally:
        process.terminate()
        process.join(10)


@contextmanager
def database() -> Iterator[Engine]:
    server_url = os.environ.get("DATABASE_URL", "").strip()
    if server_url:
        name = f"billing_bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(libpq_url(server_url)).set(database=name).render_as_string(False)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        return
    folder = Path(tempfile.mkdtemp(prefix="billing-bench-pg-"))
    try:
        engine = make_engine(start_embedded_server(folder, cleanup_mode="delete"))
        yield engine
        engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def debtor_csv(count: int) -> bytes:
    lines = ["name,governmentId,email,debtAmount,debtDueDate,debtId"]
    lines += [
        f"Débora Conceição {i},52998224725,debora.conceicao{i}@example.com,"
        f"{100 + i % 900}.{i % 100:02d},2040-02-{1 + i % 28:02d},bench-{i:07d}"
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def sample_message(settings: Settings) -> bytes:
    return render_notice(
        NoticeMail(
            kind="issued",
            charge_id=1,
            message_id="<notice-1-issued@example.com>",
            to_name="Débora Conceição 1",
            to_address="debora.conceicao1@example.com",
            amount=Decimal("101.01"),
            due_date=date(2040, 2, 2),
            debt_id="bench-0000001",
            digitable_line="10490.05505 77000.100048 00000.000182 7 65560000010050",
        ),
        settings=settings,
    )


def bare_loop(settings: Settings, count: int) -> float:
    """Seconds for `count` sendmail calls over one connection (messages rendered before)."""
    message = sample_message(settings)
    sender = envelope_sender(settings)
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port)
    try:
        started = time.perf_counter()
        for i in range(count):
            smtp.sendmail(sender, [f"debora.conceicao{i}@example.com"], message)
        return time.perf_counter() - started
    finally:
        smtp.quit()


def prepare(engine: Engine, settings: Settings, count: int) -> int:
    from billing.boletos.issuing import issue_boletos

    migrate(engine)
    result = import_file(
        actor=cli_actor(),
        engine=engine,
        data=debtor_csv(count),
        file_name="bench.csv",
        lenient_documents=True,
    )
    if result.status != "done":
        raise RuntimeError(f"import {result.status}: {result.error}")
    issue_boletos(engine, settings=settings)
    return sum(plan_notices(engine, today=TODAY, settings=settings).values())


def requeue_all(engine: Engine) -> None:
    """Make the sent notices due again, for the next round (benchmark only)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE notices SET status = 'queued', sent_at = NULL, attempts = 0, "
                "next_attempt_at = now()"
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="messages per run (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="bare/dispatch pairs (3)")
    args = parser.parse_args(argv)

    bare_rates: list[float] = []
    dispatch_rates: list[float] = []
    with smtp_server() as port, database() as engine:
        settings = dataclasses.replace(
            get_settings(),
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_user="",
            mail_rate_per_second=0,
            mail_attach_pdf=False,
            notice_on_issue=True,
            notice_reminder_days=0,
            notice_on_due_date=False,
            notice_overdue_days=0,
        )
        queued = prepare(engine, settings, args.count)
        bare_loop(settings, min(200, args.count))  # warm both ends up
        # Rounds alternate the two loops, and medians are compared: a machine that gets
        # busier or quieter during the run favours neither side.
        for round_number in range(args.rounds):
            if round_number:
                requeue_all(engine)
            bare_rates.append(args.count / bare_loop(settings, args.count))
            started = time.perf_counter()
            counts = send_due_notices(engine, settings=settings, today=TODAY)
            dispatch_rates.append(counts.sent / (time.perf_counter() - started))
            if counts.sent != queued:
                print(f"dispatch sent {counts.sent} of {queued}: {counts}", file=sys.stderr)
                return 1

    bare_rate = statistics.median(bare_rates)
    dispatch_rate = statistics.median(dispatch_rates)
    print(f"messages: {args.count} per run, {args.rounds} rounds (median shown)")
    print(f"bare smtplib loop: {bare_rate:8.0f} msgs/s  rounds: {_rates(bare_rates)}")
    print(f"billing dispatch:  {dispatch_rate:8.0f} msgs/s  rounds: {_rates(dispatch_rates)}")
    print(f"ratio dispatch/bare: {dispatch_rate / bare_rate:.2f}  (goal >= 0.80)")
    return 0


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:.0f}" for rate in rates)


if __name__ == "__main__":
    sys.exit(main())
