"""One charge on screen: its boleto, notices, payments and history, and the actions an
operator can take on it. The Charges page opens a charge with `open_charge`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import streamlit as st

from billing.accounts.access import Actor, Permission
from billing.boletos.issuing import boleto_pdf_download
from billing.charges.browsing import ChargeDetail, charge_detail, status_label
from billing.cnab.service import send_registration_again
from billing.core.formatting import brl, date_br
from billing.core.i18n import N_, _
from billing.notices.planning import KIND_LABELS, resend_notice
from billing.payments.service import cancel_charge, mark_paid
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


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {column: _(header) for column, header in headers.items()}


_FLASH = "charge_flash"  # what the last action did, shown once after the rerun


def open_charge(charge_id: int, *, today: date) -> None:
    actor = current_actor()
    with operator_errors():
        detail = charge_detail(read_engine(), charge_id, today=today)
        st.divider()
        if done := st.session_state.pop(_FLASH, None):
            st.success(
                _("Done: the charge was {done}. It shows its new state below.").format(done=_(done))
            )
        _summary(detail, actor)
        _boleto(detail, actor)
        _notices(detail, actor)
        _payments(detail)
        _history(detail)
        if actor.can(Permission.CHANGE_CHARGES) and (detail.can_mark_paid or detail.can_cancel):
            _actions(detail, actor)


def _summary(detail: ChargeDetail, actor: Actor) -> None:
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
                    wrote()
                    st.session_state[_FLASH] = N_("set to go to the bank again")
                    st.rerun()
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
    reveal_button(actor, charge["debtor_id"])


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


def _notices(detail: ChargeDetail, actor: Actor) -> None:
    st.markdown("**{}**".format(_("Notices")))
    if not detail.notices:
        st.caption(_("No e-mail notice planned for this charge yet."))
        return
    notices = pd.DataFrame(detail.notices)
    notices["kind"] = notices["kind"].map(lambda kind: _(KIND_LABELS[kind]))
    notices["status"] = notices["status"].map(shown_word)
    st.dataframe(
        notices[["kind", "status", "attempts", "sent_at", "last_error"]],
        hide_index=True,
        column_config=_headers(NOTICE_HEADERS),
    )
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
    st.dataframe(
        table[["paid_at", "paid_amount", "paid_by", "source"]],
        hide_index=True,
        column_config=_headers(PAYMENT_HEADERS),
    )


def _history(detail: ChargeDetail) -> None:
    st.markdown("**{}**".format(_("History")))
    if not detail.history:
        st.caption(_("Nothing happened to this charge since it was imported."))
        return
    table = pd.DataFrame(detail.history)
    table["amount"] = table["amount"].map(lambda a: "" if pd.isna(a) else brl(a))
    st.dataframe(
        table[["created_at", "kind", "from_status", "to_status", "amount", "reason", "actor"]],
        hide_index=True,
        column_config=_headers(HISTORY_HEADERS),
    )


def _actions(detail: ChargeDetail, actor: Actor) -> None:
    st.markdown("**{}**".format(_("Actions")))
    st.caption(
        _("Recorded as {name}, with the reason, in the charge's history.").format(name=actor.name)
    )
    paid_column, cancel_column = st.columns(2)
    with paid_column.form("mark_paid", clear_on_submit=True):
        reason = st.text_area(_("Why is it paid? (required)"), key="paid_reason")
        if st.form_submit_button(_("Mark paid"), disabled=not detail.can_mark_paid):
            _act(mark_paid, N_("marked paid"), actor, charge_id=detail.id, reason=reason)
    with cancel_column.form("cancel", clear_on_submit=True):
        reason = st.text_area(_("Why cancel it? (required)"), key="cancel_reason")
        if st.form_submit_button(_("Cancel the charge"), disabled=not detail.can_cancel):
            _act(cancel_charge, N_("canceled"), actor, charge_id=detail.id, reason=reason)


def _act(
    action: Callable[..., object], done: str, actor: Actor, *, charge_id: int, reason: str
) -> None:
    with operator_errors():
        action(engine(), charge_id=charge_id, reason=reason, actor=actor)
        wrote()  # the rerun reads the charge from the primary: it shows its new state
        st.session_state[_FLASH] = done
        st.rerun()
