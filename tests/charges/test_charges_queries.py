"""The Charges and Debtors pages' queries on the real database: filters, search, keyset
pages, totals, the link that carries a filter, one charge and one debtor."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

import billing.charges.browsing
from billing.accounts.access import WEBHOOK_ACTOR
from billing.charges.browsing import (
    charge_detail,
    charge_page,
    charge_table,
    charge_totals,
    debtor_page,
    debtor_summary,
    find_charge_id,
    masked_document,
    whole_document,
)
from billing.core.errors import OperatorError
from billing.core.filters import ChargeFilter, Cursor, TextSearch, parse_amount, route_search
from billing.core.search import search_words
from billing.core.statuses import is_overdue
from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import import_file
from billing.payments.service import cancel_charge, mark_paid, record_payment
from tests.support.actors import OPERATOR, operator

TODAY = date(2024, 3, 1)

# name, governmentId, email, debtAmount, debtDueDate, debtId. Amounts and due dates
# repeat on purpose (ties for the keyset pages); debtIds and e-mails carry LIKE
# wildcards, and one document is not a CPF/CNPJ (lenient import).
ROWS = [
    ("Maria da Conceição", "52998224725", "maria.con@ex.com", "100.00", "2024-01-10", "D-001"),
    ("Maria da Conceição", "529.982.247-25", "maria.con@ex.com", "250.50", "2024-02-10", "D-002"),
    ("João Conceicao Silva", "11144477735", "joao.silva@ex.com", "100.00", "2024-01-10", "D-003"),
    ("José D'Ávila", "12345678909", "jose_davila@ex.com", "999.99", "2024-03-15", "D-004"),
    ("Ana Paula Souza", "93541134780", "anaxdavila@ex.com", "5000.00", "2024-03-15", "50%off"),
    ("Ana Paula Souza", "93541134780", "anaxdavila@ex.com", "5000.00", "2024-03-15", "50xoff"),
    ("Pedro Álvares", "28625587887", "pedro@ex.com", "100.00", "2024-01-10", "a_b-1"),
    ("Pedro Álvares", "28625587887", "pedro@ex.com", "42.00", "2025-06-01", "axb-2"),
    ("Empresa Ltda", "11.222.333/0001-81", "financeiro@ex.com", "12000.00", "2024-02-10", "CNPJ-1"),
    ("Cliente Antigo", "XYZ-77", "antigo@ex.com", "100.00", "2000-03-01", "OLD-1"),
    ("Ana-Lúcia Sørensen", "39053344705", "ana.lucia@ex.com", "80.00", "2024-03-15", "H-1"),
]  # fmt: skip
ALL = {row[5] for row in ROWS}


def debtor_csv(rows: list[tuple[str, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REQUIRED_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def charges(engine: Engine, owner_engine: Engine) -> dict[str, int]:
    """The rows above imported once for this module, in every status; debtId -> id.

    D-002 paid by an operator, D-004 canceled, 50%off partly paid; OLD-1 is due before
    the first date a boleto can carry, so it stays pending. The tests only read.
    """
    with owner_engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE imports, debtors RESTART IDENTITY CASCADE")
    result = import_file(
        actor=OPERATOR,
        engine=engine,
        data=debtor_csv(ROWS),
        file_name="x.csv",
        lenient_documents=True,
    )
    assert result.status == "done" and result.imported == len(ROWS), result
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT debt_id, id FROM charges")).all())
    mark_paid(engine, charge_id=ids["D-002"], reason="paid at the branch", actor=operator("Ana"))
    cancel_charge(engine, charge_id=ids["D-004"], reason="sent by mistake", actor=operator("Ana"))
    record_payment(
        engine,
        actor=WEBHOOK_ACTOR,
        debt_id="50%off",
        paid_at="2024-02-01 10:00:00",
        paid_amount=Decimal("1000.00"),
        paid_by="Ana Paula Souza",
        source="webhook",
        payload={},
    )
    return ids


@pytest.fixture(params=["narrow", "broad"])
def search_plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a name search is planned: through the debtors found (a search for a
    person), or walking the charges in page order (a search that finds thousands)."""
    if request.param == "broad":
        monkeypatch.setattr(billing.charges.browsing, "BROAD_SEARCH_DEBTORS", 0)
    return request.param


