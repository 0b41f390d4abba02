"""Charges: filter and page through every charge, export them, open one and act on it.

The filters live in the URL (a filtered view is a link to share); pages are keyset
pages chosen by the database, 50 rows at a time.
"""

from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.charges.browsing import (
    charge_page,
    charge_table,
    charge_totals,
    data_version,
    find_charge_id,
    has_charges,
    import_choices,
)
from billing.charges.export import charges_csv_file, export_file_name
from billing.core.filters import (
    PAGE_SIZE,
    SEARCH_IN,
    SORT_LABELS,
    STATUS_CHOICES,
    STATUS_LABELS,
    ChargeFilter,
)
from billing.core.formatting import brl, count_br
from billing.core.i18n import _
from billing.notices.planning import today_in
from pages._charge_view import open_charge
from pages._session import current_actor
from pages._shared import (
    engine,
    operator_errors,
    plain,
    read_engine,
    translated_headers,
    whole_number,
)

actor = current_actor()

st.title(_("Charges"))

if not has_charges(read_engine()):
    st.info(_("No charges yet: import a debtor file on the Upload page, then come back here."))
    st.stop()

today = today_in()
if "c_q" not in st.session_state:  # the page's first run: its widgets start from the link
    from_link, notes = ChargeFilter.from_query_params(st.query_params.to_dict())
    st.session_state.update(
        c_q=from_link.text,
        c_in=from_link.search_in,
        c_status=list(from_link.statuses),
        c_due_from=from_link.due_from,
        c_due_to=from_link.due_to,
        c_min=None if from_link.amount_min is None else float(from_link.amount_min),
        c_max=None if from_link.amount_max is None else float(from_link.amount_max),
        c_import=from_link.import_id,
        c_sort=(from_link.sort, from_link.descending),
        c_debtor=from_link.debtor_id,
        c_link_notes=notes,
        c_link_filter=from_link,
    )
    charge_param = st.query_params.get("charge", "").strip()
    st.session_state.c_open = whole_number(charge_param)
    if charge_param and st.session_state.c_open is None:
        notes.append(
            _("Ignored charge={value} from the link: expected a number.").format(
                value=repr(charge_param[:40])
            )
        )

link_notes = st.container()  # filled below, once the filter is known
imports = {row["id"]: row for row in import_choices(read_engine())}
search_column, in_column = st.columns([3, 1])
search_column.text_input(
    _("Search"),
    key="c_q",
    placeholder=_("Name, e-mail, CPF/CNPJ or debtId"),
    help=_(
        "Accents and case do not matter. Name words match their beginnings "
        "(“conc silva”); an e-mail, a CPF/CNPJ or a debtId matches by its beginning."
    ),
)
in_column.selectbox(
    _("Search in"), list(SEARCH_IN), format_func=lambda k: _(SEARCH_IN[k]), key="c_in"
)
columns = st.columns([2, 1, 1, 1, 1])
columns[0].multiselect(
    _("Status"), STATUS_CHOICES, format_func=lambda k: _(STATUS_LABELS[k]), key="c_status"
)
columns[1].date_input(_("Due from"), value=None, format="DD/MM/YYYY", key="c_due_from")
columns[2].date_input(_("Due until"), value=None, format="DD/MM/YYYY", key="c_due_to")
columns[3].number_input(_("Amount from (R$)"), min_value=0.0, value=None, step=100.0, key="c_min")
columns[4].number_input(_("Amount up to (R$)"), min_value=0.0, value=None, step=100.0, key="c_max")
import_column, sort_column = st.columns([3, 2])
if st.session_state.c_import not in (None, *imports):
    imports[st.session_state.c_import] = {"file_name": _("(not listed)")}
import_column.selectbox(
    _("Import file"),
    [None, *imports],
    format_func=lambda i: _("All files") if i is None else f"#{i} {imports[i]['file_name']}",
    key="c_import",
)
sort_column.selectbox(
    _("Order"), list(SORT_LABELS), format_func=lambda k: _(SORT_LABELS[k]), key="c_sort"
)


