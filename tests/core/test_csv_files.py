"""CSV files handed out: plain for programs, Excel pt-BR for operators, safe in both."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import pytest

from billing.core.csv_files import EXCEL_BR, PLAIN, CsvDialect, csv_chunks, source_dialect

HEADER = ("governmentId", "name", "amount", "due", "at", "note")
ROW = (
    "01234567890",
    "Conceição",
    Decimal("1234.50"),
    date(2026, 10, 31),
    datetime(2026, 10, 31, 14, 5),
    "=HYPERLINK(1)",
)


def written(
    dialect: CsvDialect = PLAIN,
    rows: Sequence[Sequence[object]] = (ROW,),
    header: Sequence[str] = HEADER,
) -> bytes:
    return b"".join(csv_chunks([list(rows)], header=header, dialect=dialect))


def test_plain_is_for_programs() -> None:
    data = written()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == list(HEADER)
    assert rows[1] == [
        "01234567890",
        "Conceição",
        "1234.50",
        "2026-10-31",
        "2026-10-31T14:05:00",
        "'=HYPERLINK(1)",
    ]


def test_excel_br_is_what_excel_in_portuguese_reads() -> None:
    data = written(EXCEL_BR)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel shows "Conceição"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[1] == [
        '="01234567890"',  # text: the leading zero survives
        "Conceição",
        "1234,50",  # decimal comma
        "31/10/2026",
        "31/10/2026 14:05",
        "'=HYPERLINK(1)",  # a formula from the data is still never run
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("12345678909", '="12345678909"'),  # 11 digits: Excel would show 1,23457E+10
        ("11222333000181", '="11222333000181"'),
        ("0042", '="0042"'),
        ("4200", "4200"),  # a plain number stays a number
        ("123.456.789-09", "123.456.789-09"),  # punctuated: already text
    ],
)
def test_excel_br_keeps_digit_strings_as_text(value: str, cell: str) -> None:
    data = written(EXCEL_BR, rows=[(value,)], header=("v",))
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))[1] == [cell]


def test_rejected_rows_go_back_in_the_dialect_they_came_in() -> None:
    dialect = source_dialect(delimiter=";", encoding="cp1252")
    data = written(dialect, rows=[("Conceição", "1.000,50")], header=("name", "debtAmount"))
    assert data == '"name";"debtAmount"\r\n"Conceição";"1.000,50"\r\n'.encode("cp1252")
    utf8 = source_dialect(delimiter=",", encoding="utf-8-sig")
    assert written(utf8, rows=[("a",)], header=("n",)).startswith(b'\xef\xbb\xbf"n"\r\n')
