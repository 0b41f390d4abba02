"""The payments webhook under a burst: throughput, latency and exactness over real HTTP.

    python -m bench.bench_webhook [--charges 500] [--requests 2000] [--concurrency 50]
                                  [--repeat-share 0.2] [--database-url URL] [--json]

Imports `--charges` charges, starts the API as `python -m billing api` on a free loopback
port, and sends `--requests` signed notifications, `--concurrency` at a time: one to four
distinct payments per charge (some charges paid exactly in parts, some left partially
paid, a few overpaid), and a `--repeat-share` of exact repeats of them, shuffled so that a
repeat may race its original. Then it checks what the database holds: no response 5xx,
every distinct payment recorded exactly once and every repeat answered "duplicate", each
charge's paid total and status exact. Prints requests/s and p50/p95/p99 latency.
Nothing leaves 127.0.0.1, and the run stops by itself. Without --database-url (or
DATABASE_URL) an embedded PostgreSQL is started in a temporary folder; on a server a
scratch database is created and dropped.

tests/payments/test_webhook_burst.py runs the same burst smaller, as a test of exactness.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from billing.accounts.access import Actor, Role
from billing.entrypoints.api import signature
from billing.imports.reading import REQUIRED_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret-0123456789abcdef"
BENCH_ACTOR = Actor("bench:webhook", Role.OPERATOR)
_CENT = Decimal("0.01")
_FIRST_PAYMENT = datetime(2024, 3, 1, 9, 0, 0)


@dataclass(frozen=True)
class Charge:
    debt_id: str
    amount: Decimal
    payments: tuple[Decimal, ...]  # the distinct payments the bank reports for it

    @property
    def paid_total(self) -> Decimal:
        return sum(self.payments, Decimal("0.00"))

    @property
    def status(self) -> str:
        return "paid" if self.paid_total >= self.amount else "partially_paid"


@dataclass(frozen=True)
class BurstPlan:
    """The charges to create and the bodies to send, repeats included, in sending order."""

    charges: tuple[Charge, ...]
    bodies: tuple[bytes, ...]
    repeats: int

    @property
    def distinct_payments(self) -> int:
        return sum(len(charge.payments) for charge in self.charges)

    def debtor_csv(self) -> bytes:
        """The file that creates the charges (governmentIds read leniently)."""
        lines = [",".join(REQUIRED_COLUMNS)] + [
            f"Debtor {number},{number:011d},debtor{number}@example.com,{charge.amount},"
            f"2030-01-31,{charge.debt_id}"
            for number, charge in enumerate(self.charges, start=1)
        ]
        return ("\n".join(lines) + "\n").encode()


def plan_burst(
    *, charges: int, requests: int, repeat_share: float, seed: int = 7, prefix: str = "W"
) -> BurstPlan:
    """`requests` notifications for `charges` charges (debtIds `prefix`-1, -2...),
    `repeat_share` of them exact repeats."""
    rng = random.Random(seed)
    repeats = round(requests * repeat_share)
    distinct = requests - repeats
    if distinct < charges:
        raise ValueError("every charge needs at least one distinct payment")
    counts = [1] * charges
    for _ in range(distinct - charges):
        counts[rng.randrange(charges)] += 1
    planned: list[Charge] = []
    bodies: list[bytes] = []
    for number, count in enumerate(counts, start=1):
        amount = Decimal(rng.randrange(10_000, 500_000)) * _CENT
        charge = Charge(f"{prefix}-{number}", amount, _split(amount, count, rng))
        planned.append(charge)
        for order, paid in enumerate(charge.payments):
            paid_at = _FIRST_PAYMENT + timedelta(days=order, seconds=number)
            bodies.append(notification(charge.debt_id, paid, paid_at))
    bodies += [rng.choice(bodies) for _ in range(repeats)]
    rng.shuffle(bodies)
    return BurstPlan(charges=tuple(planned), bodies=tuple(bodies), repeats=repeats)


def _split(amount: Decimal, count: int, rng: random.Random) -> tuple[Decimal, ...]:
    """`count` positive payments: the whole amount in parts (most charges), 40-90 % of it
    (left partially paid) or 101-120 % of it (overpaid)."""
    kind = rng.random()
    if kind < 0.6:
        total = amount
    elif kind < 0.9:
        total = (amount * Decimal(rng.randrange(40, 91)) / 100).quantize(_CENT)
    else:
        total = (amount * Decimal(rng.randrange(101, 121)) / 100).quantize(_CENT)
    cents = int(total / _CENT)
    cuts = sorted(rng.sample(range(1, cents), count - 1)) if count > 1 else []
    bounds = [0, *cuts, cents]
    return tuple(Decimal(high - low) * _CENT for low, high in itertools.pairwise(bounds))


def notification(debt_id: str, amount: Decimal, paid_at: datetime) -> bytes:
    """The bank's JSON, the amount written as an exact decimal number."""
    return (
        f'{{"debtId": {json.dumps(debt_id)}, "paidAt": "{paid_at:%Y-%m-%d %H:%M:%S}", '
        f'"paidAmount": {amount}, "paidBy": "Pagador Exemplo"}}'
    ).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_api(env: Mapping[str, str], *, log_path: Path) -> Iterator[str]:
    """`python -m billing api` on a free loopback port, with `env`; yields its base URL.
    Its output goes to `log_path`; it is stopped on the way out."""
    port = free_port()
    environment = dict(env) | {"PYTHONPATH": str(ROOT)}
    environment.setdefault("WEBHOOK_SECRET", SECRET)
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "billing", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class BurstResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    http_statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # recorded, duplicate, ...
    transport_errors: int = 0

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def run_burst(
    base_url: str, bodies: tuple[bytes, ...], *, concurrency: int, secret: str = SECRET
) -> BurstResult:
    """Send every body, signed, at most `concurrency` at a time; time each request."""
    return asyncio.run(_burst(base_url, bodies, concurrency=concurrency, secret=secret))


