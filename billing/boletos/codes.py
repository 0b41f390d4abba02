"""FEBRABAN "boleto de cobrança": barcode, linha digitável and free-field layouts.

The 44-digit barcode and the 47-digit linha digitável follow the FEBRABAN
layout shared by every bank; only the 25-digit free field (campo livre) is the
bank's own. Two layouts are implemented, each after its bank's published spec:

* ``caixa_sigcb``: CAIXA, "Especificações do Código de Barras para Bloquetos de
  Cobrança - SIGCB" (código do beneficiário with 6 digits, nosso número with 17).
* ``bb_convenio7``: Banco do Brasil, "Especificações Técnicas para Confecção de
  Boleto de Pagamento", convênio de 7 dígitos (nosso número with 17 digits,
  convênio + 10-digit complement, no check digit).

Scalar functions serve one charge (a PDF, a test, a support question);
``issue_codes`` computes the same codes for a million charges at once with
numpy digit matrices, so bulk issuing never loops over rows in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

LAYOUT_CAIXA_SIGCB = "caixa_sigcb"
LAYOUT_BB_CONVENIO7 = "bb_convenio7"
LAYOUT_BANKS = {LAYOUT_CAIXA_SIGCB: "104", LAYOUT_BB_CONVENIO7: "001"}
BANK_NAMES = {"104": "CAIXA", "001": "Banco do Brasil"}
CURRENCY_REAL = "9"

FACTOR_BASE_DATE = date(1997, 10, 7)
"""Day zero of the due-date factor (factor 1000 is 2000-07-03)."""
FACTOR_MIN = 1000
FACTOR_MAX = 9999
FACTOR_CYCLE_DAYS = FACTOR_MAX - FACTOR_MIN + 1  # 9000: 2025-02-22 is factor 1000 again
FIRST_FACTOR_DATE = FACTOR_BASE_DATE + timedelta(days=FACTOR_MIN)  # 2000-07-03
LAST_DUE_DATE = date(9999, 12, 31)
MAX_AMOUNT_CENTS = 9_999_999_999  # ten digits: R$ 99.999.999,99

# SIGCB constants inside the 17-digit nosso número: "1" registered charge
# (cobrança registrada), "4" slip issued by the beneficiary itself.
SIGCB_REGISTERED = "1"
SIGCB_ISSUED_BY_BENEFICIARY = "4"
SIGCB_SEQUENCE_DIGITS = 15
BB_CONVENIO7_SEQUENCE_DIGITS = 10

_NON_DIGITS = re.compile(r"[\s.\-]")


@dataclass(frozen=True)
class Beneficiary:
    """The fund as beneficiário of its boletos, built by the app from settings.

    ``beneficiary_code`` is the bank's identifier of the collection contract:
    CAIXA's código do beneficiário (6 digits) or BB's convênio (7 digits).
    ``wallet`` is the carteira printed on the slip ("RG" for CAIXA registered,
    "17"/"18" for BB, where it is also part of the free field).
    """

    bank_code: str
    agency: str
    account: str
    account_digit: str
    wallet: str
    beneficiary_code: str
    name: str
    document: str
    layout: str
    agency_digit: str = ""
    address: str = ""

    def __post_init__(self) -> None:
        expected_bank = LAYOUT_BANKS.get(self.layout)
        if expected_bank is None:
            raise ValueError(
                f"unknown boleto layout {self.layout!r}; expected one of {sorted(LAYOUT_BANKS)}"
            )
        if self.bank_code != expected_bank:
            raise ValueError(
                f"layout {self.layout!r} is for bank {expected_bank}, not {self.bank_code!r}"
            )
        _require_digits("agency", self.agency, 4)
        if self.layout == LAYOUT_CAIXA_SIGCB:
            _require_digits(
                "CAIXA beneficiary code (código do beneficiário)",
                self.beneficiary_code,
                6,
            )
        else:
            _require_digits("BB convênio", self.beneficiary_code, 7)
            _require_digits("BB wallet (carteira)", self.wallet, 2)
        if not self.name.strip():
            raise ValueError("beneficiary name is empty")


@dataclass(frozen=True)
class BarcodeParts:
    """The fields of a 44-digit barcode, as read back from it."""

    bank_code: str
    currency: str
    check_digit: str
    factor: int
    amount_cents: int
    free_field: str


@dataclass(frozen=True)
class CaixaSigcbFreeField:
    """A free field read per SIGCB; ``is_valid`` says whether it is a SIGCB one."""

    beneficiary_code: str
    beneficiary_code_digit: str
    nosso_numero: str
    """17 digits: constant 1 (modality), constant 2 (issuer), 15-digit sequence."""
    check_digit: str

    @property
    def sequence(self) -> int:
        return int(self.nosso_numero[2:])

    @property
    def beneficiary_code_digit_ok(self) -> bool:
        return self.beneficiary_code_digit == str(_mod11_caixa(self.beneficiary_code))

    @property
    def check_digit_ok(self) -> bool:
        body = (
            self.beneficiary_code
            + self.beneficiary_code_digit
            + self.nosso_numero[2:5]
            + self.nosso_numero[0]
            + self.nosso_numero[5:8]
            + self.nosso_numero[1]
            + self.nosso_numero[8:]
        )
        return self.check_digit == str(_mod11_caixa(body))

    @property
    def is_valid(self) -> bool:
        return (
            self.beneficiary_code_digit_ok
            and self.check_digit_ok
            and self.nosso_numero[0] in "12"
            and self.nosso_numero[1] == SIGCB_ISSUED_BY_BENEFICIARY
        )


@dataclass(frozen=True)
class BbConvenio7FreeField:
    """A free field read per Banco do Brasil's convênio-7 layout."""

    convenio: str
    sequence: int
    wallet: str

    @property
    def nosso_numero(self) -> str:
        return f"{self.convenio}{self.sequence:010d}"


