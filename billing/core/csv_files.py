"""CSV files the product hands out (exports, rejected rows, the audit trail), written one
way: every cell quoted, CRLF line ends, and a text cell that a spreadsheet would run as a
formula (CSV injection) given a leading apostrophe.

Two dialects (`CsvDialect`): PLAIN, for other programs (comma, decimal point, ISO dates,
UTF-8 with a byte-order mark), and EXCEL_BR, for Excel set to Portuguese (Brasil):
semicolons, decimal comma, dd/mm/aaaa dates, and long or zero-led digit strings (a CPF,
a CNPJ, a nosso número) written as ="..." so Excel keeps them as text: no leading zero
lost, no 1,23457E+10. The rejected rows of an import go back in the dialect of the file
they came from (`source_dialect`)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Digits Excel would read as a number and show otherwise: a leading zero, or 11 or more.
_DIGITS_EXCEL_MANGLES = re.compile(r"0\d+|\d{11,}")


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ","
    encoding: str = "utf-8"  # the first chunk carries a byte-order mark when UTF-8
    decimal_comma: bool = False
    dates_br: bool = False
    digits_as_text: bool = False  # Excel: ="0123" keeps a digit string as text


PLAIN = CsvDialect()
EXCEL_BR = CsvDialect(delimiter=";", decimal_comma=True, dates_br=True, digits_as_text=True)


def source_dialect(*, delimiter: str, encoding: str) -> CsvDialect:
    """The dialect of an uploaded file, for handing its own rows back (rejected rows)."""
    return CsvDialect(delimiter=delimiter, encoding="utf-8" if "utf" in encoding else encoding)


def neutralise(value: str) -> str:
    """A text cell a spreadsheet will show as text, never run as a formula."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_cell(value: Any, dialect: CsvDialect = PLAIN) -> str:
    """One value as written in the CSV."""
    if isinstance(value, str):  # first: nearly every cell is text
        if dialect.digits_as_text and _DIGITS_EXCEL_MANGLES.fullmatch(value):
            return f'="{value}"'
        return neutralise(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        plain = format(value, "f")
        return plain.replace(".", ",") if dialect.decimal_comma else plain
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M") if dialect.dates_br else value.isoformat()
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y") if dialect.dates_br else value.isoformat()
    return neutralise(str(value))


def csv_chunks(
    rows: Iterable[Iterable[Iterable[Any]]],
    *,
    header: Sequence[str],
    dialect: CsvDialect = PLAIN,
) -> Iterator[bytes]:
    """CSV bytes for batches of rows, one chunk per batch, after the header (and a BOM
    when UTF-8). Every cell quoted and written by `csv_cell`: text never runs as a formula.
    """
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=dialect.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_ALL
    )
    writer.writerow(header)
    utf8 = dialect.encoding == "utf-8"
    yield buffer.getvalue().encode("utf-8-sig" if utf8 else dialect.encoding, errors="replace")
    for batch in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(value, dialect) for value in row] for row in batch)
        yield buffer.getvalue().encode(dialect.encoding, errors="replace")
