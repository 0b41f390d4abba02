"""The Overview's figures, from the real database, and the page through AppTest.

One ledger covers every case the definitions care about: a charge in each status and in
each aging bucket, a partial payment, an overpayment, a canceled charge, a payment and a
notice on each side of midnight in São Paulo.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from billing.charges import overview
from billing.core.formatting import brl_short, month_br, percent_br
from billing.imports.service import import_file
from pages._charts import bar_chart
from tests.support.actors import OPERATOR, signed_in_page
from tests.support.debtor_files import VALID_CPFS
from tests.support.ledger import TODAY, TZ, load_ledger

PAGE = Path(__file__).resolve().parents[2] / "pages" / "0_Overview.py"


@pytest.fixture()
def ledger(db: Engine) -> Engine:
    load_ledger(db)
    return db


def test_ledger_is_as_described(ledger: Engine) -> None:
    with ledger.connect() as conn:
        statuses = dict(conn.execute(text("SELECT debt_id, status FROM charges ORDER BY id")).all())
    assert statuses == {
        "current": "issued",
        "late-14": "issued",
        "partial": "partially_paid",
        "late-75": "issued",
        "late-157": "issued",
        "overpaid": "paid",
        "canceled": "canceled",
        "pending": "pending",
    }


def test_kpis(ledger: Engine) -> None:
    totals = overview.charge_totals(ledger, today=TODAY)
    assert overview.kpis(totals) == {
        "charges": 8,
        # pending 50 + issued 100 + 200 + 400 + 500 + partially paid 300 - 120
        "outstanding": Decimal("1430.00"),
        # late-14, partial (what is left of it), late-75 and late-157; not the pending one
        "overdue_amount": Decimal("1280.00"),
        "overdue_count": 4,
    }


@pytest.mark.parametrize(
    ("first", "last", "charges", "due", "received", "rate"),
    [
        # June: current 100, late-14 200, overpaid 600 (counted as 600), pending 50.
        (date(2024, 6, 1), date(2024, 6, 1), 4, "950.00", "600.00", "63,2%"),
        # May to June adds partial: 300 due, 120 received.
        (date(2024, 5, 1), date(2024, 6, 30), 5, "1250.00", "720.00", "57,6%"),
        # A day in the month stands for the month.
        (date(2024, 1, 10), date(2024, 1, 10), 1, "500.00", "0.00", "0,0%"),
        (date(2023, 1, 1), date(2023, 12, 1), 0, "0.00", "0.00", "—"),
    ],
)
def test_collection_rate(
    ledger: Engine,
    first: date,
    last: date,
    charges: int,
    due: str,
    received: str,
    rate: str,
) -> None:
    totals = overview.charge_totals(ledger, today=TODAY)
    result = overview.collection_rate(totals, first_month=first, last_month=last)
    assert result["charges"] == charges
    assert (result["due"], result["received"]) == (Decimal(due), Decimal(received))
    assert percent_br(result["rate"]) == rate


def test_aging_buckets(ledger: Engine) -> None:
    frame = overview.aging(overview.charge_totals(ledger, today=TODAY))
    assert list(frame["bucket"]) == list(overview.AGING_BUCKETS)
    assert list(frame["charges"]) == [1, 1, 1, 1, 1]
    assert list(frame["outstanding"]) == [100.0, 200.0, 180.0, 400.0, 500.0]
    assert frame["hover"][2] == "31-60 days: R$ 180,00 (1 charge)"
    # The first bucket is not late: labelled for what it is, and marked apart.
    assert frame["bucket"][0] == "Not yet due"
    assert list(frame["late"]) == [False, True, True, True, True]


def test_aging_bucket_edges(db: Engine) -> None:
    """30 days late is 1-30, 31 is 31-60, 90 is 61-90, 91 is over 90; due today is current."""
    import_file(
        actor=OPERATOR,
        engine=db,
        data=(
            "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
            f"A,{VALID_CPFS[0]},a@example.com,1.00,2024-06-15,d0\n"
            f"A,{VALID_CPFS[0]},a@example.com,2.00,2024-05-16,d30\n"
            f"A,{VALID_CPFS[0]},a@example.com,3.00,2024-05-15,d31\n"
            f"A,{VALID_CPFS[0]},a@example.com,4.00,2024-03-17,d90\n"
            f"A,{VALID_CPFS[0]},a@example.com,5.00,2024-03-16,d91\n"
        ).encode(),
        file_name="edges.csv",
        lenient_documents=False,
    )
    frame = overview.aging(overview.charge_totals(db, today=TODAY))
    assert list(frame["outstanding"]) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_charts_data(ledger: Engine) -> None:
    totals = overview.charge_totals(ledger, today=TODAY)

    by_status = overview.charges_by_status(totals)
    assert list(by_status["status"]) == list(overview.STATUSES)
    assert list(by_status["charges"]) == [1, 4, 0, 1, 1, 1]  # none registered
    assert by_status["hover"][1] == "Issued: 4 charges, R$ 1.200,00"

    by_month = overview.amounts_by_due_month(totals)
    assert list(by_month["month"].unique()) == ["jan/2024", "abr/2024", "mai/2024", "jun/2024"]
    june = by_month[by_month["month"] == "jun/2024"].set_index("status")["amount"].to_dict()
    assert june == {"pending": 50.0, "issued": 300.0, "paid": 600.0, "canceled": 700.0}

    assert overview.due_months(totals) == [date(2024, m, 1) for m in (1, 4, 5, 6)]


def test_bar_chart_is_in_pt_br(ledger: Engine) -> None:
    totals = overview.charge_totals(ledger, today=TODAY)
    monthly = bar_chart(
        overview.amounts_by_due_month(totals), x="month", y="amount", color="label", money=True
    )
    assert monthly.layout.separators == ",."  # 1.234,56
    assert monthly.layout.yaxis.tickprefix == "R$ "
    assert monthly.layout.showlegend  # the statuses stacked in each month
    assert monthly.data[0].hovertemplate == "%{customdata[0]}<extra></extra>"

    status = bar_chart(
        overview.charges_by_status(totals), x="charges", y="label", color="label", horizontal=True
    )
    assert not status.layout.showlegend  # the bars already say which status they are

    # One day of imports is drawn as one day in a week, not stretched over the chart.
    imports = overview.activity(ledger, today=TODAY, timezone=TZ)["imports"]
    axis = bar_chart(imports, x="day", y="rows").layout.xaxis
    assert (axis.type, axis.tickformat, axis.dtick) == ("date", "%d/%m/%Y", 86_400_000)
    first, last = (date.fromisoformat(str(end)[:10]) for end in axis.range)
    assert (last - first).days == 7


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2024, 6, 15), date(2024, 6, 1)),  # this month has charges
        (date(2024, 3, 10), date(2024, 1, 1)),  # the latest month before it that has
        (date(2026, 1, 1), date(2024, 6, 1)),
        (date(2023, 5, 1), date(2024, 1, 1)),  # nothing before: the first month after
    ],
)
def test_default_month(today: date, expected: date) -> None:
    months = [date(2024, m, 1) for m in (1, 4, 5, 6)]
    assert overview.default_month(months, today) == expected
    assert overview.default_month([], today) is None


def test_activity(ledger: Engine) -> None:
    activity = overview.activity(ledger, today=TODAY, timezone=TZ)
    # Only the 650.00 of June 12th: 23:30 on May 31st in São Paulo is still May.
    assert activity["received"] == {"payments": 1, "amount": Decimal("650.00")}
    notices = activity["notices"]
    assert list(notices["day"]) == [date(2024, 6, 14)]
    assert list(notices["sent"]) == [3]
    assert notices["hover"][0] == "14/06/2024: 3 notices sent"
    imports = activity["imports"]
    assert (list(imports["files"]), list(imports["rows"])) == ([1], [7])
    assert imports["hover"][0].endswith(": 7 charges imported from 1 file")


def test_no_charges(db: Engine) -> None:
    totals = overview.charge_totals(db, today=TODAY)
    assert totals == []
    assert overview.kpis(totals)["outstanding"] == Decimal("0.00")
    assert list(overview.aging(totals)["charges"]) == [0] * 5
    activity = overview.activity(db, today=TODAY, timezone=TZ)
    assert activity["received"] == {"payments": 0, "amount": Decimal("0")}
    assert activity["notices"].empty and activity["imports"].empty


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2024, 1, 31), "jan/2024"),
        (date(2024, 2, 1), "fev/2024"),
        (date(2023, 9, 1), "set/2023"),
        (date(2023, 12, 1), "dez/2023"),
    ],
)
def test_month_br(value: date, expected: str) -> None:
    assert month_br(value) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (Decimal("0.6315789"), "63,2%"),
        (Decimal("1"), "100,0%"),
        (Decimal("0.00049"), "0,0%"),
        (Decimal("1.05"), "105,0%"),
        (None, "—"),
    ],
)
def test_percent_br(fraction: Decimal | None, expected: str) -> None:
    assert percent_br(fraction) == expected


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("999999.99", "R$ 999.999,99"),
        ("1000000", "R$ 1,00 mi"),
        ("473856879.95", "R$ 473,86 mi"),
        ("6952410470.62", "R$ 6,95 bi"),
        ("-2500000", "-R$ 2,50 mi"),
    ],
)
def test_brl_short(amount: str, expected: str) -> None:
    assert brl_short(Decimal(amount)) == expected


# --- the page ---------------------------------------------------------------------------


def overview_page() -> AppTest:
    st.cache_data.clear()  # the page caches for 30 s, across AppTest runs of this process
    return signed_in_page(PAGE)


def test_page_tells_a_new_operator_where_to_start(dashboard_db: Engine) -> None:
    at = overview_page().run()
    assert not at.exception
    assert at.info[0].value == "No charges yet — import a debtor file on the Upload page."
    assert not at.metric


def test_page_shows_kpis_and_charts(dashboard_db: Engine) -> None:
    load_ledger(dashboard_db)
    at = overview_page().run()
    assert not at.exception
    # The page's today is the real one, long after every due date of the ledger: all
    # issued and partially paid charges are late, and nothing was received this month.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Outstanding"] == "R$ 1.430,00"
    assert metrics["Overdue"] == "R$ 1.380,00"
    assert metrics["Overdue charges"] == "5"
    assert metrics["Received this month"] == "R$ 0,00"
    assert metrics["Collection rate"] == "63,2%"  # opens on the latest month: jun/2024
    assert metrics["Issued"] == "4" and metrics["Pending (no boleto yet)"] == "1"
    assert "charges due in jun/2024" in at.caption[1].value

    charts = at.get("plotly_chart")
    assert len(charts) == 4  # the notices of the ledger are older than 90 days
    assert "No notice sent yet" in at.info[0].value
    monthly = json.loads(charts[0].proto.spec)
    assert monthly["layout"]["separators"] == ",."
    assert {x for trace in monthly["data"] for x in trace["x"]} == {
        "jan/2024",
        "abr/2024",
        "mai/2024",
        "jun/2024",
    }

    at.select_slider[0].set_range(date(2024, 5, 1), date(2024, 6, 1)).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Collection rate"] == "57,6%"
    assert "charges due in mai/2024 to jun/2024" in at.caption[1].value
