"""Per-row validation of a debtor file, vectorised over whole columns.

Every check is a pyarrow.compute kernel or a numpy expression over all rows at once
(no Python loop per row): 1.1 million rows validate in about a second. Each row
gets every reason that applies to it, not only the first, so an operator can fix a
rejected row in one pass; the reason texts below are shown to operators and counted,
so they are part of the interface.

Decisions:

* A missing (empty) value gets only "missing <column>", never also "invalid <column>".
* Reasons are fixed texts (counted, and translated at display with ``_()``); a row's
  ``reasons`` joins its reasons with "; ", and two of them carry the row's own value
  there: an impossible date is written "31/02/2024 is not a date" (counted as
  NOT_A_REAL_DATE) and a duplicate "duplicate debtId: first on line 12" (counted as
  DUPLICATE_DEBT_ID). ``reasons_in_language`` turns a row's text into the operator's
  language. The stored texts (import_rejections, the rejected-rows CSV) stay English.
* Amounts: a positive number with at most 2 decimals (``7811``, ``0.5``,
  ``1000000.00``). In semicolon-delimited files (the Brazilian Excel export) also
  ``1.234,56``, ``1234,56`` and ``1.234``; there a plain ``1234.56`` is still read with
  a decimal point, and ``1.234`` (three digits after the dot) is one thousand two
  hundred and thirty-four. Above ``max_amount`` -- or above what decimal128(14,2) can
  hold -- the amount is "too large". What is wrong with another amount is said
  exactly: zero, negative (a leading ``-``), more than 2 decimals (``12.345``;
  ``1,234`` in a semicolon file), or not a number in an accepted form (``ten``,
  ``R$ 10,00``, ``1,234.56``).
* Due dates: ``YYYY-MM-DD`` or ``DD/MM/YYYY`` (day and month may have one digit), a
  real calendar date in the years 2000..2099. Another shape is "not a date"; the
  right shape but no such day (31/02/2024, month 13) is "not a real date", with the
  value in the row's text; a real date in another century is "outside the years".
* Duplicates are looked for across all rows, whatever else is wrong with them: the
  first row with a given debtId is not a duplicate, every later one is, and names the
  first one's line (in a large file's earlier pieces too: DebtIdSet keeps it).
* Identifiers are short: a debtId or a governmentId (as normalised) longer than
  ``MAX_ID_CHARS`` is "too long", not also invalid. Both are keys of unique indexes,
  which refuse an entry beyond a few kilobytes; a row that long is a damaged export
  (found by fuzzing: one such row used to fail the whole import in the database).
* ``line`` counts the header as line 1 (see billing.imports.reading for blank lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing.core.documents import normalise_government_ids, valid_normalised_government_ids
from billing.core.i18n import N_, _
from billing.imports.reading import REQUIRED_COLUMNS, DebtorFile

MAX_ID_CHARS = 100
# Longer than any person's or company's name; also keeps the name's index entries (the
# Debtors page's order, the word search) far under PostgreSQL's limit of 8 KB an entry.
MAX_NAME_CHARS = 200
# The reasons, counted per import and shown to operators (translated at display).
MISSING = {
    "name": N_("missing name"),
    "governmentId": N_("missing governmentId"),
    "email": N_("missing email"),
    "debtAmount": N_("missing debtAmount"),
    "debtDueDate": N_("missing debtDueDate"),
    "debtId": N_("missing debtId"),
}
NAME_TOO_LONG = N_("name too long (over 200 characters)")
INVALID_GOVERNMENT_ID = N_("invalid governmentId (not a valid CPF or CNPJ)")
GOVERNMENT_ID_TOO_LONG = N_("governmentId too long (over 100 characters)")
DEBT_ID_TOO_LONG = N_("debtId too long (over 100 characters)")
INVALID_EMAIL = N_("invalid email")
UNREADABLE_AMOUNT = N_("debtAmount is not a number in an accepted form")
ZERO_AMOUNT = N_("debtAmount is zero")
NEGATIVE_AMOUNT = N_("debtAmount is negative")
TOO_MANY_DECIMALS = N_("debtAmount has more than 2 decimals")
AMOUNT_TOO_LARGE = N_("debtAmount too large")
UNREADABLE_DUE_DATE = N_("debtDueDate is not a date (write 2025-12-31 or 31/12/2025)")
NOT_A_REAL_DATE = N_("debtDueDate is not a real date")
DUE_DATE_OUT_OF_RANGE = N_("debtDueDate outside the years 2000 to 2099")
DUPLICATE_DEBT_ID = N_("duplicate debtId")
# How a row's reasons say the two reasons that carry its own value.
NOT_A_REAL_DATE_ROW = N_("{value} is not a date")
DUPLICATE_DEBT_ID_ROW = N_("duplicate debtId: first on line {line}")

# The order in which a row's reasons are listed: by column, then missing before invalid.
REASONS = (
    MISSING["name"],
    NAME_TOO_LONG,
    MISSING["governmentId"],
    INVALID_GOVERNMENT_ID,
    GOVERNMENT_ID_TOO_LONG,
    MISSING["email"],
    INVALID_EMAIL,
    MISSING["debtAmount"],
    UNREADABLE_AMOUNT,
    ZERO_AMOUNT,
    NEGATIVE_AMOUNT,
    TOO_MANY_DECIMALS,
    AMOUNT_TOO_LARGE,
    MISSING["debtDueDate"],
    UNREADABLE_DUE_DATE,
    NOT_A_REAL_DATE,
    DUE_DATE_OUT_OF_RANGE,
    MISSING["debtId"],
    DEBT_ID_TOO_LONG,
    DUPLICATE_DEBT_ID,
)

VALID_SCHEMA = pa.schema(
    [
        ("line", pa.int32()),
        ("debt_id", pa.string()),
        ("government_id", pa.string()),
        ("name", pa.string()),
        ("email", pa.string()),
        ("amount", pa.decimal128(14, 2)),
        ("due_date", pa.date32()),
    ]
)
REJECTED_SCHEMA = pa.schema(
    [("line", pa.int32())]
    + [(column, pa.string()) for column in REQUIRED_COLUMNS]
    + [("reasons", pa.string())]
)

_AMOUNT_TYPE = pa.decimal128(14, 2)
_LARGEST_STORABLE_AMOUNT = Decimal("999999999999.99")  # what decimal128(14, 2) holds
_PARSE_TYPE = pa.decimal128(38, 2)

_PLAIN_AMOUNT = r"^[0-9]+(\.[0-9]{1,2})?$"
_BRAZILIAN_AMOUNT = r"^([0-9]{1,3}(\.[0-9]{3})+(,[0-9]{1,2})?|[0-9]+,[0-9]{1,2})$"
# An amount's shape with 3 decimals or more: said as such, not rounded.
_PLAIN_MANY_DECIMALS = r"^[0-9]+\.[0-9]{3,}$"
_BRAZILIAN_MANY_DECIMALS = r"^([0-9]{1,3}(\.[0-9]{3})+|[0-9]+),[0-9]{3,}$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_BRAZILIAN_DATE = r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$"
_FIRST_YEAR, _LAST_YEAR = 2000, 2099
# local@domain.tld: dot-atom local part (at most 64 characters), domain labels of
# letters, digits and inner hyphens, an alphabetic top-level domain; ASCII only.
_LOCAL_CHARS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_EMAIL = (
    rf"^(?:{_LOCAL_CHARS}+(?:\.{_LOCAL_CHARS}+)*)@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_EMAIL_MAX_LOCAL_LENGTH = 64
_EMAIL_MAX_LENGTH = 254


@dataclass(frozen=True)
class ValidatedRows:
    """The rows of a debtor file split into ready-to-load and rejected-with-reasons."""

    valid: pa.Table  # VALID_SCHEMA
    rejected: pa.Table  # REJECTED_SCHEMA: the values as read plus "; "-joined reasons
    reason_counts: dict[str, int]  # reason -> rows having it, most frequent first
    # Per rejected row, bit i set for REASONS[i] (the reasons' texts may carry values).
    rejected_reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))

    def lines_with(self, reason: str) -> np.ndarray:
        """The lines of the rejected rows having `reason` (one of REASONS), in order."""
        having = (self.rejected_reasons >> np.uint32(REASONS.index(reason))) & 1 != 0
        return self.rejected.column("line").to_numpy()[having]


def validate_rows(
    file: DebtorFile,
    *,
    lenient_documents: bool,
    max_amount: Decimal = Decimal("99999999.99"),
    first_line: int = 2,
    earlier_debt_ids: DebtIdSet | None = None,
) -> ValidatedRows:
    """Check every row of ``file`` and split the rows into valid and rejected.

    With ``lenient_documents`` any non-empty governmentId is accepted (normalised all the
    same), for portfolios whose identifiers are not real CPFs or CNPJs.

    For a piece of a larger file (billing.imports.reading.file_pieces): ``first_line`` is the line
    of its first row in the whole file, and ``earlier_debt_ids`` the debtIds of the pieces
    before it, which make a row here a duplicate too; this piece's are added to it.
    """
    columns = {column: _contiguous(file.table.column(column)) for column in REQUIRED_COLUMNS}
    checked = _check_columns(
        columns,
        first_line=first_line,
        earlier_debt_ids=earlier_debt_ids,
        lenient_documents=lenient_documents,
        brazilian_amounts=file.delimiter == ";",
        max_amount=min(
            max_amount.quantize(Decimal("0.01"), rounding=ROUND_FLOOR), _LARGEST_STORABLE_AMOUNT
        ),
    )
    reason_bits = np.zeros(file.table.num_rows, dtype=np.uint32)
    for bit, reason in enumerate(REASONS):
        reason_bits |= checked.reasons[reason].astype(np.uint32) << bit
    is_rejected = reason_bits != 0
    lines = np.arange(first_line, first_line + file.table.num_rows, dtype=np.int32)
    if earlier_debt_ids is not None and checked.debt_id_hashes is not None:
        new = checked.new_debt_ids
        earlier_debt_ids.add(checked.debt_id_hashes.where(new), lines=lines[new])

    keep = pa.array(~is_rejected)
    valid = pa.table(
        [
            pa.array(lines[~is_rejected]),
            columns["debtId"].filter(keep),
            checked.government_ids.filter(keep),
            columns["name"].filter(keep),
            columns["email"].filter(keep),
            pc.cast(checked.amounts.filter(keep), _AMOUNT_TYPE),
            pa.array(checked.due_days[~is_rejected], type=pa.int32()).view(pa.date32()),
        ],
        schema=VALID_SCHEMA,
    )
    drop = pa.array(is_rejected)
    rejected = pa.table(
        [pa.array(lines[is_rejected])]
        + [columns[column].filter(drop) for column in REQUIRED_COLUMNS]
        + [
            _reason_texts(
                reason_bits[is_rejected],
                due_dates=columns["debtDueDate"].filter(drop),
                kept_lines=checked.kept_lines[is_rejected],
            )
        ],
        schema=REJECTED_SCHEMA,
    )
    counts = {reason: int(np.count_nonzero(rows)) for reason, rows in checked.reasons.items()}
    reason_counts = dict(
        sorted(((reason, n) for reason, n in counts.items() if n), key=lambda item: -item[1])
    )
    return ValidatedRows(
        valid=valid,
        rejected=rejected,
        reason_counts=reason_counts,
        rejected_reasons=reason_bits[is_rejected],
    )


@dataclass(frozen=True)
class _Checked:
    reasons: dict[str, np.ndarray]  # every reason of REASONS, in order -> rows having it
    government_ids: pa.StringArray  # normalised
    amounts: pa.Decimal128Array  # meaningful where the amount is valid
    due_days: np.ndarray  # date32 values, meaningful where the due date is valid
    kept_lines: np.ndarray  # a duplicate's first line with its debtId, 0 for the others
    new_debt_ids: np.ndarray  # rows holding a debtId seen for the first time
    debt_id_hashes: DebtIdHashes | None  # for a piece of a file: for its DebtIdSet


def _check_columns(
    columns: dict[str, pa.StringArray],
    *,
    first_line: int,
    earlier_debt_ids: DebtIdSet | None,
    lenient_documents: bool,
    brazilian_amounts: bool,
    max_amount: Decimal,
) -> _Checked:
    """Run every check on whole columns; a value that is missing is not also invalid."""
    missing = {column: _mask(pc.equal(columns[column], "")) for column in REQUIRED_COLUMNS}
    present = {column: ~rows for column, rows in missing.items()}

    government_ids = normalise_government_ids(columns["governmentId"])
    if lenient_documents:
        government_ids = pc.if_else(
            pc.equal(government_ids, ""), columns["governmentId"], government_ids
        )
        invalid_government_id = np.zeros(len(government_ids), dtype=bool)
    else:
        invalid_government_id = present["governmentId"] & ~valid_normalised_government_ids(
            government_ids
        )
    government_id_too_long = _longer_than(government_ids, MAX_ID_CHARS)
    invalid_government_id &= ~government_id_too_long
    amounts = _parse_amounts(
        columns["debtAmount"], brazilian=brazilian_amounts, max_amount=max_amount
    )
    due_dates = _parse_due_dates(columns["debtDueDate"])
    kept_lines, new_debt_ids, debt_id_hashes = _kept_lines(
        columns["debtId"], present["debtId"], earlier=earlier_debt_ids, first_line=first_line
    )

    amount, due_date = present["debtAmount"], present["debtDueDate"]
    found = {MISSING[column]: missing[column] for column in REQUIRED_COLUMNS} | {
        NAME_TOO_LONG: _longer_than(columns["name"], MAX_NAME_CHARS),
        INVALID_GOVERNMENT_ID: invalid_government_id,
        GOVERNMENT_ID_TOO_LONG: government_id_too_long,
        INVALID_EMAIL: present["email"] & ~_valid_emails(columns["email"]),
        UNREADABLE_AMOUNT: amount & amounts.unreadable,
        ZERO_AMOUNT: amount & amounts.zero,
        NEGATIVE_AMOUNT: amount & amounts.negative,
        TOO_MANY_DECIMALS: amount & amounts.too_many_decimals,
        AMOUNT_TOO_LARGE: amount & amounts.too_large,
        UNREADABLE_DUE_DATE: due_date & due_dates.unreadable,
        NOT_A_REAL_DATE: due_date & due_dates.not_real,
        DUE_DATE_OUT_OF_RANGE: due_date & due_dates.out_of_range,
        DEBT_ID_TOO_LONG: _longer_than(columns["debtId"], MAX_ID_CHARS),
        DUPLICATE_DEBT_ID: kept_lines > 0,
    }
    return _Checked(
        reasons={reason: found[reason] for reason in REASONS},
        government_ids=government_ids,
        amounts=amounts.values,
        due_days=due_dates.days,
        kept_lines=kept_lines,
        new_debt_ids=new_debt_ids,
        debt_id_hashes=debt_id_hashes,
    )


def _contiguous(values: pa.ChunkedArray | pa.Array) -> pa.StringArray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    return pc.fill_null(values.cast(pa.string()), "")


def _longer_than(values: pa.StringArray, characters: int) -> np.ndarray:
    return pc.utf8_length(values).to_numpy(zero_copy_only=False) > characters


def _mask(values: pa.BooleanArray) -> np.ndarray:
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False)


def is_valid_email(email: str) -> bool:
    """One e-mail checked as an import checks a file's (an operator's correction)."""
    return bool(_valid_emails(pa.array([email], pa.string()))[0])


def _valid_emails(emails: pa.StringArray) -> np.ndarray:
    # The regex allows one "@" and ASCII only, so its byte position is the local length.
    return (
        _mask(pc.match_substring_regex(emails, _EMAIL))
        & (pc.find_substring(emails, "@").to_numpy() <= _EMAIL_MAX_LOCAL_LENGTH)
        & (pc.utf8_length(emails).to_numpy() <= _EMAIL_MAX_LENGTH)
    )


@dataclass(frozen=True)
class _Amounts:
    values: pa.Decimal128Array  # the amount of well-formed values, 0 otherwise
    too_large: np.ndarray  # well formed but above the maximum
    zero: np.ndarray  # well formed, and zero
    negative: np.ndarray  # an amount's shape after a leading "-"
    too_many_decimals: np.ndarray  # an amount's shape but with 3 decimals or more
    unreadable: np.ndarray  # none of the above, and not a positive amount either


def _parse_amounts(amounts: pa.StringArray, *, brazilian: bool, max_amount: Decimal) -> _Amounts:
    """Recognise the accepted amount formats and read them as exact decimals; say what is
    wrong with the others (looked at only for them: a clean file pays nothing more)."""
    has_shape = _mask(pc.match_substring_regex(amounts, _PLAIN_AMOUNT))
    plain = amounts
    if brazilian:
        is_brazilian = _mask(pc.match_substring_regex(amounts, _BRAZILIAN_AMOUNT))
        as_plain = pc.replace_substring(pc.replace_substring(amounts, ".", ""), ",", ".")
        plain = pc.if_else(pa.array(is_brazilian), as_plain, amounts)
        has_shape |= is_brazilian
    # Beyond 30 characters a number cannot fit decimal128(38, 2): too large anyway.
    too_long = has_shape & (pc.binary_length(plain).to_numpy() > 30)
    readable = pa.array(has_shape & ~too_long)
    values = pc.cast(pc.if_else(readable, plain, "0"), _PARSE_TYPE)
    positive = _mask(pc.greater(values, pa.scalar(Decimal(0), _PARSE_TYPE)))
    above = _mask(pc.greater(values, pa.scalar(max_amount, _PARSE_TYPE)))
    negative = np.zeros(len(amounts), dtype=bool)
    too_many_decimals = np.zeros(len(amounts), dtype=bool)
    others = np.flatnonzero(~has_shape)
    if others.size:
        odd = amounts.take(pa.array(others))
        signed = _mask(pc.starts_with(odd, "-"))
        unsigned = pc.if_else(pa.array(signed), pc.utf8_slice_codeunits(odd, 1), odd)
        shaped = _mask(pc.match_substring_regex(unsigned, _PLAIN_AMOUNT))
        decimals = _mask(pc.match_substring_regex(unsigned, _PLAIN_MANY_DECIMALS))
        if brazilian:
            shaped |= _mask(pc.match_substring_regex(unsigned, _BRAZILIAN_AMOUNT))
            decimals |= _mask(pc.match_substring_regex(unsigned, _BRAZILIAN_MANY_DECIMALS))
        negative[others] = signed & (shaped | decimals)
        too_many_decimals[others] = ~signed & decimals
    return _Amounts(
        values=values,
        too_large=too_long | above,
        zero=has_shape & ~too_long & ~positive,
        negative=negative,
        too_many_decimals=too_many_decimals,
        unreadable=~has_shape & ~negative & ~too_many_decimals,
    )


@dataclass(frozen=True)
class _DueDates:
    days: np.ndarray  # date32 values, meaningful where the date is accepted
    unreadable: np.ndarray  # not in an accepted shape
    not_real: np.ndarray  # the shape of a date, but no such day (31/02/2024, month 13)
    out_of_range: np.ndarray  # a real date outside _FIRST_YEAR.._LAST_YEAR


def _parse_due_dates(dates: pa.StringArray) -> _DueDates:
    """Days since 1970-01-01 (date32), and what is wrong with each value that is not an
    accepted real date."""
    row_count = len(dates)
    year = np.zeros(row_count, dtype=np.int32)
    month = np.zeros(row_count, dtype=np.int32)
    day = np.zeros(row_count, dtype=np.int32)
    shaped = np.zeros(row_count, dtype=bool)
    for shape, separator, order in (
        (_ISO_DATE, "-", (year, month, day)),
        (_BRAZILIAN_DATE, "/", (day, month, year)),
    ):
        matches = pc.match_substring_regex(dates, shape)
        rows = np.flatnonzero(_mask(matches))
        if rows.size == 0:
            continue
        shaped[rows] = True
        parts = pc.list_flatten(pc.split_pattern(dates.filter(matches), separator))
        numbers = parts.cast(pa.int32()).to_numpy().reshape(rows.size, 3)
        for position, target in enumerate(order):
            target[rows] = numbers[:, position]

    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days_in_month = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
    month_length = days_in_month[np.clip(month, 0, 12)] + ((month == 2) & leap)
    real = (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_length)
    in_range = (year >= _FIRST_YEAR) & (year <= _LAST_YEAR)
    valid = shaped & real & in_range
    days = np.zeros(row_count, dtype=np.int32)
    months_since_epoch = (year[valid] - 1970) * 12 + (month[valid] - 1)
    first_of_month = months_since_epoch.astype("datetime64[M]").astype("datetime64[D]")
    days[valid] = first_of_month.astype(np.int64) + day[valid] - 1
    return _DueDates(
        days=days,
        unreadable=~shaped,
        not_real=shaped & ~real,
        out_of_range=shaped & real & ~in_range,
    )


def _kept_lines(
    debt_ids: pa.StringArray,
    present: np.ndarray,
    *,
    earlier: DebtIdSet | None,
    first_line: int,
) -> tuple[np.ndarray, np.ndarray, DebtIdHashes | None]:
    """For each row whose debtId an earlier row of the file holds, the line of the first
    such row (0 for the others); the rows holding a debtId not seen before; and, for a
    piece of a file, the debtIds' hashes (for DebtIdSet.add)."""
    kept = np.zeros(len(debt_ids), dtype=np.int32)
    first, codes, first_row_of_code = _first_occurrences(debt_ids)
    repeated = ~first & present
    kept[repeated] = first_line + first_row_of_code[codes[repeated]]
    new = first & present
    if earlier is None:
        return kept, new, None
    hashes = hash_debt_ids(debt_ids)
    earlier_lines = earlier.first_lines_hashed(hashes)
    seen = (earlier_lines > 0) & present
    kept[seen] = earlier_lines[seen]
    new &= ~seen
    return kept, new, hashes


