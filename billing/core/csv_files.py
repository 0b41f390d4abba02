"""CSV files the product hands out (exports, rejected rows, the audit trail), written one
way: every cell quoted, UTF-8 with a byte-order mark and CRLF line ends, and a text cell
that a spreadsheet would run as a formula (CSV injection) given a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """A text cell a spreadsheet will show as text, never run as a formula."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_cell(value: Any) -> str:
    """One value as written in the CSV."""
    if isinstance(value, str):  # first: nearly every cell is text
        return neutralise(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return neutralise(str(value))


def csv_chunks(
    rows: Iterable[Iterable[Iterable[Any]]], *, header: Sequence[str]
) -> Iterator[bytes]:
    """CSV bytes for batches of rows, one chunk per batch, after the header and a BOM.

    Every cell quoted and written by `csv_cell`: a text cell never runs as a formula.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    yield buffer.getvalue().encode("utf-8-sig")
    for batch in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(value) for value in row] for row in batch)
        yield buffer.getvalue().encode("utf-8")
