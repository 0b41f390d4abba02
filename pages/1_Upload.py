"""Upload: drop a debtor CSV, check the preview and the validation report, import it."""

import hashlib

import pandas as pd
import streamlit as st

from billing.accounts.access import Permission
from billing.core.errors import FileRefused, OperatorError
from billing.core.formatting import count_br
from billing.core.i18n import _, ngettext
from billing.core.settings import get_settings
from billing.imports.mapping import check_columns, guess_columns, mapping_for_header, save_mapping
from billing.imports.reading import REQUIRED_COLUMNS, ColumnsNotFound, peek_rows
from billing.imports.service import PreparedFile, import_file, prepare_file
from billing.imports.validation import reason_in_language, reasons_in_language
from db.imports import IMPORT_CONNECTION_LOST
from pages._session import current_actor
from pages._shared import (
    engine,
    import_engine,
    operator_errors,
    plain,
    rejected_rows_button,
    uploader_in_language,
    wrote,
)

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

# The smaller of the import's own limit and the upload's (.streamlit/config.toml).
limit_mb = min(get_settings().max_file_mb, st.get_option("server.maxUploadSize"))
uploader_in_language(max_mb=limit_mb, kinds="CSV, TXT")
uploaded = st.file_uploader(_("Debtor file"), type=["csv", "txt"], key="debtor_file")
lenient = st.checkbox(
    _("Lenient documents"),
    help=_("Accept any non-empty governmentId instead of requiring a valid CPF or CNPJ."),
)


# A resource, not data: a million-row preview is kept once, not pickled on every rerun;
# the file's bytes are not hashed again (leading underscore), its sha256 is the key.
@st.cache_resource(show_spinner=_("Reading and validating the file…"), max_entries=4, ttl="15m")
def _prepare(
    digest: str, _data: bytes, lenient_documents: bool, mapping: tuple[tuple[str, str], ...]
) -> PreparedFile | ColumnsNotFound | str:
    try:
        return prepare_file(_data, lenient_documents=lenient_documents, mapping=dict(mapping))
    except ColumnsNotFound as not_found:
        return not_found
    except FileRefused as refusal:
        return refusal.message


def _map_columns(digest: str, data: bytes) -> tuple[dict[str, str], str | None] | None:
    """Each field of ours chosen among the file's columns, pre-filled with the saved
    mapping for this header or the best guesses; the mapping and its saved name, or None
    while it is incomplete. A name given saves it for the next file with these columns."""
    try:
        header, rows = peek_rows(data)
    except FileRefused as refusal:
        _refused(refusal.message)
        st.stop()
    saved = mapping_for_header(engine(), header)
    proposal = saved["columns"] if saved else guess_columns(header, rows)
    st.subheader(_("Which column is which"))
    if saved:
        st.info(_("Mapped as the saved mapping “{name}”.").format(name=plain(saved["name"])))
    else:
        st.info(
            _(
                "The columns of this file have other names than ours. Choose the file's "
                "column for each field; the best guesses are already chosen."
            )
        )
    options = ["", *header]
    chosen: dict[str, str | None] = {}
    places = st.columns(3)
    for position, column in enumerate(REQUIRED_COLUMNS):
        default = proposal.get(column)
        chosen[column] = places[position % 3].selectbox(
            column,
            options,
            index=options.index(default) if default in options else 0,
            format_func=lambda name: name or _("(choose a column)"),
            key=f"map-{digest}-{column}",
        )
    try:
        mapping = check_columns(header, chosen)
    except OperatorError as problem:
        st.warning(problem.message)
        return None
    name = saved["name"] if saved and saved["columns"] == mapping else None
    with st.form(f"save-mapping-{digest}", border=False, enter_to_submit=False):
        typed = st.text_input(
            _("Save this mapping as"),
            value=saved["name"] if saved else "",
            placeholder=_("the system the file comes from: Banco X, ERP…"),
        )
        if st.form_submit_button(_("Save mapping")):
            with operator_errors():
                kept = save_mapping(
                    engine(), actor=actor, name=typed, header=header, columns=mapping
                )
                wrote()
                name = kept["name"]
                st.success(
                    _("Saved as “{name}”: the next file with these columns comes mapped.").format(
                        name=plain(name)
                    )
                )
    return mapping, name


def _show_preview(prepared: PreparedFile) -> None:
    columns = st.columns(4)
    columns[0].metric(_("Rows"), count_br(prepared.row_count))
    columns[1].metric(_("Valid"), count_br(prepared.valid_count))
    columns[2].metric(_("Rejected"), count_br(prepared.rejected_count))
    columns[3].metric(_("Format"), f"{prepared.encoding}, “{prepared.delimiter}”")
    if prepared.extra_columns:
        st.info(_("Ignored columns: ") + plain(", ".join(prepared.extra_columns)))
    st.subheader(_("First rows as read"))
    rows = prepared.marked_preview().to_pandas()
    rows["reasons"] = [reasons_in_language(text) for text in rows["reasons"]]
    rejected = rows["reasons"] != ""
    st.dataframe(
        rows.style.apply(
            lambda row: ["background-color: #fde8e8" if rejected[row.name] else ""] * len(row),
            axis=1,
        ),
        hide_index=True,
        column_config={"line": _("Line"), "reasons": _("Why it will be rejected")},
    )
    if prepared.rejected_count:
        st.subheader(_("Rows that will be rejected"))
        summary = prepared.reason_summary()
        st.dataframe(
            pd.DataFrame(
                {
                    _("Reason"): [reason_in_language(entry["reason"]) for entry in summary],
                    _("Rows"): [count_br(entry["rows"]) for entry in summary],
                    _("First lines"): [
                        ", ".join(map(str, entry["example lines"])) for entry in summary
                    ],
                }
            ),
            hide_index=True,
        )


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
prepared = _prepare(digest, data, lenient, ())
mapping: dict[str, str] | None = None
mapping_name: str | None = None
if isinstance(prepared, ColumnsNotFound):  # a file from another system: map its columns
    mapped = _map_columns(digest, data)
    if mapped is None:
        st.stop()
    mapping, mapping_name = mapped
    prepared = _prepare(digest, data, lenient, tuple(sorted(mapping.items())))
if isinstance(prepared, ColumnsNotFound):  # cannot happen with every column mapped
    prepared = prepared.message
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
            mapping=mapping,
            mapping_name=mapping_name,
            on_progress=lambda fraction, message: progress.progress(
                min(fraction, 1.0), text=message
            ),
        ).as_dict()
        wrote()
        st.session_state["import_result"] = {"digest": digest, "result": result}
        progress.empty()
        _show_result(result)
