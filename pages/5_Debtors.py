"""Debtors: find a debtor by name, e-mail, CPF/CNPJ or debtId; see their charges and totals."""

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from billing.accounts.access import Actor, Permission
from billing.charges.browsing import (
    charge_page,
    debtor_page,
    debtor_summary,
    has_charges,
    masked_document,
)
from billing.cnab.service import debtor_address, save_debtor_address
from billing.core.filters import PAGE_SIZE, SEARCH_IN, ChargeFilter, route_search
from billing.core.formatting import brl, count_br
from billing.core.i18n import _, ngettext
from billing.notices.planning import today_in
from pages._charge_view import email_form, open_charge
from pages._session import current_actor
from pages._shared import (
    engine,
    operator_errors,
    plain,
    read_engine,
    reveal_button,
    shown_document,
    whole_number,
    wrote,
)
from pages._tables import MISSING, charge_column_config, charge_frame, one_page_of_many

# The debtor's own columns, said once above their charges rather than on every row.
DEBTOR_COLUMNS = ("Debtor", "CPF/CNPJ", "E-mail")
ADDRESS_FIELDS = ("street", "district", "zip_code", "city", "state")


def address_form(actor: Actor, *, debtor_id: int) -> None:
    """The postal address the bank's registration (remessa, segment Q) carries: the debtor
    file has none, and Banco do Brasil refuses a boleto without a CEP. Kept as typed when
    refused; saving is audited (personal data)."""
    if st.session_state.get("d_address_of") != debtor_id:  # another debtor: their address
        stored = debtor_address(read_engine(), actor=actor, debtor_id=debtor_id) or {}
        for field in ADDRESS_FIELDS:
            st.session_state[f"d_address_{field}"] = stored.get(field, "")
        st.session_state.d_address_of = debtor_id
    with st.form("d_address_form", border=False):
        st.text_input(_("Street, number and complement"), key="d_address_street")
        district, zip_code = st.columns([3, 1])
        district.text_input(_("District"), key="d_address_district")
        zip_code.text_input(_("CEP"), key="d_address_zip_code", placeholder="01310-100")
        city, uf = st.columns([3, 1])
        city.text_input(_("City"), key="d_address_city")
        uf.text_input(_("State (UF)"), key="d_address_state", max_chars=2)
        if st.form_submit_button(_("Save the address")):
            with operator_errors():
                save_debtor_address(
                    engine(),
                    actor=actor,
                    debtor_id=debtor_id,
                    **{field: st.session_state[f"d_address_{field}"] for field in ADDRESS_FIELDS},
                )
                wrote()
                st.success(_("Saved: the next remessa carries this address."))


def _close_charge() -> None:
    st.session_state.d_charge = None
    st.session_state.pop("d_charges", None)  # the row is unselected with the panel closed


actor = current_actor()

st.title(_("Debtors"))

if not has_charges(read_engine()):
    st.info(_("No debtors yet: import a debtor file on the Upload page, then come back here."))
    st.stop()

state = st.session_state
if "d_q" not in state:  # the page's first run: start from the link
    state.d_q = st.query_params.get("q", "")
    state.d_in = st.query_params.get("in", "auto")
    if state.d_in not in SEARCH_IN:
        state.d_in = "auto"
    debtor_param = st.query_params.get("debtor", "")
    state.d_open = whole_number(debtor_param)

search_column, in_column = st.columns([3, 1])
search_column.text_input(
    _("Search"),
    key="d_q",
    placeholder=_("Name, e-mail, CPF/CNPJ or debtId of one of their charges"),
)
in_column.selectbox(
    _("Search in"), list(SEARCH_IN), format_func=lambda k: _(SEARCH_IN[k]), key="d_in"
)
link = {"q": state.d_q} if state.d_q.strip() else {}
if link and state.d_in != "auto":
    link["in"] = state.d_in
if state.d_open is not None:
    link["debtor"] = str(state.d_open)
if st.query_params.to_dict() != link:
    st.query_params.from_dict(link)

search = (state.d_q, state.d_in)
if state.get("d_pages_of") != search:
    state.d_pages_of, state.d_cursors = search, [None]
    state.pop("d_table", None)  # a row selected in another list means nothing here
if state.d_q.strip() and route_search(state.d_q, search_in=state.d_in) is None:
    st.warning(
        _("“{text}” has no letters or digits to search for; showing every debtor.").format(
            text=plain(state.d_q)
        )
    )
