"""Notifications: e-mail notices queued, sent and failed; retry the failures, send now."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.formatting import count_br, counted
from billing.notices.dispatch import mail_server_waiting, run_cycle
from billing.notices.planning import (
    KIND_LABELS,
    failed_notices,
    notice_counts,
    retry_failed_notices,
)
from pages._session import current_actor
from pages._shared import engine, operator_errors, plain, read_engine, wrote

actor = current_actor()

st.title("Notifications")
st.caption(
    "E-mails to debtors: when the boleto is issued, before the due date, on it and after "
    "it. The worker sends them every day; each notice goes out at most once."
)


@st.cache_data(ttl=15, show_spinner=False)
def _counts() -> dict[str, int]:
    return {**notice_counts(read_engine()), "waiting": mail_server_waiting(read_engine())}


@st.cache_data(ttl=15, show_spinner=False)
def _failures() -> list[dict]:
    return failed_notices(read_engine(), limit=500)


def _refresh() -> None:
    _counts.clear()
    _failures.clear()


retry_column, send_column = st.columns(2)
may_send = actor.can(Permission.SEND_NOTICES)
if may_send and retry_column.button("Retry failed", help="Queue every failed notice again."):
    with operator_errors():
        retried = retry_failed_notices(engine(), actor=actor)
        wrote()
        st.success(f"{counted(retried, 'failed notice', 'failed notices')} queued again.")
    _refresh()
if may_send and send_column.button(
    "Send now", type="primary", help="Issue, queue and send the due notices."
):
    with operator_errors(), st.spinner("Issuing boletos and sending the notices due today…"):
        result = run_cycle(engine(), actor=actor)
        wrote()
        st.success(
            f"{counted(result.issued, 'boleto', 'boletos')} issued, "
            f"{counted(result.queued, 'notice', 'notices')} queued, "
            f"{count_br(result.sent)} sent, {count_br(result.failed)} failed, "
            f"{count_br(result.retrying)} to retry later."
        )
        if result.error:
            st.error(
                f"**The mail server could not be reached.** {plain(result.error)} "
                f"{counted(result.waiting, 'notice waits', 'notices wait')} for it."
            )
    _refresh()

failures: list[dict] = []
with operator_errors():
    counts = _counts()
    columns = st.columns(4)
    columns[0].metric("Queued", count_br(counts["queued"] + counts["sending"]))
    columns[1].metric("Sent", count_br(counts["sent"]))
    columns[2].metric("Failed", count_br(counts["failed"]))
    columns[3].metric("Skipped (paid or late)", count_br(counts["skipped"]))
    if counts["waiting"]:
        st.warning(
            f"{counted(counts['waiting'], 'notice is', 'notices are')} waiting for the mail "
            "server, which could not be reached: they go out by themselves once it answers "
            "(tried again after a wait that grows to 15 minutes), none twice."
        )
        st.metric("Waiting for the mail server", count_br(counts["waiting"]))

    failures = _failures()

if not failures:
    st.info("No failed notice.")
else:
    st.subheader("Failed notices")
    st.caption("Fix the debtor's e-mail or the mail settings, then press Retry failed.")
    table = pd.DataFrame(failures)
    table["kind"] = table["kind"].map(KIND_LABELS)
    st.dataframe(
        table[
            [
                "updated_at",
                "debt_id",
                "payer_name",
                "payer_email",
                "kind",
                "attempts",
                "last_error",
            ]
        ],
        hide_index=True,
        column_config={
            "updated_at": st.column_config.DatetimeColumn("When", format="DD/MM/YYYY HH:mm"),
            "debt_id": "Debt",
            "payer_name": "Debtor",
            "payer_email": "E-mail",
            "kind": "Notice",
            "attempts": "Attempts",
            "last_error": "Reason",
        },
    )