def debt_ids(engine: Engine, charge_filter: ChargeFilter) -> set[str]:
    page = charge_page(engine, charge_filter=charge_filter, today=TODAY, page_size=100)
    return {row["debt_id"] for row in page.rows}


FILTER_CASES = [
    ({}, ALL),
    ({"statuses": ("paid",)}, {"D-002"}),
    ({"statuses": ("canceled",)}, {"D-004"}),
    ({"statuses": ("partially_paid",)}, {"50%off"}),
    ({"statuses": ("pending",)}, {"OLD-1"}),
    # Overdue: due before TODAY and still issued or partly paid (never pending or paid).
    ({"statuses": ("overdue",)}, {"D-001", "D-003", "a_b-1", "CNPJ-1"}),
    ({"statuses": ("paid", "overdue")}, {"D-002", "D-001", "D-003", "a_b-1", "CNPJ-1"}),
    ({"statuses": ("issued",)}, {"D-001", "D-003", "a_b-1", "CNPJ-1", "50xoff", "axb-2", "H-1"}),
    ({"due_from": date(2024, 3, 15)}, {"D-004", "50%off", "50xoff", "axb-2", "H-1"}),
    ({"due_to": date(2024, 1, 10)}, {"D-001", "D-003", "a_b-1", "OLD-1"}),
    ({"due_from": date(2024, 2, 10), "due_to": date(2024, 2, 10)}, {"D-002", "CNPJ-1"}),
    ({"amount_min": Decimal("999.99")}, {"D-004", "50%off", "50xoff", "CNPJ-1"}),
    ({"amount_max": Decimal("100")}, {"D-001", "D-003", "a_b-1", "axb-2", "OLD-1", "H-1"}),
    ({"amount_min": Decimal("100.01"), "amount_max": Decimal("1000")}, {"D-002", "D-004"}),
    (
        {"statuses": ("overdue",), "amount_min": Decimal("101"), "due_to": date(2024, 2, 28)},
        {"CNPJ-1"},
    ),
    ({"statuses": ("issued",), "text": "pedro"}, {"a_b-1", "axb-2"}),
    ({"statuses": ("paid",), "text": "pedro"}, set()),
]


@pytest.mark.parametrize(("values", "expected"), FILTER_CASES)
def test_filters(charges: dict[str, int], engine: Engine, values: dict, expected: set) -> None:
    charge_filter = ChargeFilter(**values)
    assert debt_ids(engine, charge_filter) == expected
    totals = charge_totals(engine, charge_filter=charge_filter, today=TODAY)
    amounts = {row[5]: Decimal(row[3]) for row in ROWS}
    assert totals.count == len(expected)
    assert totals.amount == sum((amounts[d] for d in expected), Decimal("0"))


def test_the_import_filter(charges: dict[str, int], engine: Engine) -> None:
    import_id = charge_page(engine, charge_filter=ChargeFilter(), today=TODAY).rows[0]["import_id"]
    assert debt_ids(engine, ChargeFilter(import_id=import_id)) == ALL
    assert debt_ids(engine, ChargeFilter(import_id=import_id + 1)) == set()


def test_the_debtor_filter(charges: dict[str, int], engine: Engine) -> None:
    debtor_id = charge_detail(engine, charges["D-001"], today=TODAY).charge["debtor_id"]
    assert debt_ids(engine, ChargeFilter(debtor_id=debtor_id)) == {"D-001", "D-002"}