# --------------------------------------------------------------------------
# Check digits
# --------------------------------------------------------------------------


def _mod11_sum(digits: str) -> int:
    """Sum of digits weighted 2..9 from the right, cycling (FEBRABAN mod 11)."""
    return sum(int(d) * (2 + i % 8) for i, d in enumerate(reversed(digits)))


def _mod11_caixa(digits: str) -> int:
    """CAIXA's mod 11 (also the bank-code digit): 11 - rest, 10 and 11 become 0."""
    result = 11 - _mod11_sum(digits) % 11
    return 0 if result > 9 else result


def mod10(digits: str) -> int:
    """FEBRABAN mod 10 of a linha digitável field: weights 2,1 from the right."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        product = int(d) * (2 - i % 2)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def barcode_check_digit(digits43: str) -> int:
    """General check digit of the barcode over its other 43 digits (0, 10, 11 -> 1)."""
    result = 11 - _mod11_sum(digits43) % 11
    return 1 if result in (0, 10, 11) else result


def bank_code_with_digit(bank_code: str) -> str:
    """Bank code as printed on the slip header, e.g. "104-0", "001-9"."""
    _require_digits("bank code", bank_code, 3)
    return f"{bank_code}-{_mod11_caixa(bank_code)}"


# --------------------------------------------------------------------------
# Due-date factor
# --------------------------------------------------------------------------


def due_date_factor(due_date: date) -> int:
    """Four-digit due-date factor; it restarts at 1000 every 9000 days (2025-02-22)."""
    if not FIRST_FACTOR_DATE <= due_date <= LAST_DUE_DATE:
        raise ValueError(
            f"due date {due_date.isoformat()} has no due-date factor "
            f"(the first is {FIRST_FACTOR_DATE.isoformat()})"
        )
    days = (due_date - FACTOR_BASE_DATE).days
    return (days - FACTOR_MIN) % FACTOR_CYCLE_DAYS + FACTOR_MIN


def due_date_from_factor(factor: int, *, reference: date) -> date:
    """The due date a factor stands for, in the 9000-day window around ``reference``.

    A factor repeats every 9000 days, so a reader needs a reference (usually
    today). The window runs from 3000 days before to 5999 days after it.
    """
    if not FACTOR_MIN <= factor <= FACTOR_MAX:
        raise ValueError(f"due-date factor {factor} is outside {FACTOR_MIN}..{FACTOR_MAX}")
    window_start = max(reference - timedelta(days=3000), FIRST_FACTOR_DATE)
    start_factor = due_date_factor(window_start)
    return window_start + timedelta(days=(factor - start_factor) % FACTOR_CYCLE_DAYS)


# --------------------------------------------------------------------------
# Free fields
# --------------------------------------------------------------------------


def caixa_sigcb_free_field(*, beneficiary_code: str, nosso_numero: int) -> str:
    """CAIXA SIGCB campo livre for a 15-digit nosso número sequence.

    Layout (SIGCB spec): código do beneficiário (6) + its DV (1) + nosso
    número positions 3-5 + constant "1" (registered) + positions 6-8 +
    constant "4" (issued by the beneficiary) + positions 9-17 + DV (mod 11).
    """
    _require_digits("CAIXA beneficiary code", beneficiary_code, 6)
    sequence = _sequence_digits(nosso_numero, SIGCB_SEQUENCE_DIGITS)
    body = (
        beneficiary_code
        + str(_mod11_caixa(beneficiary_code))
        + sequence[0:3]
        + SIGCB_REGISTERED
        + sequence[3:6]
        + SIGCB_ISSUED_BY_BENEFICIARY
        + sequence[6:15]
    )
    return body + str(_mod11_caixa(body))


def bb_convenio7_free_field(*, convenio: str, nosso_numero: int, wallet: str) -> str:
    """Banco do Brasil campo livre for convênio de 7 dígitos.

    Layout (BB spec): "000000" + convênio (7) + complemento do nosso número
    (10) + carteira (2). BB's 17-digit nosso número carries no check digit.
    """
    _require_digits("BB convênio", convenio, 7)
    _require_digits("BB wallet (carteira)", wallet, 2)
    return (
        "000000" + convenio + _sequence_digits(nosso_numero, BB_CONVENIO7_SEQUENCE_DIGITS) + wallet
    )


def free_field(*, beneficiary: Beneficiary, nosso_numero: int) -> str:
    """The 25-digit campo livre of one charge, per the beneficiary's layout."""
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        return caixa_sigcb_free_field(
            beneficiary_code=beneficiary.beneficiary_code, nosso_numero=nosso_numero
        )
    return bb_convenio7_free_field(
        convenio=beneficiary.beneficiary_code,
        nosso_numero=nosso_numero,
        wallet=beneficiary.wallet,
    )


