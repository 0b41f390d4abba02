"""Audit (admins): who signed in and who did what, filtered; exported as CSV (recorded too)."""

from datetime import date

import pandas as pd
import streamlit as st

from billing.accounts.audit import AuditFilter, audit_choices, audit_csv_file, audit_events
from billing.core.i18n import _
from billing.core.settings import get_settings
from billing.notices.planning import today_in
from pages._session import current_actor
from pages._shared import engine, operator_errors, read_engine
from pages._tables import MISSING, in_local_time, one_page_of_many, time_column

actor = current_actor()
zone = get_settings().timezone
st.title(_("Audit trail"))
st.caption(_("Every sign-in, every action on money or personal data, every account change."))

choices = None
with operator_errors():
    choices = audit_choices(read_engine(), actor=actor)
if choices is None:
    st.stop()  # the refusal is on the screen

columns = st.columns([2, 2, 2, 1, 1])
who = columns[0].selectbox(
    _("Who"), [None, *choices["actor"]], format_func=lambda v: v or _("Anyone")
)
what = columns[1].selectbox(
    _("Action"), [None, *choices["action"]], format_func=lambda v: v or _("Any action")
)
subject = columns[2].text_input(_("Subject"), placeholder=_("charge:12, debtor:3, an e-mail…"))
day_from: date | None = columns[3].date_input(_("From"), value=None, format="DD/MM/YYYY")
day_to: date | None = columns[4].date_input(_("Until"), value=None, format="DD/MM/YYYY")
audit_filter = AuditFilter(
    actor=who, action=what, subject=subject, day_from=day_from, day_to=day_to
)

state = st.session_state
if state.get("audit_pages_of") != audit_filter:
    state.audit_pages_of, state.audit_cursors = audit_filter, [None]
rows = audit_events(
    read_engine(),
    actor=actor,
    audit_filter=audit_filter,
    timezone=zone,
    before_id=state.audit_cursors[-1],
)
if not rows:
    st.info(_("No event matches these filters."))
    st.stop()
when = _("When")
one_page_of_many("audit").dataframe(
    in_local_time(
        pd.DataFrame(
            {
                when: [row["at"] for row in rows],
                _("Who"): [row["actor"] for row in rows],
                _("Action"): [row["action"] for row in rows],
                _("Subject"): [row["subject"] or None for row in rows],
                _("Details"): [
                    ", ".join(f"{k}: {v}" for k, v in row["details"].items()) or None
                    for row in rows
                ],
            }
        ),
        when,
    ),
    hide_index=True,
    placeholder=MISSING,
    column_config={when: time_column(when)},
)
previous, caption, following = st.columns([1, 4, 1])
if previous.button(_("← Newer"), disabled=len(state.audit_cursors) == 1):
    state.audit_cursors.pop()
    st.rerun()
caption.caption(_("Page {page}, newest first.").format(page=len(state.audit_cursors)))
if following.button(_("Older →"), disabled=len(rows) < 100):
    state.audit_cursors.append(rows[-1]["id"])
    st.rerun()

current_engine = engine()
st.download_button(
    _("Download these events (CSV)"),
    data=lambda: audit_csv_file(
        current_engine, actor=actor, audit_filter=audit_filter, timezone=zone
    ),
    file_name=f"audit-{today_in().isoformat()}.csv",
    mime="text/csv",
    on_click="ignore",
    help=_("Every event matching the filters, oldest first; the download is itself recorded."),
)
