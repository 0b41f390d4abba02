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
from pages._session import current_actor
from pages._shared import engine, import_engine, operator_errors, plain, wrote

actor = current_actor()
may_exchange = actor.can(Permission.BANK_FILES)
_REPORT = "retorno_report"  # the retorno just imported, shown after the rerun

st.title("Bank files")
st.caption(
    "The remessa asks the bank to register each new boleto and to write off canceled "
    "ones; the retorno is the bank's answer: registrations, rejections, payments and "
    "write-offs. Both are CNAB 240 files."
)


def _download(remessa_id: int, file_name: str, key: str) -> None:
    current_engine = engine()
    st.download_button(
        f"Download {file_name}",
        data=lambda: remessa_download(current_engine, actor=actor, remessa_id=remessa_id)[1],
        on_click="ignore",
        file_name=file_name,
        mime="text/plain",
        key=key,
    )


st.header("Remessa (to the bank)")
if may_exchange and st.button("Generate the remessa", type="primary"):
    with operator_errors():
        result = generate_remessa(import_engine(), actor=actor)
        wrote()
        if not result.files:
            st.info("Nothing new to send: every boleto is already in a remessa.")
        for item in result.files:
            st.success(
                f"Remessa NSA {item.nsa}: {count_br(item.registrations)} registrations, "
                f"{count_br(item.write_offs)} write-off requests, {brl(item.total_amount)}."
            )
            _download(item.remessa_id, item.file_name, key=f"new-{item.remessa_id}")

remessas = remessa_history(engine(), actor=actor)
if remessas:
    table = pd.DataFrame(remessas)
    st.dataframe(
        table[["nsa", "generated_at", "file_name", "registrations", "write_offs", "records",
               "total_amount", "actor"]],
        hide_index=True,
        column_config={
            "nsa": st.column_config.NumberColumn("NSA", format="%d"),
            "generated_at": st.column_config.DatetimeColumn("When", format="DD/MM/YYYY HH:mm"),
            "file_name": "File",
            "registrations": "Registrations",
            "write_offs": "Write-offs",
            "records": "Lines",
            "total_amount": st.column_config.NumberColumn("Amount (R$)", format="%.2f"),
            "actor": "By",
        },
    )  # fmt: skip
    if may_exchange:
        chosen = st.selectbox(
            "Download again", remessas, format_func=lambda row: f"NSA {row['nsa']}: "
            f"{row['file_name']}"
        )  # fmt: skip
        _download(chosen["id"], chosen["file_name"], key="again")
else:
    st.info("No remessa generated yet.")

st.header("Retorno (from the bank)")
if may_exchange:
    # Banks name retornos in many ways (.ret, .txt, none): the content decides, not the name.
    uploaded = st.file_uploader("Retorno file", key="ret")
    if uploaded is not None and st.button("Import the retorno"):
        with operator_errors():
            result = import_retorno(
                import_engine(), actor=actor, data=uploaded.getvalue(), file_name=uploaded.name
            )
            wrote()
            if result.status == "refused":
                st.error(f"**Retorno refused.** {plain(result.error)}")
            else:
                counts = ", ".join(
                    f"{count_br(n)} {name.replace('_', ' ')}" for name, n in result.counts.items()
                )
                st.success(
                    f"Retorno #{result.retorno_id} imported: {count_br(result.entries)} titles "
                    f"({plain(counts)}); {brl(result.paid_amount)} paid."
                )
                st.session_state[_REPORT] = result.retorno_id
else:
    st.info("Importing retornos is for operators.")

retornos = retorno_history(engine(), actor=actor)
if retornos:
    table = pd.DataFrame(retornos)
    table["error"] = table["error"].fillna("")
    st.dataframe(
        table[["id", "started_at", "file_name", "nsa", "status", "entries", "registered",
               "rejected", "liquidated", "written_off", "unchanged", "unknown", "paid_amount",
               "error"]],
        hide_index=True,
        column_config={
            "id": st.column_config.NumberColumn("#", format="%d"),
            "started_at": st.column_config.DatetimeColumn("When", format="DD/MM/YYYY HH:mm"),
            "file_name": "File", "nsa": "NSA", "status": "Status", "entries": "Titles",
            "registered": "Registered", "rejected": "Rejected", "liquidated": "Paid",
            "written_off": "Written off", "unchanged": "Already applied",
            "unknown": "Unknown", "paid_amount": st.column_config.NumberColumn(
                "Paid (R$)", format="%.2f"), "error": "Message",
        },
    )  # fmt: skip
    ids = [row["id"] for row in retornos]
    shown = st.session_state.get(_REPORT)
    chosen_id = st.selectbox(
        "Lines of retorno", ids, index=ids.index(shown) if shown in ids else 0,
        format_func=lambda i: f"#{i}",
    )  # fmt: skip
    st.dataframe(
        pd.DataFrame(retorno_report(engine(), actor=actor, retorno_id=chosen_id)),
        hide_index=True,
    )
else:
    st.info("No retorno imported yet.")
