"""Files from other systems: guessing which of their columns is which, mapping, saving."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from billing.core.errors import FileRefused, OperatorError
from billing.imports.mapping import (
    check_columns,
    guess_columns,
    headers_key,
    mapping_for_header,
    mapping_named,
    save_mapping,
)
from billing.imports.reading import ColumnsNotFound, peek_rows, read_debtor_file
from tests.support.actors import OPERATOR, VIEWER

ERP_HEADER = ["Nome do Cliente", "Documento", "E-mail", "Valor Original", "Vencimento", "Contrato"]
ERP_FILE = (
    b"Nome do Cliente;Documento;E-mail;Valor Original;Vencimento;Contrato;Filial\n"
    b"Ana Souza;123.456.789-09;ana@example.com;1.000,50;31/10/2026;C-1;SP\n"
    b"Bruno Lima;98765432100;bruno@example.com.br;200,00;01/11/2026;C-2;RJ\n"
)
ERP_COLUMNS = {
    "name": "Nome do Cliente",
    "governmentId": "Documento",
    "email": "E-mail",
    "debtAmount": "Valor Original",
    "debtDueDate": "Vencimento",
    "debtId": "Contrato",
}


def test_a_file_from_another_system_is_refused_with_its_header() -> None:
    with pytest.raises(ColumnsNotFound) as refused:
        read_debtor_file(ERP_FILE, max_bytes=10**6)
    assert refused.value.header == [*ERP_HEADER, "Filial"]
    assert refused.value.delimiter == ";"
    assert refused.value.missing == ["name", "debtAmount", "debtId"]  # the rest by aliases


def test_peek_gives_the_header_and_first_rows_as_text() -> None:
    header, rows = peek_rows(ERP_FILE)
    assert header == [*ERP_HEADER, "Filial"]
    first = ["Ana Souza", "123.456.789-09", "ana@example.com", "1.000,50", "31/10/2026", "C-1"]
    assert rows[0] == [*first, "SP"]
    assert len(rows) == 2


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        (  # by the names, in Portuguese
            [*ERP_HEADER, "Filial"],
            ["Ana Souza", "123.456.789-09", "a@b.com", "1.000,50", "31/10/2026", "C-1", "SP"],
            ERP_COLUMNS,
        ),
        (  # by the values alone: names that say nothing
            ["c1", "c2", "c3", "c4", "c5", "c6"],
            ["6f1c2b1e-8a3c-4a5b-9d2e-1f2a3b4c5d6e", "2026-10-31", "1000.50", "a@b.com",
             "12345678909", "Ana Souza"],
            {"name": "c6", "governmentId": "c5", "email": "c4", "debtAmount": "c3",
             "debtDueDate": "c2", "debtId": "c1"},
        ),
        (  # nothing to go by: no guess rather than a wrong one
            ["x", "y"],
            ["", ""],
            dict.fromkeys(ERP_COLUMNS),
        ),
    ],
)  # fmt: skip
def test_guesses_by_names_and_values(header: list[str], row: list[str], expected: dict) -> None:
    assert guess_columns(header, [row, row]) == expected


def test_a_column_is_never_guessed_twice() -> None:
    guess = guess_columns(["Valor", "Valor Pago"], [["10,00", "5,00"]])
    chosen = [name for name in guess.values() if name]
    assert chosen == ["Valor"] or len(chosen) == len(set(chosen))
    assert guess["debtAmount"] == "Valor"


def test_a_mapped_file_reads_as_ours() -> None:
    debtor_file = read_debtor_file(ERP_FILE, max_bytes=10**6, mapping=ERP_COLUMNS)
    assert debtor_file.table.column_names == list(ERP_COLUMNS)
    assert debtor_file.table.to_pylist()[1] == {
        "name": "Bruno Lima",
        "governmentId": "98765432100",
        "email": "bruno@example.com.br",
        "debtAmount": "200,00",
        "debtDueDate": "01/11/2026",
        "debtId": "C-2",
    }
    assert debtor_file.extra_columns == ["Filial"]


def test_a_mapping_naming_a_column_the_file_lacks_refuses_it() -> None:
    with pytest.raises(FileRefused, match=r"'Contrato'.*no such column"):
        read_debtor_file(
            ERP_FILE.replace(b"Contrato", b"Numero"), max_bytes=10**6, mapping=ERP_COLUMNS
        )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({**ERP_COLUMNS, "debtId": None}, "Choose a column of the file for: debtId"),
        ({**ERP_COLUMNS, "debtId": "Nope"}, "no column named 'Nope'"),
        (
            {**ERP_COLUMNS, "debtId": "Documento"},
            "'Documento' is chosen for governmentId, debtId",
        ),
    ],
)
def test_a_mapping_is_checked(columns: dict, message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        check_columns(ERP_HEADER, columns)


def test_saved_mappings_come_back_for_the_same_header_and_by_name(db: Engine) -> None:
    save_mapping(db, actor=OPERATOR, name="  ERP  Filial ", header=ERP_HEADER, columns=ERP_COLUMNS)
    same_header_spelt_otherwise = [name.upper() for name in ERP_HEADER]
    found = mapping_for_header(db, same_header_spelt_otherwise)
    assert found is not None and found["name"] == "ERP Filial"
    assert found["columns"] == ERP_COLUMNS
    assert mapping_named(db, "ERP Filial")["columns"] == ERP_COLUMNS
    assert mapping_for_header(db, ["other", "header"]) is None
    with db.connect() as conn:
        audit_rows = conn.execute(
            text(
                "SELECT actor, subject FROM audit_events "
                "WHERE action = 'import.mapping_saved' AND subject = 'ERP Filial'"
            )
        ).all()  # audit_events outlive each test (append-only): this test's own rows
    assert audit_rows == [(OPERATOR.name, "ERP Filial")]


def test_saving_again_under_a_name_replaces_it(db: Engine) -> None:
    save_mapping(db, actor=OPERATOR, name="Banco X", header=ERP_HEADER, columns=ERP_COLUMNS)
    other = ["Cliente", "CPF", "Mail", "Valor", "Venc", "Titulo"]
    columns = dict(zip(ERP_COLUMNS, other, strict=True))
    save_mapping(db, actor=OPERATOR, name="Banco X", header=other, columns=columns)
    assert mapping_named(db, "Banco X")["columns"] == columns
    assert mapping_for_header(db, ERP_HEADER) is None
    assert headers_key(other) == mapping_named(db, "Banco X")["headers_key"]


def test_an_unknown_mapping_name_lists_the_saved_ones(db: Engine) -> None:
    with pytest.raises(OperatorError, match="No mapping is saved yet"):
        mapping_named(db, "ERP")
    save_mapping(db, actor=OPERATOR, name="Banco X", header=ERP_HEADER, columns=ERP_COLUMNS)
    with pytest.raises(OperatorError, match="Saved mappings: Banco X"):
        mapping_named(db, "ERP")


def test_a_viewer_cannot_save_a_mapping(db: Engine) -> None:
    with pytest.raises(OperatorError):
        save_mapping(db, actor=VIEWER, name="ERP", header=ERP_HEADER, columns=ERP_COLUMNS)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM column_mappings")).scalar_one() == 0
