"""What a charge's status means for collection, in Python and in SQL alike."""

from __future__ import annotations

from datetime import date

import pytest

from billing.core.statuses import (
    OPEN_STATUSES,
    STATUS_LABELS,
    STATUSES,
    UNPAID_STATUSES,
    is_overdue,
)


@pytest.mark.parametrize(
    ("status", "due", "expected"),
    [
        ("pending", date(2024, 1, 1), False),  # no boleto yet: nothing to pay with
        ("issued", date(2024, 1, 1), True),
        ("partially_paid", date(2024, 1, 1), True),
        ("issued", date(2024, 1, 2), False),  # due today is not overdue yet
        ("paid", date(2024, 1, 1), False),
        ("canceled", date(2024, 1, 1), False),
    ],
)
def test_overdue_is_derived(status: str, due: date, expected: bool) -> None:
    assert is_overdue(status=status, due_date=due, today=date(2024, 1, 2)) is expected


def test_every_status_has_a_label_and_the_groups_are_statuses() -> None:
    assert set(STATUS_LABELS) == set(STATUSES)
    assert set(UNPAID_STATUSES) <= set(OPEN_STATUSES) <= set(STATUSES)
