"""Imports: every file received, what became of it, and its rejected rows."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.formatting import count_br
from billing.core.i18n import _
from billing.imports.service import import_history
from pages._session import current_actor
from pages._shared import engine, rejected_rows_button, shown_word
from pages._tables import MISSING, in_local_time, time_column

actor = current_actor()

st.title(_("Import history"))

history = import_history(engine())
if not history:
    st.info(_("No file imported yet. Start on the Upload page."))
    st.stop()

table = in_local_time(pd.DataFrame(history), "started_at")
table["error"] = table["error"].fillna("")
table["status"] = table["status"].map(shown_word)
# Counts written the pt-BR way like every other screen (300.000), whatever the browser.
for column in ("rows", "imported", "duplicates", "rejected"):
    table[column] = [None if pd.isna(n) else count_br(int(n)) for n in table[column]]
st.dataframe(
    table[
        [
            "id",
            "started_at",
            "file_name",
            "status",
            "rows",
            "imported",
            "duplicates",
            "rejected",
            "duration_seconds",
            "error",
        ]
    ],
    hide_index=True,
    placeholder=MISSING,
    column_config={
        "id": st.column_config.NumberColumn("#", format="%d"),
        "started_at": time_column(_("When")),
        "file_name": _("File"),
        "status": _("Status"),
        "rows": _("Rows"),
        "imported": _("Imported"),
        "duplicates": _("Already present"),
        "rejected": _("Rejected"),
        "duration_seconds": st.column_config.NumberColumn(_("Seconds"), format="%.1f"),
        "error": _("Message"),
    },
)

with_rejections = [row for row in history if row["rejected"]]
if with_rejections and actor.can(Permission.EXPORT):
    st.subheader(_("Rejected rows"))
    chosen = st.selectbox(
        _("Import"),
        with_rejections,
        format_func=lambda row: _("#{id} {file} ({count} rejected)").format(
            id=row["id"], file=row["file_name"], count=count_br(row["rejected"])
        ),
    )
    rejected_rows_button(actor, chosen["id"])
