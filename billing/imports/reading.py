"""Turn the bytes of an uploaded debtor CSV into a clean table of strings.

Only decoding and shape live here; the meaning of each value is checked in
``billing.imports.validation``. Reading is done by ``pyarrow.csv`` (multithreaded, no Python
loop per row): a 1.1-million-row, 100 MB file reads in well under a second.

Decisions, so that operators and the import service can rely on them:

* A file that is unusable as a whole raises :class:`~billing.core.errors.FileRefused` with one
  sentence: too large, empty, binary (an Excel workbook, or a NUL byte anywhere: the
  first 64 KB are checked before anything else, the rest before parsing, naming the
  line), UTF-16 text, a required column missing or repeated, a header with no rows, a
  row longer than the parser's 1 MB block, or a malformed CSV. Nothing else escapes:
  tests/imports/test_fuzz_intake.py and bench/fuzz_intake.py hold it to that.
* Encoding: UTF-8 (with or without BOM); otherwise cp1252, the Windows/Excel default in
  Brazil; otherwise latin-1, which decodes any byte. Non-UTF-8 input is transcoded to
  UTF-8 before parsing.
* Delimiter: comma or semicolon, whichever splits the header into more known column
  names (comma on a tie). Quoted values may contain delimiters, doubled quotes ("")
  and line breaks; CRLF, LF and CR line endings all work.
* Header names are matched ignoring case, accents, spaces, ``_``, ``-`` and ``.``, through
  a small alias table (``government_id``, ``cpf_cnpj``, ``amount``, ``due_date``,
  ``vencimento``, ``Id da dívida``...). Unknown columns are ignored and listed in
  ``DebtorFile.extra_columns``.
* The double quotes of the file must balance. pyarrow reads a quote that is never
  closed near the end of the file as one value running to the end of the file,
  silently swallowing the rows after it; an odd number of quotes refuses the file,
  naming the first line with an odd count (a lone quote inside an unquoted value,
  which no spreadsheet writes, is refused the same way).
* A row with a different number of fields than the header refuses the whole file,
  naming its line: pyarrow cannot say which values belong to which column in such a
  row, so it cannot be kept as a meaningful rejection, and a broken row usually
  means a broken export that the operator should fix and upload again.
* Blank lines (before the header or between rows) are skipped and are not records:
  the header is line 1 and the n-th data row is line n + 1, which is what the
  ``line`` of ``billing.imports.validation`` reports. Line breaks inside quoted values do not
  change the count.
* Values are trimmed (Unicode whitespace, including no-break spaces); a missing value is
  the empty string, never null.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from billing.core.errors import FileRefused
from billing.core.i18n import N_, _, ngettext

REQUIRED_COLUMNS = ("name", "governmentId", "email", "debtAmount", "debtDueDate", "debtId")

_SNIFF_BYTES = 64 * 1024
_BLOCK_BYTES = 1 << 20  # pyarrow's block: no row of the file may be longer
_UTF8_BOM = b"\xef\xbb\xbf"
_ROW_TOO_LONG = N_(
    "A row of the file is longer than {size} MB, which no debtor row is: the file is "
    "damaged, or a quoted value runs on for too long."
)  # shown as _(_ROW_TOO_LONG).format(size=_BLOCK_MB)
_BLOCK_MB = _BLOCK_BYTES // (1024 * 1024)

# Header spellings accepted for each column, compared after _header_key().
_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "debtorname", "fullname", "nome", "nomecompleto"),
    "governmentId": (
        "governmentid",
        "govid",
        "document",
        "documentnumber",
        "documento",
        "taxid",
        "cpfcnpj",
        "cpfoucnpj",
        "cpf",
        "cnpj",
    ),
    "email": ("email", "emailaddress", "mail"),
    "debtAmount": ("debtamount", "amount", "debtvalue", "value", "valor"),
    "debtDueDate": (
        "debtduedate",
        "duedate",
        "debtdue",
        "vencimento",
        "datavencimento",
        "datadevencimento",
    ),
    "debtId": ("debtid", "debtidentifier", "iddivida", "iddadivida"),
}
_CANONICAL_BY_KEY = {key: canonical for canonical, keys in _ALIASES.items() for key in keys}


@dataclass(frozen=True)
class DebtorFile:
    """An uploaded debtor file, decoded and parsed, every value a trimmed string."""

    table: pa.Table  # exactly REQUIRED_COLUMNS, in that order, pa.string(), never null
    encoding: str  # "utf-8", "utf-8-sig", "cp1252" or "latin-1"
    delimiter: str  # "," or ";"
    extra_columns: list[str] = field(default_factory=list)  # ignored header names

    @property
    def row_count(self) -> int:
        """Number of data rows (the header not counted)."""
        return self.table.num_rows


class ColumnsNotFound(FileRefused):
    """The header lacks required columns: the file may come from another system, whose
    columns an operator can map (billing.imports.mapping). Carries the header read."""

    def __init__(
        self, message: str, *, header: list[str], delimiter: str, missing: list[str]
    ) -> None:
        super().__init__(message)
        self.header = header
        self.delimiter = delimiter
        self.missing = missing


def header_key(header: str) -> str:
    """A header name compared without case, accents, spaces or punctuation."""
    return _header_key(header)


def peek_rows(data: bytes, *, max_rows: int = 20) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows of a file, read as text (for mapping its columns):
    the dialect as the import reads it; refused like an import when it is unusable."""
    head = data[:_SNIFF_BYTES]
    if len(data) > len(head):  # whole lines only, so no character is cut in two
        head = head[: head.rfind(b"\n") + 1] or head
    body, _encoding = _decode(head)
    body = body[_count_leading_line_breaks(body) :]
    if not _has_text(body):
        raise FileRefused(_("The file is empty."))
    delimiter, header = _detect_dialect(_header_line(body), mapping={})
    lines = io.StringIO(body.tobytes().decode("utf-8", errors="replace"))
    reader = csv.reader(lines, delimiter=delimiter)
    next(reader, None)
    rows = ([value.strip() for value in row] for row in reader)
    return header, list(itertools.islice((row for row in rows if any(row)), max_rows))