SEARCH_CASES = [
    # Accent- and case-insensitive name words, each a prefix, all required.
    ("Conceicao", "auto", {"D-001", "D-002", "D-003"}),
    ("CONCEIÇÃO", "auto", {"D-001", "D-002", "D-003"}),
    ("conceição", "auto", {"D-001", "D-002", "D-003"}),
    ("conc", "auto", {"D-001", "D-002", "D-003"}),
    ("maria conc", "auto", {"D-001", "D-002"}),
    ("conc silva", "auto", {"D-003"}),
    ("avila", "auto", {"D-004"}),
    ("d'avila", "auto", {"D-004"}),
    ("davila", "auto", {"D-004"}),  # a name with an apostrophe is also stored joined
    ("José D\u2019Ávila", "auto", {"D-004"}),  # a typographic apostrophe is the same one
    ("José D'Ávila", "auto", {"D-004"}),
    ("alvares", "name", {"a_b-1", "axb-2"}),
    # A word is a run of a-z and 0-9 once folded, in the name as in the term: a hyphen
    # separates words, and so does a letter no accent folds away ("ø").
    ("ana-lucia", "auto", {"H-1"}),
    ("lucia", "auto", {"H-1"}),
    ("ana luc", "auto", {"H-1"}),
    ("Sørensen", "auto", {"H-1"}),
    ("ana", "auto", {"50%off", "50xoff", "H-1"}),
    ("nobody", "auto", set()),
    # E-mail prefixes, case-insensitive.
    ("JOAO.SILVA@", "auto", {"D-003"}),
    ("maria.con", "auto", {"D-001", "D-002"}),
    ("financeiro", "email", {"CNPJ-1"}),
    # CPF/CNPJ prefixes, typed with or without punctuation.
    ("529.982", "auto", {"D-001", "D-002"}),
    ("52998224725", "auto", {"D-001", "D-002"}),
    ("11.222.333/0001", "auto", {"CNPJ-1"}),
    ("xyz-7", "document", {"OLD-1"}),
    # debtId prefixes.
    ("D-00", "auto", {"D-001", "D-002", "D-003", "D-004"}),
    ("cnpj-1", "debt", set()),  # debtIds are compared as written
    ("CNPJ", "debt", {"CNPJ-1"}),
]


@pytest.mark.parametrize(("term", "search_in", "expected"), SEARCH_CASES)
def test_search(
    charges: dict[str, int],
    engine: Engine,
    search_plan: str,
    term: str,
    search_in: str,
    expected: set,
) -> None:
    assert debt_ids(engine, ChargeFilter(text=term, search_in=search_in)) == expected


WILDCARD_CASES = [
    ("50%", "debt", {"50%off"}),  # not 50xoff
    ("a_b", "debt", {"a_b-1"}),  # not axb-2
    ("jose_", "email", {"D-004"}),  # not anaxdavila's "anax"...
    ("ana_", "email", set()),
    ("%", "debt", set()),
    ("_", "email", set()),
    ("\\", "debt", set()),
]


@pytest.mark.parametrize(("term", "search_in", "expected"), WILDCARD_CASES)
def test_like_wildcards_are_matched_literally(
    charges: dict[str, int], engine: Engine, term: str, search_in: str, expected: set
) -> None:
    assert debt_ids(engine, ChargeFilter(text=term, search_in=search_in)) == expected


ROUTING_CASES = [
    ("Maria da Conceição", TextSearch(name_query="maria:* & da:* & conceicao:*")),
    ("  ", None),
    ("!!!", None),
    ("ana@ex", TextSearch(email_prefix="ana@ex%")),
    ("Ana.Souza", TextSearch(email_prefix="ana.souza%")),
    ("529.982.247", TextSearch(document_prefix="529982247%", debt_prefix="529.982.247%")),
    ("8291", TextSearch(document_prefix="8291%", debt_prefix="8291%")),
    (
        "debt_01",
        TextSearch(
            email_prefix="debt\\_01%", document_prefix="DEBT\\_01%", debt_prefix="debt\\_01%"
        ),
    ),
]


@pytest.mark.parametrize(("term", "expected"), ROUTING_CASES)
def test_route_search(term: str, expected: TextSearch | None) -> None:
    assert route_search(term) == expected


