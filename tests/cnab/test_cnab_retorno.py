"""The retorno: a round trip through the bank (confirmations, a rejection, liquidações
full, partial and over, a baixa), exact statuses, payments and sums; the same file again
changes nothing; a file that is not a retorno of this bank is refused and writes nothing."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billing.accounts.access import Forbidden
from billing.charges.browsing import charge_page
from billing.cnab.service import (
    generate_remessa,
    import_retorno,
    retorno_history,
    retorno_report,
)
from billing.core.filters import ChargeFilter
from billing.core.settings import get_settings
from billing.notices.planning import plan_notices
from billing.payments.service import cancel_charge, record_payment
from db.overview import charge_totals_drift
from tests.support.actors import OPERATOR, VIEWER
from tests.support.cnab_bank import (
    Title,
    bank_retorno,
    bank_tables,  # noqa: F401 (the bank_db fixture)
    bb_settings,
    remessa_titles,
    sequence_of,
)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows

PAID_ON, CREDITED_ON = date(2024, 5, 13), date(2024, 5, 14)


def charges_by_sequence(db: Engine) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT * FROM charges ORDER BY id")).mappings()
        return [dict(row) for row in rows]


def snapshot(db: Engine) -> dict[str, list]:
    """Everything a retorno may change, to compare before and after."""
    queries = {
        "charges": "SELECT id, status, registered_at, registration_rejection, written_off_at "
        "FROM charges ORDER BY id",
        "payments": "SELECT id, charge_id, paid_amount, paid_at, source FROM payments ORDER BY id",
        "events": "SELECT id, charge_id, kind, from_status, to_status FROM charge_events "
        "ORDER BY id",
        "totals": "SELECT status, sum(charges), sum(amount), sum(received) FROM charge_totals "
        "GROUP BY status ORDER BY status",
    }
    with db.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in queries.items()}


def round_trip_titles(charges: list[dict]) -> list[Title]:
    """What the bank says about eight boletos of the remessa, and one it never had."""
    c = charges
    confirm = [Title("02", x["nosso_numero"], x["amount"], x["due_date"]) for x in c[:7]]
    paid = [
        (c[0], c[0]["amount"]),  # in full
        (c[1], Decimal("50.00")),  # in part
        (c[2], c[2]["amount"] + Decimal("10.00")),  # over
    ]
    liquidations = [
        Title(
            "06", x["nosso_numero"], x["amount"], x["due_date"], paid=amount,
            credited=amount - Decimal("1.50"), fee=Decimal("1.50"), occurred_on=PAID_ON,
            credited_on=CREDITED_ON, payer_name=x["payer_name"],
        )
        for x, amount in paid
    ]  # fmt: skip
    return [
        *confirm,
        Title("03", c[7]["nosso_numero"], c[7]["amount"], c[7]["due_date"], reasons="4548"),
        *liquidations,
        Title("09", c[3]["nosso_numero"], c[3]["amount"], c[3]["due_date"], occurred_on=PAID_ON),
        Title("28", c[4]["nosso_numero"], c[4]["amount"], fee=Decimal("0.90")),
        Title("02", 9_999_999_999, Decimal("1.00")),  # not one of ours
    ]


def test_round_trip_through_the_bank_then_the_same_file_again_changes_nothing(
    bank_db: Engine,
    tmp_path: Path,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(8)))
    remessa = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r.rem")
    sent = remessa_titles((tmp_path / "r.rem").read_bytes(), remessa_layout())
    charges = charges_by_sequence(bank_db)
    assert [sequence_of(p, get_settings()) for p in sent] == [x["nosso_numero"] for x in charges]
    assert remessa.registrations == 8

    data = bank_retorno(round_trip_titles(charges), nsa=41)
    result = import_retorno(bank_db, actor=OPERATOR, data=data, file_name="ret.ret")

    assert result.status == "done", result.error
    assert result.nsa == 41 and result.entries == 14
    assert result.counts == {
        "registered": 7, "rejected": 1, "liquidated": 3, "written_off": 1, "unknown": 1,
        "ignored": 1,
    }  # fmt: skip
    c = charges_by_sequence(bank_db)
    statuses = [x["status"] for x in c]
    assert statuses == ["paid", "partially_paid", "paid", "canceled", "registered",
                        "registered", "registered", "issued"]  # fmt: skip
    assert all(x["registered_at"] is not None for x in c[:7]) and c[7]["registered_at"] is None
    assert c[7]["registration_rejection"] == (
        "03 Entrada rejeitada: 45 Nome do pagador não informado; 48 CEP inválido"
    )
    assert c[3]["written_off_at"] is not None

    with bank_db.connect() as conn:
        payments = conn.execute(
            text("SELECT charge_id, paid_amount, paid_at, paid_by, source, payload "
                 "FROM payments ORDER BY charge_id")
        ).mappings().all()  # fmt: skip
    assert [(p["charge_id"], p["paid_amount"]) for p in payments] == [
        (c[0]["id"], c[0]["amount"]),
        (c[1]["id"], Decimal("50.00")),
        (c[2]["id"], c[2]["amount"] + Decimal("10.00")),
    ]
    assert {p["source"] for p in payments} == {"retorno"}
    assert payments[0]["paid_by"] == c[0]["payer_name"].upper()
    assert payments[0]["paid_at"].date() == PAID_ON
    payload = payments[2]["payload"]
    assert payload["creditedAmount"] == str(c[2]["amount"] + Decimal("8.50"))
    assert payload["fee"] == "1.50" and payload["creditedOn"] == "2024-05-14"
    assert payload["retornoId"] == result.retorno_id

    paid_total = c[0]["amount"] + Decimal("50.00") + c[2]["amount"] + Decimal("10.00")
    assert result.paid_amount == paid_total
    assert result.credited_amount == paid_total - Decimal("4.50")
    assert result.fees == Decimal("4.50") + Decimal("0.90")
    history = retorno_history(bank_db, actor=VIEWER)
    assert history[0]["status"] == "done" and history[0]["paid_amount"] == paid_total
    report = retorno_report(bank_db, actor=VIEWER, retorno_id=result.retorno_id)
    unknown = [row for row in report if row["outcome"] == "unknown"]
    assert len(unknown) == 1 and "9999999999" in unknown[0]["detail"]
    over = next(row for row in report if row["charge_id"] == c[2]["id"] and row["movement"] == "06")
    assert "Overpaid by 10.00" in over["detail"]
    with bank_db.connect() as conn:  # the Overview's kept figures followed every change
        assert charge_totals_drift(conn) == []

    before = snapshot(bank_db)
    again = import_retorno(bank_db, actor=OPERATOR, data=data, file_name="ret.ret")
    assert again.status == "done"
    assert again.counts == {"unchanged": 12, "unknown": 1, "ignored": 1}
    assert snapshot(bank_db) == before

    # The next remessa: nothing to register; the operator's cancellation is written off,
    # the bank's own baixa (c[3]) and the rejected boleto (c[7]) are not.
    cancel_charge(bank_db, charge_id=c[4]["id"], reason="settled apart", actor=OPERATOR)
    cancel_charge(bank_db, charge_id=c[7]["id"], reason="wrong data", actor=OPERATOR)
    following = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r2.rem")
    assert (following.registrations, following.write_offs) == (0, 1)
    p = remessa_titles((tmp_path / "r2.rem").read_bytes(), remessa_layout())
    assert [(x["movement"], sequence_of(x, get_settings())) for x in p] == [
        ("02", c[4]["nosso_numero"])
    ]


def remessa_layout():
    from billing.cnab.service import bank_layout

    return bank_layout(get_settings())


def test_banco_do_brasil_round_trip(bank_db: Engine, tmp_path: Path) -> None:
    settings = bb_settings()
    run_import(bank_db, debtor_csv(sample_rows(2)))
    generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "bb.rem", settings=settings)
    c = charges_by_sequence(bank_db)
    titles = [
        Title("02", c[0]["nosso_numero"], c[0]["amount"]),
        Title("06", c[1]["nosso_numero"], c[1]["amount"], paid=c[1]["amount"],
              credited=c[1]["amount"], occurred_on=PAID_ON, credited_on=CREDITED_ON),
    ]  # fmt: skip
    data = bank_retorno(titles, settings=settings)
    result = import_retorno(
        bank_db, actor=OPERATOR, data=data, file_name="bb.ret", settings=settings
    )
    assert result.counts == {"registered": 1, "liquidated": 1}
    assert [x["status"] for x in charges_by_sequence(bank_db)] == ["registered", "paid"]
    # The same file under CAIXA's settings is another bank's: refused.
    refused = import_retorno(bank_db, actor=OPERATOR, data=data, file_name="bb.ret")
    assert refused.status == "refused"
    assert refused.error == (
        "This file is from bank 001 (Banco do Brasil), but the configured bank is 104 "
        "(CAIXA) (BANK_CODE)."
    )


def test_a_payment_the_webhook_recorded_is_not_recorded_again(
    bank_db: Engine,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(1)))
    generate_remessa(bank_db, actor=OPERATOR)
    charge = charges_by_sequence(bank_db)[0]
    record_payment(
        bank_db, debt_id=charge["debt_id"], paid_at="2024-05-13 15:20:00",
        paid_amount=charge["amount"], paid_by="Debtor 0", source="webhook",
        payload={"debtId": charge["debt_id"]}, actor=OPERATOR,
    )  # fmt: skip
    data = bank_retorno([
        Title("06", charge["nosso_numero"], charge["amount"], paid=charge["amount"],
              credited=charge["amount"], occurred_on=PAID_ON, credited_on=CREDITED_ON)
    ])  # fmt: skip
    result = import_retorno(bank_db, actor=OPERATOR, data=data, file_name="r.ret")
    assert result.counts == {"unchanged": 1}
    assert scalar(bank_db, "SELECT count(*) FROM payments") == 1
    assert charges_by_sequence(bank_db)[0]["status"] == "paid"


def test_a_payment_a_retorno_recorded_is_not_recorded_again_by_the_webhook(
    bank_db: Engine,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(1)))
    generate_remessa(bank_db, actor=OPERATOR)
    charge = charges_by_sequence(bank_db)[0]
    data = bank_retorno([
        Title("06", charge["nosso_numero"], charge["amount"], paid=charge["amount"],
              credited=charge["amount"], occurred_on=PAID_ON, credited_on=CREDITED_ON)
    ])  # fmt: skip
    assert import_retorno(bank_db, actor=OPERATOR, data=data, file_name="r.ret").counts == {
        "liquidated": 1
    }

    def webhook(paid_at: str, amount: Decimal) -> str:
        return record_payment(
            bank_db, debt_id=charge["debt_id"], paid_at=paid_at, paid_amount=amount,
            paid_by="Debtor 0", source="webhook", payload={"debtId": charge["debt_id"]},
            actor=OPERATOR,
        ).status  # fmt: skip

    # The bank's webhook reports the same liquidação (same charge, amount, local day).
    assert webhook(f"{PAID_ON.isoformat()} 15:20:00", charge["amount"]) == "duplicate"
    assert scalar(bank_db, "SELECT count(*) FROM payments") == 1
    assert scalar(bank_db, "SELECT sum(paid_amount) FROM payments") == charge["amount"]
    # Another day, or another amount, is another payment.
    assert webhook("2024-05-20 10:00:00", Decimal("1.00")) == "recorded"
    assert scalar(bank_db, "SELECT count(*) FROM payments") == 2


def _valid(bank_db: Engine) -> bytes:
    charge = charges_by_sequence(bank_db)[0]
    return bank_retorno([Title("02", charge["nosso_numero"], charge["amount"])])


def _replace_line(data: bytes, index: int, new: str) -> bytes:
    lines = data.decode("ascii").split("\r\n")
    lines[index] = new
    return "\r\n".join(lines).encode("ascii")


REFUSALS = {
    "empty": (lambda d: b"", "The file is empty."),
    "a debtor CSV": (
        lambda d: b"name,governmentId,email\nA,1,a@b.c\n",
        "Line 1 has 23 characters; every line of a CNAB 240 file has 240, so this is not a "
        "CNAB 240 retorno.",
    ),
    "binary": (lambda d: b"\x89PNG\x00\x00" * 50, "The file is binary, not a CNAB 240 text file."),
    "a short line": (
        lambda d: _replace_line(d, 2, d.decode().split("\r\n")[2][:239]),
        "Line 3 has 239 characters; every line of a CNAB 240 file has 240, so this is not a "
        "CNAB 240 retorno.",
    ),
    "a remessa": (
        lambda d: _replace_line(d, 0, d.decode()[:142] + "1" + d.decode()[143:240]),
        "This is a remessa (a file sent to the bank), not a retorno.",
    ),
    "another beneficiary": (
        lambda d: _replace_line(d, 0, d.decode()[:58] + "999999" + d.decode()[64:240]),
        "This retorno is for beneficiary 999999, not this fund's 005507 (BENEFICIARY_CODE).",
    ),
    "cut short": (
        lambda d: "\r\n".join(d.decode().split("\r\n")[:-3]).encode(),
        "The last line is not a CNAB 240 file trailer: the file is incomplete.",
    ),
    "a T without its U": (
        lambda d: _without_line(d, 3),
        "The segment T of line 3 has no segment U after it.",
    ),
    "a bad date": (
        lambda d: _replace_line(
            d, 3, d.decode().split("\r\n")[3][:137] + "31022024" + d.decode().split("\r\n")[3][145:]
        ),
        "Line 4: '31022024' in positions 138-145 (occurred_on) is not a date (DDMMAAAA).",
    ),
}


def _without_line(data: bytes, index: int) -> bytes:
    lines = data.decode("ascii").split("\r\n")
    del lines[index]
    trailer = lines[-2]
    lines[-2] = trailer[:23] + f"{len(lines) - 1:06d}" + trailer[29:]
    return "\r\n".join(lines).encode("ascii")


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_file_that_is_not_a_retorno_of_this_bank_is_refused_and_writes_nothing(
    bank_db: Engine,
    case: str,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(1)))
    generate_remessa(bank_db, actor=OPERATOR)
    make, message = REFUSALS[case]
    before = snapshot(bank_db)
    retornos = scalar(bank_db, "SELECT count(*) FROM retornos")
    audit = scalar(bank_db, "SELECT count(*) FROM audit_events")

    result = import_retorno(bank_db, actor=OPERATOR, data=make(_valid(bank_db)), file_name="x")

    assert result.status == "refused"
    assert result.error == message
    assert snapshot(bank_db) == before
    assert scalar(bank_db, "SELECT count(*) FROM retornos") == retornos
    assert scalar(bank_db, "SELECT count(*) FROM audit_events") == audit


def test_a_viewer_may_read_the_history_but_not_import(bank_db: Engine) -> None:
    with pytest.raises(Forbidden):
        import_retorno(bank_db, actor=VIEWER, data=b"", file_name="x")
    assert retorno_history(bank_db, actor=VIEWER) == []


def test_registered_charges_are_open_overdue_and_filtered(
    bank_db: Engine,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(3)))
    generate_remessa(bank_db, actor=OPERATOR)
    c = charges_by_sequence(bank_db)
    import_retorno(
        bank_db,
        actor=OPERATOR,
        data=bank_retorno([Title("02", c[0]["nosso_numero"]), Title("02", c[1]["nosso_numero"]),
                           Title("03", c[2]["nosso_numero"], reasons="48")]),
        file_name="r.ret",
    )  # fmt: skip
    today = date(2024, 6, 1)  # the sample charges fell due on 2024-05-10

    def ids(*statuses: str) -> list[int]:
        page = charge_page(bank_db, charge_filter=ChargeFilter(statuses=statuses), today=today)
        return [row["id"] for row in page.rows]

    assert ids("registered") == [c[0]["id"], c[1]["id"]]
    assert ids("registration_rejected") == [c[2]["id"]]
    assert sorted(ids("overdue")) == [x["id"] for x in c]
    link = ChargeFilter(statuses=("registration_rejected",)).to_query_params()
    assert ChargeFilter.from_query_params(link)[0].statuses == ("registration_rejected",)


def test_notices_wait_for_the_registration_when_the_setting_asks(
    bank_db: Engine,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(2)))
    generate_remessa(bank_db, actor=OPERATOR)
    c = charges_by_sequence(bank_db)
    import_retorno(
        bank_db, actor=OPERATOR, data=bank_retorno([Title("02", c[0]["nosso_numero"])]),
        file_name="r.ret",
    )  # fmt: skip
    today = date(2024, 5, 1)  # before the due date: the 'issued' notice is due
    requires = dataclasses.replace(get_settings(), notice_requires_registration=True)
    planned = plan_notices(bank_db, today=today, settings=requires)
    assert planned["issued"] == 1
    with bank_db.connect() as conn:
        charged = conn.execute(text("SELECT charge_id FROM notices")).scalars().all()
    assert charged == [c[0]["id"]]
    planned = plan_notices(bank_db, today=today)  # without the setting: every boleto
    assert planned["issued"] == 1