def canonical_column_name(header: str) -> str | None:
    """The canonical column a header name stands for (``"Debt_Due-Date"`` ->
    ``"debtDueDate"``), or None when it is not one we know."""
    return _CANONICAL_BY_KEY.get(_header_key(header))


def read_debtor_file(
    data: bytes,
    *,
    max_bytes: int,
    lines_before: int = 0,
    mapping: Mapping[str, str] | None = None,
) -> DebtorFile:
    """Decode and parse an uploaded debtor CSV; raise FileRefused when it is unusable.

    `data` may be a piece of a larger file (see file_pieces): the header, then some of its
    rows; `lines_before` says how many of the file's lines came between its header and the
    piece's first row, so that a refusal names the line as the file numbers it.
    `mapping` names, for required columns, the file's own header (a file from another
    system, billing.imports.mapping); columns it leaves out are found by their aliases.
    """
    _refuse_unusable_bytes(data, max_bytes=max_bytes)
    body, encoding = _decode(data)
    body = body[_count_leading_line_breaks(body) :]
    if not _has_text(body):
        raise FileRefused(_("The file is empty."))
    delimiter, header = _detect_dialect(_header_line(body), mapping=mapping or {})
    positions, extra_columns = _locate_columns(header, delimiter=delimiter, mapping=mapping or {})
    _refuse_rows_without_header_end(body)
    _refuse_nul_bytes(body, lines_before=lines_before)
    _refuse_unbalanced_quotes(body, lines_before=lines_before)
    table = _parse_rows(
        body,
        delimiter=delimiter,
        field_count=len(header),
        positions=positions,
        lines_before=lines_before,
    )
    if table.num_rows == 0:
        raise FileRefused(_("The file has a header but no rows."))
    return DebtorFile(
        table=table, encoding=encoding, delimiter=delimiter, extra_columns=extra_columns
    )


def _header_key(header: str) -> str:
    """``"Id da Dívida"`` -> ``"iddadivida"``: no case, accents, spaces or punctuation."""
    without_accents = "".join(
        character
        for character in unicodedata.normalize("NFKD", header)
        if not unicodedata.combining(character)
    )
    return re.sub(r"[\s_\-.]", "", without_accents).lower()


def _format_size(size: int) -> str:
    mebibyte = 1024 * 1024
    if size % mebibyte == 0:
        return f"{size // mebibyte} MB"
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000} MB"
    if size >= mebibyte:
        return f"{size / mebibyte:.1f} MB"
    return f"{size:,} bytes"