async def _burst(
    base_url: str, bodies: tuple[bytes, ...], *, concurrency: int, secret: str
) -> BurstResult:
    result = BurstResult()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def send(body: bytes) -> None:
            headers = {"Content-Type": "application/json", "X-Signature": signature(body, secret)}
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/webhooks/payments", content=body, headers=headers
                    )
                except httpx.TransportError:
                    result.transport_errors += 1
                    return
                result.latencies.append(time.perf_counter() - started)
            result.http_statuses[response.status_code] += 1
            if response.status_code == 200:
                result.outcomes[response.json()["status"]] += 1

        started = time.perf_counter()
        await asyncio.gather(*(send(body) for body in bodies))
        result.seconds = time.perf_counter() - started
    return result


def burst_problems(engine: Engine, plan: BurstPlan, result: BurstResult) -> list[str]:
    """Every way the burst's answers or the database differ from the plan (none: exact)."""
    problems: list[str] = []
    server_errors = sum(n for status, n in result.http_statuses.items() if status >= 500)
    if server_errors or result.transport_errors:
        problems.append(f"{server_errors} responses 5xx, {result.transport_errors} lost")
    if result.http_statuses[200] != len(plan.bodies):
        problems.append(f"HTTP statuses {dict(result.http_statuses)}, all 200 expected")
    expected_outcomes = {"recorded": plan.distinct_payments, "duplicate": plan.repeats}
    if dict(result.outcomes) != {k: v for k, v in expected_outcomes.items() if v}:
        problems.append(f"answers {dict(result.outcomes)}, expected {expected_outcomes}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT c.debt_id, c.status, count(p.id) AS payments,
                       coalesce(sum(p.paid_amount), 0) AS total,
                       count(DISTINCT p.idempotency_key) AS keys
                FROM charges c LEFT JOIN payments p ON p.charge_id = c.id
                WHERE c.debt_id = ANY(:ids)
                GROUP BY c.debt_id, c.status
                """
            ),
            {"ids": [charge.debt_id for charge in plan.charges]},
        ).all()
    found = {row.debt_id: row for row in rows}
    for charge in plan.charges:
        row = found.get(charge.debt_id)
        if row is None:
            problems.append(f"{charge.debt_id}: no such charge")
            continue
        wanted = (len(charge.payments), charge.paid_total, charge.status)
        if (row.payments, row.total, row.status) != wanted or row.keys != row.payments:
            problems.append(
                f"{charge.debt_id}: {row.payments} payments, {row.total} paid, {row.status}; "
                f"expected {wanted[0]}, {wanted[1]}, {wanted[2]}"
            )
    return problems


def report_of(plan: BurstPlan, result: BurstResult, problems: list[str], **extra: object) -> dict:
    return {
        **extra,
        "charges": len(plan.charges),
        "requests": len(plan.bodies),
        "distinct_payments": plan.distinct_payments,
        "repeats": plan.repeats,
        "seconds": round(result.seconds, 3),
        "requests_per_second": round(result.requests_per_second, 1),
        "p50_ms": round(result.percentile_ms(0.50), 1),
        "p95_ms": round(result.percentile_ms(0.95), 1),
        "p99_ms": round(result.percentile_ms(0.99), 1),
        "http_statuses": {str(k): v for k, v in sorted(result.http_statuses.items())},
        "outcomes": dict(result.outcomes),
        "charges_by_status": dict(Counter(charge.status for charge in plan.charges)),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    from bench.support import (
        add_database_url_option,
        application_role,
        benchmark_server,
        progress,
        scratch_database,
        server_version,
    )
    from billing.imports.service import import_file
    from db.engine import make_engine
    from db.migrations import migrate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_database_url_option(parser)
    args = parser.parse_args(argv)

    plan = plan_burst(
        charges=args.charges,
        requests=args.requests,
        repeat_share=args.repeat_share,
        seed=args.seed,
    )
    server_url, server_name = benchmark_server(args.database_url, prefix="bench_webhook")
    with (
        scratch_database(server_url, prefix="bench_webhook") as owner_url,
        application_role(owner_url, prefix="bench_webhook") as (role, app_url),
        tempfile.TemporaryDirectory(prefix="bench_webhook_") as folder,
    ):
        owner = make_engine(owner_url)
        migrate(owner, app_role=role)
        owner.dispose()
        engine = make_engine(app_url)
        imported = import_file(
            engine=engine,
            actor=BENCH_ACTOR,
            data=plan.debtor_csv(),
            file_name="burst.csv",
            lenient_documents=True,
        )
        if imported.imported != len(plan.charges):
            raise RuntimeError(f"the charges were not imported: {imported}")
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_READ_URL"} | {
            "DATABASE_URL": app_url,
            "MIGRATION_DATABASE_URL": owner_url,
            "WEBHOOK_SECRET": SECRET,
            "API_TOKEN": "",
            "BILLING_DATA_DIR": str(Path(folder) / "data"),
        }
        progress(f"sending {len(plan.bodies)} requests, {args.concurrency} at a time")
        with serve_api(env, log_path=Path(folder) / "api.log") as base_url:
            result = run_burst(base_url, plan.bodies, concurrency=args.concurrency)
        problems = burst_problems(engine, plan, result)
        engine.dispose()
        version = server_version(owner_url)
    report = report_of(
        plan, result, problems, server=f"{server_name} ({version})", concurrency=args.concurrency
    )
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    return 0 if not problems else 1


def _print_report(report: dict) -> None:
    print(
        f"webhook burst on {report['server']}: {report['requests']} signed requests "
        f"({report['distinct_payments']} distinct payments, {report['repeats']} exact repeats) "
        f"for {report['charges']} charges, {report['concurrency']} at a time"
    )
    print(
        f"  {report['seconds']:.2f} s, {report['requests_per_second']:.0f} requests/s; "
        f"latency p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
        f"p99 {report['p99_ms']:.0f} ms"
    )
    print(f"  HTTP statuses {report['http_statuses']}, answers {report['outcomes']}")
    print(f"  charges expected {report['charges_by_status']}")
    if report["problems"]:
        print(f"  {len(report['problems'])} PROBLEMS:")
        for problem in report["problems"][:20]:
            print(f"    {problem}")
    else:
        print("  exact: every payment recorded once, every paid total and status as expected")


if __name__ == "__main__":
    raise SystemExit(main())
