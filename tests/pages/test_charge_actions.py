"""The charge panel's actions through AppTest (issue 12): a payment of any amount, cancel
with a yes and reopen, a debtor's e-mail corrected; what was typed survives a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from billing.core.settings import get_settings
from tests.support.actors import VIEWER, signed_in_page
from tests.support.app_test import button
from tests.support.database import scalar
from tests.support.debtor_files import import_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"


@pytest.fixture()
def pages_db(dashboard_db: Engine) -> Iterator[Engine]:
    st.cache_data.clear()
    yield dashboard_db
    st.cache_data.clear()


def charge_open(charge_id: int | str, actor=None) -> AppTest:
    at = signed_in_page(PAGES / "3_Charges.py", *([actor] if actor else []))
    at.query_params["charge"] = str(charge_id)
    return at.run()


def in_the_panel(at: AppTest) -> list[str]:
    """Everything the charge panel (a dialog over the page) shows, as text."""
    panels = [block for block in at._tree.children.values() if block.type == "event"]
    return [str(getattr(node, "value", "")) for panel in panels for node in _walk(panel)]


def unescaped(text: str) -> str:
    """A message as the operator reads it (the page escapes Markdown in what it quotes)."""
    return text.replace("\\", "")


def _walk(node) -> Iterator:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def test_a_part_paid_at_the_branch(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 2)
    at = charge_open(ids["debt-001"])
    assert at.text_input(key="paid_amount").value == "101,50"  # what is still owed

    at.text_input(key="paid_amount").input("1.000,50")  # the operator's typo, then fixed
    at.text_input(key="paid_amount").input("50,00")
    at.text_area(key="paid_reason").input("Paid part at the branch")
    button(at, "Record the payment").click().run()

    assert not at.exception
    assert "R$ 50,00 recorded; the charge is now partially paid" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Still owed"] == "R$ 51,50"
    assert at.text_input(key="paid_amount").value == "51,50"  # the form starts afresh
    assert at.text_area(key="paid_reason").value == ""
    status = scalar(pages_db, "SELECT status FROM charges WHERE id = :id", id=ids["debt-001"])
    assert status == "partially_paid"
    payments, history = at.dataframe[-2].value, at.dataframe[-1].value
    assert list(payments["source"]) == ["Recorded by hand"]
    assert list(history["kind"]) == ["Payment recorded by hand"]
    assert (history["from_status"][0], history["to_status"][0]) == ("Issued", "Partially paid")


def test_the_payment_day_offered_is_the_funds_day_not_the_servers(
    pages_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamlit's "today" is the server's date; what a payment's day means is TIMEZONE's.
    They differ every night in Brazil from 21:00 (UTC's next day), when the day offered
    was refused as in the future. Two zones 26 hours apart: one of them is on another
    date than the server, whenever this runs."""
    zone = next(
        name
        for name in ("Pacific/Kiritimati", "Etc/GMT+12")  # UTC+14 and UTC-12
        if datetime.now(ZoneInfo(name)).date() != date.today()
    )
    monkeypatch.setenv("TIMEZONE", zone)
    get_settings.cache_clear()
    ids = import_rows(pages_db, 1)
    at = charge_open(ids["debt-001"])
    assert at.date_input(key="paid_on").value == datetime.now(ZoneInfo(zone)).date()

    at.text_area(key="paid_reason").input("Paid at the branch")
    button(at, "Record the payment").click().run()

    assert not at.exception
    assert "recorded; the charge is now paid" in at.success[0].value
    assert scalar(pages_db, "SELECT status FROM charges WHERE id = :id", id=ids["debt-001"]) == (
        "paid"
    )
    get_settings.cache_clear()


def test_a_refused_payment_keeps_what_was_typed(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 1)
    at = charge_open(ids["debt-001"])
    at.text_input(key="paid_amount").input("cinquenta")
    at.text_area(key="paid_reason").input("Paid at the branch")
    button(at, "Record the payment").click().run()

    assert not at.exception
    assert "“cinquenta” is not an amount" in unescaped(at.error[0].value)
    assert at.text_input(key="paid_amount").value == "cinquenta"
    assert at.text_area(key="paid_reason").value == "Paid at the branch"
    assert scalar(pages_db, "SELECT count(*) FROM payments") == 0
    assert "“cinquenta” is not an amount" in unescaped(
        " ".join(in_the_panel(at))
    )  # said in the panel


