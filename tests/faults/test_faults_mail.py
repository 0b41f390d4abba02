"""Bad days for e-mail: the mail server down for a while, then back.

`python -m billing dispatch --once` runs as a real process against the test database; the
mail server is a real SMTP server in this process, started late on the port the sender
was told to use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billing.notices.planning import notice_counts
from db.notices import WAITING_FOR_MAIL_SERVER
from tests.support.actors import VIEWER, signed_in_page
from tests.support.network import free_port
from tests.support.notices import create_charges
from tests.support.smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow  # waits for a mail server brought back up

FAR_DUE = date(2040, 6, 1)
PAGES = Path(__file__).resolve().parents[2] / "pages"
RETRY_SECONDS = 6


def dispatch(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "billing", "dispatch", "--once", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def mail_env(app_env: dict[str, str], port: int) -> dict[str, str]:
    return dict(
        app_env,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_SECURITY="none",
        SMTP_TIMEOUT_SECONDS="5",
        MAIL_FROM="Cobrança <cobranca@fundo.example>",
        MAIL_SERVER_RETRY_SECONDS=str(RETRY_SECONDS),
        NOTICE_REMINDER_DAYS="0",
        NOTICE_ON_DUE_DATE="false",
        NOTICE_OVERDUE_DAYS="0",
    )


def attempts_and_errors(db: Engine) -> set[tuple[int, str]]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT attempts, last_error FROM notices"))
        return {(attempts, error.split(":")[0] + ":") for attempts, error in rows}


def test_notices_wait_for_a_mail_server_that_is_down_then_go_once(
    db: Engine, dashboard_db: Engine, app_env: dict[str, str]
) -> None:
    create_charges(db, {f"m{i:03d}": FAR_DUE for i in range(30)})
    port = free_port()  # nothing listens there yet
    env = mail_env(app_env, port)

    down = dispatch(env)
    waiting_since = time.monotonic()
    assert down["sent"] == 0 and down["queued"] == 30
    assert "Cannot connect to the mail server" in down["error"]
    assert down["waiting"] == 30
    # Waiting, not failing: no attempt counted, the reason kept, visible apart.
    assert notice_counts(db)["queued"] == 30
    assert attempts_and_errors(db) == {(0, WAITING_FOR_MAIL_SERVER.rstrip(" "))}

    page = signed_in_page(PAGES / "4_Notifications.py", VIEWER).run()
    assert not page.exception
    metrics = {metric.label: metric.value for metric in page.metric}
    assert metrics["Waiting for the mail server"] == "30"
    assert "30 notices are waiting for the mail server" in page.warning[0].value

    # Still down when tried again at once: nothing is tried before the wait is over.
    again = dispatch(env)
    assert again["sent"] == 0 and again["error"] is None and again["waiting"] == 0

    with SmtpTestServer() as late:
        late.stop()
        late.port = port
        late.start()
        time.sleep(max(0.0, waiting_since + RETRY_SECONDS + 0.5 - time.monotonic()))
        back = dispatch(env)
        assert back["sent"] == 30 and back["error"] is None
        counts = late.message_id_counts()
    assert len(counts) == 30 and set(counts.values()) == {1}  # none twice
    assert notice_counts(db)["sent"] == 30

    page = signed_in_page(PAGES / "4_Notifications.py", VIEWER)
    page.run()
    from streamlit import cache_data

    cache_data.clear()
    page.run()
    assert "Waiting for the mail server" not in {metric.label for metric in page.metric}