def parse_caixa_sigcb_free_field(free_field: str) -> CaixaSigcbFreeField:
    """Read a campo livre by SIGCB positions; check ``is_valid`` before trusting it."""
    _require_digits("free field", free_field, 25)
    return CaixaSigcbFreeField(
        beneficiary_code=free_field[0:6],
        beneficiary_code_digit=free_field[6],
        nosso_numero=free_field[10]
        + free_field[14]
        + free_field[7:10]
        + free_field[11:14]
        + free_field[15:24],
        check_digit=free_field[24],
    )


def parse_bb_convenio7_free_field(free_field: str) -> BbConvenio7FreeField:
    """Read a campo livre laid out for BB convênio de 7 dígitos."""
    _require_digits("free field", free_field, 25)
    if not free_field.startswith("000000"):
        raise ValueError("a BB convênio-7 free field starts with six zeros")
    return BbConvenio7FreeField(
        convenio=free_field[6:13],
        sequence=int(free_field[13:23]),
        wallet=free_field[23:25],
    )


def format_nosso_numero(*, beneficiary: Beneficiary, nosso_numero: int) -> str:
    """Nosso número as printed on the slip.

    CAIXA SIGCB: "14/000000000000019-4" (constants, 15-digit sequence, mod 11
    DV). BB convênio 7: the 17 digits convênio + complement, no DV.
    """
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        full = (
            SIGCB_REGISTERED
            + SIGCB_ISSUED_BY_BENEFICIARY
            + _sequence_digits(nosso_numero, SIGCB_SEQUENCE_DIGITS)
        )
        return f"{full[:2]}/{full[2:]}-{_mod11_caixa(full)}"
    return beneficiary.beneficiary_code + _sequence_digits(
        nosso_numero, BB_CONVENIO7_SEQUENCE_DIGITS
    )


def format_beneficiary_account(beneficiary: Beneficiary) -> str:
    """The "Agência/Código do Beneficiário" box.

    CAIXA: "1234/005507-7" (agency / beneficiary code and its DV);
    BB: "1234-5 / 12345-6" (agency and account with their digits).
    """
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        code = beneficiary.beneficiary_code
        return f"{beneficiary.agency}/{code}-{_mod11_caixa(code)}"
    agency = beneficiary.agency + (
        f"-{beneficiary.agency_digit}" if beneficiary.agency_digit else ""
    )
    account = beneficiary.account + (
        f"-{beneficiary.account_digit}" if beneficiary.account_digit else ""
    )
    return f"{agency} / {account}"


# --------------------------------------------------------------------------
# Barcode and linha digitável, one charge
# --------------------------------------------------------------------------