def _amount(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


state = st.session_state
charge_filter, notes = ChargeFilter(
    statuses=tuple(state.c_status),
    due_from=state.c_due_from,
    due_to=state.c_due_to,
    amount_min=_amount(state.c_min),
    amount_max=_amount(state.c_max),
    import_id=state.c_import,
    debtor_id=state.c_debtor,
    text=state.c_q,
    search_in=state.c_in,
    sort=state.c_sort[0],
    descending=state.c_sort[1],
).checked()
if charge_filter == state.c_link_filter:  # what the link said, until the operator changes it
    for note in state.c_link_notes:
        link_notes.warning(plain(note))
for note in notes:
    st.warning(plain(note))
if charge_filter.debtor_id is not None:
    st.info(_("Only the charges of debtor #{id}.").format(id=charge_filter.debtor_id))
    if st.button(_("Show every debtor's charges")):
        state.c_debtor = None
        st.rerun()

link = charge_filter.to_query_params()
if state.c_open is not None:
    link["charge"] = str(state.c_open)
if st.query_params.to_dict() != link:
    st.query_params.from_dict(link)

# Keyset pages: the cursors of the pages already seen, to go back; reset by a new filter.
if state.get("c_pages_of") != charge_filter:
    state.c_pages_of, state.c_cursors = charge_filter, [None]
    state.pop("c_table", None)  # a row selected in another list means nothing here


@st.cache_data(ttl=60, max_entries=200, show_spinner=False)
def _totals(charge_filter: ChargeFilter, today: date, version: tuple) -> tuple[int, Decimal]:
    """Counted once per filter until an import, a payment or an action changes the data:
    a sum over a million charges takes a few hundred milliseconds."""
    totals = charge_totals(read_engine(), charge_filter=charge_filter, today=today)
    return totals.count, totals.amount


def _export_button(count: int) -> None:
    """The filtered charges as CSV (operators): written, and audited, only when clicked."""
    current_engine = engine()
    st.download_button(
        (
            _("Download this charge (CSV)")
            if count == 1
            else _("Download these {count} charges (CSV)").format(count=count_br(count))
        ),
        data=lambda: charges_csv_file(
            current_engine, actor=actor, charge_filter=charge_filter, today=today
        ),
        file_name=export_file_name(charge_filter, today=today),
        mime="text/csv",
        on_click="ignore",
        help=_("Every filtered charge, whole CPF/CNPJ, amounts as plain decimals, ISO dates."),
    )


count, amount = _totals(charge_filter, today, data_version(read_engine()))
count_column, amount_column = st.columns(3)[:2]
count_column.metric(_("Charges"), count_br(count))
amount_column.metric(_("Total amount"), brl(amount))
page_number = len(state.c_cursors)
page = charge_page(
    read_engine(), charge_filter=charge_filter, today=today, after=state.c_cursors[-1]
)
if not page.rows:
    st.info(_("No charge matches these filters. Clear the search or widen the dates."))
else:
    event = st.dataframe(
        translated_headers(pd.DataFrame(charge_table(page.rows))),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="c_table",
    )
    selected = [page.rows[i]["id"] for i in event.selection.rows]
    if selected and selected[0] != state.get("c_selected"):
        state.c_selected = state.c_open = selected[0]
        st.rerun()
    state.c_selected = selected[0] if selected else None
    first = (page_number - 1) * PAGE_SIZE + 1
    previous, caption, following = st.columns([1, 4, 1])
    if previous.button(_("← Previous"), disabled=page_number == 1):
        state.c_cursors.pop()
        state.pop("c_table", None)
        st.rerun()
    caption.caption(
        _(
            "Page {page}: rows {first} to {last} of {count}. Select a row to open the charge."
        ).format(
            page=page_number,
            first=count_br(first),
            last=count_br(first + len(page.rows) - 1),
            count=count_br(count),
        )
    )
    if following.button(_("Next →"), disabled=page.next_cursor is None):
        state.c_cursors.append(page.next_cursor)
        state.pop("c_table", None)
        st.rerun()

    if actor.can(Permission.EXPORT):
        _export_button(count)

with st.form("open_charge", border=False):
    reference_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    reference = reference_column.text_input(_("Open a charge by its debtId or number"))
    if button_column.form_submit_button(_("Open")):
        with operator_errors():
            state.c_open = find_charge_id(read_engine(), reference)
            st.rerun()

if state.c_open is not None:
    open_charge(state.c_open, today=today)
