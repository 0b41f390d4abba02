"""Notifications: e-mail notices queued, sent and failed; retry the failures, send now."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.formatting import count_br
from billing.core.i18n import _, ngettext
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

st.title(_("Notifications"))
st.caption(
    _(
        "E-mails to debtors: when the boleto is issued, before the due date, on it and after "
        "it. The worker sends them every day; each notice goes out at most once."
    )
)


def _counted(message: str, n: int) -> str:
    """A message from ngettext with its {count} filled in the pt-BR way."""
    return message.format(count=count_br(n))


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
if may_send and retry_column.button(_("Retry failed"), help=_("Queue every failed notice again.")):
    with operator_errors():
        retried = retry_failed_notices(engine(), actor=actor)
        wrote()
        st.success(
            _counted(
                ngettext(
                    "{count} failed notice queued again.",
                    "{count} failed notices queued again.",
                    retried,
                ),
                retried,
            )
        )
    _refresh()
if may_send and send_column.button(
    _("Send now"), type="primary", help=_("Issue, queue and send the due notices.")
):
    with operator_errors(), st.spinner(_("Issuing boletos and sending the notices due today…")):
        result = run_cycle(engine(), actor=actor)
        wrote()
        st.success(
            _(
                "{issued}, {queued}, {sent} sent, {failed} failed, {retrying} to retry later."
            ).format(
                issued=_counted(
                    ngettext("{count} boleto issued", "{count} boletos issued", result.issued),
                    result.issued,
                ),
                queued=_counted(
                    ngettext("{count} notice queued", "{count} notices queued", result.queued),
                    result.queued,
                ),
                sent=count_br(result.sent),
                failed=count_br(result.failed),
                retrying=count_br(result.retrying),
            )
        )
        if result.error:
            st.error(
                "**{title}** {error} {waiting}".format(
                    title=_("The mail server could not be reached."),
                    error=plain(result.error),
                    waiting=_counted(
                        ngettext(
                            "{count} notice waits for it.",
                            "{count} notices wait for it.",
                            result.waiting,
                        ),
                        result.waiting,
                    ),
                )
            )
    _refresh()

failures: list[dict] = []
with operator_errors():
    counts = _counts()
    columns = st.columns(4)
    columns[0].metric(_("Queued"), count_br(counts["queued"] + counts["sending"]))
    columns[1].metric(_("Sent"), count_br(counts["sent"]))
    columns[2].metric(_("Failed"), count_br(counts["failed"]))
    columns[3].metric(_("Skipped (paid or late)"), count_br(counts["skipped"]))
    if counts["waiting"]:
        st.warning(
            _counted(
                ngettext(
                    "{count} notice is waiting for the mail server, which could not be reached: "
                    "it goes out by itself once it answers (tried again after a wait that grows "
                    "to 15 minutes), never twice.",
                    "{count} notices are waiting for the mail server, which could not be reached: "
                    "they go out by themselves once it answers (tried again after a wait that "
                    "grows to 15 minutes), none twice.",
                    counts["waiting"],
                ),
                counts["waiting"],
            )
        )
        st.metric(_("Waiting for the mail server"), count_br(counts["waiting"]))

    failures = _failures()

if not failures:
    st.info(_("No failed notice."))
else:
    st.subheader(_("Failed notices"))
    st.caption(_("Fix the debtor's e-mail or the mail settings, then press Retry failed."))
    table = pd.DataFrame(failures)
    table["kind"] = table["kind"].map(lambda kind: _(KIND_LABELS[kind]))
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
            "updated_at": st.column_config.DatetimeColumn(_("When"), format="DD/MM/YYYY HH:mm"),
            "debt_id": _("Debt"),
            "payer_name": _("Debtor"),
            "payer_email": _("E-mail"),
            "kind": _("Notice"),
            "attempts": _("Attempts"),
            "last_error": _("Reason"),
        },
    )