def _refuse_unusable_bytes(data: bytes, *, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise FileRefused(
            _("The file is larger than the limit of {limit}.").format(limit=_format_size(max_bytes))
        )
    if len(data) == 0:
        raise FileRefused(_("The file is empty."))
    head = bytes(data[:_SNIFF_BYTES])
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRefused(
            _(
                "The file is saved as UTF-16 text, which cannot be read: "
                "save it as CSV UTF-8 (or plain CSV) and upload it again."
            )
        )
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise FileRefused(
            _(
                "This is a spreadsheet workbook, not a CSV file: "
                "save it as CSV (comma- or semicolon-separated) and upload it again."
            )
        )
    if b"\x00" in head:
        raise FileRefused(_("This is not a CSV file (it contains binary data)."))


def _is_utf8(data: memoryview) -> bool:
    """UTF-8 check done by Arrow's validator: ~10x faster than bytes.decode on 100 MB."""
    if len(data) >= 2**31:
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32))
    whole_file = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole_file.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _decode(data: bytes) -> tuple[memoryview, str]:
    """The file as UTF-8 bytes without BOM, and the encoding it was written in."""
    view = memoryview(data).cast("B")
    has_bom = bytes(view[:3]) == _UTF8_BOM
    body = view[3:] if has_bom else view
    if _is_utf8(body):
        return body, "utf-8-sig" if has_bom else "utf-8"
    try:
        text, encoding = bytes(body).decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        text, encoding = bytes(body).decode("latin-1"), "latin-1"
    return memoryview(text.encode("utf-8")), encoding


def _count_leading_line_breaks(body: memoryview) -> int:
    head = bytes(body[:_SNIFF_BYTES])
    return len(head) - len(head.lstrip(b"\r\n"))


def _has_text(body: memoryview) -> bool:
    return len(body) > _SNIFF_BYTES or bool(bytes(body).strip())


def _header_line(body: memoryview) -> str:
    head = bytes(body[:_SNIFF_BYTES])
    match = re.search(rb"[\r\n]", head)
    if match is None and len(body) > _SNIFF_BYTES:
        raise FileRefused(
            _(
                "The first line is longer than 64 KB, so it is not a CSV header: "
                "the first line must hold the column names."
            )
        )
    line = head[: match.start()] if match else head
    text = line.decode("utf-8", errors="replace")
    if text.count('"') % 2:
        raise FileRefused(_('The header (first line) has an unclosed quote (").'))
    return text


def _refuse_rows_without_header_end(body: memoryview) -> None:
    """A header alone, not even ended by a line break, has no rows (pyarrow would call it
    too short to skip its header)."""
    if re.search(rb"[\r\n]", bytes(body[:_SNIFF_BYTES])) is None:
        raise FileRefused(_("The file has a header but no rows."))


def _line_of(body: memoryview, offset: int) -> int:
    """The line (1 = the header) holding byte `offset`, counting the file's line breaks."""
    before = bytes(body[:offset])
    line_break = b"\n" if b"\n" in bytes(body[:_SNIFF_BYTES]) else b"\r"
    return before.count(line_break) + 1


def _refuse_nul_bytes(body: memoryview, *, lines_before: int) -> None:
    """A NUL byte past the first 64 KB: a damaged or binary file, which PostgreSQL could not
    store as text either. Refused naming its line, as a NUL early is refused as binary."""
    whole = body.obj if isinstance(body.obj, bytes) and len(body.obj) == len(body) else None
    position = (whole if whole is not None else bytes(body)).find(b"\x00")
    if position >= 0:
        raise FileRefused(
            _(
                "Line {line} contains a NUL byte (binary data): "
                "the file is damaged or is not a CSV file."
            ).format(line=_line_of(body, position) + lines_before)
        )


