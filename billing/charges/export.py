"""The filtered charges as a CSV for collection work, streamed from the database.

Decisions, so a reader need not rediscover them:

* Streamed: rows come from a server-side cursor a few thousand at a time and leave as
  CSV bytes; no list of all rows is ever built (`charges_csv_chunks`). Streamlit's
  download button keeps the finished file in memory while the operator is connected,
  so the page hands it a temporary file written chunk by chunk (`charges_csv_file`),
  and asks for it only when the button is clicked.
* Safe to open in a spreadsheet: a text cell starting with = + - @, a tab or a carriage
  return would be read as a formula (CSV injection); it gets a leading apostrophe.
  Amounts are numbers, written as plain decimals ("1234.50"), so they are never
  touched; dates are ISO (YYYY-MM-DD), which every spreadsheet reads as a date. Every
  cell is quoted. `csv_chunks` is the one writer of every CSV the product hands out
  (this export, an import's rejected rows), so they are all written the same way.
* The governmentId is written whole (digits, as stored): the export is the operators'
  working file for collection, where the document identifies the debtor; screens mask
  it, files leave with the operator's own access to the whole record.
* UTF-8 with a byte-order mark and CRLF line ends, like the rejected-rows CSV, so Excel
  shows "Conceição" and not mojibake.
* Two forms (`FORMS`): plain (the above, for other programs and for uploading again) and
  Excel pt-BR (`;`, decimal comma, dd/mm/aaaa, a CPF/CNPJ or nosso número kept as text
  so its leading zeros survive; billing.core.csv_files.EXCEL_BR). The file's name and
  its audit row say which form it was.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Engine, RowMapping

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.core.csv_files import EXCEL_BR, PLAIN, CsvDialect, csv_chunks
from billing.core.filters import ChargeFilter
from db import charges as charges_db

# The CSV's header, the same order as db.charges.EXPORT_COLUMNS; the first six are the
# upload's own column names, so an exported file reads back as a debtor file.
BATCH_ROWS = 5000
# The forms an export is offered in, by the name its audit row and file name carry.
FORMS: dict[str, CsvDialect] = {"plain": PLAIN, "excel": EXCEL_BR}
EXPORT_HEADER = (
    "debtId", "name", "governmentId", "email", "debtAmount", "debtDueDate", "status",
    "overdue", "paidAmount", "nossoNumero", "digitableLine", "importId",
)  # fmt: skip


def charges_csv_chunks(
    engine: Engine,
    *,
    actor: Actor,
    charge_filter: ChargeFilter,
    today: date,
    form: str = "plain",
    batch_rows: int = BATCH_ROWS,
) -> Iterator[bytes]:
    """The filtered charges as CSV bytes, in the filter's order, a batch at a time.

    For the roles that may export (refused at the call, before any byte); recorded in
    the audit trail with the filter, the form (a key of FORMS) and the number of rows
    once the last row is out.
    Suitable for any streaming response; the database cursor stays open while the
    chunks are consumed.
    """
    require(actor, Permission.EXPORT)
    if form not in FORMS:
        raise ValueError(f"form must be one of {tuple(FORMS)}, not {form!r}")
    return _audited_chunks(
        engine,
        actor=actor,
        charge_filter=charge_filter,
        today=today,
        form=form,
        batch_rows=batch_rows,
    )


def _audited_chunks(
    engine: Engine,
    *,
    actor: Actor,
    charge_filter: ChargeFilter,
    today: date,
    form: str,
    batch_rows: int,
) -> Iterator[bytes]:
    rows = 0

    def counted(batches: Iterable[Sequence[RowMapping]]) -> Iterator[list[list[Any]]]:
        nonlocal rows
        for batch in batches:
            rows += len(batch)
            yield [[row[column] for column in charges_db.EXPORT_COLUMNS] for row in batch]

    with engine.connect() as conn:
        batches = charges_db.stream_export_rows(
            conn, charge_filter=charge_filter, today=today, batch_rows=batch_rows
        )
        yield from csv_chunks(counted(batches), header=EXPORT_HEADER, dialect=FORMS[form])
    audit.record_now(
        engine,
        actor=actor,
        action=audit.Action.EXPORT_CHARGES,
        details={"filter": charge_filter.to_query_params(), "form": form, "rows": rows},
    )


def charges_csv_file(
    engine: Engine,
    *,
    actor: Actor,
    charge_filter: ChargeFilter,
    today: date,
    form: str = "plain",
    batch_rows: int = BATCH_ROWS,
) -> io.RawIOBase:
    """The export written to an anonymous temporary file on disk, rewound (and audited)."""
    chunks = charges_csv_chunks(
        engine,
        actor=actor,
        charge_filter=charge_filter,
        today=today,
        form=form,
        batch_rows=batch_rows,
    )
    # Unbuffered: a raw file, which st.download_button accepts (it reads it whole).
    file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (returned to the caller)
    for chunk in chunks:
        file.write(chunk)
    file.seek(0)
    return file


def export_file_name(charge_filter: ChargeFilter, *, today: date, form: str = "plain") -> str:
    """charges-all-2024-03-01.csv; the Excel form ends in -excel.csv."""
    suffix = "all" if charge_filter.is_empty else "filtered"
    excel = "-excel" if form == "excel" else ""
    return f"charges-{suffix}-{today.isoformat()}{excel}.csv"
