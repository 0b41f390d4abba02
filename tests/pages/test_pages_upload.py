"""The Upload and Imports pages through Streamlit's AppTest, on the real database."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from tests.support.actors import OPERATOR, signed_in_page
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, sample_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"


def upload_page() -> AppTest:
    return signed_in_page(PAGES / "1_Upload.py")


def test_upload_preview_then_import(dashboard_db: Engine) -> None:
    rows = [*sample_rows(8), ("", "123", "bad", "-1", "2024-13-01", "bad-1")]
    at = upload_page().run()
    assert not at.exception
    assert "Drag a CSV" in at.info[0].value

    at.file_uploader[0].set_value(("debtors.csv", debtor_csv(rows), "text/csv")).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "9" and metrics["Valid"] == "8" and metrics["Rejected"] == "1"
    assert len(at.dataframe) == 2  # the preview and the rejection summary
    assert scalar(dashboard_db, "SELECT count(*) FROM charges") == 0  # preview writes nothing

    at.button[0].click().run()
    assert not at.exception
    assert "Imported 8 charges" in at.success[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM charges") == 8
    downloads = [button.label for button in at.get("download_button")]
    assert downloads == ["Download the rejected rows (CSV with reasons)"]


def test_upload_refuses_a_bad_file_with_one_message(dashboard_db: Engine) -> None:
    at = upload_page().run()
    at.file_uploader[0].set_value(("photo.csv", b"\x89PNG\x00\x00", "text/csv")).run()
    assert not at.exception
    assert "binary" in at.error[0].value
    assert not at.button  # nothing to import


def test_imports_page_lists_history(dashboard_db: Engine) -> None:
    at = signed_in_page(PAGES / "2_Imports.py").run()
    assert "No file imported yet" in at.info[0].value

    from billing.imports.service import import_file

    import_file(
        actor=OPERATOR,
        engine=dashboard_db,
        data=debtor_csv([*sample_rows(3), ("x", "1", "x", "1", "x", "y")]),
        file_name="history.csv",
        lenient_documents=False,
    )
    at = signed_in_page(PAGES / "2_Imports.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["file_name"]) == ["history.csv"]
    assert list(frame["rejected"]) == ["1"]


# --- Files from other systems: the columns mapped on the page --------------------------

BANK_HEADER = "Nome do Cliente;Documento;E-mail;Valor Original;Valor Atualizado;Vencimento;Contrato"
BANK_ROWS = [
    "Ana Souza;529.982.247-25;ana@example.com;1.000,50;1.100,00;31/10/2026;C-1",
    "Bruno Lima;11144477735;bruno@example.com.br;200,00;-5,00;01/11/2026;C-2",
]
GUESSED = {
    "name": "Nome do Cliente",
    "governmentId": "Documento",
    "email": "E-mail",
    "debtAmount": "Valor Original",
    "debtDueDate": "Vencimento",
    "debtId": "Contrato",
}


def bank_file(rows: list[str] = BANK_ROWS) -> bytes:
    return "\n".join([BANK_HEADER, *rows, ""]).encode()


def mapped_page(data: bytes) -> AppTest:
    at = upload_page().run()
    at.file_uploader[0].set_value(("banco.csv", data, "text/csv")).run()
    assert not at.exception
    return at


def chosen_columns(at: AppTest) -> dict[str, str]:
    return {box.label: box.value for box in at.selectbox}


def first_rows(at: AppTest) -> list[dict[str, object]]:
    return at.dataframe[0].value.to_dict("records")


def test_a_file_with_foreign_headers_is_mapped_with_the_best_guesses(
    dashboard_db: Engine,
) -> None:
    at = mapped_page(bank_file())
    assert not at.error  # not a refusal: a choice of columns
    assert chosen_columns(at) == GUESSED
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "2" and metrics["Valid"] == "2"
    rows = first_rows(at)
    assert [row["line"] for row in rows] == [2, 3]
    assert [row["debtAmount"] for row in rows] == ["1.000,50", "200,00"]
    assert [row["reasons"] for row in rows] == ["", ""]


def test_changing_a_choice_updates_the_preview_and_marks_rejected_rows(
    dashboard_db: Engine,
) -> None:
    at = mapped_page(bank_file())
    box = next(box for box in at.selectbox if box.label == "debtAmount")
    box.set_value("Valor Atualizado").run()
    assert not at.exception
    rows = first_rows(at)
    assert [row["debtAmount"] for row in rows] == ["1.100,00", "-5,00"]
    assert [row["reasons"] for row in rows] == ["", "debtAmount is negative"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Valid"] == "1" and metrics["Rejected"] == "1"

    # the same field chosen twice: said, and nothing to import until it is resolved
    box = next(box for box in at.selectbox if box.label == "debtId")
    box.set_value("Documento").run()
    assert not at.exception
    assert "'Documento' is chosen for governmentId, debtId" in at.warning[0].value
    assert not [button for button in at.button if button.label == "Import"]


def test_a_saved_mapping_comes_back_by_name_for_the_same_header(dashboard_db: Engine) -> None:
    at = mapped_page(bank_file())
    next(box for box in at.selectbox if box.label == "debtAmount").set_value(
        "Valor Atualizado"
    ).run()
    at.text_input[0].input("Banco X")
    next(button for button in at.button if button.label == "Save mapping").click().run()
    assert not at.exception
    assert "Saved as “Banco X”" in at.success[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM column_mappings") == 1

    other_rows = ["Carla Dias;12345678909;carla@example.com;50,00;60,00;02/12/2026;C-9"]
    again = mapped_page(bank_file(other_rows))
    assert "Mapped as the saved mapping “Banco X”" in again.info[0].value
    assert chosen_columns(again) == GUESSED | {"debtAmount": "Valor Atualizado"}
    assert [row["debtAmount"] for row in first_rows(again)] == ["60,00"]


def test_importing_with_the_mapping_loads_the_right_values(dashboard_db: Engine) -> None:
    at = mapped_page(bank_file())
    next(box for box in at.selectbox if box.label == "debtAmount").set_value(
        "Valor Atualizado"
    ).run()
    next(button for button in at.button if button.label == "Import").click().run()
    assert not at.exception
    assert "Imported 1 charge" in at.success[0].value
    with dashboard_db.connect() as conn:
        charges = conn.execute(
            text("SELECT debt_id, amount, due_date::text, payer_name FROM charges")
        ).all()
        details = conn.execute(
            text(
                "SELECT details FROM audit_events WHERE action = 'import.file' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()
    assert [tuple(row) for row in charges] == [
        ("C-1", Decimal("1100.00"), "2026-10-31", "Ana Souza")
    ]
    assert details["mapping"] == {
        "name": None,
        "columns": GUESSED | {"debtAmount": "Valor Atualizado"},
    }