def _refuse_unbalanced_quotes(body: memoryview, *, lines_before: int) -> None:
    """Refuse a file with an odd number of double quotes.

    pyarrow reads a quote that is never closed near the end of the file as one value
    running to the end, silently swallowing the rows after it; an odd count catches
    that (and lone quotes inside unquoted values, which no spreadsheet writes). The
    count is the same in every accepted encoding: 0x22 is never part of a multi-byte
    UTF-8 sequence.
    """
    characters = np.frombuffer(body, dtype=np.uint8)
    whole_file = body.obj  # what body is a view of: it only adds a BOM and line breaks
    if isinstance(whole_file, bytes | bytearray):
        quotes = whole_file.count(b'"')
    else:
        quotes = int(np.count_nonzero(characters == ord('"')))
    if quotes % 2 == 0:
        return
    line_break = ord("\n") if ord("\n") in characters[:_SNIFF_BYTES] else ord("\r")
    breaks = np.flatnonzero(characters == line_break)
    quote_lines = np.searchsorted(breaks, np.flatnonzero(characters == ord('"')))
    odd_lines = np.flatnonzero(np.bincount(quote_lines) % 2)
    raise FileRefused(
        _(
            'Line {line} has an unmatched double quote ("): a quoted value is never closed, '
            'or a quote inside a value is not written twice ("").'
        ).format(line=int(odd_lines[0]) + 1 + lines_before)
    )


def _split_header(line: str, delimiter: str) -> list[str]:
    return [name.strip() for name in next(csv.reader([line], delimiter=delimiter))]


def _detect_dialect(line: str, *, mapping: Mapping[str, str]) -> tuple[str, list[str]]:
    """Pick the delimiter that splits the header into the most known names."""
    mapped = set(mapping.values())
    best: tuple[int, int, str, list[str]] | None = None
    for delimiter in (",", ";"):
        names = _split_header(line, delimiter)
        known = sum(canonical_column_name(name) is not None or name in mapped for name in names)
        if best is None or (known, len(names)) > best[:2]:
            best = (known, len(names), delimiter, names)
    assert best is not None
    known, _count, delimiter, names = best
    if known == 0 and "\t" in line:
        tab_names = _split_header(line, "\t")
        if any(canonical_column_name(name) for name in tab_names):
            raise FileRefused(
                _(
                    "The columns are separated by tabs; save the file as CSV with commas "
                    "or semicolons and upload it again."
                )
            )
    return delimiter, names


def _locate_columns(
    header: list[str], *, delimiter: str, mapping: Mapping[str, str]
) -> tuple[dict[str, int], list[str]]:
    """Position of each required column in the header, and the unknown header names."""
    found = _mapped_columns(header, mapping)
    taken = {position for places in found.values() for position, _name in places}
    extra_columns: list[str] = []
    for position, name in enumerate(header):
        if position in taken:
            continue
        canonical = canonical_column_name(name)
        if canonical is None or canonical in mapping:
            extra_columns.append(name or f"(unnamed column {position + 1})")
        else:
            found.setdefault(canonical, []).append((position, name))
    missing = [column for column in REQUIRED_COLUMNS if column not in found]
    if missing:
        raise ColumnsNotFound(
            _("Required column(s) missing: {missing}. The header must contain {required}.").format(
                missing=", ".join(missing), required=", ".join(REQUIRED_COLUMNS)
            ),
            header=header,
            delimiter=delimiter,
            missing=missing,
        )
    for column in REQUIRED_COLUMNS:
        if len(found[column]) > 1:
            spellings = ", ".join(name for _position, name in found[column])
            raise FileRefused(
                _(
                    "Column {column} appears more than once in the header ({spellings}); "
                    "keep only one."
                ).format(column=column, spellings=spellings)
            )
    return {column: found[column][0][0] for column in REQUIRED_COLUMNS}, extra_columns


def _mapped_columns(
    header: list[str], mapping: Mapping[str, str]
) -> dict[str, list[tuple[int, str]]]:
    """Where each column the mapping names sits in the header; refused when it is absent."""
    found: dict[str, list[tuple[int, str]]] = {}
    for column, name in mapping.items():
        places = [(position, seen) for position, seen in enumerate(header) if seen == name]
        if not places:
            raise FileRefused(
                _(
                    "The column mapping takes {column} from a column named {name}, "
                    "and this file has no such column. Choose the columns again."
                ).format(column=column, name=repr(name))
            )
        found[column] = places
    return found


def _column_name(position: int) -> str:
    return f"column_{position}"


