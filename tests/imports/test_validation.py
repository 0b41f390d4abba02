"""Per-row validation: every reason, several reasons at once, formats, duplicates, output."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from billing.imports.reading import REQUIRED_COLUMNS, DebtorFile, read_debtor_file
from billing.imports.validation import REJECTED_SCHEMA, VALID_SCHEMA, ValidatedRows, validate_rows
from tests.support.debtor_files import GOOD_ROW as GOOD


def debtor_file(rows: list[dict[str, str]], *, delimiter: str = ",") -> DebtorFile:
    """A DebtorFile as read_debtor_file makes it (values already trimmed)."""
    table = pa.table(
        {column: pa.array([row[column] for row in rows], pa.string()) for column in GOOD},
        schema=pa.schema([(column, pa.string()) for column in REQUIRED_COLUMNS]),
    )
    return DebtorFile(table=table, encoding="utf-8", delimiter=delimiter, extra_columns=[])


def validate(
    rows: list[dict[str, str]],
    *,
    delimiter: str = ",",
    lenient_documents: bool = False,
    max_amount: Decimal = Decimal("99999999.99"),
) -> ValidatedRows:
    return validate_rows(
        debtor_file(rows, delimiter=delimiter),
        lenient_documents=lenient_documents,
        max_amount=max_amount,
    )


def reasons_of(changes: dict[str, str], **options: object) -> list[str]:
    """The reasons of a single row made from GOOD with ``changes``; [] when it is valid."""
    result = validate([GOOD | changes], **options)
    if result.valid.num_rows:
        return []
    return result.rejected.column("reasons")[0].as_py().split("; ")


def test_a_good_row_is_valid() -> None:
    result = validate([GOOD])
    assert result.rejected.num_rows == 0
    assert result.reason_counts == {}
    assert result.valid.to_pylist() == [
        {
            "line": 2,
            "debt_id": "D-1",
            "government_id": "52998224725",
            "name": "Ana Souza",
            "email": "ana@example.com",
            "amount": Decimal("1000.00"),
            "due_date": datetime.date(2025, 1, 31),
        }
    ]


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"name": ""}, ["missing name"]),
        ({"name": "Ana " * 50}, []),  # 199 characters once trimmed: accepted
        ({"name": "Ana " * 51}, ["name too long (over 200 characters)"]),
        ({"governmentId": ""}, ["missing governmentId"]),
        ({"email": ""}, ["missing email"]),
        ({"debtAmount": ""}, ["missing debtAmount"]),
        ({"debtDueDate": ""}, ["missing debtDueDate"]),
        ({"debtId": ""}, ["missing debtId"]),
        ({"debtAmount": "12,50"}, ["debtAmount is not a number in an accepted form"]),
        ({"debtAmount": "100000000.00"}, ["debtAmount too large"]),
        ({"debtDueDate": "2023-02-30"}, ["2023-02-30 is not a date"]),
        ({"email": "ana.example.com"}, ["invalid email"]),
        (
            {"governmentId": "529.982.247-26"},
            ["invalid governmentId (not a valid CPF or CNPJ)"],
        ),
        (
            {"name": "", "governmentId": "123", "email": "a b@c.com", "debtAmount": "-1"},
            [
                "missing name",
                "invalid governmentId (not a valid CPF or CNPJ)",
                "invalid email",
                "debtAmount is negative",
            ],
        ),
        (
            {"debtAmount": "123456789012.00", "debtDueDate": "31/12/1999", "debtId": ""},
            [
                "debtAmount too large",
                "debtDueDate outside the years 2000 to 2099",
                "missing debtId",
            ],
        ),
        (
            dict.fromkeys(GOOD, ""),
            [f"missing {column}" for column in REQUIRED_COLUMNS],
        ),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_reasons(changes: dict[str, str], reasons: list[str]) -> None:
    assert reasons_of(changes) == reasons


@pytest.mark.parametrize(
    ("delimiter", "text", "amount"),
    [
        (",", "1000000.00", Decimal("1000000.00")),
        (",", "7811", Decimal("7811.00")),
        (",", "0.5", Decimal("0.50")),
        (",", "0.01", Decimal("0.01")),
        (",", "007811", Decimal("7811.00")),
        (",", "99999999.99", Decimal("99999999.99")),
        (";", "1.234,56", Decimal("1234.56")),
        (";", "1234,56", Decimal("1234.56")),
        (";", "1.234", Decimal("1234.00")),
        (";", "12.345.678,9", Decimal("12345678.90")),
        (";", "0,5", Decimal("0.50")),
        (";", "1234.56", Decimal("1234.56")),
        (";", "1.23", Decimal("1.23")),
        (";", "7811", Decimal("7811.00")),
    ],
)
def test_accepted_amounts(delimiter: str, text: str, amount: Decimal) -> None:
    result = validate([GOOD | {"debtAmount": text}], delimiter=delimiter)
    assert result.valid.column("amount").to_pylist() == [amount]


ZERO = "debtAmount is zero"
NEGATIVE = "debtAmount is negative"
DECIMALS = "debtAmount has more than 2 decimals"
UNREADABLE = "debtAmount is not a number in an accepted form"


@pytest.mark.parametrize(
    ("delimiter", "text", "reason"),
    [
        (",", "0", ZERO),
        (",", "0.00", ZERO),
        (",", "-10.00", NEGATIVE),
        (",", "+10", UNREADABLE),
        (",", "1.234", DECIMALS),
        (",", "1,234.56", UNREADABLE),
        (",", "1234,56", UNREADABLE),
        (",", "1.2.3", UNREADABLE),
        (",", ".5", UNREADABLE),
        (",", "5.", UNREADABLE),
        (",", "1e3", UNREADABLE),
        (",", "R$ 10,00", UNREADABLE),
        (",", "10 000", UNREADABLE),
        (",", "ten", UNREADABLE),
        (";", "1.23,45", UNREADABLE),
        (";", "1234.567", DECIMALS),
        (";", "12.34.567", UNREADABLE),
        (";", "1,234", DECIMALS),
        (";", "0,00", ZERO),
        (";", "-1,00", NEGATIVE),
        (",", "100000000.00", "debtAmount too large"),
        (",", "99999999.991", DECIMALS),
        (",", "1" * 40, "debtAmount too large"),
        (";", "100.000.000,00", "debtAmount too large"),
        (",", "-1.234", NEGATIVE),
        (",", "-ten", UNREADABLE),
        (";", "-1.000,50", NEGATIVE),
        (";", "12,345", DECIMALS),
        (",", "12,345", UNREADABLE),
    ],
)
def test_refused_amounts(delimiter: str, text: str, reason: str) -> None:
    assert reasons_of({"debtAmount": text}, delimiter=delimiter) == [reason]


def test_max_amount_can_be_lowered() -> None:
    assert reasons_of({"debtAmount": "500.01"}, max_amount=Decimal("500")) == [
        "debtAmount too large"
    ]
    assert reasons_of({"debtAmount": "500.00"}, max_amount=Decimal("500")) == []


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("2025-01-31", datetime.date(2025, 1, 31)),
        ("31/01/2025", datetime.date(2025, 1, 31)),
        ("5/3/2025", datetime.date(2025, 3, 5)),
        ("2024-02-29", datetime.date(2024, 2, 29)),
        ("29/02/2000", datetime.date(2000, 2, 29)),
        ("2000-01-01", datetime.date(2000, 1, 1)),
        ("31/12/2099", datetime.date(2099, 12, 31)),
    ],
)
def test_accepted_due_dates(text: str, date: datetime.date) -> None:
    result = validate([GOOD | {"debtDueDate": text}])
    assert result.valid.column("due_date").to_pylist() == [date]


NOT_A_DATE = "debtDueDate is not a date (write 2025-12-31 or 31/12/2025)"
OUT_OF_RANGE = "debtDueDate outside the years 2000 to 2099"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2023-02-29", "2023-02-29 is not a date"),
        ("2100-02-29", "2100-02-29 is not a date"),
        ("2025-04-31", "2025-04-31 is not a date"),
        ("31/04/2025", "31/04/2025 is not a date"),
        ("31/02/2024", "31/02/2024 is not a date"),
        ("2025-13-01", "2025-13-01 is not a date"),
        ("2025-00-10", "2025-00-10 is not a date"),
        ("2025-01-00", "2025-01-00 is not a date"),
        ("1999-12-31", OUT_OF_RANGE),
        ("01/01/2100", OUT_OF_RANGE),
        ("2025-1-31", NOT_A_DATE),
        ("2025/01/31", NOT_A_DATE),
        ("01-31-2025", NOT_A_DATE),
        ("31/01/25", NOT_A_DATE),
        ("2025-01-31 00:00:00", NOT_A_DATE),
        ("2025-01-31T00:00", NOT_A_DATE),
        ("tomorrow", NOT_A_DATE),
    ],
)
def test_refused_due_dates(text: str, reason: str) -> None:
    assert reasons_of({"debtDueDate": text}) == [reason]


def test_an_impossible_date_is_counted_under_one_reason_and_named_per_row() -> None:
    rows = [GOOD | {"debtId": "D-1", "debtDueDate": "31/02/2024"}]
    rows += [GOOD | {"debtId": "D-2", "debtDueDate": "2025-04-31"}]
    result = validate(rows)
    assert result.reason_counts == {"debtDueDate is not a real date": 2}
    assert result.rejected.column("reasons").to_pylist() == [
        "31/02/2024 is not a date",
        "2025-04-31 is not a date",
    ]
    assert result.lines_with("debtDueDate is not a real date").tolist() == [2, 3]


@pytest.mark.parametrize(
    "email",
    [
        "ana@example.com",
        "ana.souza+billing@mail.example.com.br",
        "ANA_SOUZA@EXAMPLE.COM",
        "o'brien@example.ie",
        "a@b-c.io",
        "1234@123.example.com",
    ],
)
def test_accepted_emails(email: str) -> None:
    assert reasons_of({"email": email}) == []


@pytest.mark.parametrize(
    "email",
    [
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana@@example.com",
        "ana@exa@mple.com",
        "ana souza@example.com",
        "ana@exam ple.com",
        "ana@example..com",
        "ana.@example.com",
        ".ana@example.com",
        "ana..souza@example.com",
        "ana@-example.com",
        "ana@example-.com",
        "ana@example.c",
        "ana@example.123",
        "joão@example.com",
        "ana@example.com; bia@example.com",
        "a" * 65 + "@example.com",
        "ana@" + "a" * 250 + ".com",
    ],
)
def test_refused_emails(email: str) -> None:
    assert reasons_of({"email": email}) == ["invalid email"]


@pytest.mark.parametrize(
    "government_id",
    ["529.982.247-25", "52998224725", "11.222.333/0001-81", "12.ABC.345/01DE-35"],
)
def test_accepted_government_ids(government_id: str) -> None:
    assert reasons_of({"governmentId": government_id}) == []


@pytest.mark.parametrize(
    ("government_id", "stored"),
    [
        ("529.982.247-25", "52998224725"),
        ("12.abc.345/01de-35", "12ABC34501DE35"),
        ("0042", "0042"),
        ("A-17/b", "A17B"),
        ("---", "---"),
    ],
)
def test_lenient_documents_accept_any_non_empty_id(government_id: str, stored: str) -> None:
    result = validate([GOOD | {"governmentId": government_id}], lenient_documents=True)
    assert result.valid.column("government_id").to_pylist() == [stored]


def test_lenient_documents_still_require_an_id() -> None:
    assert reasons_of({"governmentId": ""}, lenient_documents=True) == ["missing governmentId"]


def test_duplicate_debt_ids_keep_the_first_row() -> None:
    rows = [
        GOOD | {"debtId": "D-1"},
        GOOD | {"debtId": "D-2"},
        GOOD | {"debtId": "D-1", "name": "Second"},
        GOOD | {"debtId": "d-1"},  # ids are compared exactly
        GOOD | {"debtId": ""},
        GOOD | {"debtId": ""},
        GOOD | {"debtId": "D-1", "email": "x"},
    ]
    result = validate(rows)
    assert result.valid.column("line").to_pylist() == [2, 3, 5]
    assert result.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 4, "reasons": "duplicate debtId: first on line 2"},
        {"line": 6, "reasons": "missing debtId"},
        {"line": 7, "reasons": "missing debtId"},
        {"line": 8, "reasons": "invalid email; duplicate debtId: first on line 2"},
    ]


def test_a_duplicate_of_a_rejected_row_is_still_a_duplicate() -> None:
    rows = [GOOD | {"debtAmount": "abc"}, GOOD]
    result = validate(rows)
    assert result.valid.num_rows == 0
    assert result.rejected.column("reasons").to_pylist() == [
        "debtAmount is not a number in an accepted form",
        "duplicate debtId: first on line 2",
    ]
    assert result.reason_counts["duplicate debtId"] == 1


def test_rejected_rows_keep_the_values_as_read() -> None:
    row = GOOD | {"governmentId": "529.982.247-26", "debtAmount": "1.234,5"}
    result = validate([GOOD | {"debtId": "D-0"}, row])
    assert result.rejected.schema == REJECTED_SCHEMA
    assert result.rejected.to_pylist() == [
        {
            "line": 3,
            **row,
            "reasons": "invalid governmentId (not a valid CPF or CNPJ); "
            "debtAmount is not a number in an accepted form",
        }
    ]


def test_reason_counts_most_frequent_first() -> None:
    rows = [
        GOOD | {"debtId": "D-1", "email": ""},
        GOOD | {"debtId": "D-2", "email": "", "debtAmount": "0"},
        GOOD | {"debtId": "D-3", "email": "", "debtAmount": "0", "name": ""},
        GOOD | {"debtId": "D-4"},
    ]
    result = validate(rows)
    assert result.reason_counts == {"missing email": 3, "debtAmount is zero": 2, "missing name": 1}
    assert list(result.reason_counts) == ["missing email", "debtAmount is zero", "missing name"]
    assert result.valid.num_rows == 1
    assert result.rejected.num_rows == 3


def test_output_schemas() -> None:
    result = validate([GOOD, GOOD | {"debtId": ""}])
    assert result.valid.schema == VALID_SCHEMA
    assert result.rejected.schema == REJECTED_SCHEMA
    assert VALID_SCHEMA.names == [
        "line",
        "debt_id",
        "government_id",
        "name",
        "email",
        "amount",
        "due_date",
    ]
    assert VALID_SCHEMA.field("amount").type == pa.decimal128(14, 2)
    assert VALID_SCHEMA.field("due_date").type == pa.date32()
    assert REJECTED_SCHEMA.names == ["line", *REQUIRED_COLUMNS, "reasons"]


def test_no_rows() -> None:
    result = validate([])
    assert result.valid.num_rows == 0
    assert result.rejected.num_rows == 0
    assert result.valid.schema == VALID_SCHEMA
    assert result.reason_counts == {}


def test_read_then_validate_a_brazilian_excel_export() -> None:
    data = (
        "Nome;CPF_CNPJ;E-mail;Valor;Vencimento;debt_id\r\n"
        "Conceição Araújo;529.982.247-25;conceicao@example.com.br;1.234,56;05/03/2025;A1\r\n"
        '"Souza; Ana";11.222.333/0001-81;ana@example.com;0,5;2025-03-05;A2\r\n'
        "Zé;12.ABC.345/01DE-35;ze@example.com;1.000.000,00;31/02/2025;A3\r\n"
    ).encode("cp1252")
    result = validate_rows(read_debtor_file(data, max_bytes=10_000), lenient_documents=False)
    assert result.valid.select(["line", "name", "amount"]).to_pylist() == [
        {"line": 2, "name": "Conceição Araújo", "amount": Decimal("1234.56")},
        {"line": 3, "name": "Souza; Ana", "amount": Decimal("0.50")},
    ]
    assert result.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 4, "reasons": "31/02/2025 is not a date"}
    ]


def test_lines_count_records_not_physical_lines() -> None:
    data = (
        ",".join(REQUIRED_COLUMNS) + "\n"
        '"Ana\nSouza",529.982.247-25,ana@example.com,1,2025-01-31,D-1\n'
        "\n"
        "Bia,529.982.247-25,bad,1,2025-01-31,D-2\n"
    ).encode()
    result = validate_rows(read_debtor_file(data, max_bytes=10_000), lenient_documents=False)
    assert result.valid.column("line").to_pylist() == [2]
    assert result.rejected.column("line").to_pylist() == [3]


def test_a_duplicate_of_an_earlier_piece_names_the_line_that_held_it() -> None:
    """A large file is validated a piece at a time; DebtIdSet keeps each debtId's line."""
    from billing.imports.validation import DebtIdSet

    earlier = DebtIdSet()
    first_piece = [GOOD | {"debtId": "A"}, GOOD | {"debtId": "B"}, GOOD | {"debtId": "A"}]
    second_piece = [GOOD | {"debtId": "B"}, GOOD | {"debtId": "C"}, GOOD | {"debtId": "C"}]
    one = validate_rows(debtor_file(first_piece), lenient_documents=False, earlier_debt_ids=earlier)
    two = validate_rows(
        debtor_file(second_piece), lenient_documents=False, first_line=5, earlier_debt_ids=earlier
    )
    assert one.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 4, "reasons": "duplicate debtId: first on line 2"}
    ]
    assert two.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 5, "reasons": "duplicate debtId: first on line 3"},
        {"line": 7, "reasons": "duplicate debtId: first on line 6"},
    ]
    assert earlier.first_lines(pa.array(["A", "B", "C", "D", ""])).tolist() == [2, 3, 6, 0, 0]


