"""Send now shows its progress as it goes, and the Notifications figures agree with each
other and with what was just done: a real PostgreSQL, a real SMTP server, AppTest."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.core.settings import get_settings
from billing.notices.dispatch import CycleProgress, run_cycle, send_due_notices
from billing.notices.planning import notice_counts, plan_notices, queue_parts
from db.engine import get_engine
from tests.support.actors import OPERATOR, signed_in_page
from tests.support.app_test import button
from tests.support.notices import create_charges, notice_settings
from tests.support.smtp_server import SmtpTestServer

PAGE = Path(__file__).resolve().parents[2] / "pages" / "4_Notifications.py"
TODAY = date(2040, 3, 10)
ONLY_ISSUED = {"notice_reminder_days": 0, "notice_on_due_date": False, "notice_overdue_days": 0}


def charges(db: Engine, count: int) -> None:
    create_charges(db, {f"n{i:03d}": TODAY + timedelta(days=10) for i in range(count)})


def test_a_cycle_tells_its_progress_as_it_goes(db: Engine, smtp: SmtpTestServer) -> None:
    charges(db, 120)
    heard: list[CycleProgress] = []
    result = run_cycle(
        db,
        actor=OPERATOR,
        settings=notice_settings(smtp, **ONLY_ISSUED),
        today=TODAY,
        progress=heard.append,
    )
    assert result.sent == 120
    assert heard[0].stage == "issuing"
    sending = [p for p in heard if p.stage == "sending"]
    assert {p.due for p in sending} == {120}
    handled = [p.handled for p in sending]
    assert handled[0] == 0 and handled[-1] == 120
    assert handled == sorted(handled)
    assert len([n for n in handled if 0 < n < 120]) >= 2  # told along the way, not at the end


@pytest.fixture()
def page_env(
    dashboard_db: Engine, smtp: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """The page's settings from the environment: the test SMTP server, issued notices only."""
    for name, value in {
        **smtp.settings_env(),
        "MAIL_FROM": "Cobrança <cobranca@fundo.example>",
        "NOTICE_REMINDER_DAYS": "0",
        "NOTICE_ON_DUE_DATE": "false",
        "NOTICE_OVERDUE_DAYS": "0",
        "MAIL_MAX_ATTEMPTS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    st.cache_data.clear()  # once, before: the test is about what the cache does next
    yield dashboard_db
    st.cache_data.clear()
    get_engine().dispose()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def queue_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Queued now:"))


def test_send_now_draws_its_progress_and_the_figures_agree(
    page_env: Engine, smtp: SmtpTestServer
) -> None:
    charges(page_env, 60)
    smtp.fail_transiently("n000@example.com")  # one notice to be tried again later
    at = signed_in_page(PAGE).run()
    assert not at.exception

    button(at, "Send now").click().run()
    assert not at.exception, at.exception
    (progress,) = at.get("progress")
    assert progress.proto.value == 100
    assert progress.proto.text == "60 of 60 notices done (sent, failed or skipped)"
    (status,) = at.status
    assert (status.state, status.label[:8]) == ("complete", "Done in ")
    assert (
        "60 new notices added to the queue; 59 sent, 0 failed, 1 to retry later"
        in at.success[0].value
    )
    # The queue is what is left now, and says what it is made of.
    assert metrics(at)["Queued"] == "1"
    assert metrics(at)["Sent"] == "59"
    assert queue_caption(at) == (
        "Queued now: 0 due now, 0 being sent, 1 to try again later, 0 waiting for the mail server."
    )

    # A cycle that adds nothing: the message says none was added, the queue still holds
    # the one to retry, and both say so in words that cannot be mistaken for each other.
    button(at, "Send now").click().run()
    assert not at.exception
    assert "0 new notices added to the queue; 0 sent" in at.success[0].value
    assert metrics(at)["Queued"] == "1"
    assert "1 to try again later" in queue_caption(at)


def test_a_colleagues_view_shows_a_send_at_once(page_env: Engine, smtp: SmtpTestServer) -> None:
    charges(page_env, 3)
    plan_notices(page_env, today=TODAY, settings=notice_settings(smtp, **ONLY_ISSUED))
    before = signed_in_page(PAGE).run()
    assert (metrics(before)["Queued"], metrics(before)["Sent"]) == ("3", "0")
    assert queue_caption(before).startswith("Queued now: 3 due now")

    # The worker sends them, outside this page: no cache is cleared.
    send_due_notices(page_env, settings=notice_settings(smtp, **ONLY_ISSUED), today=TODAY)
    after = signed_in_page(PAGE).run()
    assert (metrics(after)["Queued"], metrics(after)["Sent"]) == ("0", "3")
    before.run()
    assert (metrics(before)["Queued"], metrics(before)["Sent"]) == ("0", "3")


def test_the_queue_parts_add_up_to_queued_and_sending(db: Engine, smtp: SmtpTestServer) -> None:
    charges(db, 4)
    settings = notice_settings(smtp, **ONLY_ISSUED)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_transiently("n001@example.com")
    smtp.fail_transiently("n002@example.com")
    send_due_notices(db, settings=settings, today=TODAY)
    parts, counts = queue_parts(db), notice_counts(db)
    assert parts == {"due": 0, "sending": 0, "later": 2, "waiting": 0}
    assert sum(parts.values()) == counts["queued"] + counts["sending"]
