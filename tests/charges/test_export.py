"""The CSV export: formula neutralisation, plain numbers and dates, streamed in batches."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from billing.accounts.access import Forbidden
from billing.charges.export import (
    EXPORT_HEADER,
    charges_csv_chunks,
    charges_csv_file,
    export_file_name,
)
from billing.core.csv_files import csv_cell, neutralise
from billing.core.filters import ChargeFilter
from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import import_file, rejected_rows_csv
from tests.support.actors import OPERATOR, VIEWER
from tests.support.spreadsheets import QUOTED_RECORD

TODAY = date(2024, 3, 1)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-x", "'-x"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Maria da Conceição", "Maria da Conceição"),
        ("a=1", "a=1"),  # only the first character matters
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised(value: str, written: str) -> None:
    assert neutralise(value) == written
    assert csv_cell(value) == written


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("-12.50"), "-12.50"),  # a number: never taken for a formula
        (Decimal("1500.00"), "1500.00"),
        (Decimal("0.01"), "0.01"),
        (Decimal("1E+3"), "1000"),  # plain, never scientific
        (1234567890, "1234567890"),
        (date(2024, 5, 10), "2024-05-10"),
        (datetime(2024, 5, 10, 14, 30), "2024-05-10T14:30:00"),
        (True, "yes"),
        (False, "no"),
        (None, ""),
    ],
)
def test_numbers_dates_and_flags_are_written_plainly(value: object, written: str) -> None:
    assert csv_cell(value) == written


HOSTILE_ROWS = [
    ("=1+2", "52998224725", "a@ex.com", "10.00", "2024-01-10", "E-1"),
    ("+cmd", "11144477735", "b@ex.com", "1500", "2024-01-11", "E-2"),
    ("-x", "12345678909", "c@ex.com", "2952.95", "2024-01-12", "=HYPERLINK(1)"),
    ("@SUM(A1)", "93541134780", "d@ex.com", "0.50", "2024-01-13", "E-4"),
    ('Ana; "Souza", Jr', "28625587887", "e@ex.com", "99.99", "2024-01-14", "E-5"),
    ("Maria da Conceição", "11.222.333/0001-81", "f@ex.com", "7.00", "2024-01-15", "E-6"),
]


def hostile_csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REQUIRED_COLUMNS)
    writer.writerows(HOSTILE_ROWS)
    return buffer.getvalue().encode()


def read_export(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_export_of_the_filtered_charges(db: Engine) -> None:
    result = import_file(
        actor=OPERATOR, engine=db, data=hostile_csv(), file_name="x.csv", lenient_documents=True
    )
    assert result.imported == len(HOSTILE_ROWS), result
    charge_filter = ChargeFilter(due_from=date(2024, 1, 11), sort="amount", descending=True)

    chunks = list(
        charges_csv_chunks(
            db, actor=OPERATOR, charge_filter=charge_filter, today=TODAY, batch_rows=2
        )
    )
    assert len(chunks) == 1 + 3  # the header, then 5 rows two at a time
    rows = read_export(b"".join(chunks))

    assert list(rows[0]) == list(EXPORT_HEADER)
    assert [row["debtId"] for row in rows] == ["'=HYPERLINK(1)", "E-2", "E-5", "E-6", "E-4"]
    by_debt = {row["debtId"]: row for row in rows}
    assert by_debt["E-2"]["name"] == "'+cmd"
    assert by_debt["'=HYPERLINK(1)"]["name"] == "'-x"
    assert by_debt["E-4"]["name"] == "'@SUM(A1)"
    assert by_debt["E-5"]["name"] == 'Ana; "Souza", Jr'
    assert by_debt["E-6"]["name"] == "Maria da Conceição"
    # Whole documents, plain amounts, ISO dates.
    assert by_debt["E-6"]["governmentId"] == "11222333000181"
    assert by_debt["E-2"]["governmentId"] == "11144477735"
    assert by_debt["E-2"]["debtAmount"] == "1500.00"
    assert by_debt["E-4"]["debtAmount"] == "0.50"
    assert by_debt["E-2"]["debtDueDate"] == "2024-01-11"
    assert by_debt["E-2"]["status"] == "issued"
    assert by_debt["E-2"]["overdue"] == "yes"
    assert by_debt["E-2"]["paidAmount"] == "0.00"
    assert len(by_debt["E-2"]["digitableLine"]) > 40


def test_export_file_is_a_raw_file_with_the_same_bytes(db: Engine) -> None:
    import_file(
        actor=OPERATOR, engine=db, data=hostile_csv(), file_name="x.csv", lenient_documents=True
    )
    charge_filter = ChargeFilter(text="conceicao")
    file = charges_csv_file(db, actor=OPERATOR, charge_filter=charge_filter, today=TODAY)
    assert isinstance(file, io.RawIOBase)  # what st.download_button reads whole
    data = file.read()
    assert data == b"".join(
        charges_csv_chunks(db, actor=OPERATOR, charge_filter=charge_filter, today=TODAY)
    )
    assert [row["debtId"] for row in read_export(data)] == ["E-6"]


def test_an_empty_export_still_has_its_header(db: Engine) -> None:
    data = b"".join(
        charges_csv_chunks(db, actor=OPERATOR, charge_filter=ChargeFilter(), today=TODAY)
    )
    assert data.decode("utf-8-sig") == ",".join(f'"{name}"' for name in EXPORT_HEADER) + "\r\n"


def test_every_cell_of_the_export_is_quoted(db: Engine) -> None:
    import_file(
        actor=OPERATOR, engine=db, data=hostile_csv(), file_name="x.csv", lenient_documents=True
    )
    data = b"".join(
        charges_csv_chunks(db, actor=OPERATOR, charge_filter=ChargeFilter(), today=TODAY)
    )

    text = data.decode("utf-8-sig")
    records = text.split("\r\n")
    assert len(records) == 1 + len(HOSTILE_ROWS) + 1 and records[-1] == ""
    assert all(QUOTED_RECORD.fullmatch(record) for record in records[:-1]), records
    assert '"\'=1+2"' in text  # quoted and neutralised
    assert '"1500.00"' in text  # numbers quoted too, still plain


def test_export_file_name() -> None:
    assert export_file_name(ChargeFilter(), today=TODAY) == "charges-all-2024-03-01.csv"
    assert (
        export_file_name(ChargeFilter(statuses=("paid",)), today=TODAY)
        == "charges-filtered-2024-03-01.csv"
    )


def test_only_roles_that_export_get_the_file_and_each_export_is_audited(db: Engine) -> None:
    import_file(
        actor=OPERATOR, engine=db, data=hostile_csv(), file_name="x.csv", lenient_documents=True
    )
    charge_filter = ChargeFilter(text="conceicao")
    with pytest.raises(Forbidden):
        charges_csv_chunks(db, actor=VIEWER, charge_filter=charge_filter, today=TODAY)
    data = b"".join(
        charges_csv_chunks(db, actor=OPERATOR, charge_filter=charge_filter, today=TODAY)
    )
    with db.connect() as conn:
        actor, details = conn.execute(
            text(
                "SELECT actor, details FROM audit_events WHERE action = 'charges.export' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert actor == OPERATOR.name
    assert details == {
        "filter": {"q": "conceicao"},
        "form": "plain",
        "rows": len(data.splitlines()) - 1,
    }


def test_export_file_name_of_the_excel_form() -> None:
    assert (
        export_file_name(ChargeFilter(), today=TODAY, form="excel")
        == "charges-all-2024-03-01-excel.csv"
    )


LEADING_ZERO_CPF = "01234567890"  # a valid CPF: Excel would show 1234567890 if not told


def test_the_excel_form_reads_in_excel_set_to_portuguese(db: Engine) -> None:
    rows = [("Maria da Conceição", LEADING_ZERO_CPF, "m@ex.com", "1500.5", "2024-01-11", "X-1")]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([REQUIRED_COLUMNS, *rows])
    import_file(
        actor=OPERATOR,
        engine=db,
        data=buffer.getvalue().encode(),
        file_name="x.csv",
        lenient_documents=False,
    )

    data = b"".join(
        charges_csv_chunks(
            db, actor=OPERATOR, charge_filter=ChargeFilter(), today=TODAY, form="excel"
        )
    )

    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel shows "Conceição"
    header, _row, end = data.decode("utf-8-sig").split("\r\n")
    assert header == ";".join(f'"{name}"' for name in EXPORT_HEADER) and end == ""
    [row] = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert row["name"] == "Maria da Conceição"
    assert row["governmentId"] == f'="{LEADING_ZERO_CPF}"'  # text: the leading zero stays
    assert row["debtAmount"] == "1500,50"  # decimal comma
    assert row["debtDueDate"] == "11/01/2024"
    assert row["overdue"] == "yes"
    with db.connect() as conn:
        form = conn.execute(
            text(
                "SELECT details->>'form' FROM audit_events WHERE action = 'charges.export' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()
    assert form == "excel"


def test_the_excel_file_has_the_same_bytes_as_its_chunks(db: Engine) -> None:
    import_file(
        actor=OPERATOR, engine=db, data=hostile_csv(), file_name="x.csv", lenient_documents=True
    )
    file = charges_csv_file(
        db, actor=OPERATOR, charge_filter=ChargeFilter(), today=TODAY, form="excel"
    )
    chunks = charges_csv_chunks(
        db, actor=OPERATOR, charge_filter=ChargeFilter(), today=TODAY, form="excel"
    )
    data = file.read()
    assert data == b"".join(chunks)
    assert b'"\'=1+2"' in data  # formulas neutralised in this form too


def test_an_unknown_form_is_refused() -> None:
    with pytest.raises(ValueError, match="form must be one of"):
        charges_csv_chunks(
            None,  # type: ignore[arg-type]  # refused before the database is touched
            actor=OPERATOR,
            charge_filter=ChargeFilter(),
            today=TODAY,
            form="xlsx",
        )


def test_rejected_rows_go_back_in_the_dialect_of_their_file(db: Engine) -> None:
    lines = [
        ";".join(REQUIRED_COLUMNS),
        f"Conceição Souza;{LEADING_ZERO_CPF};ok@ex.com;1.000,50;31/10/2026;R-1",
        f"João Conceição;{LEADING_ZERO_CPF};not-an-email;10,00;31/10/2026;R-2",
    ]
    data = "\r\n".join(lines).encode("cp1252")
    result = import_file(
        actor=OPERATOR, engine=db, data=data, file_name="banco.csv", lenient_documents=False
    )
    assert result.rejected == 1, result

    download = rejected_rows_csv(db, actor=OPERATOR, import_id=result.import_id)

    assert not download.startswith(b"\xef\xbb\xbf")
    text_back = download.decode("cp1252")  # the file's own encoding, not UTF-8
    assert "João Conceição" in text_back and "Jo\u00e3o".encode() not in download
    [row] = list(csv.DictReader(io.StringIO(text_back), delimiter=";"))
    assert (row["name"], row["email"], row["debtId"]) == ("João Conceição", "not-an-email", "R-2")
    assert row["debtAmount"] == "10,00"  # as it was in the file


def test_rejected_rows_of_a_plain_utf8_file_stay_plain(db: Engine) -> None:
    rows = [("Ana", LEADING_ZERO_CPF, "bad-email", "10.00", "2024-01-10", "P-1")]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([REQUIRED_COLUMNS, *rows])
    result = import_file(
        actor=OPERATOR,
        engine=db,
        data=buffer.getvalue().encode(),
        file_name="x.csv",
        lenient_documents=False,
    )
    download = rejected_rows_csv(db, actor=OPERATOR, import_id=result.import_id)
    assert download.startswith(b"\xef\xbb\xbf")
    [row] = list(csv.DictReader(io.StringIO(download.decode("utf-8-sig"))))
    assert row["email"] == "bad-email"
