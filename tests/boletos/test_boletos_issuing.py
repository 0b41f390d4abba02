"""Issuing boletos against a real PostgreSQL: every imported charge gets one valid boleto,
exactly once, even with two issuers at once; Pix codes; the PDF on demand."""

from __future__ import annotations

import base64
import re
import threading
import zlib
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from billing.boletos.codes import (
    barcode_from_digitable_line,
    due_date_factor,
    is_valid_barcode,
    issue_code,
    parse_barcode,
    parse_bb_convenio7_free_field,
    parse_caixa_sigcb_free_field,
)
from billing.boletos.issuing import (
    beneficiary_from_settings,
    boleto_pdf_for_charge,
    issue_boletos,
    pix_codes,
    pix_txid,
)
from billing.boletos.pix import is_valid_pix_payload, parse_pix_payload, pix_payload
from billing.core.errors import OperatorError
from billing.core.settings import Settings
from billing.imports.service import import_file
from tests.support.actors import OPERATOR
from tests.support.charges import NO_PIX, add_pending_charges
from tests.support.database import scalar
from tests.support.debtor_files import VALID_CPFS, debtor_csv

WITH_PIX = Settings(
    pix_key="+5511987654321", pix_merchant_name="Fundo Exemplo", pix_merchant_city="São Paulo"
)
BB = Settings(
    boleto_layout="bb_convenio7",
    bank_code="001",
    beneficiary_code="1234567",
    beneficiary_wallet="17",
    beneficiary_account_digit="5",
)


def sample_rows(count: int, *, start: int = 0, due: str = "2025-05-10") -> list[tuple[str, ...]]:
    return [
        (
            f"Devedor {i}",
            VALID_CPFS[i % len(VALID_CPFS)],
            f"devedor{i}@example.com",
            f"{10 + i * 7}.{i % 100:02d}",
            due,
            f"debt-{i:06d}",
        )
        for i in range(start, start + count)
    ]


def run_import(db: Engine, rows: list[tuple[str, ...]], *, settings: Settings = NO_PIX):
    return import_file(
        actor=OPERATOR,
        engine=db,
        data=debtor_csv(rows),
        file_name="x.csv",
        lenient_documents=True,
        settings=settings,
    )


def charges(db: Engine) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, debt_id, amount, due_date, status, nosso_numero, barcode, "
                "digitable_line, pix_code, issued_at FROM charges ORDER BY id"
            )
        ).mappings()
        return [dict(row) for row in rows]


def assert_boleto_matches_charge(charge: dict, settings: Settings) -> None:
    beneficiary = beneficiary_from_settings(settings)
    cents = int(charge["amount"] * 100)
    assert charge["status"] == "issued"
    assert charge["issued_at"] is not None
    assert is_valid_barcode(charge["barcode"])
    parts = parse_barcode(charge["barcode"])
    assert parts.bank_code == beneficiary.bank_code
    assert parts.amount_cents == cents
    assert parts.factor == due_date_factor(charge["due_date"])
    assert barcode_from_digitable_line(charge["digitable_line"]) == charge["barcode"]
    # The bulk issue agrees with the one-charge functions, digit for digit.
    assert (charge["barcode"], charge["digitable_line"]) == issue_code(
        beneficiary=beneficiary,
        nosso_numero=charge["nosso_numero"],
        amount_cents=cents,
        due_date=charge["due_date"],
    )


# --------------------------------------------------------------------------
# The import issues
# --------------------------------------------------------------------------


def test_import_issues_a_valid_boleto_for_every_charge(db: Engine) -> None:
    result = run_import(db, sample_rows(40))

    assert (result.status, result.imported, result.issued) == ("done", 40, 40)
    issued = charges(db)
    assert len(issued) == 40
    for charge in issued:
        assert_boleto_matches_charge(charge, NO_PIX)
        assert charge["pix_code"] is None
        free_field = parse_caixa_sigcb_free_field(parse_barcode(charge["barcode"]).free_field)
        assert free_field.is_valid
        assert free_field.sequence == charge["nosso_numero"]


def test_nosso_numeros_are_unique(db: Engine) -> None:
    run_import(db, sample_rows(30))
    run_import(db, sample_rows(30, start=30))

    numbers = [charge["nosso_numero"] for charge in charges(db)]
    assert len(numbers) == 60
    assert len(set(numbers)) == 60
    assert all(number > 0 for number in numbers)


def test_issuing_again_issues_nothing_and_changes_nothing(db: Engine) -> None:
    run_import(db, sample_rows(25))
    before = charges(db)

    assert issue_boletos(db, settings=NO_PIX) == 0
    assert issue_boletos(db, settings=WITH_PIX) == 0
    assert charges(db) == before


def test_reimporting_the_same_file_issues_nothing_new(db: Engine) -> None:
    rows = sample_rows(20)
    first = run_import(db, rows)
    before = charges(db)

    again = run_import(db, rows)

    assert (first.issued, again.issued, again.duplicates) == (20, 0, 20)
    assert charges(db) == before


