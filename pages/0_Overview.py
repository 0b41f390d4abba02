"""Overview: what is owed, what is late, what came in, and the work of the last days."""

from datetime import date
from decimal import Decimal

import streamlit as st

from billing.charges import overview
from billing.core.formatting import brl, brl_short, date_br, month_br, percent_br
from billing.core.i18n import _, current_language, ngettext
from billing.core.settings import get_settings
from billing.notices.planning import today_in
from pages._charts import bar_chart
from pages._session import current_actor
from pages._shared import operator_errors, read_engine

current_actor()  # renders nothing for a visitor who has not signed in

count = overview.count_br


# Added up again whenever `version` (overview.figures_version, read at every run: a few
# index look-ups) moves: the view after a payment, an import, a cancellation or a send,
# by this operator or a colleague, shows it. The ttl only bounds how long an entry stays.
@st.cache_data(ttl=600, max_entries=50, show_spinner=_("Adding up the charges…"))
def _charge_totals(today: date, version: tuple) -> list[dict]:
    return overview.charge_totals(read_engine(), today=today)


@st.cache_data(ttl=600, max_entries=50, show_spinner=False)
def _activity(today: date, version: tuple, language: str) -> dict:
    """The activity with its hover sentences, in `language` (part of the key)."""
    return overview.activity(read_engine(), today=today, timezone=get_settings().timezone)


today = today_in()
st.title(_("Overview"))
st.caption(
    _("Figures as of {day}, up to date with every payment, import and action recorded.").format(
        day=date_br(today)
    )
)

totals = activity = None
with operator_errors():
    version = overview.figures_version(read_engine())
    totals = _charge_totals(today, version)
    activity = _activity(today, version, current_language())
if activity is None:
    st.stop()  # the error is already on the screen
if not totals:
    st.info(_("No charges yet — import a debtor file on the Upload page."))
    st.stop()

# Three figures a row: at 1280 px a fifth of the page cut "R$ 239,35 mi" to "R$ 239,…".
owed, collected = st.columns(3), st.columns(3)
months = overview.due_months(totals)
first = last = overview.default_month(months, today)
if len(months) > 1:
    first, last = collected[2].select_slider(
        _("Due months for the collection rate"),
        options=months,
        value=(first, last),
        format_func=month_br,
    )
rate = overview.collection_rate(totals, first_month=first, last_month=last)
period = (
    month_br(first)
    if first == last
    else _("{first} to {last}").format(first=month_br(first), last=month_br(last))
)

figures, received = overview.kpis(totals), activity["received"]
columns = [*owed, *collected]
columns[0].metric(
    _("Outstanding"),
    brl_short(figures["outstanding"]),
    help=_(
        "{amount} still owed on pending, issued and partially paid charges, less what was "
        "received on them."
    ).format(amount=brl(figures["outstanding"])),
)
columns[1].metric(
    _("Overdue"),
    brl_short(figures["overdue_amount"]),
    help=_("{amount} still owed on issued or partially paid charges due before today.").format(
        amount=brl(figures["overdue_amount"])
    ),
)
columns[2].metric(_("Overdue charges"), count(figures["overdue_count"]))
columns[3].metric(
    _("Received this month"),
    brl_short(received["amount"]),
    help=_("{amount} in {payments} payments recorded since the 1st, on any charge.").format(
        amount=brl(received["amount"]), payments=count(received["payments"])
    ),
)
columns[4].metric(
    _("Collection rate"),
    percent_br(rate["rate"]),
    help=_(
        "Of the {charges} charges due in {period} (canceled ones left out), {received} was "
        "received of {due} due. A payment counts in the month its charge falls due, not in "
        "the month the money came in."
    ).format(
        charges=count(rate["charges"]),
        period=period,
        received=brl(rate["received"]),
        due=brl(rate["due"]),
    ),
)
columns[4].caption(
    ngettext(
        "of the {count} charge due in {period}",
        "of the {count} charges due in {period}",
        rate["charges"],
    ).format(count=count(rate["charges"]), period=period)
    if rate["rate"] is not None
    else _("Nothing falls due in {period} (canceled charges left out): no rate to show.").format(
        period=period
    )
)
by_status = overview.charges_by_status(totals)
for start in range(0, len(by_status), 3):
    for column, row in zip(st.columns(3), by_status[start : start + 3].itertuples(), strict=False):
        column.metric(_(row.label), count(row.charges))

st.subheader(_("Amount due per month"))
by_month = overview.amounts_by_due_month(totals)
st.plotly_chart(bar_chart(by_month, x="month", y="amount", color="label", money=True))

left, right = st.columns(2)
left.subheader(_("Overdue by age"))
aging = overview.aging(totals)
late, ahead = aging[aging["late"]], aging[~aging["late"]].iloc[0]
if aging["charges"].sum() == 0:
    left.info(_("No boleto is out yet — press Send now on the Notifications page to issue them."))
elif late["charges"].sum() == 0:
    left.info(_("No boleto is overdue."))
else:
    left.plotly_chart(bar_chart(late, x="bucket", y="outstanding", color="bucket", money=True))
if ahead["charges"]:
    left.caption(
        ngettext(
            "Not yet due, so not in the chart: {amount} on {count} charge.",
            "Not yet due, so not in the chart: {amount} on {count} charges.",
            int(ahead["charges"]),
        ).format(amount=brl(Decimal(str(ahead["outstanding"]))), count=count(int(ahead["charges"])))
    )
right.subheader(_("Charges by status"))
right.plotly_chart(bar_chart(by_status, x="charges", y="label", color="label", horizontal=True))

left, right = st.columns(2)
left.subheader(_("Notices sent per day (last {days} days)").format(days=overview.NOTICE_DAYS))
if activity["notices"].empty:
    left.info(
        _(
            "No notice sent yet — notices go out when boletos are issued; press Send now on "
            "the Notifications page or let the daily worker run."
        )
    )
else:
    left.plotly_chart(bar_chart(activity["notices"], x="day", y="sent"))
right.subheader(_("Charges imported per day"))
right.plotly_chart(bar_chart(activity["imports"], x="day", y="rows"))
