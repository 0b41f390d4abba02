"""Arrow columns written in PostgreSQL's binary COPY format, column by column.

A CSV COPY makes the server parse every value from text: numbers, dates, timestamps, and
every text field scanned for quotes. In the binary format each value arrives as the
server stores it, prefixed by its length, so the server only copies bytes. Measured on a
file's 1.1M charges (PostgreSQL 15, the same rows read from a file on the server): 4.2 to
5.1 s as CSV, 2.1 to 2.5 s in binary, on the import's critical path (the server's work
is what the client waits for).

The encoding is vectorised: each column becomes two Arrow binary arrays per row (its
length prefix and its bytes) and Arrow joins them row by row, so the joined array's data
buffer is the COPY's tuples, one after the other. Only the types the import writes are
known here; see https://www.postgresql.org/docs/current/sql-copy.html (Binary Format)
and each type's `*_recv` function for the layouts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PgType = Literal["integer", "bigint", "text", "date", "timestamptz", "numeric"]

# The file header (signature, flags, no extension) and the trailer (a field count of -1).
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)

_NULL_LENGTH = -1
_DAYS_1970_TO_2000 = 10_957  # PostgreSQL counts dates and timestamps from 2000-01-01
_MICROSECONDS_1970_TO_2000 = _DAYS_1970_TO_2000 * 86_400 * 1_000_000
_NUMERIC_POSITIVE, _NUMERIC_NEGATIVE = 0x0000, 0x4000
_NUMERIC_BASE = 10_000  # a numeric's digits are base-10000 groups of four decimal digits
_NUMERIC_GROUPS = 4  # enough for numeric(14, 2) and below: up to 12 integer digits
_NUMERIC_MAX_SCALE = 4  # the fraction fits one group


def encode_rows(table: pa.Table, types: Mapping[str, PgType]) -> pa.Buffer:
    """`table`'s rows as binary COPY tuples (no header or trailer), its columns in order,
    each written as `types` names it (the target column's type)."""
    count = table.num_rows
    fields: list[pa.Array] = [_fixed(np.full(count, table.num_columns, dtype=">i2"))]
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        fields.extend(_ENCODERS[types[name]](column))
    rows = pc.binary_join_element_wise(*fields, b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=count + 1, offset=0)
    data = rows.buffers()[2]
    if data is None:  # no row
        return pa.py_buffer(b"")
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _fixed(values: np.ndarray) -> pa.Array:
    """One binary value per element of `values` (a big-endian numpy array), all one size."""
    return _binary_array(np.full(len(values), values.dtype.itemsize), values.tobytes())


def _present(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """The big-endian `values` where `valid`, an empty value elsewhere (a NULL's bytes)."""
    lengths = np.where(valid, values.dtype.itemsize, 0)
    return _binary_array(lengths, values[valid].tobytes())


def _binary_array(lengths: np.ndarray, data: bytes) -> pa.Array:
    """A binary array of values of `lengths`, one after the other in `data`."""
    offsets = np.concatenate([np.zeros(1, dtype=np.int32), np.cumsum(lengths, dtype=np.int32)])
    return pa.Array.from_buffers(
        pa.binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _with_lengths(values: np.ndarray, column: pa.Array) -> list[pa.Array]:
    """A fixed-size value per row (NULL where `column` is null), each after its length."""
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    lengths = np.where(valid, values.dtype.itemsize, _NULL_LENGTH).astype(">i4")
    return [_fixed(lengths), _present(values, valid)]


def _integer(column: pa.Array) -> list[pa.Array]:
    values = column.cast(pa.int32()).fill_null(0).to_numpy().astype(">i4")  # cast checks range
    return _with_lengths(values, column)


def _bigint(column: pa.Array) -> list[pa.Array]:
    values = column.cast(pa.int64()).fill_null(0).to_numpy().astype(">i8")
    return _with_lengths(values, column)


def _date(column: pa.Array) -> list[pa.Array]:
    days = column.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy()
    return _with_lengths((days - _DAYS_1970_TO_2000).astype(">i4"), column)


def _timestamptz(column: pa.Array) -> list[pa.Array]:
    if not pa.types.is_timestamp(column.type) or column.type.tz is None:
        raise TypeError(
            f"a timestamptz is written from a timestamp with a time zone, not {column.type}"
        )
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0).to_numpy()
    return _with_lengths((micros - _MICROSECONDS_1970_TO_2000).astype(">i8"), column)


def _text(column: pa.Array) -> list[pa.Array]:
    """UTF-8 bytes as they are (the connection's encoding is UTF-8)."""
    as_binary = column.cast(
        pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
    )
    lengths = pc.binary_length(as_binary).fill_null(_NULL_LENGTH).to_numpy().astype(">i4")
    return [_fixed(lengths), as_binary.fill_null(b"").cast(pa.binary())]


def _numeric(column: pa.Array) -> list[pa.Array]:
    """A decimal as numeric_recv reads it: group count, weight, sign, display scale, then
    base-10000 groups, most significant first (leading zero groups are the server's to drop).
    """
    if not pa.types.is_decimal(column.type) or column.type.scale > _NUMERIC_MAX_SCALE:
        raise TypeError(f"a numeric is written from a decimal of scale <= 4, not {column.type}")
    scale = column.type.scale
    in_units = pc.multiply(column.fill_null(0), pa.scalar(10**scale, pa.decimal128(5, 0)))
    units = in_units.cast(pa.int64()).to_numpy()
    whole, fraction = np.divmod(np.abs(units), 10**scale)
    if np.any(whole >= _NUMERIC_BASE ** (_NUMERIC_GROUPS - 1)):
        raise ValueError("a numeric beyond 12 integer digits cannot be written here")
    layout = np.empty((len(units), 4 + _NUMERIC_GROUPS), dtype=">i2")
    layout[:, 0] = _NUMERIC_GROUPS
    layout[:, 1] = _NUMERIC_GROUPS - 2  # the weight of the first group: base^2
    layout[:, 2] = np.where(units < 0, _NUMERIC_NEGATIVE, _NUMERIC_POSITIVE)
    layout[:, 3] = scale
    layout[:, 4] = whole // _NUMERIC_BASE**2
    layout[:, 5] = (whole // _NUMERIC_BASE) % _NUMERIC_BASE
    layout[:, 6] = whole % _NUMERIC_BASE
    layout[:, 7] = fraction * 10 ** (_NUMERIC_MAX_SCALE - scale)
    values = layout.view(np.dtype((np.void, layout.dtype.itemsize * layout.shape[1]))).ravel()
    return _with_lengths(values, column)


_ENCODERS: dict[str, Callable[[pa.Array], list[pa.Array]]] = {
    "integer": _integer,
    "bigint": _bigint,
    "text": _text,
    "date": _date,
    "timestamptz": _timestamptz,
    "numeric": _numeric,
}