def test_an_overlapping_file_issues_only_its_new_charges(db: Engine) -> None:
    run_import(db, sample_rows(20))
    before = {charge["debt_id"]: charge for charge in charges(db)}

    result = run_import(db, sample_rows(30, start=10))

    assert (result.imported, result.duplicates, result.issued) == (20, 10, 20)
    after = {charge["debt_id"]: charge for charge in charges(db)}
    assert all(after[debt_id] == charge for debt_id, charge in before.items())
    assert all(charge["status"] == "issued" for charge in after.values())


def test_import_id_limits_the_issue_to_that_import(db: Engine) -> None:
    add_pending_charges(db, 5)
    add_pending_charges(db, 7)
    with db.connect() as conn:
        first, second = conn.execute(text("SELECT id FROM imports ORDER BY id")).scalars()

    assert issue_boletos(db, import_id=second, settings=NO_PIX) == 7
    with db.connect() as conn:
        pending = conn.execute(
            text("SELECT import_id, count(*) FROM charges WHERE status = 'pending' GROUP BY 1")
        ).all()
    assert pending == [(first, 5)]


def test_small_batches_issue_everything_once(db: Engine) -> None:
    add_pending_charges(db, 95)

    assert issue_boletos(db, batch_size=10, settings=NO_PIX) == 95
    issued = charges(db)
    assert {charge["status"] for charge in issued} == {"issued"}
    numbers = sorted(charge["nosso_numero"] for charge in issued)
    assert numbers == list(range(numbers[0], numbers[0] + 95))  # no number wasted
    for charge in issued[::7]:
        assert_boleto_matches_charge(charge, NO_PIX)


def test_two_issuers_at_once_issue_each_charge_exactly_once(db: Engine) -> None:
    add_pending_charges(db, 3000)
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def issuer() -> None:
        try:
            start.wait()
            counts.append(issue_boletos(db, batch_size=200, settings=NO_PIX))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=issuer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(counts) == 3000
    issued = charges(db)
    assert {charge["status"] for charge in issued} == {"issued"}
    numbers = sorted(charge["nosso_numero"] for charge in issued)
    # Distinct, and contiguous: no batch was computed by both issuers.
    assert numbers == list(range(numbers[0], numbers[0] + 3000))


def test_a_charge_paid_or_canceled_before_issuing_is_left_alone(db: Engine) -> None:
    add_pending_charges(db, 3)
    with db.begin() as conn:
        conn.execute(text("UPDATE charges SET status = 'canceled' WHERE id = 1"))
        conn.execute(text("UPDATE charges SET status = 'paid' WHERE id = 2"))

    assert issue_boletos(db, settings=NO_PIX) == 1
    statuses = [(c["id"], c["status"], c["barcode"] is None) for c in charges(db)]
    assert statuses == [(1, "canceled", True), (2, "paid", True), (3, "issued", False)]


def test_an_issued_boleto_cannot_change_or_go_back_to_pending(db: Engine) -> None:
    run_import(db, sample_rows(2))
    charge = charges(db)[0]
    other = charges(db)[1]

    for change in (
        "barcode = :other_barcode",
        "nosso_numero = nosso_numero + 1000000",
        "status = 'pending'",
        "nosso_numero = NULL, barcode = NULL, digitable_line = NULL, issued_at = NULL, "
        "pix_code = NULL, status = 'pending'",
    ):
        with pytest.raises(IntegrityError), db.begin() as conn:
            conn.execute(
                text(f"UPDATE charges SET {change} WHERE id = :id"),
                {"id": charge["id"], "other_barcode": other["barcode"]},
            )
    assert charges(db)[0] == charge


def test_charges_no_barcode_can_carry_stay_pending(db: Engine) -> None:
    # Due dates before 2000-07-03 have no due-date factor; the import accepts 2000..2099.
    rows = sample_rows(3)
    rows[1] = (*rows[1][:4], "2000-01-15", rows[1][5])

    result = run_import(db, rows)

    assert (result.imported, result.issued) == (3, 2)
    assert [c["status"] for c in charges(db)] == ["issued", "pending", "issued"]


# --------------------------------------------------------------------------
# Due-date factor, layouts, Pix
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "factor"),
    [
        ("2025-02-21", 9999),  # the last day of the first cycle
        ("2025-02-22", 1000),  # the factor restarts
        ("2025-02-23", 1001),
        ("2025-03-10", 1016),
        ("2030-12-31", 3138),
    ],
)
def test_due_date_factor_across_the_2025_reset(db: Engine, due: str, factor: int) -> None:
    run_import(db, sample_rows(1, due=due))

    (charge,) = charges(db)
    assert parse_barcode(charge["barcode"]).factor == factor
    assert_boleto_matches_charge(charge, NO_PIX)


def test_banco_do_brasil_layout(db: Engine) -> None:
    run_import(db, sample_rows(5), settings=BB)

    for charge in charges(db):
        assert_boleto_matches_charge(charge, BB)
        assert charge["barcode"].startswith("0019")
        free_field = parse_bb_convenio7_free_field(parse_barcode(charge["barcode"]).free_field)
        assert (free_field.convenio, free_field.wallet) == ("1234567", "17")
        assert free_field.sequence == charge["nosso_numero"]


