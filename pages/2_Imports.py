"""Imports: every file received, what became of it, and its rejected rows."""

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.formatting import count_br
from billing.imports.service import import_history
from pages._session import current_actor
from pages._shared import engine, rejected_rows_button

actor = current_actor()

st.title("Import history")

history = import_history(engine())
if not history:
    st.info("No file imported yet. Start on the Upload page.")
    st.stop()

table = pd.DataFrame(history)
table["error"] = table["error"].fillna("")
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
    column_config={
        "id": st.column_config.NumberColumn("#", format="%d"),
        "started_at": st.column_config.DatetimeColumn("When", format="DD/MM/YYYY HH:mm"),
        "file_name": "File",
        "status": "Status",
        "rows": "Rows",
        "imported": "Imported",
        "duplicates": "Already present",
        "rejected": "Rejected",
        "duration_seconds": st.column_config.NumberColumn("Seconds", format="%.1f"),
        "error": "Message",
    },
)

with_rejections = [row for row in history if row["rejected"]]
if with_rejections and actor.can(Permission.EXPORT):
    st.subheader("Rejected rows")
    chosen = st.selectbox(
        "Import",
        with_rejections,
        format_func=lambda row: (
            f"#{row['id']} {row['file_name']} ({count_br(row['rejected'])} rejected)"
        ),
    )
    rejected_rows_button(actor, chosen["id"])
