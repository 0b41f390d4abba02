"""Upload: drop a debtor CSV, check the preview and the validation report, import it."""

import hashlib

import streamlit as st

from billing.accounts.access import Permission
from billing.core.errors import FileRefused
from billing.core.formatting import count_br
from billing.core.i18n import _, ngettext
from billing.imports.service import PreparedFile, import_file, prepare_file
from db.imports import IMPORT_CONNECTION_LOST
from pages._session import current_actor
from pages._shared import import_engine, operator_errors, plain, rejected_rows_button, wrote

actor = current_actor()

st.title(_("Upload a debtor file"))
if not actor.can(Permission.IMPORT):
    st.info(_("Importing files is for operators; your account can read the Imports page."))
    st.stop()
st.caption(
    _(
        "CSV with the columns name, governmentId, email, debtAmount, debtDueDate, debtId "
        "(comma or semicolon, UTF-8 or Latin-1). Importing the same file again never "
        "creates a charge twice."
    )
)

uploaded = st.file_uploader(_("Debtor file"), type=["csv", "txt"], key="debtor_file")
lenient = st.checkbox(
    _("Lenient documents"),
    help=_("Accept any non-empty governmentId instead of requiring a valid CPF or CNPJ."),
)


# A resource, not data: a million-row preview is kept once, not pickled on every rerun;
# the file's bytes are not hashed again (leading underscore), its sha256 is the key.
@st.cache_resource(show_spinner=_("Reading and validating the file…"), max_entries=2, ttl="15m")
def _prepare(digest: str, _data: bytes, lenient_documents: bool) -> PreparedFile | str:
    try:
        return prepare_file(_data, lenient_documents=lenient_documents)
    except FileRefused as refusal:
        return refusal.message


def _show_preview(prepared: PreparedFile) -> None:
    columns = st.columns(4)
    columns[0].metric(_("Rows"), count_br(prepared.row_count))
    columns[1].metric(_("Valid"), count_br(prepared.valid_count))
    columns[2].metric(_("Rejected"), count_br(prepared.rejected_count))
    columns[3].metric(_("Format"), f"{prepared.encoding}, “{prepared.delimiter}”")
    if prepared.extra_columns:
        st.info(_("Ignored columns: ") + plain(", ".join(prepared.extra_columns)))
    st.subheader(_("First rows as read"))
    st.dataframe(prepared.preview().to_pandas(), hide_index=True)
    if prepared.rejected_count:
        st.subheader(_("Rows that will be rejected"))
        st.dataframe(prepared.reason_summary(), hide_index=True)


def _refused(reason: str) -> None:
    st.error("**{title}** {reason}".format(title=_("File refused."), reason=plain(reason)))


def _show_result(result: dict) -> None:
    if result["status"] == "refused":
        _refused(result["error"])
        return
    imported = ngettext("{count} charge", "{count} charges", result["imported"])
    rejected = ngettext("{count} row", "{count} rows", result["rejected"])
    st.success(
        _(
            "Imported {charges} in {seconds} s; already present: {duplicates}; rejected: {rows}."
        ).format(
            charges=imported.format(count=count_br(result["imported"])),
            seconds=f"{result['seconds']:.1f}",
            duplicates=count_br(result["duplicates"]),
            rows=rejected.format(count=count_br(result["rejected"])),
        )
    )
    columns = st.columns(4)
    columns[0].metric(_("Imported"), count_br(result["imported"]))
    columns[1].metric(_("Already present"), count_br(result["duplicates"]))
    columns[2].metric(_("Rejected"), count_br(result["rejected"]))
    columns[3].metric(_("Seconds"), f"{result['seconds']:.1f}".replace(".", ","))
    if result["rejected"]:
        rejected_rows_button(actor, result["import_id"])


if uploaded is None:
    st.session_state.pop("import_result", None)
    st.info(_("Drag a CSV file here to see a preview before anything is imported."))
    st.stop()

data = uploaded.getvalue()
digest = hashlib.sha256(data).hexdigest()
prepared = _prepare(digest, data, lenient)
if isinstance(prepared, str):
    _refused(prepared)
    st.stop()

_show_preview(prepared)

done = st.session_state.get("import_result")
if done and done["digest"] == digest:
    _show_result(done["result"])
elif st.button(_("Import"), type="primary", disabled=prepared.valid_count == 0):
    progress = st.progress(0.0, text=_("Starting"))
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
