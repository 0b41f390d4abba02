"""Every screen in both languages through AppTest; Portuguese by default; the sidebar's
switch changes the language at once and the account keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.accounts import audit
from billing.accounts import users as accounts
from billing.core.settings import get_settings
from tests.support.actors import ADMIN, signed_in_page
from tests.support.debtor_files import import_rows

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.name for p in (ROOT / "pages").glob("[0-9]_*.py"))
TITLES = {  # each page's title, (Portuguese, English)
    "0_Overview.py": ("Visão geral", "Overview"),
    "1_Upload.py": ("Importar um arquivo de devedores", "Upload a debtor file"),
    "2_Imports.py": ("Histórico de importações", "Import history"),
    "3_Charges.py": ("Cobranças", "Charges"),
    "4_Notifications.py": ("Notificações", "Notifications"),
    "5_Debtors.py": ("Devedores", "Debtors"),
    "6_Accounts.py": ("Contas", "Accounts"),
    "7_Audit.py": ("Trilha de auditoria", "Audit trail"),
    "8_Bank_files.py": ("Arquivos do banco", "Bank files"),
}
PASSWORD = "a long enough password"


@pytest.fixture()
def charges_db(dashboard_db: Engine) -> Iterator[Engine]:
    st.cache_data.clear()
    import_rows(dashboard_db, 3)
    yield dashboard_db
    st.cache_data.clear()


@pytest.fixture()
def portuguese_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The product's own default: no LANGUAGE (the suite otherwise reads English)."""
    monkeypatch.delenv("LANGUAGE")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def page(name: str, language: str | None = None) -> AppTest:
    at = signed_in_page(ROOT / "pages" / name, ADMIN)
    if language:
        at.session_state["language"] = language
    return at


def texts(at: AppTest) -> str:
    return " ".join(
        str(element.value)
        for kind in ("title", "caption", "info", "subheader", "header")
        for element in getattr(at, kind)
    )


def test_every_page_names_its_title() -> None:
    assert sorted(TITLES) == PAGES


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("language", ["pt_BR", "en"])
def test_every_page_renders_in_both_languages(charges_db: Engine, name: str, language: str) -> None:
    at = page(name, language).run()
    assert not at.exception, at.exception
    portuguese, english = TITLES[name]
    assert [t.value for t in at.title] == [portuguese if language == "pt_BR" else english]


@pytest.mark.usefixtures("portuguese_default")
def test_portuguese_by_default(charges_db: Engine) -> None:
    charges = page("3_Charges.py").run()
    assert not charges.exception
    assert [t.value for t in charges.title] == ["Cobranças"]
    table = charges.dataframe[0].value
    assert {"Número", "Devedor", "Valor", "Vencimento", "Situação"} <= set(table.columns)
    assert set(table["Situação"]) <= {"Pendente (ainda sem boleto)", "Emitida"}
    assert [b.label for b in charges.button if "→" in b.label] == ["Próxima →"]
    assert charges.multiselect[0].label == "Situação"

    overview = page("0_Overview.py").run()
    assert not overview.exception
    assert "Em aberto" in [m.label for m in overview.metric]
    assert "Taxa de recebimento" in [m.label for m in overview.metric]


def test_the_sign_in_screen_is_in_portuguese_by_default(
    charges_db: Engine, portuguese_default: None
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] in (["Entrar"], ["Criar o primeiro administrador"])


def signed_in_app(token: str) -> AppTest:
    """app.py in a tab whose browser already holds the session's token."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["session_token"] = token
    return at


def sidebar_of_the_app() -> None:
    """app.py's sign-in check and sidebar, then a title: AppTest reruns app.py itself
    only on a first run (later runs of a multipage app run the page file alone)."""
    import streamlit as st

    from billing.core.i18n import _
    from pages._session import language_switch, sign_out_button, signed_in_actor

    actor = signed_in_actor()
    if actor is not None:
        language_switch(actor)
        sign_out_button(actor)
        st.title(_("Overview"))


def test_the_switch_changes_the_language_at_once_and_the_account_keeps_it(
    charges_db: Engine, no_accounts: Engine, portuguese_default: None
) -> None:
    accounts.create_first_admin(no_accounts, email="chefe@fundo.com.br", password=PASSWORD)
    token = accounts.sign_in(no_accounts, email="chefe@fundo.com.br", password=PASSWORD).token
    assert [t.value for t in signed_in_app(token).run().title] == ["Visão geral"]

    at = AppTest.from_function(sidebar_of_the_app, default_timeout=60)
    at.session_state["session_token"] = token
    at.run()
    assert not at.exception
    switch = at.sidebar.selectbox[0]
    assert switch.label == "Idioma" and switch.value == "pt_BR"
    assert [b.label for b in at.sidebar.button] == ["Sair"]

    switch.set_value("en").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    assert at.sidebar.selectbox[0].label == "Language"
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    assert accounts.account_language(no_accounts, "chefe@fundo.com.br") == "en"

    elsewhere = signed_in_app(token).run()  # another browser: the account's choice
    assert not elsewhere.exception
    assert [t.value for t in elsewhere.title] == ["Overview"]
    assert [b.label for b in elsewhere.sidebar.button] == ["Sign out"]

    at.sidebar.selectbox[0].set_value("pt_BR").run()
    assert [t.value for t in at.title] == ["Visão geral"]
    assert accounts.account_language(no_accounts, "chefe@fundo.com.br") == "pt_BR"
    trail = audit.audit_events(
        no_accounts,
        actor=ADMIN,
        audit_filter=audit.AuditFilter(
            action=audit.Action.ACCOUNT_SET_LANGUAGE, subject="chefe@fundo.com.br"
        ),
        timezone="UTC",
    )
    assert [event["details"] for event in trail[:2]] == [  # newest first
        {"from": "en", "to": "pt_BR"},
        {"from": "default", "to": "en"},
    ]
