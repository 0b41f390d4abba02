"""The Bank files page through Streamlit's AppTest, on the real database."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.cnab.service import generate_remessa, import_retorno
from tests.support.actors import OPERATOR, VIEWER, signed_in_page
from tests.support.cnab_bank import (
    Title,
    bank_retorno,
    bank_tables,  # noqa: F401 (the bank_db fixture)
)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows

PAGE = Path(__file__).resolve().parents[2] / "pages" / "8_Bank_files.py"
CHARGES = PAGE.with_name("3_Charges.py")


def page(actor=OPERATOR) -> AppTest:
    return signed_in_page(PAGE, actor)


def test_generate_download_and_history(dashboard_db: Engine, bank_db: Engine) -> None:
    at = page().run()
    assert not at.exception
    assert "No remessa generated yet." in [info.value for info in at.info]

    run_import(dashboard_db, debtor_csv(sample_rows(3)))
    at = page().run()
    at.button[0].click().run()
    assert not at.exception
    assert "Remessa NSA 1: 3 registrations, 0 write-off requests" in at.success[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM remessa_items") == 3
    labels = [button.label for button in at.get("download_button")]
    assert "Download remessa_104_000001.rem" in labels
    # The debtor file has no address: the page says how many went out without one.
    assert "3 of these charges went out with no debtor address" in at.warning[0].value
    history = at.dataframe[0].value
    assert list(history["nsa"]) == [1] and list(history["registrations"]) == [3]
    assert list(history["without_address"]) == [3]

    at.button[0].click().run()  # again: nothing new
    assert "Nothing new to send" in at.info[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM remessas") == 1


def test_import_a_retorno_and_see_its_lines(dashboard_db: Engine, bank_db: Engine) -> None:
    run_import(dashboard_db, debtor_csv(sample_rows(2)))
    generate_remessa(dashboard_db, actor=OPERATOR)
    nossos = [
        scalar(dashboard_db, "SELECT nosso_numero FROM charges WHERE debt_id = :d", d=d)
        for d in ("debt-000000", "debt-000001")
    ]
    data = bank_retorno([Title("02", nossos[0]), Title("03", nossos[1], reasons="48")])
    at = page().run()
    at.file_uploader[0].set_value(("bank.ret", data, "text/plain")).run()
    import_button = next(b for b in at.button if b.label == "Import the retorno")
    import_button.click().run()
    assert not at.exception
    assert "2 titles (1 registered, 1 rejected)" in at.success[0].value
    lines = at.dataframe[-1].value
    assert list(lines["outcome"]) == ["registered", "rejected"]
    assert "48 CEP inválido" in lines["detail"].iloc[1]


def test_a_refused_retorno_is_one_sentence(dashboard_db: Engine, bank_db: Engine) -> None:
    at = page().run()
    at.file_uploader[0].set_value(("debtors.csv", b"name,email\nA,b\n", "text/csv")).run()
    next(b for b in at.button if b.label == "Import the retorno").click().run()
    assert not at.exception
    assert "Retorno refused" in at.error[0].value and "not a CNAB 240" in at.error[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM retornos") == 0


def test_a_viewer_reads_but_cannot_generate_or_import(
    dashboard_db: Engine, bank_db: Engine
) -> None:
    at = page(VIEWER).run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Generate the remessa"]
    assert not at.file_uploader
    assert "Importing retornos is for operators." in [info.value for info in at.info]


def test_a_refused_registration_is_sent_again_from_the_charge_view(
    dashboard_db: Engine, bank_db: Engine
) -> None:
    st.cache_data.clear()
    run_import(dashboard_db, debtor_csv(sample_rows(1)))
    generate_remessa(dashboard_db, actor=OPERATOR)
    charge_id = scalar(dashboard_db, "SELECT id FROM charges")
    nosso = scalar(dashboard_db, "SELECT nosso_numero FROM charges")
    data = bank_retorno([Title("03", nosso, reasons="48")])
    import_retorno(dashboard_db, actor=OPERATOR, data=data, file_name="r.ret")

    viewer = signed_in_page(CHARGES, VIEWER)
    viewer.query_params["charge"] = str(charge_id)
    viewer.run()
    assert "The bank refused to register this boleto" in viewer.warning[0].value
    assert not [b for b in viewer.button if b.label == "Send to the bank again"]

    at = signed_in_page(CHARGES, OPERATOR)
    at.query_params["charge"] = str(charge_id)
    at.run()
    next(b for b in at.button if b.label == "Send to the bank again").click().run()
    assert not at.exception
    assert "set to go to the bank again" in at.success[0].value
    assert scalar(dashboard_db, "SELECT registration_rejection FROM charges") is None
    assert not [w for w in at.warning if "refused to register" in w.value]
    assert generate_remessa(dashboard_db, actor=OPERATOR).registrations == 1
    st.cache_data.clear()
