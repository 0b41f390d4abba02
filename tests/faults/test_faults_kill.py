"""kill -9 of the payments API while the bank's notifications pour in: nothing partial,
nothing doubled, and the bank's retries of what got no answer complete the work.

The API runs as a real process (`python -m billing api`); payments are posted over HTTP
from several threads; the process is killed with SIGKILL once some are recorded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine

from billing.entrypoints.api import signature
from tests.support.api_server import CLI_SECRET, count_payments, payment_body
from tests.support.database import scalar
from tests.support.debtor_files import import_charges
from tests.support.network import free_port

pytestmark = pytest.mark.slow  # kills a served API mid-webhook (about 40 s)

CHARGES = 160


def start_api(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "api", "--host", "127.0.0.1"],
        env=env | {"API_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while True:
            try:
                client.get("/health")
                return process
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"the API did not start:\n{process.communicate()[0]}")
                time.sleep(0.2)


def post_all(port: int, debt_ids: list[str]) -> dict[str, int]:
    """Post one payment per charge; the status each got (0: no answer, as when the
    process died under it)."""

    def post(debt_id: str) -> tuple[str, int]:
        body = payment_body(debt_id, amount="100.00")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                answer = client.post(
                    "/webhooks/payments",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Signature": signature(body, CLI_SECRET),
                    },
                )
                return debt_id, answer.status_code
        except httpx.TransportError:
            return debt_id, 0

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(post, debt_ids))


def test_a_payments_api_killed_mid_webhook_records_each_payment_once(
    db: Engine, app_env: dict[str, str]
) -> None:
    debt_ids = [f"K-{i:04d}" for i in range(CHARGES)]
    import_charges(db, *((debt_id, "100.00") for debt_id in debt_ids))
    env = app_env | {"WEBHOOK_SECRET": CLI_SECRET, "API_TOKEN": ""}
    port = free_port()

    api = start_api(env, port)
    with ThreadPoolExecutor(1) as background:
        posting = background.submit(post_all, port, debt_ids)
        deadline = time.monotonic() + 60
        while count_payments(db) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        api.send_signal(signal.SIGKILL)
        api.wait(10)
        first = posting.result(timeout=120)
    recorded_at_kill = count_payments(db)
    assert 30 <= recorded_at_kill < CHARGES, "the kill did not land mid-way"
    # Every payment recorded is whole: its charge paid with it, in the same transaction.
    assert scalar(db, "SELECT count(*) FROM charges WHERE status = 'paid'") == recorded_at_kill
    # Whatever got a 2xx answer is recorded.
    acknowledged = {debt_id for debt_id, status in first.items() if 200 <= status < 300}
    assert len(acknowledged) <= recorded_at_kill

    # The bank retries everything it got no 2xx for (here: everything, to be harsh).
    api = start_api(env, port)
    try:
        second = post_all(port, debt_ids)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(20)
    assert set(second.values()) <= {200, 201}, second
    assert count_payments(db) == CHARGES  # each once
    assert scalar(db, "SELECT count(*) FROM charges WHERE status = 'paid'") == CHARGES
    assert scalar(db, "SELECT count(DISTINCT charge_id) FROM payments") == CHARGES
