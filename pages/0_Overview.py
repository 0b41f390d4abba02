"""Overview: what is owed, what is late, what came in, and the work of the last days."""

from datetime import date

import streamlit as st

from billing.charges import overview
from billing.core.formatting import brl, brl_short, date_br, month_br, percent_br
from billing.core.settings import get_settings
from billing.notices.planning import today_in
from pages._charts import bar_chart
from pages._session import current_actor
from pages._shared import operator_errors, read_engine

current_actor()  # renders nothing for a visitor who has not signed in

count = overview.count_br


@st.cache_data(ttl=30, show_spinner="Adding up the charges…")
def _charge_totals(today: date) -> list[dict]:
    return overview.charge_totals(read_engine(), today=today)


@st.cache_data(ttl=30, show_spinner=False)
def _activity(today: date) -> dict:
    return overview.activity(read_engine(), today=today, timezone=get_settings().timezone)


today = today_in()
st.title("Overview")
st.caption(f"Figures as of {date_br(today)}, refreshed every 30 seconds.")

totals = activity = None
with operator_errors():
    totals = _charge_totals(today)
    activity = _activity(today)
if activity is None:
    st.stop()  # the error is already on the screen
if not totals:
    st.info("No charges yet — import a debtor file on the Upload page.")
    st.stop()

kpi_row = st.container()  # filled once the period below is known
months = overview.due_months(totals)
first = last = overview.default_month(months, today)
if len(months) > 1:
    first, last = st.select_slider(
        "Due months for the collection rate",
        options=months,
        value=(first, last),
        format_func=month_br,
    )
rate = overview.collection_rate(totals, first_month=first, last_month=last)
period = month_br(first) + ("" if first == last else f" to {month_br(last)}")
st.caption(
    f"Collection rate: of the {count(rate['charges'])} charges due in {period} (canceled "
    f"ones left out), {brl(rate['received'])} was received of {brl(rate['due'])} due."
)

figures, received = overview.kpis(totals), activity["received"]
columns = kpi_row.columns(5)
columns[0].metric(
    "Outstanding",
    brl_short(figures["outstanding"]),
    help=f"{brl(figures['outstanding'])} still owed on pending, issued and partially paid "
    "charges, less what was received on them.",
)
columns[1].metric(
    "Overdue",
    brl_short(figures["overdue_amount"]),
    help=f"{brl(figures['overdue_amount'])} still owed on issued or partially paid charges "
    "due before today.",
)
columns[2].metric("Overdue charges", count(figures["overdue_count"]))
columns[3].metric(
    "Received this month",
    brl_short(received["amount"]),
    help=f"{brl(received['amount'])} in {count(received['payments'])} payments recorded "
    "since the 1st, on any charge.",
)
columns[4].metric(
    "Collection rate",
    percent_br(rate["rate"]),
    help="Received on the charges due in the months chosen below ÷ their amount due.",
)
by_status = overview.charges_by_status(totals)
for column, row in zip(kpi_row.columns(len(by_status)), by_status.itertuples(), strict=True):
    column.metric(row.label, count(row.charges))

st.subheader("Amount due per month")
by_month = overview.amounts_by_due_month(totals)
st.plotly_chart(bar_chart(by_month, x="month", y="amount", color="label", money=True))

left, right = st.columns(2)
left.subheader("Overdue by age")
aging = overview.aging(totals)
if aging["charges"].sum() == 0:
    left.info("No boleto is out yet — press Send now on the Notifications page to issue them.")
else:
    left.plotly_chart(bar_chart(aging, x="bucket", y="outstanding", color="bucket", money=True))
right.subheader("Charges by status")
right.plotly_chart(bar_chart(by_status, x="charges", y="label", color="label", horizontal=True))

left, right = st.columns(2)
left.subheader(f"Notices sent per day (last {overview.NOTICE_DAYS} days)")
if activity["notices"].empty:
    left.info(
        "No notice sent yet — notices go out when boletos are issued; press Send now on "
        "the Notifications page or let the daily worker run."
    )
else:
    left.plotly_chart(bar_chart(activity["notices"], x="day", y="sent"))
right.subheader("Charges imported per day")
right.plotly_chart(bar_chart(activity["imports"], x="day", y="rows"))
