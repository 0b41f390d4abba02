"""Reading uploaded debtor CSVs: encodings, dialects, headers, and every refusal."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from billing.core.errors import FileRefused, OperatorError
from billing.imports.reading import (
    REQUIRED_COLUMNS,
    FilePiece,
    canonical_column_name,
    file_pieces,
    read_debtor_file,
)
from tests.support.debtor_files import GOOD_ROW, HEADER, ROW

MAX_BYTES = 200 * 1024 * 1024


def read(data: bytes, *, max_bytes: int = MAX_BYTES):
    return read_debtor_file(data, max_bytes=max_bytes)


def records(data: bytes) -> list[dict[str, str]]:
    return read(data).table.to_pylist()


def test_reads_a_plain_utf8_file() -> None:
    file = read(f"{HEADER}\n{ROW}\n".encode())
    assert file.encoding == "utf-8"
    assert file.delimiter == ","
    assert file.extra_columns == []
    assert file.row_count == 1
    assert file.table.schema == pa.schema([(name, pa.string()) for name in REQUIRED_COLUMNS])
    assert file.table.to_pylist() == [
        {
            "name": "Ana Souza",
            "governmentId": "529.982.247-25",
            "email": "ana@example.com",
            "debtAmount": "1000.00",
            "debtDueDate": "2025-01-31",
            "debtId": "D-1",
        }
    ]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(f"{HEADER}\nConceição,1,e,1,2,3\n".encode(), "utf-8", id="utf-8"),
        pytest.param(
            b"\xef\xbb\xbf" + f"{HEADER}\nConceição,1,e,1,2,3\n".encode(), "utf-8-sig", id="bom"
        ),
        pytest.param(f"{HEADER}\nConceição,1,e,1,2,3\n".encode("cp1252"), "cp1252", id="cp1252"),
        # 0x81 is undefined in cp1252, so only latin-1 can decode this file.
        pytest.param(
            f"{HEADER}\nConceição\x81,1,e,1,2,3\n".encode("latin-1"), "latin-1", id="latin-1"
        ),
    ],
)
def test_encodings(data: bytes, encoding: str) -> None:
    file = read(data)
    assert file.encoding == encoding
    assert file.table.column("name")[0].as_py().startswith("Conceição")
    assert file.table.column_names == list(REQUIRED_COLUMNS)


def test_cp1252_punctuation_is_transcoded() -> None:
    name = "\u201cZé\u201d \u2013 Ltda"  # curly quotes and an en dash: 0x93, 0x94, 0x96
    data = f"{HEADER}\n{name},1,e,1,2,3\n".encode("cp1252")
    assert records(data)[0]["name"] == name


def test_semicolon_file_keeps_brazilian_amounts_as_text() -> None:
    data = (
        "name;governmentId;email;debtAmount;debtDueDate;debtId\r\n"
        "Ana;529.982.247-25;ana@example.com;1.234,56;31/01/2025;D-1\r\n"
    ).encode("cp1252")
    file = read(data)
    assert file.delimiter == ";"
    assert file.table.column("debtAmount").to_pylist() == ["1.234,56"]
    assert file.table.column("debtDueDate").to_pylist() == ["31/01/2025"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_endings(newline: str) -> None:
    data = newline.join([HEADER, ROW, ROW.replace("D-1", "D-2"), ""]).encode()
    assert [row["debtId"] for row in records(data)] == ["D-1", "D-2"]


def test_header_in_any_case_order_and_with_aliases() -> None:
    data = (
        b"DEBT_ID;Debt Due Date;debt-amount;E-mail;government_id;Name\n"
        b"D-1;31/01/2025;10,00;ana@example.com;529.982.247-25;Ana\n"
    )
    file = read(data)
    assert file.table.column_names == list(REQUIRED_COLUMNS)
    assert file.table.to_pylist()[0] == {
        "name": "Ana",
        "governmentId": "529.982.247-25",
        "email": "ana@example.com",
        "debtAmount": "10,00",
        "debtDueDate": "31/01/2025",
        "debtId": "D-1",
    }


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("name", "name"),
        ("Nome", "name"),
        ("governmentId", "governmentId"),
        ("government_id", "governmentId"),
        ("GOVERNMENTID", "governmentId"),
        ("cpf_cnpj", "governmentId"),
        ("e-mail", "email"),
        ("debt_amount", "debtAmount"),
        ("amount", "debtAmount"),
        ("valor", "debtAmount"),
        ("debt_due_date", "debtDueDate"),
        ("due_date", "debtDueDate"),
        ("vencimento", "debtDueDate"),
        ("debt-id", "debtId"),
        (" debtId ", "debtId"),
        ("id", None),
        ("notes", None),
    ],
)
def test_canonical_column_name(header: str, canonical: str | None) -> None:
    assert canonical_column_name(header) == canonical


def test_extra_columns_are_ignored_and_reported() -> None:
    data = (
        f"notes,{HEADER},Segment,\n"
        "call after 6pm,Ana,529.982.247-25,ana@example.com,1,2025-01-31,D-1,retail,\n"
    ).encode()
    file = read(data)
    assert file.extra_columns == ["notes", "Segment", "(unnamed column 9)"]
    assert file.table.column_names == list(REQUIRED_COLUMNS)
    assert file.table.column("name").to_pylist() == ["Ana"]


def test_quoted_values_with_delimiters_quotes_and_newlines() -> None:
    data = (
        f"{HEADER}\n"
        '"Souza, Ana","529.982.247-25",ana@example.com,"1,000.00",2025-01-31,D-1\n'
        '"Rua ""A""\nApto 2",1,e,1,2,D-2\n'
    ).encode()
    assert [(row["name"], row["debtAmount"]) for row in records(data)] == [
        ("Souza, Ana", "1,000.00"),
        ('Rua "A"\nApto 2', "1"),
    ]


def test_values_are_trimmed_and_missing_values_are_empty_strings() -> None:
    data = f'{HEADER}\n  Ana\u00a0 , 1 ,"",\t,"  ",D-1\n'.encode()
    assert records(data) == [
        {
            "name": "Ana",
            "governmentId": "1",
            "email": "",
            "debtAmount": "",
            "debtDueDate": "",
            "debtId": "D-1",
        }
    ]
    assert read(data).table.column("email").null_count == 0


def test_blank_lines_are_skipped() -> None:
    data = f"\n\n{HEADER}\n\n{ROW}\n\n\n".encode()
    assert read(data).row_count == 1


def test_a_large_file_reads_in_several_blocks() -> None:
    rows = "".join(f"Name {i},1,e,1,2,D-{i}\n" for i in range(60_000))
    file = read(f"{HEADER}\n{rows}".encode())
    assert file.row_count == 60_000
    assert file.table.column("debtId")[59_999].as_py() == "D-59999"
    assert all(column.num_chunks == 1 for column in file.table.columns)


@pytest.mark.parametrize(
    ("data", "max_bytes", "message"),
    [
        pytest.param(b"", MAX_BYTES, "The file is empty.", id="empty"),
        pytest.param(b"\xef\xbb\xbf\r\n\n", MAX_BYTES, "The file is empty.", id="only-bom-blank"),
        pytest.param(
            b"x" * 1001, 1000, "The file is larger than the limit of 1,000 bytes.", id="bytes"
        ),
        pytest.param(
            f"{HEADER}\n{ROW}\n".encode(),
            64,
            "The file is larger than the limit of 64 bytes.",
            id="too-large",
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            MAX_BYTES,
            "This is not a CSV file (it contains binary data).",
            id="binary",
        ),
        pytest.param(b"PK\x03\x04\x14\x00", MAX_BYTES, "not a CSV file", id="xlsx"),
        pytest.param("\ufeffname,email\n".encode("utf-16-le"), MAX_BYTES, "UTF-16", id="utf-16"),
        pytest.param(
            b"name,email,debtAmount,debtDueDate\nAna,a@b.co,1,2\n",
            MAX_BYTES,
            "Required column(s) missing: governmentId, debtId. The header must contain "
            "name, governmentId, email, debtAmount, debtDueDate, debtId.",
            id="missing-columns",
        ),
        pytest.param(
            f"{ROW}\n{ROW}\n".encode(), MAX_BYTES, "Required column(s) missing", id="no-header"
        ),
        pytest.param(
            f"{HEADER},debt_id\n{ROW},D-2\n".encode(),
            MAX_BYTES,
            "Column debtId appears more than once in the header (debtId, debt_id); keep only one.",
            id="duplicate-column",
        ),
        pytest.param(
            f"{HEADER}\n".encode(),
            MAX_BYTES,
            "The file has a header but no rows.",
            id="header-only",
        ),
        pytest.param(
            f"{HEADER}\r\n\r\n".encode(),
            MAX_BYTES,
            "The file has a header but no rows.",
            id="header-and-blank-lines",
        ),
        pytest.param(
            f"{HEADER}\n{ROW}\n{ROW}\nAna,1,e,1\n{ROW}\n".encode(),
            MAX_BYTES,
            "Line 4 has 4 fields, the header has 6.",
            id="too-few-fields",
        ),
        pytest.param(
            f"{HEADER}\n{ROW}\n   \n".encode(),
            MAX_BYTES,
            "Line 3 has 1 field, the header has 6.",
            id="line-of-spaces",
        ),
        pytest.param(
            f"{HEADER}\n{ROW}\nSouza, Ana,1,e,1,2,D-3\n".encode(),
            MAX_BYTES,
            "Line 3 has 7 fields, the header has 6. A value that contains a comma must be "
            "enclosed in double quotes.",
            id="too-many-fields",
        ),
        pytest.param(
            (f"{HEADER}\n" + '"Ana,1,e,1,2,D-1\n' + f"{ROW}\n" * 40_000).encode(),
            MAX_BYTES,
            'Line 2 has an unmatched double quote ("): a quoted value is never closed, '
            'or a quote inside a value is not written twice ("").',
            id="unclosed-quote",
        ),
        # Without the quote check pyarrow would return 2 rows, the last debtId holding
        # the 3 rows after it.
        pytest.param(
            f'{HEADER}\n{ROW}\nAna,1,e,1,2,"D-2\n{ROW}\n{ROW}\n{ROW}\n'.encode(),
            MAX_BYTES,
            "Line 3 has an unmatched double quote",
            id="unclosed-quote-in-last-field",
        ),
        pytest.param(
            f'{HEADER}\n{ROW}\nTV 32",1,e,1,2,D-2\n'.encode("cp1252"),
            MAX_BYTES,
            "Line 3 has an unmatched double quote",
            id="lone-quote",
        ),
        pytest.param(
            ('"name,' + HEADER + "\n" + ROW + "\n").encode(),
            MAX_BYTES,
            "The header (first line) has an unclosed quote",
            id="unclosed-quote-in-header",
        ),
        pytest.param(
            ("\t".join(REQUIRED_COLUMNS) + "\n" + ROW.replace(",", "\t") + "\n").encode(),
            MAX_BYTES,
            "separated by tabs",
            id="tab-separated",
        ),
        pytest.param(b"a" * 70_000, MAX_BYTES, "longer than 64 KB", id="no-line-break"),
    ],
)
def test_refused_files(data: bytes, max_bytes: int, message: str) -> None:
    with pytest.raises(FileRefused) as refused:
        read(data, max_bytes=max_bytes)
    assert message in refused.value.message
    assert isinstance(refused.value, OperatorError)
    assert refused.value.title == "File refused"
    assert str(refused.value) == refused.value.message


def test_size_limit_in_megabytes() -> None:
    with pytest.raises(FileRefused, match=r"^The file is larger than the limit of 1 MB\.$"):
        read(b"x" * (1024 * 1024 + 1), max_bytes=1024 * 1024)


def test_operator_error_defaults() -> None:
    error = OperatorError("Something to fix.")
    assert (error.message, error.title) == ("Something to fix.", "Cannot continue")


# --- large files, a piece at a time ----------------------------------------------------


def _pieces(data: bytes, piece_bytes: int) -> list[FilePiece]:
    return list(file_pieces(io.BytesIO(data), max_bytes=MAX_BYTES, piece_bytes=piece_bytes))


def _tricky_file(rows: int, line_break: str = "\n") -> bytes:
    """Quoted names with commas, debtIds with line breaks inside quotes, a blank line."""
    lines = [HEADER] + [
        f'"Souza, Ana {i}",529.982.247-25,a{i}@example.com,1.00,2025-01-31,"D{line_break}{i}"'
        + (line_break if i == 7 else "")
        for i in range(rows)
    ]
    return ("\ufeff" + line_break.join(lines) + line_break).encode()


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("piece_bytes", [90, 300, 4096])
def test_pieces_cut_between_records_read_as_the_whole_file(
    line_break: str, piece_bytes: int
) -> None:
    data = _tricky_file(60, line_break)
    whole = read(data)
    pieces = _pieces(data, piece_bytes)
    tables = [
        read_debtor_file(piece.data, max_bytes=MAX_BYTES, lines_before=piece.lines_before).table
        for piece in pieces
    ]
    assert len(pieces) > 1 and [piece.last for piece in pieces][-2:] == [False, True]
    assert pa.concat_tables(tables).to_pylist() == whole.table.to_pylist()
    assert read_debtor_file(pieces[0].data, max_bytes=MAX_BYTES).encoding == "utf-8-sig"


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_every_piece_size_cuts_between_records(line_break: str) -> None:
    """Rows of one length, so for some piece sizes a cut leaves exactly a piece's worth of
    bytes to read on (a 5.5M-row file of short rows hit it: "line 932444 has 3 fields")."""
    row = {**GOOD_ROW, "name": '"Souza, Ana"'}
    rows = [",".join({**row, "debtId": f"D-{i:04d}"}.values()) for i in range(12)]
    data = (line_break.join([HEADER, *rows]) + line_break).encode()
    whole = read(data).table.to_pylist()
    for piece_bytes in range(len(rows[0]) + 1, 4 * len(rows[0])):
        pieces = _pieces(data, piece_bytes)
        assert all(piece.data.endswith(line_break.encode()) for piece in pieces), piece_bytes
        assert [piece.last for piece in pieces] == [False] * (len(pieces) - 1) + [True]
        records = [len(piece.data) - len(HEADER + line_break) for piece in pieces]
        assert [piece.bytes_after for piece in pieces] == [
            sum(records[index + 1 :]) for index in range(len(pieces))
        ]
        tables = [
            read_debtor_file(piece.data, max_bytes=MAX_BYTES, lines_before=piece.lines_before)
            for piece in pieces
        ]
        assert [row for file in tables for row in file.table.to_pylist()] == whole, piece_bytes


def test_the_first_pieces_are_smaller_so_the_load_starts_sooner() -> None:
    """An eighth, a quarter and a half of a piece, then whole pieces: the server waits for
    the first piece only, and each next one is read while the one before loads."""
    rows = [f"{ROW[:-3]}D-{i:05d}" for i in range(2000)]
    data = "\n".join([HEADER, *rows, ""]).encode()
    row_bytes = len(rows[0]) + 1
    piece_bytes = 40 * row_bytes
    sizes = [len(piece.data) - len(HEADER) - 1 for piece in _pieces(data, piece_bytes)]
    assert [size // row_bytes for size in sizes[:6]] == [5, 10, 20, 40, 40, 40]
    assert sum(sizes) == len(data) - len(HEADER) - 1


def test_a_file_in_one_piece_is_its_own_bytes() -> None:
    data = _tricky_file(5)
    assert [(piece.data, piece.lines_before, piece.last) for piece in _pieces(data, 4096)] == [
        (data, 0, True)
    ]


def test_a_refusal_in_a_later_piece_names_the_file_s_line() -> None:
    good = [f"{ROW[:-3]}D-{i}" for i in range(40)]
    data = "\n".join([HEADER, *good, "Ana,1,2", *good]).encode()  # line 42: three fields
    pieces = _pieces(data, 600)
    with pytest.raises(FileRefused, match=r"^Line 42 has 3 fields, the header has 6"):
        for piece in pieces:
            read_debtor_file(piece.data, max_bytes=MAX_BYTES, lines_before=piece.lines_before)
    assert pieces[0].lines_before == 0 and "Ana,1,2" not in pieces[0].data.decode()


def test_an_unclosed_quote_near_the_end_is_refused_with_its_line_in_pieces() -> None:
    rows = [f"{ROW[:-3]}D-{i}" for i in range(50)]
    data = "\n".join([HEADER, *rows, 'Ana,"1,x@y.z,1,2025-01-01,Z', *rows[:3]]).encode()
    with pytest.raises(FileRefused, match=r"^Line 52 has an unmatched double quote"):
        for piece in _pieces(data, 700):
            read_debtor_file(piece.data, max_bytes=MAX_BYTES, lines_before=piece.lines_before)


def test_a_file_over_the_limit_is_refused_before_a_piece_is_read() -> None:
    source = io.BytesIO(_tricky_file(50))
    with pytest.raises(FileRefused, match="larger than the limit of 1,000 bytes"):
        next(file_pieces(source, max_bytes=1000, piece_bytes=100))
    assert source.tell() == 0