def test_pix_code_for_every_charge_when_a_key_is_set(db: Engine) -> None:
    result = run_import(db, sample_rows(30), settings=WITH_PIX)

    assert result.issued == 30
    for charge in charges(db):
        assert_boleto_matches_charge(charge, WITH_PIX)
        assert is_valid_pix_payload(charge["pix_code"])
        pix = parse_pix_payload(charge["pix_code"])
        assert pix.key == WITH_PIX.pix_key
        assert pix.amount == charge["amount"]
        assert pix.txid == pix_txid(charge["nosso_numero"])
        assert (pix.merchant_name, pix.merchant_city) == ("Fundo Exemplo", "Sao Paulo")


def test_pix_key_from_the_environment(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIX_KEY", "cobranca@example.com")
    settings = Settings.from_env()

    run_import(db, sample_rows(3), settings=settings)

    assert all(
        parse_pix_payload(charge["pix_code"]).key == "cobranca@example.com"
        for charge in charges(db)
    )


@pytest.mark.parametrize(
    "cents",
    [1, 9, 10, 99, 100, 101, 999, 1_000, 12_345, 100_000, 781_100, 9_999_999_999],
)
def test_bulk_pix_codes_equal_pix_payload(cents: int) -> None:
    numbers = [1, 42, 9_999_999_999]
    codes = pix_codes(
        settings=WITH_PIX,
        amounts_cents=np.array([cents] * len(numbers)),
        nosso_numeros=np.array(numbers),
    )
    assert codes == [
        pix_payload(
            key=WITH_PIX.pix_key,
            merchant_name=WITH_PIX.pix_merchant_name,
            merchant_city=WITH_PIX.pix_merchant_city,
            amount=Decimal(cents) / 100,
            txid=pix_txid(number),
        )
        for number in numbers
    ]


def test_bulk_pix_codes_on_random_amounts() -> None:
    rng = np.random.default_rng(7)
    cents = rng.integers(1, 10_000_000_000, 2_000)
    numbers = rng.integers(1, 10_000_000_000, 2_000)
    codes = pix_codes(settings=WITH_PIX, amounts_cents=cents, nosso_numeros=numbers)
    assert codes is not None
    for code, amount, number in zip(codes, cents.tolist(), numbers.tolist(), strict=True):
        assert code == pix_payload(
            key=WITH_PIX.pix_key,
            merchant_name=WITH_PIX.pix_merchant_name,
            merchant_city=WITH_PIX.pix_merchant_city,
            amount=Decimal(amount) / 100,
            txid=pix_txid(number),
        )


def test_no_pix_codes_without_a_key() -> None:
    assert (
        pix_codes(settings=NO_PIX, amounts_cents=np.array([100]), nosso_numeros=np.array([1]))
        is None
    )


def test_wrong_boleto_settings_are_an_operator_error(db: Engine) -> None:
    wrong = Settings(boleto_layout="caixa_sigcb", bank_code="001")
    with pytest.raises(OperatorError, match="BOLETO_LAYOUT"):
        beneficiary_from_settings(wrong)
    with pytest.raises(OperatorError, match="PIX_KEY"):
        issue_boletos(db, settings=Settings(pix_key="x" * 80))


# --------------------------------------------------------------------------
# The PDF, on demand
# --------------------------------------------------------------------------


def pdf_text(pdf: bytes) -> bytes:
    """The page content of a reportlab PDF (ASCII85 over Flate streams), decoded."""
    streams = re.findall(rb"stream\r?\n(.*?)endstream", pdf, flags=re.DOTALL)
    return b"".join(
        zlib.decompress(base64.a85decode(stream.strip().removesuffix(b"~>"), adobe=False))
        for stream in streams
    )


def test_pdf_of_an_issued_charge(db: Engine) -> None:
    run_import(db, sample_rows(2), settings=WITH_PIX)
    charge = charges(db)[1]

    pdf = boleto_pdf_for_charge(db, charge["id"], settings=WITH_PIX)

    assert pdf.startswith(b"%PDF")
    content = pdf_text(pdf)
    assert charge["digitable_line"].encode() in content
    assert charge["debt_id"].encode() in content


def test_pdf_of_a_pending_charge_is_refused(db: Engine) -> None:
    add_pending_charges(db, 1)
    charge_id = scalar(db, "SELECT id FROM charges")
    with pytest.raises(OperatorError, match=r"^This charge has no boleto yet\.$"):
        boleto_pdf_for_charge(db, charge_id, settings=NO_PIX)


def test_pdf_of_a_canceled_or_missing_charge_is_refused(db: Engine) -> None:
    run_import(db, sample_rows(1))
    with db.begin() as conn:  # its id: wherever earlier tests left the open partition
        charge_id = conn.execute(
            text("UPDATE charges SET status = 'canceled' RETURNING id")
        ).scalar_one()
    with pytest.raises(OperatorError, match="canceled"):
        boleto_pdf_for_charge(db, charge_id, settings=NO_PIX)
    with pytest.raises(OperatorError, match="No charge"):
        boleto_pdf_for_charge(db, charge_id + 1, settings=NO_PIX)
