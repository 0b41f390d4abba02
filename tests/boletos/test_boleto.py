"""Boleto codes: known answers from other implementations, factor boundaries,
SIGCB and BB convênio-7 free fields, validators, and bulk == scalar."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from billing.boletos.codes import (
    Beneficiary,
    amount_to_cents,
    bank_code_with_digit,
    barcode,
    barcode_check_digit,
    barcode_from_digitable_line,
    barcode_from_parts,
    bb_convenio7_free_field,
    caixa_sigcb_free_field,
    digitable_line,
    digitable_line_digits,
    due_date_factor,
    due_date_from_factor,
    format_beneficiary_account,
    format_digitable_line,
    format_nosso_numero,
    is_valid_barcode,
    is_valid_digitable_line,
    issue_code,
    issue_codes,
    mod10,
    parse_barcode,
    parse_bb_convenio7_free_field,
    parse_caixa_sigcb_free_field,
)
from tests.support.beneficiaries import banco_do_brasil, caixa

# Known answer required by the brief (it is pyboleto's CAIXA test vector).
KNOWN_BARCODE = "10491538800002952958019525086156587000000414"
KNOWN_LINE = "10498.01952 25086.156582 70000.004146 1 53880000295295"


# -- the known answer --------------------------------------------------------


def test_known_barcode_gives_known_digitable_line() -> None:
    assert digitable_line(KNOWN_BARCODE) == KNOWN_LINE
    assert digitable_line_digits(KNOWN_BARCODE) == KNOWN_LINE.replace(".", "").replace(" ", "")


def test_known_digitable_line_gives_known_barcode() -> None:
    assert barcode_from_digitable_line(KNOWN_LINE) == KNOWN_BARCODE
    assert (
        barcode_from_digitable_line(KNOWN_LINE.replace(".", "").replace(" ", "")) == KNOWN_BARCODE
    )


def test_known_barcode_fields() -> None:
    parts = parse_barcode(KNOWN_BARCODE)
    assert (parts.bank_code, parts.currency, parts.check_digit) == ("104", "9", "1")
    assert parts.factor == due_date_factor(date(2012, 7, 8)) == 5388
    assert parts.amount_cents == amount_to_cents(Decimal("2952.95"))
    assert parts.free_field == "8019525086156587000000414"
    assert due_date_from_factor(parts.factor, reference=date(2012, 7, 1)) == date(2012, 7, 8)


def test_known_barcode_rebuilt_from_its_parts() -> None:
    assert (
        barcode_from_parts(
            bank_code="104",
            due_date=date(2012, 7, 8),
            amount_cents=295295,
            free_field="8019525086156587000000414",
        )
        == KNOWN_BARCODE
    )


def test_known_free_field_decoded_by_sigcb_positions() -> None:
    """Read by SIGCB positions the fields come out, but the free field is not SIGCB.

    The code 801952 and its DV 5 agree, yet the free-field DV over those 24
    digits is 0 (weighted sum 440 = 40 x 11), not 4, and the issuer constant
    is 8, not 4: the vector is an old SICOB boleto (nosso número 8019525086,
    agência 1565, operação 870, código 00000414). The decoder must say so.
    """
    field = parse_caixa_sigcb_free_field("8019525086156587000000414")
    assert field.beneficiary_code == "801952"
    assert field.beneficiary_code_digit == "5"
    assert field.beneficiary_code_digit_ok
    assert field.nosso_numero == "18086565700000041"
    assert field.sequence == 86565700000041
    assert field.check_digit == "4"
    assert not field.check_digit_ok
    assert not field.is_valid


# -- CAIXA SIGCB ------------------------------------------------------------------


def test_sigcb_matches_independent_vector() -> None:
    # caelum-stella CaixaSIGCBTest: código 5507, nosso número 19, 23/08/2006, R$ 321,12.
    code = barcode(
        beneficiary=caixa(),
        nosso_numero=19,
        amount_cents=32112,
        due_date=date(2006, 8, 23),
    )
    assert code == "10491324200000321120055077000100040000000190"
    field = parse_caixa_sigcb_free_field(code[19:])
    assert field.is_valid
    assert field.nosso_numero == "14000000000000019"
    assert field.sequence == 19


def test_sigcb_free_field_layout() -> None:
    free = caixa_sigcb_free_field(beneficiary_code="005507", nosso_numero=123456789012345)
    assert len(free) == 25
    assert free[0:7] == "0055077"
    assert free[7:10] == "123"  # nosso número positions 3-5
    assert free[10] == "1"  # registered
    assert free[11:14] == "456"  # positions 6-8
    assert free[14] == "4"  # issued by the beneficiary
    assert free[15:24] == "789012345"  # positions 9-17
    field = parse_caixa_sigcb_free_field(free)
    assert field.is_valid
    assert field.sequence == 123456789012345


def test_sigcb_free_field_check_digit_takes_every_value() -> None:
    # CAIXA's homologation asks for samples with every free-field DV 0..9.
    digits = {
        caixa_sigcb_free_field(beneficiary_code="005507", nosso_numero=n)[24] for n in range(1, 60)
    }
    assert digits == set("0123456789")


def test_sigcb_nosso_numero_display() -> None:
    # "14000000000000019": 9x2 + 1x3 + 4x9 + 1x2 = 59; 59 % 11 = 4; 11 - 4 = 7.
    assert format_nosso_numero(beneficiary=caixa(), nosso_numero=19) == "14/000000000000019-7"


def test_caixa_beneficiary_box() -> None:
    assert format_beneficiary_account(caixa()) == "1234/005507-7"


# -- Banco do Brasil convênio 7 ---------------------------------------------------


def test_bb_convenio7_matches_independent_vector() -> None:
    # pyboleto TestBancoBrasil: convênio 7777777, nosso número 87654, carteira 18.
    code, line = issue_code(
        beneficiary=banco_do_brasil(),
        nosso_numero=87654,
        amount_cents=295295,
        due_date=date(2011, 3, 8),
    )
    assert code == "00196490000002952950000007777777000008765418"
    assert line == "00190.00009 07777.777009 00087.654182 6 49000000295295"


def test_bb_convenio7_round_trip_and_check_digits() -> None:
    bb = banco_do_brasil()
    code, line = issue_code(
        beneficiary=bb,
        nosso_numero=1234567890,
        amount_cents=10050,
        due_date=date(2026, 1, 15),
    )
    assert barcode_from_digitable_line(line) == code
    assert code[4] == str(barcode_check_digit(code[:4] + code[5:]))
    digits = digitable_line_digits(code)
    assert digits[9] == str(mod10(digits[0:9]))
    assert digits[20] == str(mod10(digits[10:20]))
    assert digits[31] == str(mod10(digits[21:31]))
    field = parse_bb_convenio7_free_field(code[19:])
    assert (field.convenio, field.sequence, field.wallet) == (
        "7777777",
        1234567890,
        "18",
    )
    assert field.nosso_numero == format_nosso_numero(beneficiary=bb, nosso_numero=1234567890)
    assert field.nosso_numero == "77777771234567890"


def test_bb_free_field_layout_and_box() -> None:
    assert bb_convenio7_free_field(convenio="7777777", nosso_numero=5, wallet="17") == (
        "000000" + "7777777" + "0000000005" + "17"
    )
    assert format_beneficiary_account(banco_do_brasil()) == "9999-6 / 99999-7"


# -- due-date factor ----------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "factor"),
    [
        (date(2000, 7, 3), 1000),
        (date(2012, 7, 8), 5388),
        (date(2025, 2, 21), 9999),
        (date(2025, 2, 22), 1000),
        (date(2025, 2, 23), 1001),
        (date(2049, 10, 13), 9999),
        (date(2049, 10, 14), 1000),
    ],
)
def test_due_date_factor(due: date, factor: int) -> None:
    assert due_date_factor(due) == factor


def test_due_date_before_first_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="no due-date factor"):
        due_date_factor(date(2000, 7, 2))


@pytest.mark.parametrize("reference", [date(2025, 1, 1), date(2025, 3, 1), date(2030, 6, 1)])
def test_factor_back_to_date_around_the_restart(reference: date) -> None:
    for due in (
        date(2025, 2, 21),
        date(2025, 2, 22),
        date(2025, 2, 23),
        date(2026, 5, 4),
    ):
        assert due_date_from_factor(due_date_factor(due), reference=reference) == due


def test_boleto_due_after_restart() -> None:
    due = date(2025, 3, 10)
    code, line = issue_code(beneficiary=caixa(), nosso_numero=19, amount_cents=295295, due_date=due)
    assert code[5:9] == "1016"
    assert line.endswith(" 10160000295295")
    assert barcode_from_digitable_line(line) == code
    assert due_date_from_factor(parse_barcode(code).factor, reference=date(2025, 3, 1)) == due


# -- check digits and validators ------------------------------------------------


@pytest.mark.parametrize(
    ("bank", "expected"),
    [("104", "104-0"), ("001", "001-9"), ("341", "341-7"), ("237", "237-2")],
)
def test_bank_code_digit(bank: str, expected: str) -> None:
    assert bank_code_with_digit(bank) == expected


def test_general_check_digit_is_never_zero() -> None:
    rng = np.random.default_rng(7)
    bodies = ("".join(map(str, row)) for row in rng.integers(0, 10, size=(3000, 43)))
    assert {barcode_check_digit(body) for body in bodies} == set(range(1, 10))


def test_mistyped_digitable_line_is_caught() -> None:
    """Fields 1-3 carry their own mod 10 digit, so any one-digit slip there is caught.

    Field 5 (factor and amount) is guarded only by the general mod 11 digit,
    which FEBRABAN folds 0/10/11 into 1: some slips there cannot be detected
    by any implementation, so they are not asserted here.
    """
    assert is_valid_digitable_line(KNOWN_LINE)
    digits = KNOWN_LINE.replace(".", "").replace(" ", "")
    for position in range(33):
        for step in range(1, 10):
            wrong = (
                digits[:position]
                + str((int(digits[position]) + step) % 10)
                + digits[position + 1 :]
            )
            assert not is_valid_digitable_line(wrong), (position, step)
    with pytest.raises(ValueError, match="field 2 check digit"):
        barcode_from_digitable_line("10498.01952 25086.156583 70000.004146 1 53880000295295")


@pytest.mark.parametrize(
    "text",
    [
        "",
        KNOWN_BARCODE[:-1],
        KNOWN_BARCODE + "0",
        KNOWN_BARCODE[:4] + "2" + KNOWN_BARCODE[5:],
        KNOWN_BARCODE[:10] + "x" + KNOWN_BARCODE[11:],
    ],
)
def test_invalid_barcodes(text: str) -> None:
    assert not is_valid_barcode(text)


def test_valid_barcode() -> None:
    assert is_valid_barcode(KNOWN_BARCODE)


def test_format_digitable_line_shape() -> None:
    assert (
        format_digitable_line("1" * 47) == "11111.11111 11111.111111 11111.111111 1 11111111111111"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount_cents": 0}, "amount"),
        ({"amount_cents": 10_000_000_000}, "amount"),
        ({"nosso_numero": 0}, "nosso número"),
        ({"nosso_numero": 10**15}, "nosso número"),
        ({"due_date": date(1999, 1, 1)}, "due-date factor"),
    ],
)
def test_scalar_rejects_out_of_range(kwargs: dict, message: str) -> None:
    args = {
        "beneficiary": caixa(),
        "nosso_numero": 1,
        "amount_cents": 100,
        "due_date": date(2026, 1, 1),
    }
    with pytest.raises(ValueError, match=message):
        barcode(**(args | kwargs))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layout": "itau"}, "unknown boleto layout"),
        ({"bank_code": "001"}, "is for bank 104"),
        ({"beneficiary_code": "5507"}, "6 digits"),
        ({"agency": "12a4"}, "4 digits"),
    ],
)
def test_beneficiary_is_checked(changes: dict, message: str) -> None:
    fields = caixa().__dict__ | changes
    with pytest.raises(ValueError, match=message):
        Beneficiary(**fields)


def test_amount_to_cents_refuses_fractions() -> None:
    assert amount_to_cents(Decimal("2952.95")) == 295295
    assert amount_to_cents(Decimal(10)) == 1000
    with pytest.raises(ValueError, match="fractions of a cent"):
        amount_to_cents(Decimal("1.005"))


# -- bulk issuing == scalar -------------------------------------------------------


def _random_charges(
    n: int, max_sequence: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nosso_numeros = rng.integers(1, max_sequence + 1, size=n, dtype=np.int64)
    amounts = rng.integers(1, 10_000_000_000, size=n, dtype=np.int64)
    # Due dates from 2000-07-03 to 2060, so both factor cycles and the restart are covered.
    due_dates = np.datetime64("2000-07-03") + rng.integers(0, 22_000, size=n).astype(
        "timedelta64[D]"
    )
    nosso_numeros[:3] = [1, max_sequence, 19]
    amounts[:3] = [1, 9_999_999_999, 295295]
    due_dates[:3] = np.array(["2025-02-21", "2025-02-22", "2025-02-23"], dtype="datetime64[D]")
    return nosso_numeros, amounts, due_dates


@pytest.mark.parametrize(
    ("make", "max_sequence"), [(caixa, 10**15 - 1), (banco_do_brasil, 10**10 - 1)]
)
def test_issue_codes_equals_scalar(make, max_sequence: int) -> None:
    beneficiary = make()
    nosso_numeros, amounts, due_dates = _random_charges(3000, max_sequence, seed=max_sequence % 97)
    barcodes, lines = issue_codes(
        beneficiary=beneficiary,
        nosso_numeros=nosso_numeros,
        amounts_cents=amounts,
        due_dates=due_dates,
    )
    _, digit_lines = issue_codes(
        beneficiary=beneficiary,
        nosso_numeros=nosso_numeros,
        amounts_cents=amounts,
        due_dates=due_dates,
        formatted=False,
    )
    assert barcodes.dtype == np.dtype("U44") and lines.dtype == np.dtype("U54")
    for i in range(len(nosso_numeros)):
        expected_code, expected_line = issue_code(
            beneficiary=beneficiary,
            nosso_numero=int(nosso_numeros[i]),
            amount_cents=int(amounts[i]),
            due_date=due_dates[i].astype(date),
        )
        assert barcodes[i] == expected_code
        assert lines[i] == expected_line
        assert digit_lines[i] == digitable_line_digits(expected_code)


def test_issue_codes_crosses_chunks() -> None:
    # More rows than one internal chunk, so chunk seams are covered too.
    n = 131_072 + 5
    nosso_numeros = np.arange(1, n + 1, dtype=np.int64)
    amounts = np.full(n, 295295, dtype=np.int64)
    due_dates = np.full(n, np.datetime64("2025-03-10"))
    barcodes, lines = issue_codes(
        beneficiary=caixa(),
        nosso_numeros=nosso_numeros,
        amounts_cents=amounts,
        due_dates=due_dates,
    )
    for i in (0, 131_071, 131_072, n - 1):
        assert (barcodes[i], lines[i]) == issue_code(
            beneficiary=caixa(),
            nosso_numero=i + 1,
            amount_cents=295295,
            due_date=date(2025, 3, 10),
        )


def test_issue_codes_empty() -> None:
    barcodes, lines = issue_codes(
        beneficiary=caixa(),
        nosso_numeros=np.array([], dtype=np.int64),
        amounts_cents=np.array([], dtype=np.int64),
        due_dates=np.array([], dtype="datetime64[D]"),
    )
    assert barcodes.shape == lines.shape == (0,)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amounts_cents", 0, r"amounts_cents\[2\] = 0"),
        ("nosso_numeros", 10**10, r"nosso_numeros\[2\]"),
        ("due_dates", np.datetime64("2000-07-02"), r"due_dates\[2\] = 2000-07-02"),
    ],
)
def test_issue_codes_names_the_bad_row(column: str, value, message: str) -> None:
    arrays = {
        "nosso_numeros": np.array([1, 2, 3, 4], dtype=np.int64),
        "amounts_cents": np.array([100, 200, 300, 400], dtype=np.int64),
        "due_dates": np.array(["2026-01-01"] * 4, dtype="datetime64[D]"),
    }
    arrays[column][2] = value
    with pytest.raises(ValueError, match=message):
        issue_codes(beneficiary=banco_do_brasil(), **arrays)


def test_issue_codes_rejects_misaligned_arrays() -> None:
    with pytest.raises(ValueError, match="same length"):
        issue_codes(
            beneficiary=caixa(),
            nosso_numeros=np.array([1, 2], dtype=np.int64),
            amounts_cents=np.array([100], dtype=np.int64),
            due_dates=np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"),
        )


def test_issue_codes_factor_restart_dates() -> None:
    due_dates = np.datetime64("2025-02-21") + np.arange(3).astype("timedelta64[D]")
    barcodes, _ = issue_codes(
        beneficiary=caixa(),
        nosso_numeros=np.array([1, 2, 3], dtype=np.int64),
        amounts_cents=np.array([100, 100, 100], dtype=np.int64),
        due_dates=due_dates,
    )
    assert [code[5:9] for code in barcodes] == ["9999", "1000", "1001"]