@pytest.mark.parametrize("sort", ["due_date", "amount"])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    ("statuses", "term"), [((), ""), (("issued", "paid", "overdue"), ""), ((), "a")]
)
def test_keyset_pages_cover_every_row_once_in_order(
    charges: dict[str, int],
    engine: Engine,
    search_plan: str,
    sort: str,
    descending: bool,
    statuses: tuple,
    term: str,
) -> None:
    charge_filter = ChargeFilter(sort=sort, descending=descending, statuses=statuses, text=term)
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, {sort}, status, due_date FROM charges")).all()
    # "a" finds the names with a word starting with a: Ana, Álvares, Antigo.
    named = {charges[r[5]] for r in ROWS if any(w.startswith(term) for w in search_words(r[0]))}
    wanted = {
        id_
        for id_, _, status, due_date in rows
        if (
            not statuses
            or status in statuses
            or (
                "overdue" in statuses
                and status in ("issued", "partially_paid")
                and due_date < TODAY
            )
        )
        and (not term or id_ in named)
    }
    expected = sorted(((row[1], row[0]) for row in rows if row[0] in wanted), reverse=descending)

    seen: list[tuple] = []
    after: Cursor | None = None
    while True:
        page = charge_page(
            engine, charge_filter=charge_filter, today=TODAY, after=after, page_size=3
        )
        seen += [(row[sort], row["id"]) for row in page.rows]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == expected
    assert len(seen) == len(wanted) > 3


ROUND_TRIP = [
    ChargeFilter(),
    ChargeFilter(statuses=("overdue", "paid")),
    ChargeFilter(due_from=date(2024, 1, 1), due_to=date(2024, 12, 31)),
    ChargeFilter(amount_min=Decimal("0.01"), amount_max=Decimal("1500.50")),
    ChargeFilter(import_id=7, debtor_id=42),
    ChargeFilter(text="Conceição & co 100%", search_in="name"),
    ChargeFilter(text="529.982"),
    ChargeFilter(sort="amount", descending=True),
    ChargeFilter(sort="due_date", descending=True, statuses=("issued",), text="x@y"),
]


@pytest.mark.parametrize("charge_filter", ROUND_TRIP)
def test_a_filter_survives_its_link(charge_filter: ChargeFilter) -> None:
    params = charge_filter.to_query_params()
    assert all(isinstance(value, str) for value in params.values())
    assert ChargeFilter.from_query_params(params) == (charge_filter, [])


def test_a_default_filter_makes_an_empty_link() -> None:
    assert ChargeFilter().to_query_params() == {}
    assert ChargeFilter(statuses=("paid", "issued")).to_query_params() == {"status": "issued,paid"}


BAD_LINKS = [
    ({"status": "paid,bogus"}, ChargeFilter(statuses=("paid",)), 1),
    ({"due_from": "31/02/2024"}, ChargeFilter(), 1),  # the on-screen form, a day that is not
    ({"due_to": "2024-02-30"}, ChargeFilter(), 1),
    ({"amount_min": "abc", "amount_max": "-5"}, ChargeFilter(), 2),
    ({"amount_min": "NaN"}, ChargeFilter(), 1),
    ({"amount_max": "1e400"}, ChargeFilter(), 1),
    ({"import": "x1", "debtor": "-3"}, ChargeFilter(), 2),
    ({"import": "99999999999999999999999"}, ChargeFilter(), 1),
    ({"sort": "name"}, ChargeFilter(), 1),
    ({"q": "ana", "in": "phone"}, ChargeFilter(text="ana"), 1),
    ({"q": "%%%"}, ChargeFilter(text="%%%"), 1),  # nothing to search for: noted
    (
        {"due_from": "2024-12-31", "due_to": "2024-01-01"},
        ChargeFilter(due_from=date(2024, 1, 1), due_to=date(2024, 12, 31)),
        1,
    ),
    ({"amount_min": "1.500,50"}, ChargeFilter(amount_min=Decimal("1500.50")), 0),
    ({"utm_source": "mail", "charge": "12"}, ChargeFilter(), 0),  # not ours: left alone
    ({"status": ["issued", "paid"]}, ChargeFilter(statuses=("paid",)), 0),  # last one wins
]


@pytest.mark.parametrize(("params", "expected", "notes"), BAD_LINKS)
def test_bad_values_in_a_link_are_ignored_with_a_note(
    params: dict, expected: ChargeFilter, notes: int
) -> None:
    charge_filter, found = ChargeFilter.from_query_params(params)
    assert charge_filter == expected
    assert len(found) == notes, found


