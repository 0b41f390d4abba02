"""The payments webhook under a burst, over real HTTP to `python -m billing api`.

The correctness half of bench/bench_webhook.py at a smaller size: concurrent requests,
exact repeats racing their originals, partial payments; then the same burst while an
import and a dispatch cycle run at the same time.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.bench_webhook import (
    SECRET,
    BurstPlan,
    burst_problems,
    plan_burst,
    run_burst,
    serve_api,
)
from billing.core.settings import Settings
from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import ImportResult, import_file
from billing.notices.dispatch import CycleResult, run_cycle
from billing.notices.planning import notice_counts
from tests.support.actors import OPERATOR
from tests.support.database import scalar
from tests.support.smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow  # a burst of webhooks against a served API

DEADLOCK_TIMEOUT = 180  # seconds: far beyond what each part takes alone


@pytest.fixture()
def api_url(app_env: dict[str, str], tmp_path: Path, db: Engine) -> Iterator[str]:
    """The API as its own process, on the test database as the application's role."""
    env = app_env | {"WEBHOOK_SECRET": SECRET, "API_TOKEN": ""}
    env.pop("DATABASE_READ_URL", None)
    with serve_api(env, log_path=tmp_path / "api.log") as base_url:
        yield base_url
    log = (tmp_path / "api.log").read_text()
    assert "Traceback" not in log, log


def import_plan(db: Engine, plan: BurstPlan) -> None:
    result = import_file(
        engine=db,
        actor=OPERATOR,
        data=plan.debtor_csv(),
        file_name="burst.csv",
        lenient_documents=True,
    )
    assert (result.status, result.imported) == ("done", len(plan.charges)), result


def test_a_burst_records_every_payment_once_with_exact_totals(db: Engine, api_url: str) -> None:
    plan = plan_burst(charges=60, requests=300, repeat_share=0.2, seed=11, prefix="B1")
    import_plan(db, plan)
    assert {c.status for c in plan.charges} == {"paid", "partially_paid"}
    assert plan.repeats == 60 and len(set(plan.bodies)) == plan.distinct_payments == 240

    result = run_burst(api_url, plan.bodies, concurrency=20)

    assert burst_problems(db, plan, result) == []
    assert scalar(db, "SELECT count(*) FROM payments") == 240
    assert result.percentile_ms(0.99) > 0


def new_debtor_file(rows: int, *, first: int, known_numbers: int) -> bytes:
    """`rows` new charges numbered from `first`; the first `known_numbers` rows for debtors of
    the burst's file (same governmentId), so the import updates debtors being paid."""
    lines = [",".join(REQUIRED_COLUMNS)]
    for row in range(rows):
        number = first + row
        document = row + 1 if row < known_numbers else 10_000 + number
        lines.append(
            f"Debtor {number},{document:011d},new{number}@example.com,{number % 900 + 10}.50,"
            f"2030-02-28,B2-N-{number}"
        )
    return ("\n".join(lines) + "\n").encode()


def in_thread(
    work: Callable[[], object], results: dict[str, object], name: str
) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = work()
        except BaseException as exc:  # reported by the test, never lost in the thread
            results[name] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def test_imports_dispatch_cycles_and_a_burst_at_once_end_consistent(
    db: Engine, api_url: str
) -> None:
    """Three files imported one after the other and dispatch cycles one after the other,
    both for as long as the burst lasts: nothing waits forever, every count adds up."""
    plan = plan_burst(charges=60, requests=300, repeat_share=0.2, seed=12, prefix="B2")
    import_plan(db, plan)
    audited_before = scalar(
        db, "SELECT count(*) FROM audit_events WHERE action = 'payment.webhook'"
    )
    results: dict[str, object] = {}
    start, burst_done = threading.Barrier(3), threading.Event()
    files = [new_debtor_file(1000, first=1 + 1000 * n, known_numbers=30) for n in range(3)]

    with SmtpTestServer() as smtp:
        settings = dataclasses.replace(
            Settings(),
            mail_rate_per_second=0,
            pix_key="",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_security="none",
        )

        def importing() -> list[ImportResult]:
            start.wait()
            return [
                import_file(
                    engine=db,
                    actor=OPERATOR,
                    data=data,
                    file_name=f"during-burst-{number}.csv",
                    lenient_documents=True,
                )
                for number, data in enumerate(files)
            ]

        def dispatching() -> list[CycleResult]:
            start.wait()
            cycles = [run_cycle(db, actor=OPERATOR, settings=settings)]
            while not burst_done.is_set():
                cycles.append(run_cycle(db, actor=OPERATOR, settings=settings))
            return cycles

        threads = [
            in_thread(importing, results, "import"),
            in_thread(dispatching, results, "dispatch"),
        ]
        start.wait()
        try:
            burst = run_burst(api_url, plan.bodies, concurrency=20)
        finally:
            burst_done.set()
        for thread in threads:
            thread.join(timeout=DEADLOCK_TIMEOUT)
            assert not thread.is_alive(), f"{thread.name} did not finish: a deadlock?"
        received = smtp.message_id_counts()

    imports, cycles = results["import"], results["dispatch"]
    assert isinstance(imports, list), imports
    assert [(r.status, r.imported, r.rejected) for r in imports] == [("done", 1000, 0)] * 3
    assert isinstance(cycles, list), cycles
    assert all(c.error is None and c.failed == 0 for c in cycles), cycles
    assert burst_problems(db, plan, burst) == []

    assert scalar(db, "SELECT count(*) FROM charges") == 60 + 3000
    assert scalar(db, "SELECT count(*) FROM payments") == plan.distinct_payments
    # One audit row per answered notification, repeats included.
    audited = scalar(db, "SELECT count(*) FROM audit_events WHERE action = 'payment.webhook'")
    assert audited - audited_before == len(plan.bodies)
    # Every notice sent went out once, and nothing is left half-sent.
    counts = notice_counts(db)
    assert counts["sending"] == 0 and counts["failed"] == 0
    assert counts["sent"] == sum(c.sent for c in cycles) == len(received) > 0
    assert set(received.values()) == {1}
    assert (
        scalar(
            db,
            "SELECT count(*) FROM (SELECT 1 FROM notices GROUP BY charge_id, kind "
            "HAVING count(*) > 1) AS repeated",
        )
        == 0
    )
    # The status of every charge still agrees with its payments.
    assert (
        scalar(
            db,
            """
        SELECT count(*) FROM charges c
        LEFT JOIN (SELECT charge_id, sum(paid_amount) AS total FROM payments GROUP BY 1) p
               ON p.charge_id = c.id
        WHERE c.status IN ('paid', 'partially_paid')
              <> (coalesce(p.total, 0) > 0)
           OR (c.status = 'paid') <> (coalesce(p.total, 0) >= c.amount)
        """,
        )
        == 0
    )
