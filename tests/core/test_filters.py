"""What an operator types or links, read the Brazilian way: amounts and dates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.core.filters import ChargeFilter, parse_amount, parse_date


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("1.000,50", "1000.50"),  # one thousand reais and fifty centavos
        ("1.000", "1000.00"),  # dots grouping thousands, no centavos
        ("R$ 1.234.567,89", "1234567.89"),
        ("1500,5", "1500.50"),
        ("1500.50", "1500.50"),  # a decimal point is still understood
        ("1.50", "1.50"),  # one dot, two digits after it: a decimal point
        (",5", "0.50"),
        ("0", "0.00"),
    ],
)
def test_amounts_as_operators_type_them(typed: str, amount: str) -> None:
    assert parse_amount(typed) == Decimal(amount)


@pytest.mark.parametrize(
    "typed", ["abc", "-1", "1,234.5", "1,2345", "1.0000", "1,000,000", "", "R$"]
)
def test_amounts_that_cannot_be_read_are_refused(typed: str) -> None:
    assert parse_amount(typed) is None


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("31/10/2026", date(2026, 10, 31)),
        ("1/2/2026", date(2026, 2, 1)),
        ("2026-10-31", date(2026, 10, 31)),
    ],
)
def test_dates_in_the_on_screen_and_iso_forms(typed: str, day: date) -> None:
    assert parse_date(typed) == day


@pytest.mark.parametrize("typed", ["31/02/2024", "31/10/26", "10/31/2026", "ontem", ""])
def test_dates_that_do_not_exist_are_refused(typed: str) -> None:
    assert parse_date(typed) is None


def test_a_link_with_dates_and_amounts_as_shown_on_screen() -> None:
    charge_filter, notes = ChargeFilter.from_query_params(
        {"due_from": "31/10/2026", "due_to": "2026-12-31", "amount_min": "1.000,50"}
    )
    assert notes == []
    assert charge_filter.due_from == date(2026, 10, 31)
    assert charge_filter.due_to == date(2026, 12, 31)
    assert charge_filter.amount_min == Decimal("1000.50")


def test_a_date_that_does_not_exist_in_a_link_is_ignored_with_a_note() -> None:
    charge_filter, notes = ChargeFilter.from_query_params({"due_from": "31/02/2024"})
    assert charge_filter.due_from is None
    assert notes == [
        "Ignored due_from='31/02/2024' from the link: a date is written DD/MM/YYYY or YYYY-MM-DD."
    ]
