"""The refusals of a debtor file, of a retorno and of the bank's settings come out in the
language served when they are made: Portuguese for the dashboard's operators, English
exactly as before for whoever asked for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from billing.boletos.issuing import beneficiary_from_settings
from billing.cnab.retorno import read_retorno
from billing.cnab.service import bank_layout, save_debtor_address
from billing.core.errors import OperatorError
from billing.core.i18n import _, language_used
from billing.core.settings import get_settings
from billing.imports.reading import read_debtor_file
from billing.imports.service import import_file
from tests.support.actors import operator

HEADER = "name,governmentId,email,debtAmount,debtDueDate,debtId"
LIMIT = 16 * 1024 * 1024


def refusal(raise_it: Callable[[], object], language: str) -> OperatorError:
    """The OperatorError `raise_it` raises while `language` is served."""
    with language_used(language), pytest.raises(OperatorError) as raised:
        raise_it()
    return raised.value


def read(data: bytes) -> Callable[[], object]:
    return lambda: read_debtor_file(data, max_bytes=LIMIT)


def read_as_retorno(data: bytes) -> Callable[[], object]:
    settings = get_settings()
    return lambda: read_retorno(
        data, layout=bank_layout(settings), beneficiary=beneficiary_from_settings(settings)
    )


@pytest.mark.parametrize(
    ("raise_it", "portuguese", "english"),
    [
        (read(b""), "O arquivo está vazio.", "The file is empty."),
        (
            read(f"{HEADER}\nAna,1,2\n".encode()),
            "A linha 2 tem 3 campos; o cabeçalho tem 6.",
            "Line 2 has 3 fields, the header has 6.",
        ),
        (
            read(f"{HEADER}\nAna,1,a@b.co,10,2030-01-31,D-1,extra\n".encode()),
            "A linha 2 tem 7 campos; o cabeçalho tem 6. "
            "Um valor que contém vírgula deve vir entre aspas duplas.",
            "Line 2 has 7 fields, the header has 6. "
            "A value that contains a comma must be enclosed in double quotes.",
        ),
        (
            read(b"name,email\nAna,a@b.co\n"),
            "Faltam colunas obrigatórias: governmentId, debtAmount, debtDueDate, debtId. "
            "O cabeçalho deve conter name, governmentId, email, debtAmount, debtDueDate, debtId.",
            "Required column(s) missing: governmentId, debtAmount, debtDueDate, debtId. "
            "The header must contain name, governmentId, email, debtAmount, debtDueDate, debtId.",
        ),
        (
            lambda: read_debtor_file(
                f"{HEADER}\nAna,1,a@b.co,10,2030-01-31,D-1\n".encode(),
                max_bytes=LIMIT,
                mapping={"debtId": "Contrato"},
            ),
            "O mapeamento de colunas tira debtId de uma coluna chamada 'Contrato', e este "
            "arquivo não tem essa coluna. Escolha as colunas de novo.",
            "The column mapping takes debtId from a column named 'Contrato', and this file "
            "has no such column. Choose the columns again.",
        ),
        (read_as_retorno(b""), "O arquivo está vazio.", "The file is empty."),
        (
            read_as_retorno(b"0" * 10 + b"\n"),
            "A linha 1 tem 10 caracteres; toda linha de um arquivo CNAB 240 tem 240, então "
            "isto não é um retorno CNAB 240.",
            "Line 1 has 10 characters; every line of a CNAB 240 file has 240, so this is not "
            "a CNAB 240 retorno.",
        ),
        (
            read_as_retorno(b"1" * 240 + b"\n" + b"9" * 240 + b"\n"),
            "A primeira linha não é um header de arquivo CNAB 240.",
            "The first line is not a CNAB 240 file header.",
        ),
        (
            lambda: bank_layout(dataclasses.replace(get_settings(), boleto_layout="nenhum")),
            "Não há layout CNAB 240 para BOLETO_LAYOUT 'nenhum' com BANK_CODE "
            f"{get_settings().bank_code!r}; use caixa_sigcb com 104 ou bb_convenio7 com 001.",
            "There is no CNAB 240 layout for BOLETO_LAYOUT 'nenhum' with BANK_CODE "
            f"{get_settings().bank_code!r}; use caixa_sigcb with 104 or bb_convenio7 with 001.",
        ),
    ],
    ids=[
        "empty",
        "fewer-fields",
        "more-fields",
        "missing-columns",
        "mapping",
        "retorno-empty",
        "retorno-width",
        "retorno-header",
        "bank-layout",
    ],
)
def test_a_refusal_speaks_the_language_served_when_it_is_made(
    raise_it: Callable[[], object], portuguese: str, english: str
) -> None:
    assert refusal(raise_it, "pt_BR").message == portuguese
    assert refusal(raise_it, "en").message == english


def test_a_retorno_refused_is_titled_in_the_language_served() -> None:
    error = refusal(read_as_retorno(b""), "pt_BR")
    assert error.title == "Retorno recusado"
    with language_used("pt_BR"):
        assert _(error.title) == "Retorno recusado"
    assert refusal(read_as_retorno(b""), "en").title == "Retorno refused"


def test_an_address_a_bank_cannot_use_is_refused_in_portuguese(db: Engine) -> None:
    def save() -> None:
        save_debtor_address(
            db,
            actor=operator(),
            debtor_id=1,
            street="",
            district="Centro",
            zip_code="123",
            city="Recife",
            state="XX",
        )

    error = refusal(save, "pt_BR")
    assert error.title == "Endereço"
    assert error.message == (
        "O endereço não foi salvo: o logradouro está vazio; o CEP '123' não tem 8 dígitos; "
        "'XX' não é uma UF brasileira."
    )
    assert refusal(save, "en").message == (
        "The address was not saved: the street is empty; the CEP '123' is not 8 digits; "
        "'XX' is not a Brazilian state (UF)."
    )


def test_an_import_refused_while_its_file_is_read_on_a_thread_says_so_in_portuguese(
    db: Engine,
) -> None:
    """The pieces are read on a thread of their own (read ahead): the refusal made there
    is in the operator's language, not the process's default."""
    seen: list[str] = []
    with language_used("pt_BR"):
        result = import_file(
            engine=db,
            actor=operator(),
            data=b"",
            file_name="vazio.csv",
            lenient_documents=False,
            on_progress=lambda fraction, message: seen.append(message),
        )
    assert (result.status, result.error) == ("refused", "O arquivo está vazio.")
    assert seen[0] == "Lendo e validando o arquivo"
