"""Bank files: generate and download the CNAB 240 remessa, import the bank's retorno,
and the history of both."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.cnab.service import (
    generate_remessa,
    import_retorno,
    remessa_download,
    remessa_history,
    retorno_history,
    retorno_report,
)
from billing.core.formatting import brl, count_br
from billing.core.i18n import N_, _
from pages._session import current_actor
from pages._shared import (
    engine,
    import_engine,
    operator_errors,
    plain,
    shown_word,
    uploader_in_language,
    wrote,
)
from pages._tables import MISSING, in_local_time, time_column

actor = current_actor()
may_exchange = actor.can(Permission.BANK_FILES)
_REPORT = "retorno_report"  # the retorno just imported, shown after the rerun
# What became of a retorno's titles (billing.cnab's outcome groups), as the reader says it.
OUTCOMES = {
    "registered": N_("registered"),
    "rejected": N_("rejected"),
    "liquidated": N_("liquidated"),
    "written_off": N_("written off"),
    "unchanged": N_("unchanged"),
    "unknown": N_("unknown"),
    "ignored": N_("ignored"),
}

st.title(_("Bank files"))
st.caption(
    _(
        "The remessa asks the bank to register each new boleto and to write off canceled "
        "ones; the retorno is the bank's answer: registrations, rejections, payments and "
        "write-offs. Both are CNAB 240 files."
    )
)


def _download(remessa_id: int, file_name: str, key: str) -> None:
    current_engine = engine()
    st.download_button(
        _("Download {file}").format(file=file_name),
        data=lambda: remessa_download(current_engine, actor=actor, remessa_id=remessa_id)[1],
        on_click="ignore",
        file_name=file_name,
        mime="text/plain",
        key=key,
    )


st.header(_("Remessa (to the bank)"))
if may_exchange and st.button(_("Generate the remessa"), type="primary"):
    with operator_errors():
        result = generate_remessa(import_engine(), actor=actor)
        wrote()
        if not result.files:
            st.info(_("Nothing new to send: every boleto is already in a remessa."))
        for item in result.files:
            st.success(
                _(
                    "Remessa NSA {nsa}: {registrations} registrations, {write_offs} write-off "
                    "requests, {amount}."
                ).format(
                    nsa=item.nsa,
                    registrations=count_br(item.registrations),
                    write_offs=count_br(item.write_offs),
                    amount=brl(item.total_amount),
                )
            )
            _download(item.remessa_id, item.file_name, key=f"new-{item.remessa_id}")
        if result.without_address:
            st.warning(
                _(
                    "{count} of these charges went out with no debtor address in segment Q: "
                    "the debtor file has none. CAIXA accepts that when the fund prints and "
                    "sends the boletos; a bank that requires a CEP will refuse them."
                ).format(count=count_br(result.without_address))
            )

remessas = remessa_history(engine(), actor=actor)
if remessas:
    table = in_local_time(pd.DataFrame(remessas), "generated_at")
    st.dataframe(
        table[["nsa", "generated_at", "file_name", "registrations", "without_address",
               "write_offs", "records", "total_amount", "actor"]],
        hide_index=True,
        placeholder=MISSING,
        column_config={
            "nsa": st.column_config.NumberColumn("NSA", format="%d"),
            "generated_at": time_column(_("When")),
            "file_name": _("File"),
            "registrations": _("Registrations"),
            "without_address": _("Without address"),
            "write_offs": _("Write-offs"),
            "records": _("Lines"),
            "total_amount": st.column_config.NumberColumn(_("Amount (R$)"), format="%.2f"),
            "actor": _("By"),
        },
    )  # fmt: skip
    if may_exchange:
        chosen = st.selectbox(
            _("Download again"), remessas, format_func=lambda row: f"NSA {row['nsa']}: "
            f"{row['file_name']}"
        )  # fmt: skip
        _download(chosen["id"], chosen["file_name"], key="again")
else:
    st.info(_("No remessa generated yet."))

st.header(_("Retorno (from the bank)"))
if may_exchange:
    # Banks name retornos in many ways (.ret, .txt, none): the content decides, not the name.
    uploader_in_language(max_mb=st.get_option("server.maxUploadSize"))
    uploaded = st.file_uploader(_("Retorno file"), key="ret")
    if uploaded is not None and st.button(_("Import the retorno")):
        with operator_errors():
            result = import_retorno(
                import_engine(), actor=actor, data=uploaded.getvalue(), file_name=uploaded.name
            )
            wrote()
            if result.status == "refused":
                st.error(
                    "**{title}** {error}".format(
                        title=_("Retorno refused."), error=plain(result.error)
                    )
                )
            else:
                counts = ", ".join(
                    f"{count_br(n)} {_(OUTCOMES.get(name, name))}"
                    for name, n in result.counts.items()
                )
                st.success(
                    _("Retorno #{id} imported: {entries} titles ({counts}); {paid} paid.").format(
                        id=result.retorno_id,
                        entries=count_br(result.entries),
                        counts=plain(counts),
                        paid=brl(result.paid_amount),
                    )
                )
                st.session_state[_REPORT] = result.retorno_id
else:
    st.info(_("Importing retornos is for operators."))

retornos = retorno_history(engine(), actor=actor)
if retornos:
    table = in_local_time(pd.DataFrame(retornos), "started_at")
    table["error"] = table["error"].fillna("")
    table["status"] = table["status"].map(shown_word)
    st.dataframe(
        table[["id", "started_at", "file_name", "nsa", "status", "entries", "registered",
               "rejected", "liquidated", "written_off", "unchanged", "unknown", "paid_amount",
               "error"]],
        hide_index=True,
        placeholder=MISSING,
        column_config={
            "id": st.column_config.NumberColumn("#", format="%d"),
            "started_at": time_column(_("When")),
            "file_name": _("File"), "nsa": "NSA", "status": _("Status"), "entries": _("Titles"),
            "registered": _("Registered"), "rejected": _("Rejected"), "liquidated": _("Paid"),
            "written_off": _("Written off"), "unchanged": _("Already applied"),
            "unknown": _("Unknown"), "paid_amount": st.column_config.NumberColumn(
                _("Paid (R$)"), format="%.2f"), "error": _("Message"),
        },
    )  # fmt: skip
    ids = [row["id"] for row in retornos]
    shown = st.session_state.get(_REPORT)
    chosen_id = st.selectbox(
        _("Lines of retorno"), ids, index=ids.index(shown) if shown in ids else 0,
        format_func=lambda i: f"#{i}",
    )  # fmt: skip
    st.dataframe(
        pd.DataFrame(retorno_report(engine(), actor=actor, retorno_id=chosen_id)),
        hide_index=True,
    )
else:
    st.info(_("No retorno imported yet."))
