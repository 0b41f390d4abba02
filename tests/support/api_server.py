"""The HTTP API served by uvicorn in the test process, its secrets, and what its tests post."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import Engine

from billing.core.settings import Settings
from billing.entrypoints.api import create_app
from tests.support.database import scalar

# Secrets as strong as the API demands (32 bytes or more); tests only, never deployed.
SECRET = "test-webhook-secret-0123456789abcdef"
TOKEN = "test-api-token-0123456789abcdef-xyz"
CLI_SECRET = "cli-webhook-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def base_url(engine: Engine) -> Iterator[str]:
    """The API served by uvicorn in a thread, on a port the system picked."""
    app = create_app(
        settings=Settings(webhook_secret=SECRET, api_token=TOKEN, timezone="America/Sao_Paulo"),
        engine=engine,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def payment_body(
    debt_id: str = "8291", amount: str = "100000.00", paid_at: str = "2022-06-09 10:00:00"
) -> bytes:
    return (
        f'{{"debtId": "{debt_id}", "paidAt": "{paid_at}", '
        f'"paidAmount": {amount}, "paidBy": "John Doe"}}'
    ).encode()


def count_payments(db: Engine) -> int:
    return scalar(db, "SELECT count(*) FROM payments")
