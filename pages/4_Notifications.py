"""Notifications: e-mail notices queued, sent and failed; retry the failures, send now."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.formatting import count_br
from billing.core.i18n import _, ngettext
from billing.notices.dispatch import CycleProgress, run_cycle
from billing.notices.planning import (
    KIND_LABELS,
    failed_notices,
    notice_counts,
    notices_version,
    queue_parts,
    retry_failed_notices,
)
from pages._session import current_actor
from pages._shared import engine, operator_errors, plain, read_engine, wrote
from pages._tables import MISSING, in_local_time, time_column

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


# Counted again whenever `version` (notices_version, read at every run: a few index
# look-ups) moves: after Send now, Retry failed or the worker's cycle, the next view,
# here or in a colleague's tab, shows it. The ttl only bounds how long an entry stays.
@st.cache_data(ttl=60, max_entries=20, show_spinner=False)
def _counts(version: tuple) -> dict[str, int]:
    return notice_counts(read_engine())


@st.cache_data(ttl=60, max_entries=20, show_spinner=False)
def _failures(version: tuple) -> list[dict]:
    return failed_notices(read_engine(), limit=500)


def _send_now() -> None:
    """Run a cycle here, the count of notices done drawn as it goes."""
    with st.status(_("Issuing the pending boletos…"), expanded=True) as status:
        bar = st.progress(0.0)

        def show(progress: CycleProgress) -> None:
            if progress.stage != "sending":
                return
            status.update(label=_("Sending the notices due now…"))
            bar.progress(
                min(progress.handled / progress.due, 1.0) if progress.due else 1.0,
                text=ngettext(
                    "{handled} of {count} notice done (sent, failed or skipped)",
                    "{handled} of {count} notices done (sent, failed or skipped)",
                    progress.due,
                ).format(handled=count_br(progress.handled), count=count_br(progress.due)),
            )

        result = run_cycle(engine(), actor=actor, progress=show)
        wrote()
        status.update(
            label=_("Done in {seconds} s.").format(
                seconds=f"{result.seconds:.1f}".replace(".", ",")
            ),
            state="error" if result.error else "complete",
            expanded=False,
        )
    st.success(
        _("{issued}, {added}; {sent} sent, {failed} failed, {retrying} to retry later.").format(
            issued=_counted(
                ngettext("{count} boleto issued", "{count} boletos issued", result.issued),
                result.issued,
            ),
            added=_counted(
                ngettext(
                    "{count} new notice added to the queue",
                    "{count} new notices added to the queue",
                    result.queued,
                ),
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
if may_send and send_column.button(
    _("Send now"), type="primary", help=_("Issue, queue and send the due notices.")
):
    with operator_errors():
        _send_now()

failures: list[dict] = []
with operator_errors():
    version = notices_version(read_engine())
    counts, queue = _counts(version), queue_parts(read_engine())
    columns = st.columns(4)
    # The queue as it is now, in parts that add up to it (read at every view: cheap);
    # not what a cycle added to it, which Send now reports as "new notices".
    columns[0].metric(
        _("Queued"),
        count_br(sum(queue.values())),
        help=_(
            "Every notice not yet finished: due now, being sent (by Send now or the worker), "
            "to be tried again later, or waiting for the mail server."
        ),
    )
    columns[1].metric(_("Sent"), count_br(counts["sent"]))
    columns[2].metric(_("Failed"), count_br(counts["failed"]))
    columns[3].metric(_("Skipped (paid or late)"), count_br(counts["skipped"]))
    st.caption(
        _(
            "Queued now: {due} due now, {sending} being sent, {later} to try again later, "
            "{waiting} waiting for the mail server."
        ).format(
            due=count_br(queue["due"]),
            sending=count_br(queue["sending"]),
            later=count_br(queue["later"]),
            waiting=count_br(queue["waiting"]),
        )
    )
    if queue["waiting"]:
        st.warning(
            _counted(
                ngettext(
                    "{count} notice is waiting for the mail server, which could not be reached: "
                    "it goes out by itself once it answers (tried again after a wait that grows "
                    "to 15 minutes), never twice.",
                    "{count} notices are waiting for the mail server, which could not be reached: "
                    "they go out by themselves once it answers (tried again after a wait that "
                    "grows to 15 minutes), none twice.",
                    queue["waiting"],
                ),
                queue["waiting"],
            )
        )
        st.metric(_("Waiting for the mail server"), count_br(queue["waiting"]))

    failures = _failures(version)

if not failures:
    st.info(_("No failed notice."))
else:
    st.subheader(_("Failed notices"))
    st.caption(_("Fix the debtor's e-mail or the mail settings, then press Retry failed."))
    table = in_local_time(pd.DataFrame(failures), "updated_at")
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
        placeholder=MISSING,
        column_config={
            "updated_at": time_column(_("When")),
            "debt_id": _("Debt"),
            "payer_name": _("Debtor"),
            "payer_email": _("E-mail"),
            "kind": _("Notice"),
            "attempts": _("Attempts"),
            "last_error": _("Reason"),
        },
    )