@pytest.mark.parametrize(
    ("text", "amount"),
    [("1500", "1500.00"), ("1500,5", "1500.50"), ("R$ 1.234,56", "1234.56"), ("0", "0.00")],
)
def test_parse_amount(text: str, amount: str) -> None:
    assert parse_amount(text) == Decimal(amount)


def test_open_a_charge_by_debt_id_or_number(charges: dict[str, int], engine: Engine) -> None:
    assert find_charge_id(engine, "D-001") == charges["D-001"]
    assert find_charge_id(engine, f"#{charges['D-003']}") == charges["D-003"]
    with pytest.raises(OperatorError, match="No charge"):
        find_charge_id(engine, "nope")

    detail = charge_detail(engine, charges["50%off"], today=TODAY)
    assert detail.charge["paid_total"] == Decimal("1000.00")
    assert detail.outstanding == Decimal("4000.00")
    assert detail.has_boleto and detail.can_cancel
    assert len(detail.charge["digitable_line"]) > 40
    canceled = charge_detail(engine, charges["D-004"], today=TODAY)
    assert not canceled.has_boleto and not canceled.can_mark_paid
    pending = charge_detail(engine, charges["OLD-1"], today=TODAY)
    assert pending.charge["digitable_line"] is None


def test_lists_mask_documents_and_speak_pt_br(charges: dict[str, int], engine: Engine) -> None:
    page = charge_page(
        engine, charge_filter=ChargeFilter(text="CNPJ", search_in="debt"), today=TODAY
    )
    (row,) = charge_table(page.rows)
    assert row["CPF/CNPJ"] == "**.222.333/0001-**"
    assert row["Amount"] == "R$ 12.000,00"
    assert row["Due"] == "10/02/2024"
    assert row["Status"] == "Issued, overdue"
    assert masked_document("52998224725") == "***.982.247-**"
    assert masked_document("XYZ77") == "XYZ**"  # lenient: not CPF-shaped
    assert whole_document("11222333000181") == "11.222.333/0001-81"


def test_debtors_search_and_totals(charges: dict[str, int], engine: Engine) -> None:
    assert [row["name"] for row in debtor_page(engine, text="conceicao").rows] == [
        "João Conceicao Silva",
        "Maria da Conceição",
    ]
    assert [row["name"] for row in debtor_page(engine, text="50%", search_in="debt").rows] == [
        "Ana Paula Souza"
    ]
    first = debtor_page(engine, page_size=5)
    rest = debtor_page(engine, page_size=5, after=first.next_cursor)
    names = [row["name"] for row in first.rows + rest.rows]
    assert len(first.rows) == 5 and rest.next_cursor is None
    assert len(set(names)) == len(names) == 8  # every debtor once, by name
    # The two Anas first (which of them first is the server's collation's to say).
    assert sorted(names[:2]) == ["Ana Paula Souza", "Ana-Lúcia Sørensen"]
    assert names[2] == "Cliente Antigo"

    maria = debtor_page(engine, text="maria").rows[0]
    summary = debtor_summary(engine, maria["id"], today=TODAY)
    # D-001 (100.00, overdue) is owed; D-002 (250.50) was marked paid.
    assert (summary["charges"], summary["open_charges"]) == (2, 1)
    assert summary["outstanding"] == Decimal("100.00")
    assert summary["paid"] == Decimal("250.50")
    assert (summary["overdue"], summary["overdue_charges"]) == (Decimal("100.00"), 1)

    ana = debtor_page(engine, text="ana paula").rows[0]
    summary = debtor_summary(engine, ana["id"], today=TODAY)
    assert summary["outstanding"] == Decimal("9000.00")  # 5000 - 1000 paid, and 5000
    assert summary["paid"] == Decimal("1000.00")
    assert summary["overdue"] == Decimal("0")


def test_the_database_and_python_agree_on_what_is_overdue(
    engine: Engine, charges: dict[str, int]
) -> None:
    """Every status is in the fixture, due before and after TODAY (OLD-1 pending and late)."""
    for debt_id, charge_id in charges.items():
        charge = charge_detail(engine, charge_id, today=TODAY).charge
        expected = is_overdue(status=charge["status"], due_date=charge["due_date"], today=TODAY)
        assert charge["overdue"] is expected, debt_id
