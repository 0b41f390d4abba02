"""Brazilian (pt-BR) display of money, dates and CPF/CNPJ for slips, notices and screens.

Display only: these functions do not validate check digits (that belongs to
the document validators); they refuse what cannot be laid out at all.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

_ID_PUNCTUATION = re.compile(r"[\s./\-]")
_CPF = re.compile(r"\d{11}")
# From July 2026 a CNPJ may carry letters in its first 12 positions (IN RFB 2.229/2024).
_CNPJ = re.compile(r"[0-9A-Z]{12}\d{2}")


def brl(amount: Decimal) -> str:
    """Money in reais as Brazilians write it: Decimal("2952.95") -> "R$ 2.952,95"."""
    cents = Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    whole, fraction = f"{abs(cents):.2f}".split(".")
    return f"{sign}R$ {int(whole):,}".replace(",", ".") + f",{fraction}"


def decimal_br(amount: Decimal) -> str:
    """An amount as an operator types it in a field, without "R$": "1.000,50"."""
    return brl(amount).replace("R$ ", "")


def count_br(count: int) -> str:
    """A whole number with a dot between thousands: 1234567 -> "1.234.567"."""
    return f"{count:,}".replace(",", ".")


def counted(count: int, singular: str, plural: str) -> str:
    """A count and the noun that agrees with it: "1 charge", "1.100.000 charges"."""
    return f"{count_br(count)} {singular if count == 1 else plural}"


def date_br(value: date) -> str:
    """A date as dd/mm/yyyy: date(2012, 7, 8) -> "08/07/2012"."""
    return value.strftime("%d/%m/%Y")


def datetime_br(value: datetime | None, *, timezone: str = "America/Sao_Paulo") -> str:
    """An instant as dd/mm/aaaa hh:mm in the operators' time zone; empty when missing."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime("%d/%m/%Y %H:%M")


def _normalise_id(document: str) -> str:
    return _ID_PUNCTUATION.sub("", document).upper()


def format_cpf(cpf: str) -> str:
    """A CPF with its punctuation: "52998224725" -> "529.982.247-25"."""
    digits = _normalise_id(cpf)
    if not _CPF.fullmatch(digits):
        raise ValueError(f"a CPF has 11 digits, got {cpf!r}")
    return f"{digits[0:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:11]}"


def format_cnpj(cnpj: str) -> str:
    """A CNPJ with its punctuation: "11222333000181" -> "11.222.333/0001-81".

    Alphanumeric CNPJs (issued from July 2026) are laid out the same way.
    """
    chars = _normalise_id(cnpj)
    if not _CNPJ.fullmatch(chars):
        raise ValueError(
            f"a CNPJ has 14 characters (12 letters or digits, then 2 digits), got {cnpj!r}"
        )
    return f"{chars[0:2]}.{chars[2:5]}.{chars[5:8]}/{chars[8:12]}-{chars[12:14]}"


def format_government_id(document: str) -> str:
    """A CPF (11 digits) or CNPJ (14 characters) with its usual punctuation."""
    normalised = _normalise_id(document)
    if _CPF.fullmatch(normalised):
        return format_cpf(normalised)
    if _CNPJ.fullmatch(normalised):
        return format_cnpj(normalised)
    raise ValueError(f"not a CPF (11 digits) or CNPJ (14 characters): {document!r}")


def mask_government_id(document: str) -> str:
    """A CPF/CNPJ with enough hidden to share on a screen or e-mail.

    CPF follows the federal government's public-data mask: "***.982.247-**".
    CNPJ hides the same kind of positions: "**.222.333/0001-**".
    """
    formatted = format_government_id(document)
    if len(formatted) == 14:  # CPF
        return "***" + formatted[3:12] + "**"
    return "**" + formatted[2:16] + "**"


_MONTHS_BR = ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez")


def brl_short(amount: Decimal) -> str:
    """Money short enough for a KPI tile: in full below a million, then "R$ 473,86 mi"
    and "R$ 6,95 bi" (milhões, bilhões), as Brazilian newspapers write them."""
    for size, unit in ((Decimal(10) ** 9, "bi"), (Decimal(10) ** 6, "mi")):
        if abs(amount) >= size:
            return f"{brl(amount / size)} {unit}"
    return brl(amount)


def month_br(month: date) -> str:
    """A month as Brazilians abbreviate it: date(2024, 1, 1) -> "jan/2024"."""
    return f"{_MONTHS_BR[month.month - 1]}/{month.year}"


def percent_br(fraction: Decimal | None) -> str:
    """A fraction as a pt-BR percentage with one decimal: 0.8756 -> "87,6%"; None -> "—"."""
    if fraction is None:
        return "—"
    tenths = (Decimal(fraction) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{tenths}".replace(".", ",") + "%"
