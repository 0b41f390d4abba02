"""The operators' view of charges: filters, the link that shares them, pages, a charge.

Decisions, so a reader need not rediscover them:

* A filtered view is a value (`ChargeFilter`) that round-trips through the URL's query
  parameters: a link restores the view. What cannot be read from a link is dropped
  with a note for the operator (`from_query_params` returns both), never raised.
* "Overdue" is derived, never stored: due before today (in TIMEZONE) and still
  'issued' or 'partially_paid'. It is one more choice next to the stored statuses, and
  the chosen statuses are OR-ed: ["paid", "overdue"] lists both kinds.
* Pages are keyset pages (`Cursor`): the sort value and the id of the last row shown,
  so page 1,000 costs what page 1 costs and rows never repeat or vanish when charges
  are added meanwhile. Ties on the sort value are broken by id, in the same direction.
* The search box is routed to the index that answers it (`route_search`): name words
  to the full-text index on the accent-folded name (folded here, as on import, by
  billing.core.search), an e-mail to the prefix index on lower(email), digits to the
  CPF/CNPJ and debtId prefixes. LIKE wildcards typed by the operator are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.core.documents import normalise_government_id
from billing.core.i18n import N_, _
from billing.core.search import search_words
from billing.core.statuses import REGISTRATION_REJECTED, REGISTRATION_REJECTED_LABEL, STATUSES
from billing.core.statuses import STATUS_LABELS as STORED_STATUS_LABELS

PAGE_SIZE = 50
# A name search that finds more debtors than this is "broad": its page is found by
# walking the charges in page order rather than by fetching every charge of every
# debtor found. Measured on 1.1M charges of 275k debtors: fetching costs about 32 µs
# per debtor found, walking about 520 ms divided by the debtors found, so both cost
# ~130 ms at 4,000 (db.charges._charge_search).
BROAD_SEARCH_DEBTORS = 4000
OVERDUE = "overdue"
STATUS_CHOICES = (*STATUSES, OVERDUE, REGISTRATION_REJECTED)
# Labels in English, marked for the catalogs: shown with _(label) (billing.core.i18n).
STATUS_LABELS = {
    **STORED_STATUS_LABELS,
    OVERDUE: N_("Overdue"),
    REGISTRATION_REJECTED: REGISTRATION_REJECTED_LABEL,
}
SORTS = ("due_date", "amount")
SORT_LABELS = {
    ("due_date", False): N_("Due date, oldest first"),
    ("due_date", True): N_("Due date, newest first"),
    ("amount", False): N_("Amount, smallest first"),
    ("amount", True): N_("Amount, largest first"),
}
SEARCH_IN = {
    "auto": N_("Everything"),
    "name": N_("Name"),
    "email": N_("E-mail"),
    "document": "CPF/CNPJ",
    "debt": "debtId",
}
MAX_AMOUNT = Decimal("999999999999.99")  # numeric(14, 2)

_DOCUMENT_CHARACTERS = re.compile(r"[\d\s./\-]+")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[^\W\d_]")
# Digits grouped by dots in threes and nothing else: "1.000", "12.345.678".
_THOUSANDS_ONLY = re.compile(r"\d{1,3}(?:\.\d{3})+")
_DATE_BR = re.compile(r"(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})")


# --------------------------------------------------------------------------
# The filter and its link
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeFilter:
    """Which charges an operator is looking at, and in which order."""

    statuses: tuple[str, ...] = ()  # any of STATUS_CHOICES; empty: all
    due_from: date | None = None
    due_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    import_id: int | None = None
    debtor_id: int | None = None
    text: str = ""
    search_in: str = "auto"  # a key of SEARCH_IN
    sort: str = "due_date"  # one of SORTS
    descending: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.statuses) - set(STATUS_CHOICES)
        if unknown:
            raise ValueError(f"unknown statuses: {sorted(unknown)}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, not {self.sort!r}")
        if self.search_in not in SEARCH_IN:
            raise ValueError(f"search_in must be one of {tuple(SEARCH_IN)}")
        # One order for the statuses, so equal filters are equal values (and cache keys).
        object.__setattr__(self, "statuses", tuple(s for s in STATUS_CHOICES if s in self.statuses))
        object.__setattr__(self, "text", " ".join(self.text.split()))

    @property
    def search(self) -> TextSearch | None:
        return route_search(self.text, search_in=self.search_in)

    @property
    def is_empty(self) -> bool:
        """True when no filter narrows the charges (the order does not count)."""
        return self == ChargeFilter(sort=self.sort, descending=self.descending)

    def to_query_params(self) -> dict[str, str]:
        """The filter as query parameters; defaults are left out, so links stay short."""
        params: dict[str, str] = {}
        if self.text:
            params["q"] = self.text
            if self.search_in != "auto":
                params["in"] = self.search_in
        if self.statuses:
            params["status"] = ",".join(self.statuses)
        if self.due_from:
            params["due_from"] = self.due_from.isoformat()
        if self.due_to:
            params["due_to"] = self.due_to.isoformat()
        if self.amount_min is not None:
            params["amount_min"] = _plain_decimal(self.amount_min)
        if self.amount_max is not None:
            params["amount_max"] = _plain_decimal(self.amount_max)
        if self.import_id is not None:
            params["import"] = str(self.import_id)
        if self.debtor_id is not None:
            params["debtor"] = str(self.debtor_id)
        if (self.sort, self.descending) != ("due_date", False):
            params["sort"] = ("-" if self.descending else "") + self.sort
        return params

    @classmethod
    def from_query_params(
        cls, params: Mapping[str, str | Sequence[str]]
    ) -> tuple[ChargeFilter, list[str]]:
        """The filter a link describes, and a note for each value that was ignored."""
        reader = _ParamReader(params)
        values: dict[str, Any] = {}
        text = reader.text("q")
        if text:
            values["text"] = text
            search_in = reader.text("in")
            if search_in in SEARCH_IN:
                values["search_in"] = search_in
            elif search_in:
                reader.ignored("in", search_in, _("choose name, email, document or debt"))
        statuses = reader.text("status")
        if statuses:
            chosen = [s.strip() for s in statuses.split(",") if s.strip()]
            unknown = [s for s in chosen if s not in STATUS_CHOICES]
            if unknown:
                reader.ignored("status", ",".join(unknown), _("not a status"))
            values["statuses"] = tuple(s for s in chosen if s in STATUS_CHOICES)
        values["due_from"] = reader.date("due_from")
        values["due_to"] = reader.date("due_to")
        values["amount_min"] = reader.amount("amount_min")
        values["amount_max"] = reader.amount("amount_max")
        values["import_id"] = reader.identifier("import")
        values["debtor_id"] = reader.identifier("debtor")
        sort = reader.text("sort")
        if sort:
            descending, name = sort.startswith("-"), sort.removeprefix("-")
            if name in SORTS:
                values["sort"], values["descending"] = name, descending
            else:
                reader.ignored("sort", sort, _("sort by due_date or amount, - for descending"))
        charge_filter, notes = cls(**values).checked()
        return charge_filter, reader.notes + notes

    def checked(self) -> tuple[ChargeFilter, list[str]]:
        """The filter with inverted ranges put the right way round, and what was changed."""
        notes = []
        checked = self
        if self.due_from and self.due_to and self.due_from > self.due_to:
            checked = replace(checked, due_from=self.due_to, due_to=self.due_from)
            notes.append(_("The due dates were given the wrong way round; they were swapped."))
        if (
            self.amount_min is not None
            and self.amount_max is not None
            and self.amount_min > self.amount_max
        ):
            checked = replace(checked, amount_min=self.amount_max, amount_max=self.amount_min)
            notes.append(_("The amounts were given the wrong way round; they were swapped."))
        if self.text and checked.search is None:
            notes.append(
                _("“{text}” has no letters or digits to search for; it was ignored.").format(
                    text=self.text
                )
            )
        return checked, notes


class _ParamReader:
    """Reads query parameters one by one, keeping a note of every value it ignores."""

    def __init__(self, params: Mapping[str, str | Sequence[str]]) -> None:
        self.params = params
        self.notes: list[str] = []

    def ignored(self, name: str, value: str, why: str) -> None:
        """Note a value dropped from the link; `why` comes in the operator's language."""
        shown = value if len(value) <= 40 else value[:40] + "…"
        self.notes.append(
            _("Ignored {name}={value} from the link: {why}.").format(
                name=name, value=repr(shown), why=why
            )
        )

    def text(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):  # a repeated parameter: the last one wins
            value = value[-1] if value else ""
        return value.strip()

    def date(self, name: str) -> date | None:
        value = self.text(name)
        if not value:
            return None
        day = parse_date(value)
        if day is None:
            self.ignored(name, value, _("a date is written DD/MM/YYYY or YYYY-MM-DD"))
        return day

    def amount(self, name: str) -> Decimal | None:
        value = self.text(name)
        if not value:
            return None
        amount = parse_amount(value)
        if amount is None:
            self.ignored(name, value, _("an amount is written like 1500.00"))
        return amount

    def identifier(self, name: str) -> int | None:
        value = self.text(name)
        if not value:
            return None
        if value.isascii() and value.isdigit() and 0 < int(value) < 2**63:
            return int(value)
        self.ignored(name, value, _("expected a number"))
        return None