def test_cancel_asks_first_then_reopen_undoes_it(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 1)
    charge_id = ids["debt-001"]
    at = charge_open(charge_id)
    at.text_area(key="cancel_reason").input("Sent twice")
    button(at, "Cancel the charge").click().run()
    assert "Cancel charge debt\\-001?" in at.warning[0].value
    button(at, "No, keep it").click().run()
    assert not at.warning
    assert at.text_area(key="cancel_reason").value == "Sent twice"  # kept for another try
    assert scalar(pages_db, "SELECT status FROM charges") == "issued"

    button(at, "Cancel the charge").click().run()
    button(at, "Yes, cancel it").click().run()
    assert not at.exception
    assert "the charge was canceled" in at.success[0].value
    assert scalar(pages_db, "SELECT status FROM charges") == "canceled"
    labels = {b.label for b in at.button}
    assert "Record the payment" not in labels and "Reopen the charge" in labels

    button(at, "Reopen the charge").click().run()  # no reason: refused, nothing changes
    assert "A reason is required" in at.error[0].value
    assert scalar(pages_db, "SELECT status FROM charges") == "canceled"
    at.text_area(key="reopen_reason").input("It was not a duplicate")
    button(at, "Reopen the charge").click().run()

    assert not at.exception
    assert "reopened; it is issued again" in at.success[0].value
    assert scalar(pages_db, "SELECT status FROM charges") == "issued"
    history = at.dataframe[-1].value
    assert list(history["kind"]) == ["Canceled", "Reopened"]
    assert list(history["to_status"]) == ["Canceled", "Issued"]
    assert list(history["reason"]) == ["Sent twice", "It was not a duplicate"]


def test_a_charge_not_found_is_said_in_the_panel(pages_db: Engine) -> None:
    import_rows(pages_db, 1)
    at = charge_open(987654)
    assert not at.exception
    assert "No charge has number 987654" in unescaped(" ".join(in_the_panel(at)))


def test_correct_the_debtor_s_email_from_the_charge(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 1)
    at = charge_open(ids["debt-001"])
    field = at.text_input(key="charge_new_email")
    assert field.value == "debora1@example.com"
    field.input("debora1@example")
    button(at, "Save the e-mail").click().run()
    assert "not an e-mail address an import would accept" in unescaped(at.error[0].value)
    assert at.text_input(key="charge_new_email").value == "debora1@example"  # kept

    at.text_input(key="charge_new_email").input("debora.1@example.com.br")
    button(at, "Save the e-mail").click().run()
    assert not at.exception
    assert "debora.1@example.com.br" in at.success[0].value
    assert "Billed to: Débora Conceição 1 · debora.1@example.com.br" in at.text[0].value
    assert scalar(pages_db, "SELECT email FROM debtors") == "debora.1@example.com.br"


def test_a_viewer_sees_the_panel_without_actions(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 1)
    at = charge_open(ids["debt-001"], VIEWER)
    assert at.subheader[0].value == f"Charge #{ids['debt-001']}"
    assert not at.text_area and not [t for t in at.text_input if t.key == "charge_new_email"]


def test_a_debtor_s_page_says_the_debtor_once_and_opens_a_charge(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 6)  # debtor 1 has debt-001 and debt-006
    at = signed_in_page(PAGES / "5_Debtors.py")
    at.query_params["q"] = "conceicao 1"
    at.run()
    at.session_state["d_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.text[0].value.startswith("Débora Conceição 1 · CPF/CNPJ")
    charges = at.dataframe[-1].value
    assert list(charges["debtId"]) == ["debt-001", "debt-006"]
    assert not {"Debtor", "CPF/CNPJ", "E-mail"} & set(charges.columns)

    at.session_state["d_charges"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert f"Charge #{ids['debt-006']}" in [s.value for s in at.subheader]

    at.text_input(key="d_new_email").input("nao e email")
    button(at, "Save the e-mail").click().run()
    assert at.text_input(key="d_new_email").value == "nao e email"
    assert any("not an e-mail address" in unescaped(e.value) for e in at.error)


def test_a_debtor_s_postal_address_is_kept_for_the_bank(pages_db: Engine) -> None:
    """The debtor file has no address; the remessa's segment Q needs one (Banco do Brasil
    refuses a boleto without a CEP): the operator types it on the debtor's page."""
    import_rows(pages_db, 2)
    at = signed_in_page(PAGES / "5_Debtors.py")
    at.query_params["q"] = "conceicao 1"
    at.run()
    at.session_state["d_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    debtor_id = scalar(pages_db, "SELECT debtor_id FROM charges WHERE debt_id = 'debt-001'")

    at.text_input(key="d_address_street").input("Av. Paulista, 1000, ap. 12")
    at.text_input(key="d_address_district").input("Bela Vista")
    at.text_input(key="d_address_zip_code").input("1310-100")  # a digit short
    at.text_input(key="d_address_city").input("São Paulo")
    at.text_input(key="d_address_state").input("SP")
    button(at, "Save the address").click().run()
    assert any("CEP" in unescaped(e.value) for e in at.error)
    assert at.text_input(key="d_address_street").value == "Av. Paulista, 1000, ap. 12"  # kept
    assert scalar(pages_db, "SELECT count(*) FROM debtor_addresses") == 0

    saved_events = "SELECT count(*) FROM audit_events WHERE action = 'debtor.address_saved'"
    before = scalar(pages_db, saved_events)  # the audit trail outlives each test
    at.text_input(key="d_address_zip_code").input("01310-100")
    button(at, "Save the address").click().run()
    assert not at.exception and not at.error
    row = "SELECT street, zip_code, city, state FROM debtor_addresses WHERE debtor_id = :id"
    with pages_db.connect() as conn:
        saved = conn.execute(text(row), {"id": debtor_id}).one()
    assert tuple(saved) == ("Av. Paulista, 1000, ap. 12", "01310100", "São Paulo", "SP")
    assert scalar(pages_db, saved_events) == before + 1
