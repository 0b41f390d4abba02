"""The statuses of a charge and what they mean for collection: one definition for all.

The database holds the status; "overdue" is never stored: it is derived when read, from
the status and the due date, the same way on every screen and in every query.
"""

from __future__ import annotations

from datetime import date

from billing.core.i18n import N_

STATUSES = ("pending", "issued", "registered", "partially_paid", "paid", "canceled")
# In English, marked for the catalogs: shown with _(label), in the reader's language.
STATUS_LABELS = {
    "pending": N_("Pending (no boleto yet)"),
    "issued": N_("Issued"),
    "registered": N_("Registered at the bank"),
    "partially_paid": N_("Partially paid"),
    "paid": N_("Paid"),
    "canceled": N_("Canceled"),
}
# Still owed, in full or in part: what the outstanding totals add up.
OPEN_STATUSES = ("pending", "issued", "registered", "partially_paid")
# Owed with a boleto out: only these can be overdue. A pending charge has no boleto yet,
# so the debtor has had nothing to pay with; it shows as pending, not as late. A
# registered charge is an issued one the bank confirmed (a CNAB 240 retorno): payable at
# any bank, and late like an issued one.
UNPAID_STATUSES = ("issued", "registered", "partially_paid")
# A charge whose registration the bank refused is flagged for an operator (the bank's
# reason is kept on the charge); its status stays 'issued'. Not a status: a filter.
REGISTRATION_REJECTED = "registration_rejected"
REGISTRATION_REJECTED_LABEL = N_("Registration rejected by the bank")


def is_overdue(*, status: str, due_date: date, today: date) -> bool:
    """Owed with a boleto out and past its due date (due today is not late yet)."""
    return status in UNPAID_STATUSES and due_date < today