def parse_amount(value: str) -> Decimal | None:
    """A non-negative amount in reais as an operator types it: "1.000,50", "1000,5",
    "R$ 1.500" (pt-BR: dots group thousands) or "1500.50"; None when it cannot be read."""
    text = value.strip().removeprefix("R$").strip().replace(" ", "")
    if "," in text:  # pt-BR: the comma is the decimal mark, dots group thousands
        whole, _, cents = text.rpartition(",")
        if "." in cents or "," in whole:  # "1,234.5": not a pt-BR amount
            return None
        text = whole.replace(".", "") + "." + cents
    elif _THOUSANDS_ONLY.fullmatch(text):  # "1.000" is one thousand reais, not one
        text = text.replace(".", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        return None
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]  # centavos at most
        return None
    return amount.quantize(Decimal("0.01"))


def parse_date(value: str) -> date | None:
    """A date as shown on screen (31/10/2026) or in ISO form (2026-10-31); else None."""
    text = value.strip()
    match = _DATE_BR.fullmatch(text)
    try:
        if match:
            return date(int(match["year"]), int(match["month"]), int(match["day"]))
        return date.fromisoformat(text)
    except ValueError:
        return None


def _plain_decimal(value: Decimal) -> str:
    return format(value, "f")


# --------------------------------------------------------------------------
# The search box
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSearch:
    """Where a search term is looked for; each part is answered by one index.

    Parts that are set are OR-ed. `name_query` is a tsquery ('w1:* & w2:*') of folded
    words (a-z and 0-9 only, so written as they are); the prefixes are LIKE patterns with
    the operator's wildcards escaped.
    """

    name_query: str | None = None
    email_prefix: str | None = None
    document_prefix: str | None = None
    debt_prefix: str | None = None

    @property
    def on_debtors(self) -> bool:
        """Whether any part looks at the debtor (name, e-mail, CPF/CNPJ)."""
        return any((self.name_query, self.email_prefix, self.document_prefix))