def amount_to_cents(amount: Decimal) -> int:
    """Whole cents of a money amount; refuses fractions of a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"amount {amount} has fractions of a cent")
    return int(cents)


def barcode_from_parts(
    *, bank_code: str, due_date: date, amount_cents: int, free_field: str
) -> str:
    """Assemble the 44-digit barcode around a free field, with its check digit."""
    _require_digits("bank code", bank_code, 3)
    _require_digits("free field", free_field, 25)
    if not 1 <= amount_cents <= MAX_AMOUNT_CENTS:
        raise ValueError(f"amount {amount_cents} cents is outside 1..{MAX_AMOUNT_CENTS}")
    body = (
        f"{bank_code}{CURRENCY_REAL}{due_date_factor(due_date):04d}{amount_cents:010d}{free_field}"
    )
    return body[:4] + str(barcode_check_digit(body)) + body[4:]


def barcode(
    *, beneficiary: Beneficiary, nosso_numero: int, amount_cents: int, due_date: date
) -> str:
    """The 44-digit barcode of one charge."""
    return barcode_from_parts(
        bank_code=beneficiary.bank_code,
        due_date=due_date,
        amount_cents=amount_cents,
        free_field=free_field(beneficiary=beneficiary, nosso_numero=nosso_numero),
    )


def digitable_line_digits(barcode: str) -> str:
    """The 47 digits of the linha digitável, without dots and spaces."""
    _require_digits("barcode", barcode, 44)
    field1 = barcode[0:4] + barcode[19:24]
    field2 = barcode[24:34]
    field3 = barcode[34:44]
    return (
        field1
        + str(mod10(field1))
        + field2
        + str(mod10(field2))
        + field3
        + str(mod10(field3))
        + barcode[4]
        + barcode[5:19]
    )


def format_digitable_line(digits: str) -> str:
    """Lay 47 digits out as "AAAAA.AAAAA BBBBB.BBBBBB CCCCC.CCCCCC D EEEEEEEEEEEEEE"."""
    _require_digits("digitable line", digits, 47)
    d = digits
    return f"{d[0:5]}.{d[5:10]} {d[10:15]}.{d[15:21]} {d[21:26]}.{d[26:32]} {d[32]} {d[33:47]}"


def digitable_line(barcode: str) -> str:
    """The formatted linha digitável a person types to pay the barcode."""
    return format_digitable_line(digitable_line_digits(barcode))


def issue_code(
    *, beneficiary: Beneficiary, nosso_numero: int, amount_cents: int, due_date: date
) -> tuple[str, str]:
    """(barcode, formatted linha digitável) of one charge; scalar twin of ``issue_codes``."""
    code = barcode(
        beneficiary=beneficiary,
        nosso_numero=nosso_numero,
        amount_cents=amount_cents,
        due_date=due_date,
    )
    return code, digitable_line(code)


# --------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------


def parse_barcode(barcode: str) -> BarcodeParts:
    """Split a barcode into its fields after checking length, digits and check digit."""
    _require_digits("barcode", barcode, 44)
    expected = barcode_check_digit(barcode[:4] + barcode[5:])
    if barcode[4] != str(expected):
        raise ValueError(f"barcode check digit is {barcode[4]}, expected {expected}")
    return BarcodeParts(
        bank_code=barcode[0:3],
        currency=barcode[3],
        check_digit=barcode[4],
        factor=int(barcode[5:9]),
        amount_cents=int(barcode[9:19]),
        free_field=barcode[19:44],
    )


def is_valid_barcode(barcode: str) -> bool:
    """Whether a string is a 44-digit barcode with a correct check digit."""
    try:
        parse_barcode(barcode)
    except ValueError:
        return False
    return True


def barcode_from_digitable_line(line: str) -> str:
    """The barcode behind a linha digitável (dots and spaces optional).

    Every field's mod 10 digit and the general check digit are verified, so a
    mistyped line raises ValueError instead of yielding a wrong barcode.
    """
    digits = _NON_DIGITS.sub("", line)
    _require_digits("digitable line", digits, 47)
    for name, body, dv in (
        ("field 1", digits[0:9], digits[9]),
        ("field 2", digits[10:20], digits[20]),
        ("field 3", digits[21:31], digits[31]),
    ):
        if dv != str(mod10(body)):
            raise ValueError(f"digitable line {name} check digit is {dv}, expected {mod10(body)}")
    code = digits[0:4] + digits[32] + digits[33:47] + digits[4:9] + digits[10:20] + digits[21:31]
    parse_barcode(code)
    return code


def is_valid_digitable_line(line: str) -> bool:
    """Whether a linha digitável (formatted or digits only) checks out."""
    try:
        barcode_from_digitable_line(line)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Bulk issuing with numpy digit matrices
# --------------------------------------------------------------------------

_CHUNK_ROWS = 131_072  # bounds temporaries to a few tens of MB per chunk

# Linha digitável positions: for each of the 47 digits, its column in the
# (n, 44) barcode matrix, or -1/-2/-3 for the check digits of fields 1..3.
_LINE_SOURCE = np.array(
    [
        0,
        1,
        2,
        3,
        19,
        20,
        21,
        22,
        23,
        -1,
        *list(range(24, 34)),
        -2,
        *list(range(34, 44)),
        -3,
        4,
        *list(range(5, 19)),
    ],
    dtype=np.int64,
)
# Column of each formatted character in the 47 digits, -1 for a separator.
_FORMATTED_SOURCE = np.array(
    [
        *list(range(5)),
        -1,
        *list(range(5, 10)),
        -1,
        *list(range(10, 15)),
        -1,
        *list(range(15, 21)),
        -1,
        *list(range(21, 26)),
        -1,
        *list(range(26, 32)),
        -1,
        32,
        -1,
        *list(range(33, 47)),
    ],
    dtype=np.int64,
)
_FORMATTED_TEMPLATE = np.frombuffer(
    b"00000.00000 00000.000000 00000.000000 0 00000000000000", np.uint8
)


def _mod11_weights(width: int) -> np.ndarray:
    return (2 + np.arange(width)[::-1] % 8).astype(np.int32)


def _mod10_weights(width: int) -> np.ndarray:
    return (2 - np.arange(width)[::-1] % 2).astype(np.int32)


# mod 11 weights over the 44 barcode columns, 0 for the check digit itself.
_BARCODE_WEIGHTS = np.insert(_mod11_weights(43), 4, 0)


def _mod11_caixa_vec(digits: np.ndarray) -> np.ndarray:
    result = 11 - (digits.astype(np.int32) @ _mod11_weights(digits.shape[1])) % 11
    return np.where(result > 9, 0, result).astype(np.uint8)


def _mod10_vec(digits: np.ndarray) -> np.ndarray:
    products = digits.astype(np.int32) * _mod10_weights(digits.shape[1])
    total = (products // 10 + products % 10).sum(axis=1)
    return ((10 - total % 10) % 10).astype(np.uint8)


def _int_digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of the zero-padded decimal digits of int64 values."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    rest = values.copy()
    for column in range(width - 1, -1, -1):
        out[:, column] = rest % 10
        rest //= 10
    return out


def _str_digits(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")


def _free_field_matrix(beneficiary: Beneficiary, nosso_numeros: np.ndarray) -> np.ndarray:
    n = nosso_numeros.shape[0]
    out = np.empty((n, 25), dtype=np.uint8)
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        code = beneficiary.beneficiary_code
        sequence = _int_digits(nosso_numeros, SIGCB_SEQUENCE_DIGITS)
        out[:, 0:7] = _str_digits(code + str(_mod11_caixa(code)))
        out[:, 7:10] = sequence[:, 0:3]
        out[:, 10] = int(SIGCB_REGISTERED)
        out[:, 11:14] = sequence[:, 3:6]
        out[:, 14] = int(SIGCB_ISSUED_BY_BENEFICIARY)
        out[:, 15:24] = sequence[:, 6:15]
        out[:, 24] = _mod11_caixa_vec(out[:, :24])
    else:
        out[:, 0:13] = _str_digits("000000" + beneficiary.beneficiary_code)
        out[:, 13:23] = _int_digits(nosso_numeros, BB_CONVENIO7_SEQUENCE_DIGITS)
        out[:, 23:25] = _str_digits(beneficiary.wallet)
    return out


def _factors_vec(due_dates: np.ndarray) -> np.ndarray:
    days = (due_dates - np.datetime64(FACTOR_BASE_DATE, "D")).astype(np.int64)
    bad = (due_dates < np.datetime64(FIRST_FACTOR_DATE, "D")) | np.isnat(due_dates)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"due_dates[{i}] = {due_dates[i]} has no due-date factor "
            f"(the first is {FIRST_FACTOR_DATE.isoformat()})"
        )
    return (days - FACTOR_MIN) % FACTOR_CYCLE_DAYS + FACTOR_MIN


def _check_range(name: str, values: np.ndarray, low: int, high: int) -> None:
    bad = (values < low) | (values > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {values[i]} is outside {low}..{high}")


def _chars_to_bytes(chars: np.ndarray) -> np.ndarray:
    """View an (n, width) uint8 ASCII matrix as n fixed-width byte strings (no copy)."""
    width = chars.shape[1]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel()


def _codes_chunk(
    beneficiary: Beneficiary,
    nosso_numeros: np.ndarray,
    amounts_cents: np.ndarray,
    factors: np.ndarray,
    formatted: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n = nosso_numeros.shape[0]
    code = np.empty((n, 44), dtype=np.uint8)
    code[:, 0:4] = _str_digits(beneficiary.bank_code + CURRENCY_REAL)
    code[:, 5:9] = _int_digits(factors, 4)
    code[:, 9:19] = _int_digits(amounts_cents, 10)
    code[:, 19:44] = _free_field_matrix(beneficiary, nosso_numeros)
    general = 11 - (code.astype(np.int32) @ _BARCODE_WEIGHTS) % 11
    code[:, 4] = np.where((general == 10) | (general == 11), 1, general)

    line = np.empty((n, 47), dtype=np.uint8)
    direct = _LINE_SOURCE >= 0
    line[:, direct] = code[:, _LINE_SOURCE[direct]]
    line[:, 9] = _mod10_vec(line[:, 0:9])
    line[:, 20] = _mod10_vec(line[:, 10:20])
    line[:, 31] = _mod10_vec(line[:, 21:31])

    code += ord("0")
    line += ord("0")
    if formatted:
        chars = np.broadcast_to(_FORMATTED_TEMPLATE, (n, 54)).copy()
        digit_positions = _FORMATTED_SOURCE >= 0
        chars[:, digit_positions] = line[:, _FORMATTED_SOURCE[digit_positions]]
        line = chars
    return _chars_to_bytes(code), _chars_to_bytes(line)


def issue_codes(
    *,
    beneficiary: Beneficiary,
    nosso_numeros: np.ndarray,
    amounts_cents: np.ndarray,
    due_dates: np.ndarray,
    formatted: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Barcodes and linhas digitáveis of many charges at once.

    Arrays are aligned by position: ``nosso_numeros`` and ``amounts_cents``
    as int64, ``due_dates`` as datetime64[D]. Returns two numpy arrays of str
    (44-character barcodes; 54-character formatted lines, or 47 digits when
    ``formatted`` is False), equal row by row to ``issue_code``. Raises
    ValueError naming the first offending row.
    """
    nosso_numeros = np.asarray(nosso_numeros, dtype=np.int64)
    amounts_cents = np.asarray(amounts_cents, dtype=np.int64)
    due_dates = np.asarray(due_dates).astype("datetime64[D]")
    n = nosso_numeros.shape[0]
    if nosso_numeros.ndim != 1 or amounts_cents.shape != (n,) or due_dates.shape != (n,):
        raise ValueError(
            "nosso_numeros, amounts_cents and due_dates must be 1-D arrays of the same length"
        )
    sequence_digits = (
        SIGCB_SEQUENCE_DIGITS
        if beneficiary.layout == LAYOUT_CAIXA_SIGCB
        else BB_CONVENIO7_SEQUENCE_DIGITS
    )
    _check_range("nosso_numeros", nosso_numeros, 1, 10**sequence_digits - 1)
    _check_range("amounts_cents", amounts_cents, 1, MAX_AMOUNT_CENTS)
    factors = _factors_vec(due_dates)

    barcodes = np.empty(n, dtype="U44")
    lines = np.empty(n, dtype="U54" if formatted else "U47")
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        barcodes[start:stop], lines[start:stop] = _codes_chunk(
            beneficiary,
            nosso_numeros[start:stop],
            amounts_cents[start:stop],
            factors[start:stop],
            formatted,
        )
    return barcodes, lines


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _require_digits(name: str, value: str, length: int) -> None:
    if (
        not isinstance(value, str)
        or len(value) != length
        or not value.isascii()
        or not value.isdigit()
    ):
        raise ValueError(f"{name} must be {length} digits, got {value!r}")


def _sequence_digits(nosso_numero: int, width: int) -> str:
    if not 1 <= nosso_numero < 10**width:
        raise ValueError(f"nosso número {nosso_numero} is outside 1..{10**width - 1}")
    return f"{nosso_numero:0{width}d}"
