"""The operators' view of charges: pages of charges and debtors, one charge's detail.

The filter, the search routing and the cursors are values in billing.core.filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.core.errors import OperatorError
from billing.core.filters import (
    BROAD_SEARCH_DEBTORS,
    PAGE_SIZE,
    STATUS_LABELS,
    ChargeFilter,
    Cursor,
    DebtorCursor,
    route_search,
)
from billing.core.formatting import brl, date_br, format_government_id, mask_government_id
from billing.core.i18n import N_, _
from billing.imports.validation import is_valid_email
from db import charges as charges_db
from db import payments as payments_db
from db.charges import (
    ChargeNotice,
    ChargeRow,
    ChargeWithDebtor,
    Debtor,
    DebtorRow,
    DebtorTotals,
    ImportChoice,
)
from db.payments import ChargeEvent, Payment

# --------------------------------------------------------------------------
# Pages of charges
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargePage:
    rows: list[ChargeRow]
    next_cursor: Cursor | None  # None on the last page


@dataclass(frozen=True)
class ChargeTotals:
    count: int
    amount: Decimal


def charge_page(
    engine: Engine,
    *,
    charge_filter: ChargeFilter,
    today: date,
    after: Cursor | None = None,
    page_size: int = PAGE_SIZE,
) -> ChargePage:
    """One page of the filtered charges, in the filter's order, after `after`."""
    with engine.connect() as conn:
        rows = charges_db.charge_rows(
            conn,
            charge_filter=charge_filter,
            today=today,
            after=after,
            limit=page_size + 1,  # one more tells whether there is a next page
            broad_search=_is_broad(conn, charge_filter),
        )
    rows, more = rows[:page_size], len(rows) > page_size
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = Cursor(value=_sort_value(last, charge_filter.sort), id=last["id"])
    return ChargePage(rows=rows, next_cursor=next_cursor)


def _sort_value(row: ChargeRow, sort: str) -> date | Decimal:
    """The row's value in the page's sort column (one of billing.core.filters.SORTS)."""
    return row["amount"] if sort == "amount" else row["due_date"]


def is_broad_search(engine: Engine, charge_filter: ChargeFilter) -> bool:
    """Whether the filter's search finds so many debtors that its pages are walked."""
    with engine.connect() as conn:
        return _is_broad(conn, charge_filter)


def _is_broad(conn: Connection, charge_filter: ChargeFilter) -> bool:
    search = charge_filter.search
    if search is None or not search.on_debtors:
        return False
    found = charges_db.matching_debtors(conn, search, cap=BROAD_SEARCH_DEBTORS + 1)
    return found > BROAD_SEARCH_DEBTORS


def charge_totals(engine: Engine, *, charge_filter: ChargeFilter, today: date) -> ChargeTotals:
    """How many charges match the filter, and the sum of their amounts."""
    with engine.connect() as conn:
        count, amount = charges_db.count_and_sum(conn, charge_filter=charge_filter, today=today)
    return ChargeTotals(count=count, amount=amount)


def data_version(engine: Engine) -> tuple[int | None, ...]:
    """A value that changes when an import, a payment or an operator action may have
    changed the totals: a cache key next to the filter."""
    with engine.connect() as conn:
        return charges_db.data_version(conn)


def has_charges(engine: Engine) -> bool:
    with engine.connect() as conn:
        return charges_db.any_charge(conn)


def import_choices(engine: Engine, *, limit: int = 500) -> list[ImportChoice]:
    """The imports that created charges, newest first: what the import filter offers."""
    with engine.connect() as conn:
        return charges_db.imports_with_charges(conn, limit=limit)


def status_label(status: str, *, overdue: bool) -> str:
    """The status in the reader's language (billing.core.i18n)."""
    label = _(STATUS_LABELS.get(status, status))
    return _("{label}, overdue").format(label=label) if overdue else label


def masked_document(government_id: str) -> str:
    """A CPF/CNPJ masked for lists; a lenient (not CPF/CNPJ-shaped) one keeps 3 chars."""
    try:
        return mask_government_id(government_id)
    except ValueError:
        return government_id[:3] + "*" * max(len(government_id) - 3, 0)


def whole_document(government_id: str) -> str:
    """A CPF/CNPJ with its punctuation, or as stored when it is not CPF/CNPJ-shaped."""
    try:
        return format_government_id(government_id)
    except ValueError:
        return government_id


