"""Charges: filter and page through every charge, export them, open one and act on it.

The filters live in the URL (a filtered view is a link to share); pages are keyset
pages chosen by the database, 50 rows at a time.
"""

from dataclasses import replace
from datetime import date
from decimal import Decimal

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from billing.accounts.access import Permission
from billing.charges.browsing import (
    charge_page,
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
    parse_amount,
)
from billing.core.formatting import brl, count_br, date_br, decimal_br
from billing.core.i18n import _
from billing.notices.planning import today_in
from pages._charge_view import open_charge
from pages._session import current_actor
from pages._shared import (
    engine,
    operator_errors,
    plain,
    read_engine,
    whole_number,
)
from pages._tables import MISSING, charge_column_config, charge_frame, one_page_of_many

# What the date fields accept, wide enough for any due date; a link's date outside it
# is dropped with a note rather than breaking the field.
EARLIEST, LATEST = date(1990, 1, 1), date(2100, 12, 31)

actor = current_actor()

st.title(_("Charges"))

if not has_charges(read_engine()):
    st.info(_("No charges yet: import a debtor file on the Upload page, then come back here."))
    st.stop()


def _in_fields(day: date) -> bool:
    return EARLIEST <= day <= LATEST


today = today_in()
if "c_q" not in st.session_state:  # the page's first run: its widgets start from the link
    from_link, notes = ChargeFilter.from_query_params(st.query_params.to_dict())
    outside = [d for d in (from_link.due_from, from_link.due_to) if d and not _in_fields(d)]
    for day in outside:
        notes.append(
            _(
                "Ignored the due date {day} from the link: the fields go from {first} to {last}."
            ).format(day=date_br(day), first=EARLIEST.year, last=LATEST.year)
        )
    if outside:
        from_link, _notes = replace(
            from_link,
            due_from=from_link.due_from if from_link.due_from not in outside else None,
            due_to=from_link.due_to if from_link.due_to not in outside else None,
        ).checked()
    st.session_state.update(
        c_q=from_link.text,
        c_in=from_link.search_in,
        c_status=list(from_link.statuses),
        c_due_from=from_link.due_from,
        c_due_to=from_link.due_to,
        # As operators type them: 1.000,50 (a link's amount_min=1000.50 or 1.000,50 alike).
        c_min="" if from_link.amount_min is None else decimal_br(from_link.amount_min),
        c_max="" if from_link.amount_max is None else decimal_br(from_link.amount_max),
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
# Dates on a row of their own with the statuses: a date field shows dd/mm/aaaa whole at
# 1280 px only when it is given about a fifth of the page.
status_column, from_column, to_column = st.columns([2, 1, 1])
status_column.multiselect(
    _("Status"),
    STATUS_CHOICES,
    format_func=lambda k: _(STATUS_LABELS[k]),
    key="c_status",
    placeholder=_("All statuses"),
)
for column, label, key in (
    (from_column, _("Due from"), "c_due_from"),
    (to_column, _("Due until"), "c_due_to"),
):
    column.date_input(
        label,
        value=None,
        min_value=EARLIEST,
        max_value=LATEST,
        format="DD/MM/YYYY",
        key=key,
    )
min_column, max_column, import_column, sort_column = st.columns([1, 1, 2, 2])


def _amount_field(column: DeltaGenerator, label: str, key: str) -> Decimal | None:
    """A text field read the pt-BR way (1.000,50); what it cannot read is said under it,
    kept as typed, and filters nothing."""
    typed = column.text_input(
        label,
        key=key,
        placeholder="1.000,00",
        help=_("As on a boleto: a dot between thousands, a comma before the centavos (1.000,50)."),
    )
    if not typed.strip():
        return None
    amount = parse_amount(typed)
    if amount is None:
        column.error(
            _("“{typed}” is not an amount: type it like 1.000,50. Not applied.").format(
                typed=plain(typed)
            )
        )
    return amount


amount_min = _amount_field(min_column, _("Amount from (R$)"), "c_min")
amount_max = _amount_field(max_column, _("Amount up to (R$)"), "c_max")
if st.session_state.c_import not in (None, *imports):
    imports[st.session_state.c_import] = {"file_name": _("(not listed)")}
import_column.selectbox(
    _("Import file"),
    [None, *imports],
    format_func=lambda i: _("All files") if i is None else f"#{i} {imports[i]['file_name']}",
    key="c_import",
    placeholder=_("All files"),
)
sort_column.selectbox(
    _("Order"), list(SORT_LABELS), format_func=lambda k: _(SORT_LABELS[k]), key="c_sort"
)


state = st.session_state
charge_filter, notes = ChargeFilter(
    statuses=tuple(state.c_status),
    due_from=state.c_due_from,
    due_to=state.c_due_to,
    amount_min=amount_min,
    amount_max=amount_max,
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


def _export_buttons(count: int) -> None:
    """The filtered charges as CSV (operators), for Excel in Portuguese or plain: written,
    and audited with the form chosen, only when clicked."""
    current_engine = engine()
    excel_column, plain_column = st.columns(2)
    labels = {
        "excel": (
            _("Download this charge (Excel)")
            if count == 1
            else _("Download these {count} charges (Excel)").format(count=count_br(count))
        ),
        "plain": (
            _("Download this charge (CSV)")
            if count == 1
            else _("Download these {count} charges (CSV)").format(count=count_br(count))
        ),
    }
    helps = {
        "excel": _(
            "For Excel in Portuguese: columns split by semicolons, amounts with a decimal "
            "comma, dates dd/mm/yyyy, CPF/CNPJ kept as text (leading zeros stay)."
        ),
        "plain": _(
            "For other programs, or to upload again: commas, amounts as plain decimals "
            "(1234.50), ISO dates (2026-10-31)."
        ),
    }
    for column, form in ((excel_column, "excel"), (plain_column, "plain")):
        column.download_button(
            labels[form],
            data=lambda form=form: charges_csv_file(
                current_engine, actor=actor, charge_filter=charge_filter, today=today, form=form
            ),
            file_name=export_file_name(charge_filter, today=today, form=form),
            mime="text/csv",
            on_click="ignore",
            help=_("Every filtered charge, with the whole CPF/CNPJ. {form}").format(
                form=helps[form]
            ),
            key=f"c_export_{form}",
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
    event = one_page_of_many("charges").dataframe(
        charge_frame(page.rows),
        hide_index=True,
        column_config=charge_column_config(),
        placeholder=MISSING,
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
            "Page {page}: rows {first} to {last} of {count}, in the order chosen above. "
            "Select a row to open the charge."
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
        _export_buttons(count)

with st.form("open_charge", border=False):
    reference_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    reference = reference_column.text_input(_("Open a charge by its debtId or number"))
    if button_column.form_submit_button(_("Open")):
        with operator_errors():
            state.c_open = find_charge_id(read_engine(), reference)
            st.rerun()

if state.c_open is not None:

    def _close_charge() -> None:
        """The panel closed: the charge leaves the link, its row is unselected."""
        state.c_open = state.c_selected = None
        state.pop("c_table", None)

    open_charge(state.c_open, today=today, on_close=_close_charge)
