"""The bank's side of a CNAB 240 exchange, for tests: the retorno a bank would send
back for a remessa, written with the same layout tables the product reads it with."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from billing.boletos.issuing import beneficiary_from_settings
from billing.cnab.layouts import BankLayout
from billing.cnab.remessa import RETORNO, account_values, cnab_text
from billing.cnab.service import bank_layout
from billing.core.settings import Settings, get_settings


def bb_settings(**changes: Any) -> Settings:
    """Banco do Brasil, convênio de 7 dígitos, carteira 17."""
    return dataclasses.replace(
        get_settings(),
        boleto_layout="bb_convenio7",
        bank_code="001",
        beneficiary_code="1234567",
        beneficiary_wallet="17",
        **changes,
    )


def ddmmyyyy(day: date | None) -> str:
    return day.strftime("%d%m%Y") if day else "00000000"


def cents(amount: Decimal | str | int) -> int:
    return int(Decimal(amount) * 100)


@dataclass(frozen=True)
class Title:
    """One title the bank reports: an occurrence and what it says about the money."""

    movement: str
    nosso_numero: int
    amount: Decimal = Decimal("0")
    due_date: date | None = None
    paid: Decimal = Decimal("0")
    credited: Decimal = Decimal("0")
    fee: Decimal = Decimal("0")
    reasons: str = ""
    occurred_on: date | None = None
    credited_on: date | None = None
    payer_name: str = "PAGADOR"


def remessa_titles(remessa: bytes, layout: BankLayout) -> list[dict[str, str]]:
    """The segment P lines of a remessa, read with the layout's table."""
    titles = []
    for line in remessa.decode("ascii").split("\r\n"):
        if len(line) == 240 and line[7] == "3" and line[13] == "P":
            titles.append(layout.segment_p.read(line))
    return titles


def sequence_of(p: Mapping[str, str], settings: Settings) -> int:
    if settings.boleto_layout == "caixa_sigcb":
        return int(p["nosso_numero"])
    return int(p["nosso_numero"].strip()[7:])


def bank_retorno(
    titles: Iterable[Title],
    *,
    settings: Settings | None = None,
    nsa: int = 1,
    day: date = date(2024, 5, 20),
) -> bytes:
    """A retorno file with a T and a U for each title, headers and trailers counted."""
    settings = settings or get_settings()
    layout = bank_layout(settings)
    beneficiary = beneficiary_from_settings(settings)
    account = account_values(layout, beneficiary, settings.beneficiary_wallet_variation)
    lines = [
        layout.file_header.write(
            {**account, "file_kind": RETORNO, "generated_on": ddmmyyyy(day),
             "generated_time": "101500", "nsa": nsa, "company_reserved": "RETORNO-PRODUCAO"}
        ),
        layout.batch_header.write(
            {**account, "batch": 1, "operation": "T", "file_number": nsa,
             "recorded_on": ddmmyyyy(day)}
        ),
    ]  # fmt: skip
    count = total = 0
    for title in titles:
        number = (
            title.nosso_numero
            if settings.boleto_layout == "caixa_sigcb"
            else f"{beneficiary.beneficiary_code}{title.nosso_numero:010d}"
        )
        t = {
            **account,
            "batch": 1,
            "sequence": len(lines) - 1,
            "movement": title.movement,
            "nosso_numero_modality": "14",
            "nosso_numero": number,
            "nosso_numero_digit": 0,  # CAIXA's T only (57); not checked on reading
            "wallet_code": 1,
            "document_number": "",
            "due_date": ddmmyyyy(title.due_date),
            "amount": cents(title.amount),
            "collecting_bank": layout.bank_code,
            "collecting_agency": 1234,
            "collecting_agency_digit": "0",
            "company_reference": "",
            "currency": "09",
            "payer_document_type": 1,
            "payer_document": "52998224725",
            "payer_name": cnab_text(title.payer_name),
            "contract": "",
            "fee": cents(title.fee),
            "reasons": title.reasons,
        }
        u = {
            "bank_code": layout.bank_code,
            "batch": 1,
            "sequence": len(lines),
            "movement": title.movement,
            "interest_fine": 0,
            "discount": 0,
            "rebate": 0,
            "iof": 0,
            "paid_amount": cents(title.paid),
            "credited_amount": cents(title.credited),
            "other_expenses": 0,
            "other_credits": 0,
            "occurred_on": ddmmyyyy(title.occurred_on),
            "credited_on": ddmmyyyy(title.credited_on),
            "payer_occurrence": "",
            "payer_occurrence_date": 0,
            "payer_occurrence_amount": 0,
            "payer_occurrence_text": "",
            "correspondent_bank": 0,
            "correspondent_nosso_numero": "",
        }
        lines.append(layout.segment_t.write(t))
        lines.append(layout.segment_u.write(u))
        count += 1
        total += cents(title.amount)
    lines.append(
        layout.batch_trailer.write(
            {"bank_code": layout.bank_code, "batch": 1, "record_count": len(lines),
             "simple_count": count, "simple_amount": total}
        )
    )  # fmt: skip
    lines.append(
        layout.file_trailer.write(
            {"bank_code": layout.bank_code, "batch_count": 1, "record_count": len(lines) + 1}
        )
    )
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@pytest.fixture(name="bank_db")
def bank_tables(db: Engine, owner_engine: Engine) -> Engine:
    """The charges' tables emptied, and the bank files' too (with the NSA counter)."""
    with owner_engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE remessa_items, remessas, retorno_items, retornos, "
                "bank_file_sequences, debtor_addresses RESTART IDENTITY CASCADE"
            )
        )
    return db
