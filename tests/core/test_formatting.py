"""pt-BR display of money, dates and CPF/CNPJ."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.core.formatting import (
    brl,
    count_br,
    counted,
    date_br,
    datetime_br,
    decimal_br,
    format_cnpj,
    format_cpf,
    format_government_id,
    mask_government_id,
)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("2952.95"), "R$ 2.952,95"),
        (Decimal(0), "R$ 0,00"),
        (Decimal("0.5"), "R$ 0,50"),
        (Decimal(1000), "R$ 1.000,00"),
        (Decimal("99999999.99"), "R$ 99.999.999,99"),
        (Decimal("1234567.895"), "R$ 1.234.567,90"),
        (Decimal(-10), "-R$ 10,00"),
    ],
)
def test_brl(amount: Decimal, text: str) -> None:
    assert brl(amount) == text


def test_date_br() -> None:
    assert date_br(date(2012, 7, 8)) == "08/07/2012"


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ("52998224725", "529.982.247-25"),
        ("529.982.247-25", "529.982.247-25"),
        ("11222333000181", "11.222.333/0001-81"),
        ("11.222.333/0001-81", "11.222.333/0001-81"),
        ("12abc34501de35", "12.ABC.345/01DE-35"),  # alphanumeric CNPJ (from July 2026)
    ],
)
def test_format_government_id(document: str, text: str) -> None:
    assert format_government_id(document) == text


@pytest.mark.parametrize(
    "document",
    ["", "123", "5299822472", "529982247250", "1122233300018X", "ABCDEFGHIJKLMN"],
)
def test_format_government_id_refuses(document: str) -> None:
    with pytest.raises(ValueError):
        format_government_id(document)


def test_cpf_and_cnpj_formatters_refuse_each_other() -> None:
    assert format_cpf("52998224725") == "529.982.247-25"
    assert format_cnpj("11222333000181") == "11.222.333/0001-81"
    with pytest.raises(ValueError):
        format_cpf("11222333000181")
    with pytest.raises(ValueError):
        format_cnpj("52998224725")


@pytest.mark.parametrize(
    ("document", "masked"),
    [
        ("52998224725", "***.982.247-**"),
        ("529.982.247-25", "***.982.247-**"),
        ("11222333000181", "**.222.333/0001-**"),
    ],
)
def test_mask_government_id(document: str, masked: str) -> None:
    assert mask_government_id(document) == masked


@pytest.mark.parametrize(("count", "expected"), [(0, "0"), (999, "999"), (1234567, "1.234.567")])
def test_count_br(count: int, expected: str) -> None:
    assert count_br(count) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 rows"), (1, "1 row"), (2, "2 rows"), (1_100_000, "1.100.000 rows")],
)
def test_counted(count: int, expected: str) -> None:
    assert counted(count, "row", "rows") == expected


@pytest.mark.parametrize(
    ("amount", "typed"),
    [
        (Decimal("1000.5"), "1.000,50"),
        (Decimal("105"), "105,00"),
        (Decimal("0.01"), "0,01"),
        (Decimal("1000000000"), "1.000.000.000,00"),
    ],
)
def test_decimal_br_reads_back_as_typed(amount: Decimal, typed: str) -> None:
    from billing.core.filters import parse_amount

    assert decimal_br(amount) == typed
    assert parse_amount(typed) == amount  # what the field shows, the filter reads back


@pytest.mark.parametrize(
    ("instant", "zone", "shown"),
    [
        (datetime(2026, 10, 31, 2, 30, tzinfo=UTC), "America/Sao_Paulo", "30/10/2026 23:30"),
        (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "America/Sao_Paulo", "01/01/2026 09:00"),
        (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "America/Manaus", "01/01/2026 08:00"),
        (None, "America/Sao_Paulo", ""),  # missing: an empty cell, never "None"
    ],
)
def test_datetime_br_in_the_operators_zone(instant: datetime | None, zone: str, shown: str) -> None:
    assert datetime_br(instant, timezone=zone) == shown
