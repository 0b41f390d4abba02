"""Upload: drop a debtor CSV, check the preview and the validation report, import it."""

import hashlib

import streamlit as st

from billing.accounts.access import Permission
from billing.core.errors import FileRefused
from billing.core.formatting import count_br, counted
from billing.imports.service import PreparedFile, import_file, prepare_file
from db.imports import IMPORT_CONNECTION_LOST
from pages._session import current_actor
from pages._shared import import_engine, operator_errors, plain, rejected_rows_button, wrote

actor = current_actor()

st.title("Upload a debtor file")
if not actor.can(Permission.IMPORT):
    st.info("Importing files is for operators; your account can read the Imports page.")
    st.stop()
st.caption(
    "CSV with the columns name, governmentId, email, debtAmount, debtDueDate, debtId "
    "(comma or semicolon, UTF-8 or Latin-1). Importing the same file again never "
    "creates a charge twice."
)

uploaded = st.file_uploader("Debtor file", type=["csv", "txt"], key="debtor_file")
lenient = st.checkbox(
    "Lenient documents",
    help="Accept any non-empty governmentId instead of requiring a valid CPF or CNPJ.",
)


# A resource, not data: a million-row preview is kept once, not pickled on every rerun;
# the file's bytes are not hashed again (leading underscore), its sha256 is the key.
@st.cache_resource(show_spinner="Reading and validating the file…", max_entries=2, ttl="15m")
def _prepare(digest: str, _data: bytes, lenient_documents: bool) -> PreparedFile | str:
    try:
        return prepare_file(_data, lenient_documents=lenient_documents)
    except FileRefused as refusal:
        return refusal.message


def _show_preview(prepared: PreparedFile) -> None:
    columns = st.columns(4)
    columns[0].metric("Rows", count_br(prepared.row_count))
    columns[1].metric("Valid", count_br(prepared.valid_count))
    columns[2].metric("Rejected", count_br(prepared.rejected_count))
    columns[3].metric("Format", f"{prepared.encoding}, “{prepared.delimiter}”")
    if prepared.extra_columns:
        st.info("Ignored columns: " + plain(", ".join(prepared.extra_columns)))
    st.subheader("First rows as read")
    st.dataframe(prepared.preview().to_pandas(), hide_index=True)
    if prepared.rejected_count:
        st.subheader("Rows that will be rejected")
        st.dataframe(prepared.reason_summary(), hide_index=True)


def _show_result(result: dict) -> None:
    if result["status"] == "refused":
        st.error(f"**File refused.** {plain(result['error'])}")
        return
    st.success(
        f"Imported {counted(result['imported'], 'charge', 'charges')} in "
        f"{result['seconds']:.1f} s; already present: {count_br(result['duplicates'])}; "
        f"rejected: {counted(result['rejected'], 'row', 'rows')}."
    )
    columns = st.columns(4)
    columns[0].metric("Imported", count_br(result["imported"]))
    columns[1].metric("Already present", count_br(result["duplicates"]))
    columns[2].metric("Rejected", count_br(result["rejected"]))
    columns[3].metric("Seconds", f"{result['seconds']:.1f}".replace(".", ","))
    if result["rejected"]:
        rejected_rows_button(actor, result["import_id"])


if uploaded is None:
    st.session_state.pop("import_result", None)
    st.info("Drag a CSV file here to see a preview before anything is imported.")
    st.stop()

data = uploaded.getvalue()
digest = hashlib.sha256(data).hexdigest()
prepared = _prepare(digest, data, lenient)
if isinstance(prepared, str):
    st.error(f"**File refused.** {plain(prepared)}")
    st.stop()

_show_preview(prepared)

done = st.session_state.get("import_result")
if done and done["digest"] == digest:
    _show_result(done["result"])
elif st.button("Import", type="primary", disabled=prepared.valid_count == 0):
    progress = st.progress(0.0, text="Starting")
    with operator_errors(when_database_lost=IMPORT_CONNECTION_LOST):
        result = import_file(
            engine=import_engine(),
            actor=actor,
            data=data,
            file_name=uploaded.name,
            lenient_documents=lenient,
            on_progress=lambda fraction, message: progress.progress(
                min(fraction, 1.0), text=message
            ),
        ).as_dict()
        wrote()
        st.session_state["import_result"] = {"digest": digest, "result": result}
        progress.empty()
        _show_result(result)