def escape_like(text: str) -> str:
    """`text` matched literally by LIKE (its default escape character is the backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_pattern(text: str) -> str:
    return escape_like(text) + "%"


def name_query(text: str) -> str | None:
    """'w1:* & w2:*' from the folded words of `text`: every word (once), each as a prefix."""
    words = dict.fromkeys(search_words(text))
    return " & ".join(f"{word}:*" for word in words) if words else None


def route_search(text: str, *, search_in: str = "auto") -> TextSearch | None:
    """Which indexes answer a search term; None when there is nothing to search for.

    Automatic routing: an "@" means an e-mail; only digits and CPF punctuation mean a
    CPF/CNPJ or a debtId (both are numbers); one word with a digit in it is a debtId or
    a CPF/CNPJ (new CNPJs carry letters), or an e-mail typed without its domain; one
    word with a dot in it ("maria.silva") is the start of an e-mail; anything else is
    words of a name.
    """
    term = " ".join(text.split())
    if not term:
        return None
    if search_in == "auto":
        if "@" in term:
            search_in = "email"
        elif _DOCUMENT_CHARACTERS.fullmatch(term) and _HAS_DIGIT.search(term):
            return _or_none(document=term, debt=term)
        elif " " not in term and _HAS_DIGIT.search(term):
            email = term if _HAS_LETTER.search(term) else None
            return _or_none(document=term, debt=term, email=email)
        elif " " not in term and "." in term.strip("."):
            search_in = "email"
        else:
            search_in = "name"
    if search_in == "name":
        return _or_none(name=term)
    if search_in == "email":
        return _or_none(email=term)
    if search_in == "document":
        return _or_none(document=term)
    if search_in == "debt":
        return _or_none(debt=term)
    raise ValueError(f"search_in must be one of {tuple(SEARCH_IN)}, not {search_in!r}")


def _or_none(
    *,
    name: str | None = None,
    email: str | None = None,
    document: str | None = None,
    debt: str | None = None,
) -> TextSearch | None:
    normalised_document = normalise_government_id(document) if document else ""
    search = TextSearch(
        name_query=name_query(name) if name else None,
        email_prefix=prefix_pattern(email.strip().lower()) if email else None,
        document_prefix=prefix_pattern(normalised_document) if normalised_document else None,
        debt_prefix=prefix_pattern(debt.strip()) if debt and debt.strip() else None,
    )
    return search if search != TextSearch() else None


# --------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a keyset page starts: after the row with this sort value and id."""

    value: date | Decimal
    id: int


@dataclass(frozen=True)
class DebtorCursor:
    """Debtors are listed by name, then id: the last row's name and id."""

    name: str
    id: int
