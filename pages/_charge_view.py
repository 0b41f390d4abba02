"""One charge on screen: its boleto, notices, payments and history, and the actions an
operator can take on it. A page opens a charge with `open_charge`: a panel over the
page's right side, where the eye is, whatever row or link opened it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from billing.accounts.access import Actor, Permission
from billing.boletos.issuing import boleto_pdf_download
from billing.charges.browsing import (
    ChargeDetail,
    charge_detail,
    correct_debtor_email,
    event_label,
    source_label,
    status_label,
)
from billing.cnab.service import send_registration_again
from billing.core.formatting import brl, date_br, decimal_br
from billing.core.i18n import N_, _, ngettext
from billing.notices.planning import KIND_LABELS, resend_notice, today_in
from billing.payments.service import ChargeChange, cancel_charge, mark_paid, reopen_charge
from pages._session import current_actor
from pages._shared import (
    engine,
    operator_errors,
    plain,
    read_engine,
    reveal_button,
    shown_document,
    shown_word,
    wrote,
)
from pages._tables import MISSING, in_local_time, time_column

FINISHED_NOTICE = {"sent", "failed", "skipped"}
# Column headers of the charge's tables, in English: shown with _() in the reader's language.
NOTICE_HEADERS = {
    "kind": N_("Notice"),
    "status": N_("Status"),
    "attempts": N_("Attempts"),
    "sent_at": N_("Sent at"),
    "last_error": N_("Reason"),
}
PAYMENT_HEADERS = {
    "paid_at": N_("Paid at"),
    "paid_amount": N_("Amount"),
    "paid_by": N_("Paid by"),
    "source": N_("Source"),
}
HISTORY_HEADERS = {
    "created_at": N_("When"),
    "kind": N_("Event"),
    "from_status": N_("From"),
    "to_status": N_("To"),
    "amount": N_("Amount"),
    "reason": N_("Reason"),
    "actor": N_("By"),
}
TIME_COLUMNS = {"sent_at", "paid_at", "created_at"}

# The panel over the page's right side: wide enough for the history's columns at 1280 px,
# narrow enough that the list it was opened from stays in sight on its left.
PANEL_WIDTH = 900
_FLASH = "charge_flash"  # what the last action did, shown once after the rerun
_CONFIRM_CANCEL = "charge_confirm_cancel"  # the charge whose cancel waits for a yes
_FORMS_OF = "charge_forms_of"  # the charge the action forms below were filled for
# The action forms' fields: kept when the domain refuses (the operator corrects and
# sends again), emptied after the action is done or when another charge opens.
FORM_KEYS = (
    "paid_amount",
    "paid_on",
    "paid_reason",
    "cancel_reason",
    "reopen_reason",
    "charge_new_email",
)


def open_charge(
    charge_id: int,
    *,
    today: date,
    on_close: Callable[[], None] | None = None,
    debtor_actions: bool = True,
) -> None:
    """Show a charge in a panel over the page; `on_close` runs when the operator closes it
    (the page forgets the open charge, so the panel does not come back on the next run).
    Without `debtor_actions` (the debtor's own page, which has them) the panel offers no
    reveal of the CPF/CNPJ and no e-mail correction."""
    panel = st.dialog(
        _("Charge detail"),
        width=PANEL_WIDTH,
        position="right",
        on_dismiss=on_close if on_close is not None else "ignore",
    )(_charge_panel)
    panel(charge_id, today, debtor_actions)


def _charge_panel(charge_id: int, today: date, debtor_actions: bool) -> None:
    actor = current_actor()
    state = st.session_state
    if state.get(_FORMS_OF) != charge_id:
        _forget_forms()
        state[_FORMS_OF] = charge_id
    with operator_errors():  # "charge not found" is said here, in the panel
        detail = charge_detail(read_engine(), charge_id, today=today)
        if done := state.pop(_FLASH, None):
            st.success(done)
        _summary(detail, actor, debtor_actions=debtor_actions)
        _boleto(detail, actor)
        _notices(detail, actor)
        _payments(detail)
        _history(detail)
        if actor.can(Permission.CHANGE_CHARGES):
            _actions(detail, actor)


def _forget_forms() -> None:
    for key in (*FORM_KEYS, _CONFIRM_CANCEL):
        st.session_state.pop(key, None)


def _done(message: str) -> None:
    """After an action: say what it did once, empty the forms, show the charge anew (the
    rerun reads it from the primary)."""
    wrote()
    _forget_forms()
    st.session_state[_FLASH] = message
    st.rerun()


def _summary(detail: ChargeDetail, actor: Actor, *, debtor_actions: bool) -> None:
    charge = detail.charge
    st.subheader(_("Charge #{id}").format(id=charge["id"]))
    top = st.columns(4)
    top[0].metric(_("Amount"), brl(charge["amount"]))
    top[1].metric(_("Due"), date_br(charge["due_date"]))
    # "Overdue" says the most in the space a metric has; the full status is its tooltip.
    top[2].metric(
        _("Status"),
        _("Overdue") if charge["overdue"] else status_label(charge["status"], overdue=False),
        help=status_label(charge["status"], overdue=charge["overdue"]),
    )
    top[3].metric(_("Still owed"), brl(detail.outstanding))
    if charge.get("registration_rejection"):  # the bank refused the boleto (a retorno's 03)
        refusal = plain(charge["registration_rejection"])
        st.warning(_("The bank refused to register this boleto: {reason}").format(reason=refusal))
        can_resend = actor.can(Permission.BANK_FILES) or actor.can(Permission.CHANGE_CHARGES)
        if can_resend and charge["status"] == "issued":
            st.caption(_("Once the cause is corrected, the next remessa can carry it again."))
            if st.button(_("Send to the bank again"), key="registration_again"):
                with operator_errors():
                    send_registration_again(engine(), actor=actor, charge_id=charge["id"])
                    _done(_("Done: the charge was set to go to the bank again."))
    # Plain text: names and e-mails come from uploaded files, never read as Markdown.
    document = shown_document(charge["debtor_id"], charge["government_id"])
    st.text(
        _(
            "debtId: {debt_id}\n"
            "Debtor: {name} · CPF/CNPJ {document} · {email}\n"
            "Billed to: {payer_name} · {payer_email}\n"
            "Imported from: #{import_id} {import_file}"
        ).format(
            debt_id=charge["debt_id"],
            name=charge["name"],
            document=document,
            email=charge["email"],
            payer_name=charge["payer_name"],
            payer_email=charge["payer_email"],
            import_id=charge["import_id"],
            import_file=charge["import_file"],
        )
    )
    if not debtor_actions:
        return
    reveal_button(actor, charge["debtor_id"])
    if actor.can(Permission.CORRECT_DEBTORS):
        with st.expander(_("Correct the debtor's e-mail")):
            email_form(
                actor,
                debtor_id=charge["debtor_id"],
                current=charge["email"],
                key="charge_new_email",
            )


def email_form(actor: Actor, *, debtor_id: int, current: str, key: str) -> None:
    """Correct a debtor's e-mail (operators): checked as an import checks one, audited;
    the debtor's open charges are billed to the new address, so Retry failed reaches it.
    The field (`key`) keeps what was typed when the address is refused."""
    st.session_state.setdefault(key, current)
    with st.form(f"{key}-form", border=False):
        st.text_input(_("The debtor's e-mail"), key=key)
        st.caption(
            _(
                "Notices of the debtor's open charges go to the new address, failed ones "
                "included once you press Retry failed on the Notifications page."
            )
        )
        if st.form_submit_button(_("Save the e-mail")):
            with operator_errors():
                corrected = correct_debtor_email(
                    engine(),
                    actor=actor,
                    debtor_id=debtor_id,
                    email=st.session_state[key],
                )
                st.session_state.pop(key, None)
                _done(
                    ngettext(
                        "Done: the debtor's e-mail is now {email}; {count} open charge bills it.",
                        "Done: the debtor's e-mail is now {email}; {count} open charges bill it.",
                        corrected.charges,
                    ).format(email=corrected.new_email, count=corrected.charges)
                )


def _boleto(detail: ChargeDetail, actor: Actor) -> None:
    charge = detail.charge
    st.markdown("**Boleto**")
    if charge["digitable_line"] is None:
        st.caption(_("No boleto yet: it is issued right after the import, or by Send now."))
        return
    st.caption(_("Nosso número {number} · linha digitável:").format(number=charge["nosso_numero"]))
    st.code(charge["digitable_line"], language=None)
    if charge["pix_code"]:
        st.caption("Pix copia e cola:")
        st.code(charge["pix_code"], language=None, wrap_lines=True)
    if detail.has_boleto and actor.can(Permission.EXPORT):
        current_engine, charge_id = engine(), detail.id
        st.download_button(
            _("Download the boleto (PDF)"),
            data=lambda: boleto_pdf_download(current_engine, actor=actor, charge_id=charge_id),
            file_name=f"boleto-{charge['debt_id']}.pdf",
            mime="application/pdf",
            on_click="ignore",
        )


def _table(frame: pd.DataFrame, headers: dict[str, str]) -> None:
    """A table of the charge: headers in words, times in TIMEZONE, "—" where empty."""
    times = [column for column in headers if column in TIME_COLUMNS]
    in_local_time(frame, *times)
    config = {
        column: time_column(_(header)) if column in times else _(header)
        for column, header in headers.items()
    }
    st.dataframe(frame[list(headers)], hide_index=True, column_config=config, placeholder=MISSING)


def _notices(detail: ChargeDetail, actor: Actor) -> None:
    st.markdown("**{}**".format(_("Notices")))
    if not detail.notices:
        st.caption(_("No e-mail notice planned for this charge yet."))
        return
    notices = pd.DataFrame(detail.notices)
    notices["kind"] = notices["kind"].map(lambda kind: _(KIND_LABELS[kind]))
    notices["status"] = notices["status"].map(shown_word)
    _table(notices, NOTICE_HEADERS)
    finished = [n["kind"] for n in detail.notices if n["status"] in FINISHED_NOTICE]
    if finished and actor.can(Permission.SEND_NOTICES):
        with st.form(f"resend-{detail.id}"):
            kind = st.selectbox(
                _("Resend a notice"), finished, format_func=lambda k: _(KIND_LABELS[k])
            )
            if st.form_submit_button(_("Resend")):
                with operator_errors():
                    resend_notice(engine(), actor=actor, charge_id=detail.id, kind=kind)
                    wrote()
                    st.success(_("Queued: it goes out with the next sending round."))


def _payments(detail: ChargeDetail) -> None:
    st.markdown(
        _("**Payments** (received {amount})").format(amount=brl(detail.charge["paid_total"]))
    )
    if not detail.payments:
        st.caption(_("No payment received."))
        return
    table = pd.DataFrame(detail.payments)
    table["paid_amount"] = table["paid_amount"].map(brl)
    table["source"] = table["source"].map(source_label)
    _table(table, PAYMENT_HEADERS)


def _history(detail: ChargeDetail) -> None:
    st.markdown("**{}**".format(_("History")))
    if not detail.history:
        st.caption(_("Nothing happened to this charge since it was imported."))
        return
    table = pd.DataFrame(detail.history)
    table["amount"] = table["amount"].map(lambda a: None if pd.isna(a) else brl(a))
    table["kind"] = table["kind"].map(event_label)
    for column in ("from_status", "to_status"):
        table[column] = table[column].map(
            lambda status: None if status is None else status_label(status, overdue=False)
        )
    _table(table, HISTORY_HEADERS)


def _actions(detail: ChargeDetail, actor: Actor) -> None:
    if not (detail.can_mark_paid or detail.can_cancel or detail.can_reopen):
        return
    st.markdown("**{}**".format(_("Actions")))
    st.caption(
        _("Recorded as {name}, with the reason, in the charge's history.").format(
            name=plain(actor.name)
        )
    )
    if detail.can_reopen:
        _reopen(detail, actor)
        return
    paid_column, cancel_column = st.columns(2)
    with paid_column:
        _record_payment(detail, actor)
    with cancel_column:
        _cancel(detail, actor)


def _record_payment(detail: ChargeDetail, actor: Actor) -> None:
    """A payment made outside the bank's notices (at the branch, settled): its amount,
    pre-filled with what is still owed, the day it was paid and why."""
    state = st.session_state
    state.setdefault("paid_amount", decimal_br(detail.outstanding))
    with st.form("mark_paid"):
        st.text_input(
            _("Amount paid (R$)"),
            key="paid_amount",
            help=_("What the debtor paid, as on a boleto: 1.000,50. Part of it is fine."),
        )
        today = today_in()  # the fund's day (TIMEZONE), not the server's: they differ at night
        st.date_input(
            _("Paid on"), value=today, max_value=today, format="DD/MM/YYYY", key="paid_on"
        )
        st.text_area(_("Why is it paid? (required)"), key="paid_reason")
        if st.form_submit_button(_("Record the payment")):
            with operator_errors():
                change = mark_paid(
                    engine(),
                    charge_id=detail.id,
                    amount=state["paid_amount"],
                    paid_on=state["paid_on"],
                    reason=state["paid_reason"],
                    actor=actor,
                )
                _done(_payment_recorded(change))


def _payment_recorded(change: ChargeChange) -> str:
    said = _("Done: {amount} recorded; the charge is now {status}.").format(
        amount=brl(change.paid_amount or Decimal("0")),
        status=status_label(change.to_status, overdue=False).lower(),
    )
    if change.overpaid_amount > 0:
        said += " " + _("It is overpaid by {amount}.").format(amount=brl(change.overpaid_amount))
    return said


def _cancel(detail: ChargeDetail, actor: Actor) -> None:
    """Cancel in two steps: the reason, then a yes; the reason stays if the domain refuses."""
    state = st.session_state
    with st.form("cancel"):
        st.text_area(_("Why cancel it? (required)"), key="cancel_reason")
        if st.form_submit_button(_("Cancel the charge")):
            if state["cancel_reason"].strip():
                state[_CONFIRM_CANCEL] = detail.id
            else:
                state.pop(_CONFIRM_CANCEL, None)
                st.error(_("A reason is required."))
    if state.get(_CONFIRM_CANCEL) != detail.id:
        return
    st.warning(
        _(
            "Cancel charge {debt_id}? Its notices stop, and a boleto registered at the bank "
            "is written off in the next remessa. Reopen undoes it until that remessa goes out."
        ).format(debt_id=plain(detail.charge["debt_id"]))
    )
    yes, no = st.columns(2)
    no.button(_("No, keep it"), key="cancel_no", on_click=lambda: state.pop(_CONFIRM_CANCEL))
    if yes.button(_("Yes, cancel it"), type="primary", key="cancel_yes"):
        state.pop(_CONFIRM_CANCEL, None)
        with operator_errors():
            cancel_charge(engine(), charge_id=detail.id, reason=state["cancel_reason"], actor=actor)
            _done(_("Done: the charge was canceled. Reopen undoes it."))


def _reopen(detail: ChargeDetail, actor: Actor) -> None:
    with st.form("reopen"):
        st.text_area(_("Why reopen it? (required)"), key="reopen_reason")
        if st.form_submit_button(_("Reopen the charge")):
            with operator_errors():
                change = reopen_charge(
                    engine(),
                    charge_id=detail.id,
                    reason=st.session_state["reopen_reason"],
                    actor=actor,
                )
                _done(
                    _("Done: the charge was reopened; it is {status} again.").format(
                        status=status_label(change.to_status, overdue=False).lower()
                    )
                )