def test_a_debtid_hashes_alike_in_a_piece_of_one_length_and_in_a_piece_of_many() -> None:
    """Pieces whose debtIds all have one length (UUIDs) are hashed by a faster path than
    pieces of mixed lengths; a debtId must be found again whichever path saw it first."""
    from billing.imports.validation import DebtIdSet

    uuids = [f"{number:08x}-0000-4000-8000-{number:012x}" for number in range(1, 6)]
    earlier = DebtIdSet()
    one = validate_rows(
        debtor_file([GOOD | {"debtId": debt_id} for debt_id in uuids]),
        lenient_documents=False,
        earlier_debt_ids=earlier,
    )
    mixed = ["short", uuids[3], "a-much-longer-debt-identifier-than-a-uuid-is", uuids[0]]
    two = validate_rows(
        debtor_file([GOOD | {"debtId": debt_id} for debt_id in mixed]),
        lenient_documents=False,
        first_line=7,
        earlier_debt_ids=earlier,
    )
    three = validate_rows(
        debtor_file([GOOD | {"debtId": debt_id} for debt_id in ["short", uuids[4]]]),
        lenient_documents=False,
        first_line=11,
        earlier_debt_ids=earlier,
    )

    assert one.rejected.num_rows == 0
    assert two.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 8, "reasons": "duplicate debtId: first on line 5"},
        {"line": 10, "reasons": "duplicate debtId: first on line 2"},
    ]
    assert three.rejected.select(["line", "reasons"]).to_pylist() == [
        {"line": 11, "reasons": "duplicate debtId: first on line 7"},
        {"line": 12, "reasons": "duplicate debtId: first on line 6"},
    ]