def _csv_options(
    delimiter: str,
    field_count: int,
    positions: dict[str, int],
    *,
    use_threads: bool,
    invalid_row_handler: object = None,
) -> dict[str, object]:
    names = [_column_name(position) for position in range(field_count)]
    wanted = [names[positions[column]] for column in REQUIRED_COLUMNS]
    return {
        "read_options": pcsv.ReadOptions(
            column_names=names, skip_rows=1, use_threads=use_threads, block_size=_BLOCK_BYTES
        ),
        "parse_options": pcsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=invalid_row_handler,
        ),
        "convert_options": pcsv.ConvertOptions(
            column_types={name: pa.string() for name in wanted},
            include_columns=wanted,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # already checked or transcoded by _decode
        ),
    }


def _parse_rows(
    body: memoryview,
    *,
    delimiter: str,
    field_count: int,
    positions: dict[str, int],
    lines_before: int,
) -> pa.Table:
    """Parse with pyarrow and return the six columns, canonical names, trimmed, never null."""
    options = _csv_options(delimiter, field_count, positions, use_threads=True)
    try:
        parsed = pcsv.read_csv(pa.BufferReader(pa.py_buffer(body)), **options)
    except pa.ArrowInvalid as error:
        raise _malformed(error, body, delimiter, field_count, positions, lines_before) from None
    columns = []
    for column in REQUIRED_COLUMNS:
        values = parsed.column(_column_name(positions[column]))
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
        columns.append(pc.fill_null(pc.utf8_trim_whitespace(values), ""))
    return pa.table(columns, schema=pa.schema([(name, pa.string()) for name in REQUIRED_COLUMNS]))


def _malformed(
    error: pa.ArrowInvalid,
    body: memoryview,
    delimiter: str,
    field_count: int,
    positions: dict[str, int],
    lines_before: int,
) -> FileRefused:
    """A sentence for a pyarrow parse error; finds the offending line when it can."""
    detail = str(error)
    if "straddl" in detail:
        # The quotes balance (checked before parsing), so a row runs past a whole block.
        return FileRefused(_(_ROW_TOO_LONG).format(size=_BLOCK_MB))
    if "Expected" in detail and "columns" in detail:
        bad_rows: list[pcsv.InvalidRow] = []

        def remember(row: pcsv.InvalidRow) -> str:
            bad_rows.append(row)
            return "error"

        # Multithreaded parsing does not know line numbers; read again in order.
        options = _csv_options(
            delimiter, field_count, positions, use_threads=False, invalid_row_handler=remember
        )
        with contextlib.suppress(pa.ArrowInvalid):  # raised by design once remember() ran
            pcsv.read_csv(pa.BufferReader(pa.py_buffer(body)), **options)
        if bad_rows and bad_rows[0].number is not None:
            row = bad_rows[0]
            message = ngettext(
                "Line {line} has {count} field, the header has {expected}.",
                "Line {line} has {count} fields, the header has {expected}.",
                row.actual_columns,
            ).format(
                line=row.number + lines_before,
                count=row.actual_columns,
                expected=row.expected_columns,
            )
            if row.actual_columns > row.expected_columns:
                message += " " + (
                    _("A value that contains a comma must be enclosed in double quotes.")
                    if delimiter == ","
                    else _("A value that contains a semicolon must be enclosed in double quotes.")
                )
            return FileRefused(message)
    reason = detail.removeprefix("CSV parse error: ").splitlines()[0][:200]
    return FileRefused(_("The file is not a well-formed CSV file: {reason}").format(reason=reason))


# --------------------------------------------------------------------------------------
# Large files, a piece at a time
# --------------------------------------------------------------------------------------

# A file larger than this is read in pieces of about this size, each a CSV of its own (the
# header, then whole records), so an import's memory does not grow with the file: a piece
# of 16 MB is about 135,000 rows; reading, validating and loading it takes about 0.2 GB, and
# the import holds two (the next one is read while the one before loads). Measured with
# bench_memory: 16 MB pieces read one at a time, 0.69 GB for 5.5M rows; 32 MB pieces read
# ahead, 1.11 GB.
PIECE_BYTES = 16 * 1024 * 1024
# The first pieces are an eighth, a quarter and a half of that: nothing reaches the server
# until the first piece is read and validated (about 0.8 s for 16 MB), and from a small one
# on, the reading of each next piece keeps ahead of the loading of the one before.
_FIRST_PIECES = (8, 4, 2)


@dataclass(frozen=True)
class FilePiece:
    """Part of a debtor file that read_debtor_file reads like a whole file."""

    data: bytes  # the file's header line, then whole records of it
    lines_before: int  # the file's lines between its header and this piece's first row
    bytes_after: int = 0  # the file's bytes in the pieces that follow

    @property
    def last(self) -> bool:
        """No piece follows."""
        return self.bytes_after == 0


