"""The sign-in gate (app.py), and the Accounts and Audit pages, through AppTest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.accounts import users as accounts
from tests.support.actors import ADMIN, OPERATOR, signed_in_page

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


@pytest.fixture()
def admin_db(
    dashboard_db: Engine, no_accounts: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setattr(accounts, "FAILURE_DELAY_SECONDS", 0.0)
    st.cache_data.clear()
    yield dashboard_db


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_a_visitor_sees_only_the_first_administrator_form_then_the_sign_in(
    admin_db: Engine,
) -> None:
    """The first render only: signing in goes through a real browser (test_browser.py)."""
    at = app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Create the first administrator"]
    assert not at.metric and not at.dataframe and not at.sidebar.button

    accounts.create_first_admin(admin_db, email="chefe@fundo.com.br", password=PASSWORD)
    fresh = app().run()  # another visitor: that form is gone for good
    assert not fresh.exception
    assert [t.value for t in fresh.title] == ["Sign in"]
    assert not fresh.metric and not fresh.dataframe and not fresh.sidebar.button


def test_accounts_page_for_admins_only(admin_db: Engine) -> None:
    accounts.create_account(
        admin_db, actor=ADMIN, email="boss@x.com", role="admin", password=PASSWORD
    )
    at = signed_in_page(ROOT / "pages" / "6_Accounts.py", ADMIN).run()
    assert not at.exception
    assert list(at.dataframe[0].value["E-mail"]) == ["boss@x.com"]
    form_inputs = [t for t in at.text_input if t.label == "E-mail"]
    form_inputs[0].input("new@x.com")
    next(b for b in at.button if b.label == "Add the account").click().run()
    assert not at.exception
    assert "Added new@x.com as operator" in at.success[0].value
    assert list(at.dataframe[0].value["E-mail"]) == ["boss@x.com", "new@x.com"]

    refused = signed_in_page(ROOT / "pages" / "6_Accounts.py", OPERATOR).run()
    assert not refused.exception
    assert "may not manage accounts" in refused.error[0].value
    assert not refused.dataframe


def test_audit_page_for_admins_only(admin_db: Engine) -> None:
    accounts.create_account(
        admin_db, actor=ADMIN, email="boss@x.com", role="admin", password=PASSWORD
    )
    at = signed_in_page(ROOT / "pages" / "7_Audit.py", ADMIN).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "account.create" in list(table["Action"])
    at.selectbox[1].set_value("account.create").run()
    assert set(at.dataframe[0].value["Action"]) == {"account.create"}

    refused = signed_in_page(ROOT / "pages" / "7_Audit.py", OPERATOR).run()
    assert "may not read the audit trail" in refused.error[0].value
    assert not refused.dataframe