def test_reasons_with_values_sit_in_their_place_among_the_others() -> None:
    rows = [
        GOOD | {"debtId": "D-1"},
        GOOD | {"name": "", "debtAmount": "-3", "debtDueDate": "30/02/2026", "debtId": "D-1"},
    ]
    reasons = validate(rows).rejected.column("reasons").to_pylist()
    assert reasons == [
        "missing name; debtAmount is negative; 30/02/2026 is not a date; "
        "duplicate debtId: first on line 2"
    ]


@pytest.mark.parametrize(
    ("stored", "portuguese_has"),
    [
        ("debtAmount is negative", "negativo"),
        ("31/02/2024 is not a date", "31/02/2024"),
        ("duplicate debtId: first on line 12", "12"),
    ],
)
def test_a_rows_reasons_are_shown_in_the_operators_language(
    stored: str, portuguese_has: str
) -> None:
    from billing.core.i18n import language_used
    from billing.imports.validation import reasons_in_language

    with language_used("en"):
        assert reasons_in_language(stored) == stored
    with language_used("pt_BR"):
        shown = reasons_in_language(stored)
    assert portuguese_has in shown
    # Translated once the lead merges locale/pending/mapping.json into the catalog.
    assert shown != stored


def test_every_reason_is_marked_for_translation() -> None:
    """The reasons are literal N_() strings, so Babel's extraction finds each of them."""
    from billing.imports import validation

    source = Path(validation.__file__).read_text(encoding="utf-8")
    for reason in (*validation.REASONS, validation.NOT_A_REAL_DATE_ROW):
        assert f'N_("{reason}")' in source
    assert str(validation.MAX_ID_CHARS) in validation.DEBT_ID_TOO_LONG
