"""The Charges and Debtors pages through Streamlit's AppTest, on the real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from tests.support.actors import OPERATOR, VIEWER, signed_in_page
from tests.support.app_test import button
from tests.support.database import scalar
from tests.support.debtor_files import import_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"


@pytest.fixture()
def pages_db(dashboard_db: Engine) -> Iterator[Engine]:
    """The dashboard's database, with no totals cached from another test's data."""
    st.cache_data.clear()
    yield dashboard_db
    st.cache_data.clear()


def charges_page() -> AppTest:
    return signed_in_page(PAGES / "3_Charges.py")


def test_no_charges_tells_a_new_operator_what_to_do(pages_db: Engine) -> None:
    at = charges_page().run()
    assert not at.exception
    assert "No charges yet: import a debtor file on the Upload page" in at.info[0].value


def test_filters_come_from_the_link_and_go_back_to_it(pages_db: Engine) -> None:
    import_rows(pages_db, 12)
    at = charges_page()
    at.query_params.update(
        {
            "q": "debora",
            "amount_min": "105",
            "amount_max": "1e9",
            "due_to": "2030-12-31",
            "sort": "-amount",
            "due_from": "yesterday",
        }
    )
    at.run()
    assert not at.exception
    assert [w.value.replace("\\", "") for w in at.warning] == [
        "Ignored due_from='yesterday' from the link: a date is written DD/MM/YYYY or YYYY-MM-DD."
    ]
    assert at.text_input(key="c_q").value == "debora"
    assert at.text_input(key="c_min").value == "105,00"  # as an operator types it
    assert at.text_input(key="c_max").value == "1.000.000.000,00"
    assert at.date_input(key="c_due_to").value == date(2030, 12, 31)
    table = at.dataframe[0].value
    assert list(table["debtId"]) == [f"debt-{i:03d}" for i in range(12, 4, -1)]
    assert table["Amount"].iloc[0] == Decimal("112.50")  # a number: sorts by value
    assert shown_cells(at.dataframe[0], "Amount")[0] == "R$ 112,50"
    assert table["CPF/CNPJ"].iloc[0] == "***.456.789-**"  # VALID_CPFS[2], masked
    assert {m.label: m.value for m in at.metric}["Charges"] == "8"
    # The bad value is gone from the link; the rest stays, so it can be shared.
    assert dict(at.query_params) == {
        "q": "debora",
        "amount_min": "105.00",
        "amount_max": "1000000000.00",
        "due_to": "2030-12-31",
        "sort": "-amount",
    }

    at.multiselect(key="c_status").set_value(["paid"]).run()
    assert not at.exception
    assert at.query_params["status"] == "paid"
    assert "No charge matches these filters" in at.info[0].value


def shown_cells(table: object, column: str) -> list[str]:
    """A column's cells as the grid shows them (the table's display values), not its data."""
    from streamlit import dataframe_util

    display = table.proto.arrow_data.styler.display_values  # type: ignore[attr-defined]
    return list(dataframe_util.convert_arrow_bytes_to_pandas_df(display)[column])


def test_amounts_are_read_as_operators_type_them(pages_db: Engine) -> None:
    import_rows(pages_db, 12)  # 101,50 to 112,50
    at = charges_page().run()
    at.text_input(key="c_max").input("105,50").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Charges"] == "5"
    assert at.query_params["amount_max"] == "105.50"

    at.text_input(key="c_max").input("").run()
    at.text_input(key="c_min").input("1.000,50").run()  # a thousand reais, not one
    assert "No charge matches these filters" in at.info[0].value
    assert at.query_params["amount_min"] == "1000.50"
    assert not at.error


def test_an_amount_it_cannot_read_is_refused_where_it_was_typed(pages_db: Engine) -> None:
    import_rows(pages_db, 12)
    at = charges_page().run()
    at.text_input(key="c_min").input("1,234.5").run()
    assert not at.exception
    [error] = at.error
    assert "is not an amount: type it like 1.000,50" in error.value
    assert at.text_input(key="c_min").value == "1,234.5"  # kept as typed, to correct
    assert {m.label: m.value for m in at.metric}["Charges"] == "12"  # not applied
    assert "amount_min" not in at.query_params

    at.text_input(key="c_min").input("110").run()
    assert not at.error
    assert {m.label: m.value for m in at.metric}["Charges"] == "3"


def test_a_link_in_the_on_screen_form_fills_the_fields(pages_db: Engine) -> None:
    import_rows(pages_db, 12)  # due 02/01/2030 to 13/01/2030
    at = charges_page()
    at.query_params.update(
        {"due_from": "01/01/2030", "due_to": "05/01/2030", "amount_min": "1.000,50"}
    )
    at.run()
    assert not at.exception
    assert not at.warning
    assert at.date_input(key="c_due_from").value == date(2030, 1, 1)
    assert at.date_input(key="c_due_to").value == date(2030, 1, 5)
    assert at.text_input(key="c_min").value == "1.000,50"
    assert "No charge matches these filters" in at.info[0].value

    at.text_input(key="c_min").input("").run()
    assert {m.label: m.value for m in at.metric}["Charges"] == "4"
    assert at.date_input(key="c_due_from").proto.format == "DD/MM/YYYY"


def test_the_table_sorts_by_value_and_shows_due_status_amount_first(pages_db: Engine) -> None:
    import_rows(pages_db, 12)
    at = charges_page()
    at.query_params["sort"] = "-amount"
    at.run()
    grid = at.dataframe[0]
    assert list(grid.value.columns[:3]) == ["Due", "Status", "Amount"]
    assert list(grid.value["Amount"]) == sorted(grid.value["Amount"], reverse=True)
    assert grid.value["Due"].iloc[0] == date(2030, 1, 13)  # a date, ordered as one
    assert shown_cells(grid, "Due")[0] == "13/01/2030"
    assert "in the order chosen above" in at.caption[0].value
    # Its headers take no click: tests/pages/test_browser_header_sort.py, in Chromium.


def test_pages_of_rows(pages_db: Engine) -> None:
    import_rows(pages_db, 55)
    at = charges_page().run()
    assert len(at.dataframe[0].value) == 50
    assert "rows 1 to 50 of 55" in at.caption[0].value

    first_page = set(at.dataframe[0].value["debtId"])

    button(at, "Next →").click().run()
    assert not at.exception
    second_page = set(at.dataframe[0].value["debtId"])
    assert len(second_page) == 5
    assert first_page | second_page == {f"debt-{i:03d}" for i in range(1, 56)}
    assert "rows 51 to 55 of 55" in at.caption[0].value
    assert button(at, "Next →").disabled

    button(at, "← Previous").click().run()
    assert "rows 1 to 50 of 55" in at.caption[0].value


def test_open_a_row_then_cancel_it_with_a_reason(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 3)
    at = charges_page().run()
    first = at.dataframe[0].value.iloc[0]
    at.session_state["c_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.subheader[0].value == f"Charge #{ids[first['debtId']]}"
    assert f"debtId: {first['debtId']}" in at.text[0].value
    assert at.query_params["charge"] == str(ids[first["debtId"]])
    assert "CPF/CNPJ ***.444.777-**" in at.text[0].value  # masked until revealed
    assert at.code[0].value  # the linha digitável
    button(at, "Show the whole CPF/CNPJ").click().run()
    assert "CPF/CNPJ 111.444.777-35" in at.text[0].value
    assert audit_actions(pages_db)[-1] == "debtor.reveal_document"

    button(at, "Cancel the charge").click().run()
    assert "A reason is required" in at.error[0].value
    assert scalar(pages_db, "SELECT count(*) FROM charges WHERE status = 'canceled'") == 0

    at.text_area(key="cancel_reason").input("Sent twice by the seller")
    button(at, "Cancel the charge").click().run()
    assert "Cancel charge" in at.warning[0].value  # asks first
    assert scalar(pages_db, "SELECT count(*) FROM charges WHERE status = 'canceled'") == 0
    button(at, "Yes, cancel it").click().run()
    assert not at.exception
    assert "Done: the charge was canceled" in at.success[0].value
    status = scalar(pages_db, "SELECT status FROM charges WHERE debt_id = :d", d=first["debtId"])
    assert status == "canceled"
    history = at.dataframe[-1].value
    assert list(history["reason"]) == ["Sent twice by the seller"]
    assert list(history["actor"]) == [OPERATOR.name]
    assert audit_actions(pages_db)[-1] == "charge.cancel"


def test_open_by_debt_id_from_a_link_and_mark_paid(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 3)
    at = charges_page()
    at.query_params["charge"] = str(ids["debt-002"])
    at.run()
    assert at.subheader[0].value == f"Charge #{ids['debt-002']}"

    at.text_area(key="paid_reason").input("Paid at the branch")
    button(at, "Record the payment").click().run()
    assert not at.exception
    assert scalar(pages_db, "SELECT status FROM charges WHERE debt_id = 'debt-002'") == "paid"
    assert {m.label: m.value for m in at.metric}["Still owed"] == "R$ 0,00"

    form_input = next(t for t in at.text_input if t.label.startswith("Open a charge"))
    form_input.input("debt-003")
    button(at, "Open").click().run()
    assert at.subheader[0].value == f"Charge #{ids['debt-003']}"
    form_input = next(t for t in at.text_input if t.label.startswith("Open a charge"))
    form_input.input("nope")
    button(at, "Open").click().run()
    assert "No charge has debtId or number 'nope'" in at.error[0].value


def test_debtors_page_search_and_totals(pages_db: Engine) -> None:
    at = signed_in_page(PAGES / "5_Debtors.py").run()
    assert "No debtors yet" in at.info[0].value

    import_rows(pages_db, 10)
    at = signed_in_page(PAGES / "5_Debtors.py")
    at.query_params["q"] = "conceicao 3"
    at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["Debtor"]) == ["Débora Conceição 3"]
    at.session_state["d_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.text[0].value.startswith("Débora Conceição 3 · CPF/CNPJ ***.411.347-**")
    button(at, "Show the whole CPF/CNPJ").click().run()
    assert at.text[0].value.startswith("Débora Conceição 3 · CPF/CNPJ 935.411.347-80")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Charges"] == "2"  # debtIds 3 and 8
    assert metrics["Outstanding"] == "R$ 212,00"
    assert metrics["Paid"] == "R$ 0,00"
    assert list(at.dataframe[-1].value["debtId"]) == ["debt-003", "debt-008"]


def audit_actions(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(text("SELECT action FROM audit_events ORDER BY id")).scalars())


def test_a_viewer_reads_masked_documents_and_has_no_actions(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 3)
    at = signed_in_page(PAGES / "3_Charges.py", VIEWER)
    at.query_params["charge"] = str(ids["debt-002"])
    at.run()
    assert not at.exception
    assert at.subheader[0].value == f"Charge #{ids['debt-002']}"
    assert "CPF/CNPJ ***." in at.text[0].value
    labels = {b.label for b in at.button} | {b.label for b in at.get("download_button")}
    for hidden in (
        "Show the whole CPF/CNPJ",
        "Record the payment",
        "Cancel the charge",
        "Resend",
        "Save the e-mail",
    ):
        assert hidden not in labels
    assert not any("Download" in label for label in labels)
    assert all("***" in document for document in at.dataframe[0].value["CPF/CNPJ"])


def test_a_link_with_a_strange_charge_number_gets_a_sentence(pages_db: Engine) -> None:
    import_rows(pages_db, 2)
    for strange in ("²", "-1", "99999999999999999999999", "1e3"):
        at = charges_page()
        at.query_params["charge"] = strange
        at.run()
        assert not at.exception, strange
        assert any("expected a number" in w.value for w in at.warning), strange


def test_link_values_are_shown_as_typed_never_as_markdown(pages_db: Engine) -> None:
    import_rows(pages_db, 2)
    at = charges_page()
    at.query_params["due_from"] = "[click](http://example.org)"
    at.run()
    assert not at.exception
    [warning] = at.warning
    assert "\\[click\\]\\(http\\://example\\.org\\)" in warning.value