def file_size(source: BinaryIO) -> int:
    """The size of a seekable binary file, left positioned at its start."""
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    return size


def file_pieces(
    source: BinaryIO, *, max_bytes: int, piece_bytes: int | None = None
) -> Iterator[FilePiece]:
    """The file from `source` in pieces of about `piece_bytes` (the first three smaller:
    _FIRST_PIECES), cut only between records.

    A cut falls on a line break outside quotes: the double quotes before it, from the
    start of the piece, are even in number (0x22 is a quote in every encoding accepted).
    A file that fits in one piece is one piece, exactly its bytes. The whole file's size
    is checked first, so a file over `max_bytes` is refused before anything is read.
    """
    piece_bytes = piece_bytes or PIECE_BYTES
    size = file_size(source)
    if size > max_bytes:
        raise FileRefused(
            _("The file is larger than the limit of {limit}.").format(limit=_format_size(max_bytes))
        )
    first = source.read(piece_bytes)
    if len(first) == size:
        yield FilePiece(data=first, lines_before=0)
        return
    header_end = _end_of_header(first)
    header = first[:header_end]  # the first piece keeps a BOM, which names the encoding
    line_break = b"\n" if b"\n" in first[:_SNIFF_BYTES] else b"\r"
    buffer, lines_before, at_end = bytearray(first[header_end:]), 0, False
    del first  # copied into `buffer`: the first read is not held while the rest streams
    targets = _piece_targets(piece_bytes)
    target = next(targets)
    while buffer or not at_end:
        while not at_end and len(buffer) < target:
            more = source.read(piece_bytes)
            at_end = not more or source.tell() >= size  # the rest is in the buffer
            buffer += more
        cut: int | None = len(buffer)
        # Cut after a record whenever more of the file follows: a buffer of exactly a
        # piece's bytes ends where the last read stopped, often inside a record.
        if not at_end or len(buffer) > target:
            view = memoryview(buffer)
            cut = _last_record_end(view[:target], line_break) or _last_record_end(view, line_break)
            view.release()
        if cut is None:  # a record longer than a piece: read on, up to what a row may be
            if not at_end and len(buffer) < piece_bytes + 2 * _BLOCK_BYTES:
                buffer += source.read(piece_bytes)
                at_end = source.tell() >= size
                continue
            if not at_end:  # a record running on past any row's length
                raise FileRefused(_(_ROW_TOO_LONG).format(size=_BLOCK_MB))
            cut = len(buffer)  # the parser says what is wrong with the end of the file
        rows = bytes(buffer[:cut])
        del buffer[:cut]  # moved down in place: no second copy of the rest
        bytes_after = len(buffer) + size - source.tell()
        if rows.strip(b"\r\n") or (bytes_after == 0 and lines_before == 0):  # blank: none
            yield FilePiece(data=header + rows, lines_before=lines_before, bytes_after=bytes_after)
        header = header.removeprefix(_UTF8_BOM).lstrip(b"\r\n")
        lines_before += rows.count(line_break)
        target = next(targets)


def _piece_targets(piece_bytes: int) -> Iterator[int]:
    """How large each piece is cut: the first ones smaller (_FIRST_PIECES), then all alike."""
    for divisor in _FIRST_PIECES:
        yield max(piece_bytes // divisor, 1)
    yield from itertools.repeat(piece_bytes)


def _end_of_header(head: bytes) -> int:
    """Where the first record after the header starts (the header's line break included)."""
    match = re.search(rb"[^\r\n][\r\n]", head[:_SNIFF_BYTES])
    if match is None:
        return len(head)  # read_debtor_file says what is wrong with such a header
    end = match.end()
    return end + 1 if head[end - 1 : end + 1] == b"\r\n" else end


def _last_record_end(buffer: bytes | memoryview, line_break: bytes) -> int | None:
    """Just past the last line break of `buffer` with an even number of quotes before it."""
    characters = np.frombuffer(buffer, dtype=np.uint8)
    breaks = np.flatnonzero(characters == line_break[0])
    quotes = np.flatnonzero(characters == ord('"'))
    outside = breaks[np.searchsorted(quotes, breaks) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else None