class DebtIdSet:
    """The debtIds of the pieces of a file read so far, as two 64-bit hashes each, with
    the line of the row that held each first.

    20 bytes a debtId whatever its length (110 MB for 5.5M rows, where the strings and a
    hash table over them would take half a gigabyte), sorted by the first hash. Two
    different debtIds share both hashes with a probability of about n²/2^129: never, in
    practice; and should it happen the later row is rejected as a duplicate, never
    charged twice.
    """

    def __init__(self) -> None:
        self._first = np.empty(0, dtype=np.uint64)
        self._second = np.empty(0, dtype=np.uint64)
        self._lines = np.empty(0, dtype=np.int32)

    def add(self, hashes: DebtIdHashes, *, lines: np.ndarray) -> None:
        """Remember debtIds (non-empty, none held yet; hashed by hash_debt_ids), each held
        first on `lines`."""
        order = np.argsort(hashes.first, kind="stable")
        at = np.searchsorted(self._first, hashes.first[order])
        self._first = np.insert(self._first, at, hashes.first[order])
        self._second = np.insert(self._second, at, hashes.second[order])
        self._lines = np.insert(self._lines, at, np.asarray(lines, dtype=np.int32)[order])

    def first_lines(self, debt_ids: pa.StringArray) -> np.ndarray:
        """The line that held each debtId first; 0 for one not held (or empty)."""
        return self.first_lines_hashed(hash_debt_ids(debt_ids))

    def first_lines_hashed(self, hashes: DebtIdHashes) -> np.ndarray:
        """first_lines, for debtIds already hashed (hash_debt_ids)."""
        first, second = hashes.first, hashes.second
        low = np.searchsorted(self._first, first, side="left")
        high = np.searchsorted(self._first, first, side="right")
        lines = np.zeros(len(first), dtype=np.int32)
        last = max(len(self._second) - 1, 0)
        for step in range(int((high - low).max(initial=0))):  # 1 but for a 64-bit collision
            at = np.minimum(low + step, last)
            found = (low + step < high) & (self._second[at] == second) & (lines == 0)
            lines[found] = self._lines[at[found]]
        return np.where(hashes.empty, 0, lines)