page = debtor_page(read_engine(), text=state.d_q, search_in=state.d_in, after=state.d_cursors[-1])
if not page.rows:
    st.info(_("No debtor matches. Check the spelling, or search by CPF/CNPJ or e-mail."))
else:
    table = pd.DataFrame(
        {
            _("Debtor"): [row["name"] for row in page.rows],
            "CPF/CNPJ": [masked_document(row["government_id"]) for row in page.rows],
            _("E-mail"): [row["email"] for row in page.rows],
            _("Charges"): [row["charges"] for row in page.rows],
        }
    )
    event = one_page_of_many("debtors").dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="d_table",
    )
    if event.selection.rows:
        chosen = page.rows[event.selection.rows[0]]["id"]
        if chosen != state.d_open:
            state.d_open = chosen
            st.rerun()
    previous, caption, following = st.columns([1, 4, 1])
    if previous.button(_("← Previous"), disabled=len(state.d_cursors) == 1):
        state.d_cursors.pop()
        state.pop("d_table", None)
        st.rerun()
    caption.caption(
        _("Page {page}, by name. Select a row to see the debtor.").format(page=len(state.d_cursors))
    )
    if following.button(_("Next →"), disabled=page.next_cursor is None):
        state.d_cursors.append(page.next_cursor)
        state.pop("d_table", None)
        st.rerun()

if state.d_open is not None:
    today = today_in()
    with operator_errors():
        debtor = debtor_summary(read_engine(), state.d_open, today=today)
        st.divider()
        # The debtor once, here; their charges below show charge columns only.
        st.subheader(_("Debtor #{id}").format(id=debtor["id"]))  # names: shown as plain text
        document = shown_document(debtor["id"], debtor["government_id"])
        st.text(f"{debtor['name']} · CPF/CNPJ {document} · {debtor['email']}")
        reveal_button(actor, debtor["id"])
        if actor.can(Permission.CORRECT_DEBTORS):
            if state.get("d_email_of") != debtor["id"]:
                state.pop("d_new_email", None)
                state.d_email_of = debtor["id"]
            with st.expander(_("Correct the debtor's e-mail")):
                email_form(
                    actor, debtor_id=debtor["id"], current=debtor["email"], key="d_new_email"
                )
            with st.expander(_("Postal address, for the bank's registration")):
                address_form(actor, debtor_id=debtor["id"])
        totals = st.columns(4)
        totals[0].metric(_("Charges"), count_br(debtor["charges"]))
        totals[1].metric(_("Outstanding"), brl(debtor["outstanding"]))
        totals[2].metric(_("Paid"), brl(debtor["paid"]))
        overdue = debtor["overdue_charges"]
        totals[3].metric(
            _("Overdue"),
            brl(debtor["overdue"]),
            ngettext("{count} charge", "{count} charges", overdue).format(count=count_br(overdue)),
            "off",
        )
        charges = charge_page(
            read_engine(), charge_filter=ChargeFilter(debtor_id=debtor["id"]), today=today
        )
        if state.get("d_charges_of") != debtor["id"]:  # a row chosen for another debtor
            state.d_charges_of = debtor["id"]
            state.pop("d_charges", None)
            state.d_charge = None
        chosen_charge = one_page_of_many("debtor-charges").dataframe(
            charge_frame(charges.rows, without=DEBTOR_COLUMNS),
            hide_index=True,
            column_config=charge_column_config(without=DEBTOR_COLUMNS),
            placeholder=MISSING,
            on_select="rerun",
            selection_mode="single-row",
            key="d_charges",
        )
        picked = [charges.rows[i]["id"] for i in chosen_charge.selection.rows]
        if picked and picked[0] != state.get("d_picked"):
            state.d_charge = picked[0]
        state.d_picked = picked[0] if picked else None
        caption = _("Select a row to open the charge.")
        if charges.next_cursor is not None:
            caption = _("The first {count} charges, by due date.").format(count=PAGE_SIZE)
            caption += " " + _("Select a row to open the charge.")
        st.caption(caption)
        try:
            st.page_link(
                "pages/3_Charges.py",
                label=_("Open these charges on the Charges page"),
                query_params={"debtor": str(debtor["id"])},
            )
        except StreamlitPageNotFoundError:  # this page was started on its own
            st.caption(
                _("On the Charges page, ?debtor={id} lists them all.").format(id=debtor["id"])
            )
        if state.get("d_charge") is not None:
            open_charge(state.d_charge, today=today, on_close=_close_charge, debtor_actions=False)
