"""The fund as the beneficiary of its boletos, at Caixa and at Banco do Brasil."""

from __future__ import annotations

import dataclasses

from billing.boletos.codes import Beneficiary


def caixa(code: str = "005507", **changes: object) -> Beneficiary:
    """Caixa's SIGCB layout; `changes` replace any other field (name, address...)."""
    beneficiary = Beneficiary(
        bank_code="104",
        agency="1234",
        account="4321",
        account_digit="3",
        wallet="RG",
        beneficiary_code=code,
        name="Fundo Exemplo FIDC",
        document="11222333000181",
        layout="caixa_sigcb",
    )
    return dataclasses.replace(beneficiary, **changes)  # type: ignore[arg-type]


def banco_do_brasil() -> Beneficiary:
    return Beneficiary(
        bank_code="001",
        agency="9999",
        agency_digit="6",
        account="99999",
        account_digit="7",
        wallet="18",
        beneficiary_code="7777777",
        name="Fundo Exemplo FIDC",
        document="11222333000181",
        layout="bb_convenio7",
    )
