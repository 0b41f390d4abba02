"""The Overview as an operator reads it (AppTest, the real database): headline figures
whole, the next view after an action showing it, the aging chart and the collection rate
saying what they count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.accounts.access import WEBHOOK_ACTOR
from billing.core.formatting import month_br
from billing.imports.service import import_file
from billing.notices.planning import today_in
from billing.payments.service import cancel_charge, record_payment
from tests.support.actors import OPERATOR, operator, signed_in_page
from tests.support.database import scalar
from tests.support.debtor_files import HEADER, VALID_CPFS

PAGE = Path(__file__).resolve().parents[2] / "pages" / "0_Overview.py"
TZ = "America/Sao_Paulo"


@pytest.fixture()
def overview_db(dashboard_db: Engine) -> Iterator[Engine]:
    st.cache_data.clear()  # once, before: the test is about what the cache does next
    yield dashboard_db
    st.cache_data.clear()


def import_charges(db: Engine, rows: list[tuple[str, str, date]]) -> None:
    """(debtId, amount, due date) rows through the real import, which issues boletos."""
    lines = [HEADER] + [
        f"Devedor {n},{VALID_CPFS[n % len(VALID_CPFS)]},d{n}@example.com,{amount},{due},{debt}"
        for n, (debt, amount, due) in enumerate(rows)
    ]
    result = import_file(
        actor=OPERATOR,
        engine=db,
        data=("\n".join(lines) + "\n").encode(),
        file_name=f"{rows[0][0]}.csv",
        lenient_documents=False,
    )
    assert result.status == "done", result.error


def pay(db: Engine, debt_id: str, amount: str) -> None:
    record_payment(
        db,
        actor=WEBHOOK_ACTOR,
        debt_id=debt_id,
        paid_at=f"{today_in().isoformat()} 10:00:00",
        paid_amount=amount,
        paid_by="Devedor",
        source="webhook",
        payload={},
        timezone=TZ,
    )


def overview() -> AppTest:
    """The page in a new tab: a new session, the process's cache as it is."""
    at = signed_in_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def helps(at: AppTest) -> dict[str, str]:
    return {m.label: m.help for m in at.metric}


def test_headline_figures_are_short_with_the_exact_amount_in_their_help(
    overview_db: Engine,
) -> None:
    late = today_in() - timedelta(days=40)
    import_charges(
        overview_db,
        [
            ("big-1", "79783744.85", late),
            ("big-2", "79783744.85", late),
            ("big-3", "79783744.85", late),
        ],
    )
    at = overview()
    assert metrics(at)["Outstanding"] == "R$ 239,35 mi"
    assert "R$ 239.351.234,55" in helps(at)["Outstanding"]
    assert metrics(at)["Overdue"] == "R$ 239,35 mi"
    assert "R$ 239.351.234,55" in helps(at)["Overdue"]
    # Three figures a row, not five: at 1280 px a fifth of the page cut them short.
    assert row_of(at, "Outstanding") == ["Outstanding", "Overdue", "Overdue charges"]
    assert row_of(at, "Received this month")[:2] == ["Received this month", "Collection rate"]


def row_of(at: AppTest, label: str) -> list[str]:
    """The labels of the metrics in the row of columns that holds metric `label`."""
    for row in at.main.children.values():
        if row.type != "flex_container":
            continue
        labels = [m.label for column in row.children.values() for m in column.get("metric")]
        if label in labels:
            return labels
    raise AssertionError(f"no row of columns holds {label!r}")


def test_the_next_view_shows_a_payment_a_cancellation_and_an_import_at_once(
    overview_db: Engine,
) -> None:
    today = today_in()
    late = today - timedelta(days=40)
    import_charges(overview_db, [("old-1", "200.00", late), ("old-2", "300.00", late)])
    before = overview()
    assert metrics(before)["Received this month"] == "R$ 0,00"
    assert metrics(before)["Overdue charges"] == "2"
    assert metrics(before)["Outstanding"] == "R$ 500,00"

    pay(overview_db, "old-1", "200.00")
    after_payment = overview()  # no cache cleared: the page must see the change itself
    assert metrics(after_payment)["Received this month"] == "R$ 200,00"
    assert metrics(after_payment)["Overdue charges"] == "1"
    assert metrics(after_payment)["Paid"] == "1"

    charge_id = scalar(overview_db, "SELECT id FROM charges WHERE debt_id = 'old-2'")
    cancel_charge(overview_db, charge_id=charge_id, reason="Renegotiated", actor=operator("ana"))
    after_cancel = overview()
    assert metrics(after_cancel)["Outstanding"] == "R$ 0,00"
    assert metrics(after_cancel)["Canceled"] == "1"

    import_charges(overview_db, [("new-1", "75.00", today + timedelta(days=10))])
    after_import = overview()
    assert metrics(after_import)["Outstanding"] == "R$ 75,00"
    assert metrics(after_import)["Issued"] == "1"

    # The same tab, run again (as a widget does), sees it too.
    pay(overview_db, "new-1", "75.00")
    before.run()
    assert metrics(before)["Received this month"] == "R$ 275,00"


def test_aging_shows_what_is_not_yet_due_apart(overview_db: Engine) -> None:
    today = today_in()
    import_charges(
        overview_db,
        [
            ("ahead", "1000.00", today + timedelta(days=20)),
            ("late", "100.00", today - timedelta(days=10)),
        ],
    )
    at = overview()
    aging_chart = json.loads(at.get("plotly_chart")[1].proto.spec)
    buckets = {x for trace in aging_chart["data"] for x in trace["x"]}
    # The bigger amount, not yet due, is not a bar of "Overdue by age".
    assert buckets == {"1-30 days", "31-60 days", "61-90 days", "Over 90 days"}
    captions = [c.value for c in at.caption]
    assert "Not yet due, so not in the chart: R$ 1.000,00 on 1 charge." in captions


def test_aging_says_when_nothing_is_overdue(overview_db: Engine) -> None:
    import_charges(overview_db, [("ahead", "1000.00", today_in() + timedelta(days=20))])
    at = overview()
    assert "No boleto is overdue." in [i.value for i in at.info]


def test_a_collection_rate_of_zero_after_money_came_in_says_its_period(
    overview_db: Engine,
) -> None:
    today = today_in()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    import_charges(
        overview_db,
        [("last-month", "200.00", last_month), ("this-month", "300.00", this_month)],
    )
    pay(overview_db, "last-month", "200.00")  # money in today, for last month's charge
    at = overview()
    assert metrics(at)["Received this month"] == "R$ 200,00"
    assert metrics(at)["Collection rate"] == "0,0%"
    assert f"of the 1 charge due in {month_br(this_month)}" in [c.value for c in at.caption]
    assert "not in the month the money came in" in helps(at)["Collection rate"]


def test_a_period_with_nothing_due_says_so_instead_of_a_rate(overview_db: Engine) -> None:
    today = today_in()
    this_month = today.replace(day=1)
    earlier = (this_month - timedelta(days=40)).replace(day=1)
    import_charges(overview_db, [("earlier", "200.00", earlier), ("now", "300.00", this_month)])
    charge_id = scalar(overview_db, "SELECT id FROM charges WHERE debt_id = 'now'")
    cancel_charge(overview_db, charge_id=charge_id, reason="Renegotiated", actor=operator("ana"))
    at = overview()
    assert metrics(at)["Collection rate"] == "—"
    assert (
        f"Nothing falls due in {month_br(this_month)} (canceled charges left out): "
        "no rate to show." in [c.value for c in at.caption]
    )