def charge_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows of a page as an operator reads them: pt-BR money and dates, CPF/CNPJ masked."""
    return [
        {
            N_("Number"): f"#{row['id']}",
            "debtId": row["debt_id"],
            N_("Debtor"): row["name"],
            "CPF/CNPJ": masked_document(row["government_id"]),
            N_("E-mail"): row["email"],
            N_("Amount"): brl(row["amount"]),
            N_("Due"): date_br(row["due_date"]),
            N_("Status"): status_label(row["status"], overdue=row["overdue"]),
        }
        for row in rows
    ]


# --------------------------------------------------------------------------
# One charge
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeDetail:
    charge: ChargeWithDebtor  # the charge, its debtor, its import and what was paid
    notices: list[ChargeNotice] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)  # oldest first
    history: list[ChargeEvent] = field(default_factory=list)  # its events, oldest first

    @property
    def id(self) -> int:
        return self.charge["id"]

    @property
    def outstanding(self) -> Decimal:
        if self.charge["status"] in ("paid", "canceled"):
            return Decimal("0.00")
        return max(self.charge["amount"] - self.charge["paid_total"], Decimal("0.00"))

    @property
    def can_mark_paid(self) -> bool:
        return self.charge["status"] not in ("paid", "canceled")

    @property
    def can_cancel(self) -> bool:
        return self.charge["status"] not in ("paid", "canceled")

    @property
    def can_reopen(self) -> bool:
        return self.charge["status"] == "canceled"

    @property
    def has_boleto(self) -> bool:
        return self.charge["barcode"] is not None and self.charge["status"] != "canceled"


# A charge's history and payments in words: stored in English, shown with _(label).
EVENT_LABELS = {
    "payment": N_("Payment received"),
    "marked_paid": N_("Payment recorded by hand"),
    "canceled": N_("Canceled"),
    "reopened": N_("Reopened"),
    "status": N_("Status changed"),
    "registered": N_("Registered at the bank"),
    "registration_rejected": N_("Registration refused by the bank"),
    "registration_resent": N_("Registration sent again"),
    "written_off": N_("Written off by the bank"),
}
SOURCE_LABELS = {
    "webhook": N_("Bank notification"),
    "operator": N_("Recorded by hand"),
    "retorno": N_("Bank file (retorno)"),
}


def event_label(kind: str) -> str:
    """A history event's kind in the reader's language."""
    return _(EVENT_LABELS[kind]) if kind in EVENT_LABELS else kind


def source_label(source: str) -> str:
    """Where a payment came from, in the reader's language."""
    return _(SOURCE_LABELS[source]) if source in SOURCE_LABELS else source


def find_charge_id(engine: Engine, reference: str) -> int:
    """The id of the charge an operator typed: its debtId, or its number (ID)."""
    reference = reference.strip()
    if not reference:
        raise OperatorError(_("Type a debtId or a charge number."), title=_("Nothing to open"))
    with engine.connect() as conn:
        charge_id = charges_db.charge_id_by_debt_id(conn, reference)
        if charge_id is None and reference.removeprefix("#").isdigit():
            number = int(reference.removeprefix("#"))
            if number < 2**63 and charges_db.charge_exists(conn, number):
                charge_id = number
    if charge_id is None:
        raise OperatorError(
            _("No charge has debtId or number {reference}.").format(reference=repr(reference)),
            title=_("Charge not found"),
        )
    return charge_id


def charge_detail(engine: Engine, charge_id: int, *, today: date) -> ChargeDetail:
    """A charge with its debtor, boleto fields, notices, payments and history, read at once.

    The debtor's governmentId comes masked, for every role: a whole one is shown only
    through `reveal_government_id`, which is audited.
    """
    with engine.connect() as conn:
        charge = charges_db.charge_with_debtor(conn, charge_id, today=today)
        if charge is None:
            raise OperatorError(
                _("No charge has number {id}.").format(id=charge_id), title=_("Charge not found")
            )
        charge["government_id"] = masked_document(charge["government_id"])
        return ChargeDetail(
            charge=charge,
            notices=charges_db.notices_of_charge(conn, charge_id),
            payments=payments_db.payments_of_charge(conn, charge_id),
            history=payments_db.charge_events(conn, charge_id),
        )


