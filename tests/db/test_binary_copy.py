"""The binary COPY encoder (db/binary_copy.py) against the server that reads it: every type
the import writes, NULLs, the edges of numeric(14, 2) and of dates, and text beyond ASCII
come back from PostgreSQL exactly as they went in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from db import loading
from db.binary_copy import encode_rows

COLUMNS = {
    "line": "integer",
    "id": "bigint",
    "label": "text",
    "amount": "numeric",
    "due": "date",
    "at": "timestamptz",
}
CREATE = """
CREATE TEMP TABLE copied (
    line integer, id bigint, label text, amount numeric(14, 2), due date, at timestamptz
) ON COMMIT DROP
"""
ROWS = [
    (
        2_147_483_647,
        1,
        "Maria da Conceição",
        Decimal("0.01"),
        date(2000, 1, 1),
        datetime(2000, 1, 1, tzinfo=UTC),
    ),
    (
        -2_147_483_648,
        -9_223_372_036_854_775_807,
        'D\'Ávila, "aspas"\nnova linha\t; vírgula',
        Decimal("999999999999.99"),
        date(1999, 12, 31),
        datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=UTC),
    ),
    (0, 9_223_372_036_854_775_807, "", Decimal("7811.50"), date(2024, 2, 29), None),
    (None, None, None, None, None, datetime(2026, 11, 29, 22, 30, 0, 1, tzinfo=UTC)),
    (7, 42, "日本語 🙂", Decimal("10000.00"), date(1970, 1, 1), None),
    (8, 43, "x" * 5000, Decimal("-12.30"), date(2099, 12, 31), None),
    (9, 44, "zero groups", Decimal("100000000.00"), date(2001, 1, 1), None),
]
TYPES = pa.schema(
    [
        ("line", pa.int64()),
        ("id", pa.int64()),
        ("label", pa.string()),
        ("amount", pa.decimal128(14, 2)),
        ("due", pa.date32()),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)


def as_table(rows: list[tuple[object, ...]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(TYPES.names, row, strict=True)) for row in rows], TYPES)


def copy_back(engine: Engine, slices: list[pa.Table]) -> list[tuple[object, ...]]:
    with engine.begin() as conn:
        conn.exec_driver_sql(CREATE)
        loading.copy_slices(
            conn,
            slices=slices,
            total_rows=sum(part.num_rows for part in slices),
            target="copied",
            columns=", ".join(COLUMNS),
            binary_types=COLUMNS,
        )
        return [tuple(row) for row in conn.execute(text("SELECT * FROM copied"))]


def test_every_type_comes_back_as_written(db: Engine) -> None:
    assert copy_back(db, [as_table(ROWS)]) == ROWS


def test_slices_make_one_copy_and_an_empty_slice_adds_nothing(db: Engine) -> None:
    slices = [as_table(ROWS[:3]), as_table([]), as_table(ROWS[3:])]

    assert copy_back(db, slices) == ROWS


def test_a_numeric_too_large_for_its_groups_is_refused_before_sending() -> None:
    too_large = pa.table({"amount": pa.array([Decimal("1000000000000.00")], pa.decimal128(16, 2))})

    with pytest.raises(ValueError, match="12 integer digits"):
        encode_rows(too_large, {"amount": "numeric"})


def test_a_timestamp_without_time_zone_is_refused() -> None:
    naive = pa.table({"at": pa.array([datetime(2026, 1, 1)], pa.timestamp("us"))})

    with pytest.raises(TypeError, match="time zone"):
        encode_rows(naive, {"at": "timestamptz"})