# Two odd 64-bit multipliers for the polynomial hashes, and splitmix64's finaliser.
_HASH_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_WORD_BYTES = 8


@dataclass(frozen=True)
class DebtIdHashes:
    """Each debtId's two 64-bit hashes (DebtIdSet), and which debtIds are empty."""

    first: np.ndarray
    second: np.ndarray
    empty: np.ndarray

    def where(self, rows: np.ndarray) -> DebtIdHashes:
        return DebtIdHashes(self.first[rows], self.second[rows], self.empty[rows])


def hash_debt_ids(debt_ids: pa.StringArray) -> DebtIdHashes:
    """The hashes DebtIdSet keeps, computed once for a piece's debtIds (it looks them up,
    then adds the new ones)."""
    first, second = _hash_pair(debt_ids)
    empty = pc.equal(pc.utf8_length(debt_ids), 0).to_numpy(zero_copy_only=False)
    return DebtIdHashes(first, second, empty)


def _hash_pair(values: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each string, computed over Arrow's buffers with no Python
    object per row: sum of 8-byte word x base^position, wrapped at 64 bits, then mixed
    with the length."""
    values = _contiguous(values)
    count = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset : values.offset + count + 1
    ].astype(np.int64)
    lengths = np.diff(offsets)
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    characters = raw[offsets[0] : offsets[-1]]
    if count and lengths.min() == lengths.max() > 0:
        sums = _sums_of_equal_lengths(characters.reshape(count, int(lengths[0])))
    else:
        sums = _sums_of_any_lengths(characters, offsets, lengths)
    with np.errstate(over="ignore"):
        first, second = (
            _mixed(total ^ (lengths.astype(np.uint64) * base))
            for total, base in zip(sums, _HASH_BASES, strict=True)
        )
    return first, second


def _sums_of_equal_lengths(characters: np.ndarray) -> list[np.ndarray]:
    """Each row's sum of word x base^position (see _sums_of_any_lengths), for strings of
    one length (a row each of `characters`): a pass per word over the rows (UUIDs, most
    files' debtIds)."""
    count, length = characters.shape
    padded = np.zeros((count, -(-length // _WORD_BYTES) * _WORD_BYTES), dtype=np.uint8)
    padded[:, :length] = characters
    words = padded.view("<u8")
    sums = []
    with np.errstate(over="ignore"):
        for base in _HASH_BASES:
            powers = np.cumprod(np.full(words.shape[1], base))
            total = np.zeros(count, dtype=np.uint64)
            for column in range(words.shape[1]):
                total += words[:, column] * powers[column]
            sums.append(total)
    return sums


def _sums_of_any_lengths(
    characters: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
) -> list[np.ndarray]:
    """Each row's sum of word x base^position, its bytes read 8 at a time as little-endian
    words (the last one padded with zeros; an empty string sums to 0)."""
    word_counts = -(-lengths // _WORD_BYTES)
    first_words = np.concatenate(([0], np.cumsum(word_counts)[:-1])).astype(np.int64)
    padded = np.zeros(int(word_counts.sum()) * _WORD_BYTES, dtype=np.uint8)
    starts = offsets[:-1] - offsets[0]
    within = np.arange(len(characters), dtype=np.int64) - np.repeat(starts, lengths)
    padded[np.repeat(first_words * _WORD_BYTES, lengths) + within] = characters
    words = padded.view("<u8")
    position = np.arange(len(words), dtype=np.int64) - np.repeat(first_words, word_counts)
    filled = word_counts > 0
    sums = []
    with np.errstate(over="ignore"):
        for base in _HASH_BASES:
            powers = np.cumprod(np.full(max(int(word_counts.max(initial=0)), 1), base))
            total = np.zeros(len(lengths), dtype=np.uint64)
            if len(words):
                total[filled] = np.add.reduceat(words * powers[position], first_words[filled])
            sums.append(total)
    return sums


def _mixed(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * _MIX[0]
        values = (values ^ (values >> np.uint64(27))) * _MIX[1]
        return values ^ (values >> np.uint64(31))


def _first_occurrences(values: pa.StringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True for the first row holding each value; each row's value as a code; and the
    first row holding each code."""
    if len(values) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=bool), empty, empty
    encoded = pc.dictionary_encode(values)
    codes = encoded.indices.to_numpy()
    # Arrow numbers dictionary entries in order of first appearance, so a row is a
    # first occurrence exactly when its code is above every code before it. Checked:
    # if the count differs, fall back to a sort.
    seen_before = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    first = codes > seen_before
    if np.count_nonzero(first) == len(encoded.dictionary):
        return first, codes, np.flatnonzero(first)  # the k-th first row holds code k
    _, first_rows = np.unique(codes, return_index=True)
    first = np.zeros(len(values), dtype=bool)
    first[first_rows] = True
    return first, codes, first_rows


def _reason_texts(
    reason_bits: np.ndarray, *, due_dates: pa.StringArray, kept_lines: np.ndarray
) -> pa.StringArray:
    """The "; "-joined reasons of each rejected row: the fixed texts built once per
    distinct combination, the two that carry the row's own value (its impossible date,
    the line holding its debtId first) joined in per row, all by Arrow kernels."""
    if len(reason_bits) == 0:
        return pa.array([], pa.string())
    own = {
        NOT_A_REAL_DATE: lambda: _filled(NOT_A_REAL_DATE_ROW, "value", due_dates),
        DUPLICATE_DEBT_ID: lambda: _filled(
            DUPLICATE_DEBT_ID_ROW, "line", pc.cast(pa.array(kept_lines), pa.string())
        ),
    }
    parts: list[pa.StringArray] = []
    fixed = 0  # the bits of the fixed reasons since the last part
    for bit, reason in enumerate(REASONS):
        if reason not in own:
            fixed |= 1 << bit
            continue
        having = (reason_bits >> np.uint32(bit)) & 1 != 0
        if fixed:
            parts.append(_fixed_texts(reason_bits & np.uint32(fixed)))
            fixed = 0
        if having.any():
            parts.append(pc.if_else(pa.array(having), own[reason](), pa.scalar(None, pa.string())))
    if fixed:
        parts.append(_fixed_texts(reason_bits & np.uint32(fixed)))
    return pc.binary_join_element_wise(*parts, "; ", null_handling="skip")


def _fixed_texts(reason_bits: np.ndarray) -> pa.StringArray:
    """The "; "-joined fixed reasons of each row (null for none), once per combination."""
    combinations, which = np.unique(reason_bits, return_inverse=True)
    texts = [
        "; ".join(reason for bit, reason in enumerate(REASONS) if int(combination) >> bit & 1)
        or None
        for combination in combinations
    ]
    return pa.array(texts, type=pa.string()).take(pa.array(which.reshape(-1).astype(np.int32)))


def _filled(template: str, name: str, values: pa.StringArray) -> pa.StringArray:
    """`template` with {name} replaced by each of `values`."""
    before, _, after = template.partition("{" + name + "}")
    return pc.binary_join_element_wise(before, values, after, "")


def _row_reason_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    """How to recognise a reason that carries a value, in a row's reasons text."""
    patterns = []
    for template, name in ((NOT_A_REAL_DATE_ROW, "value"), (DUPLICATE_DEBT_ID_ROW, "line")):
        before, _, after = template.partition("{" + name + "}")
        patterns.append((re.compile(f"{re.escape(before)}(.+){re.escape(after)}"), template, name))
    return patterns


_ROW_REASON_PATTERNS = _row_reason_patterns()


def reason_in_language(reason: str) -> str:
    """A counted reason (one of REASONS) in the operator's language."""
    return _(reason)


def reasons_in_language(text: str) -> str:
    """A rejected row's "; "-joined reasons in the operator's language (stored English)."""
    shown = []
    for reason in text.split("; ") if text else []:
        if reason in REASONS:
            shown.append(_(reason))
            continue
        for pattern, template, name in _ROW_REASON_PATTERNS:
            match = pattern.fullmatch(reason)
            if match:
                shown.append(_(template).format(**{name: match.group(1)}))
                break
        else:
            shown.append(_(reason))
    return "; ".join(shown)