# --------------------------------------------------------------------------
# Debtors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DebtorPage:
    rows: list[DebtorRow]
    next_cursor: DebtorCursor | None


def debtor_page(
    engine: Engine,
    *,
    text: str = "",
    search_in: str = "auto",
    after: DebtorCursor | None = None,
    page_size: int = PAGE_SIZE,
) -> DebtorPage:
    """Debtors matching a search term (all debtors for an empty one), by name."""
    search = route_search(text, search_in=search_in)
    with engine.connect() as conn:
        rows = charges_db.debtor_rows(conn, search=search, after=after, limit=page_size + 1)
    rows, more = rows[:page_size], len(rows) > page_size
    next_cursor = DebtorCursor(name=rows[-1]["name"], id=rows[-1]["id"]) if more else None
    return DebtorPage(rows=rows, next_cursor=next_cursor)


class DebtorSummary(Debtor, DebtorTotals):
    """A debtor (its governmentId masked) and the totals of their charges."""


def debtor_summary(engine: Engine, debtor_id: int, *, today: date) -> DebtorSummary:
    """A debtor and the totals of their charges: outstanding, paid and overdue."""
    with engine.connect() as conn:
        debtor = charges_db.debtor(conn, debtor_id)
        if debtor is None:
            raise OperatorError(
                _("No debtor has number {id}.").format(id=debtor_id), title=_("Debtor not found")
            )
        summary = DebtorSummary(**debtor, **charges_db.debtor_totals(conn, debtor_id, today=today))
    summary["government_id"] = masked_document(summary["government_id"])  # see charge_detail
    return summary


@dataclass(frozen=True)
class EmailCorrected:
    debtor_id: int
    old_email: str
    new_email: str
    charges: int  # open charges whose notices now go to the new address


def correct_debtor_email(
    engine: Engine, *, actor: Actor, debtor_id: int, email: str
) -> EmailCorrected:
    """Correct a debtor's e-mail (a notice bounced, the debtor wrote in), checked as an
    import checks one; audited with the old and the new address.

    The debtor's open charges are billed to the new address too: notices are sent to the
    address on the charge, so "Retry failed" and the next notices reach the new one.
    Paid and canceled charges keep the address they were billed to. A later import of
    a file with this debtor sets the e-mail the file gives, as imports always do.
    """
    require(actor, Permission.CORRECT_DEBTORS)
    new = email.strip()
    if not new:
        raise OperatorError(_("Type the new e-mail address."), title=_("E-mail not changed"))
    if not is_valid_email(new):
        raise OperatorError(
            _("“{email}” is not an e-mail address an import would accept.").format(email=new[:80]),
            title=_("E-mail not changed"),
        )
    with engine.begin() as conn:
        debtor = charges_db.lock_debtor(conn, debtor_id)
        if debtor is None:
            raise OperatorError(
                _("No debtor has number {id}.").format(id=debtor_id), title=_("Debtor not found")
            )
        old = debtor["email"]
        if old == new:
            raise OperatorError(
                _("{email} is already this debtor's e-mail.").format(email=new),
                title=_("E-mail not changed"),
            )
        charges = charges_db.set_debtor_email(conn, debtor_id=debtor_id, email=new)
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.DEBTOR_EMAIL_CHANGED,
            subject=f"debtor:{debtor_id}",
            details={"old": old, "new": new, "openCharges": charges},
        )
    return EmailCorrected(debtor_id=debtor_id, old_email=old, new_email=new, charges=charges)


def reveal_government_id(engine: Engine, *, actor: Actor, debtor_id: int, reason: str = "") -> str:
    """A debtor's whole CPF/CNPJ, for an operator; each reveal leaves an audit row."""
    require(actor, Permission.REVEAL_DOCUMENT)
    with engine.begin() as conn:
        debtor = charges_db.debtor(conn, debtor_id)
        if debtor is None:
            raise OperatorError(
                _("No debtor has number {id}.").format(id=debtor_id), title=_("Debtor not found")
            )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.REVEAL_DOCUMENT,
            subject=f"debtor:{debtor_id}",
            details={"reason": reason.strip()} if reason.strip() else {},
        )
    return whole_document(debtor["government_id"])
