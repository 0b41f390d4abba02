"""A read replica (DATABASE_READ_URL): the dashboard's reads go to it, every write goes to
DATABASE_URL. The replica here is a login role on the test server whose transactions are
read-only (`default_transaction_read_only = on`), so it refuses what a hot standby refuses:
a page that wrote through it would fail, and its connections show in pg_stat_activity
under its own name."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from sqlalchemy import Engine, event, make_url, text
from sqlalchemy.exc import DBAPIError
from streamlit.testing.v1 import AppTest

from billing.accounts import users as accounts
from billing.core.settings import get_settings
from billing.imports.service import import_history
from billing.payments.service import mark_paid
from db.engine import get_engine, get_read_engine, make_engine, url_as
from tests.support.actors import ADMIN, OPERATOR, signed_in_page
from tests.support.app_test import button
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, import_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"
PASSWORD = "a long enough password"
WROTE_AT = "wrote_at"  # pages/_shared.py: when this session last wrote (read-your-writes)


@pytest.fixture(scope="module")
def read_only_url(database_url: str, app_role: str, owner_engine: Engine) -> Iterator[str]:
    """A login role standing in for the replica: the application's grants (a replica has
    the primary's), every transaction read-only. Dropped at the end."""
    role, password = f"billing_test_ro_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f"GRANT {app_role} TO {role}")
        conn.exec_driver_sql(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    yield url_as(database_url, role, password)
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
            {"r": role},
        )
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")
    admin.dispose()


@pytest.fixture()
def replica_db(
    dashboard_db: Engine, read_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """The dashboard pointed at the test database (DATABASE_URL) and at the read-only role
    (DATABASE_READ_URL); yields the application's engine, on the primary."""
    monkeypatch.setenv("DATABASE_READ_URL", read_only_url)
    get_settings.cache_clear()
    # The pages' engines are cached resources, kept across AppTest runs of this process.
    st.cache_resource.clear()
    st.cache_data.clear()
    yield dashboard_db
    get_read_engine().dispose()
    st.cache_resource.clear()  # no later test may find an engine as the dropped role
    st.cache_data.clear()


@contextmanager
def statements() -> Iterator[dict[str, list[str]]]:
    """The SQL each engine ran meanwhile: 'primary' (DATABASE_URL), 'replica'."""
    seen: dict[str, list[str]] = {"primary": [], "replica": []}
    engines = {"primary": get_engine(), "replica": get_read_engine()}
    assert engines["primary"] is not engines["replica"]
    listeners = []
    for name, engine in engines.items():

        def record(conn, cursor, statement, parameters, context, executemany, name=name):
            seen[name].append(statement)

        event.listen(engine, "before_cursor_execute", record)
        listeners.append((engine, record))
    try:
        yield seen
    finally:
        for engine, record in listeners:
            event.remove(engine, "before_cursor_execute", record)


def page(name: str, actor=OPERATOR, **query: str) -> AppTest:
    at = signed_in_page(PAGES / name, actor)
    at.query_params.update(query)
    return at


def ran(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def status_of(db: Engine, charge_id: int) -> str:
    return scalar(db, "SELECT status FROM charges WHERE id = :i", i=charge_id)


def add_failed_notice(db: Engine, charge_id: int) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notices (charge_id, kind, status, attempts, last_error, message_id)"
                " VALUES (:c, 'due', 'failed', 5, '550 mailbox unavailable', :m)"
            ),
            {"c": charge_id, "m": f"<{uuid.uuid4().hex}@test>"},
        )


def test_without_a_read_url_the_read_engine_is_the_application_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Engines connect lazily: these URLs are never dialled."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://billing_app:pw@primary.example/billing")
    monkeypatch.delenv("DATABASE_READ_URL", raising=False)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        assert get_settings().database_read_url == ""
        assert get_read_engine() is get_engine()  # one engine, one pool: nothing changes

        monkeypatch.setenv("DATABASE_READ_URL", "postgres://billing_app:pw@replica.example/billing")
        get_settings.cache_clear()
        replica = get_read_engine()
        assert replica is get_read_engine()  # made once
        assert replica is not get_engine()
        assert (replica.url.host, replica.url.drivername) == (
            "replica.example",
            "postgresql+psycopg",
        )
        assert get_engine().url.host == "primary.example"  # writes stay on DATABASE_URL
        shown = repr(get_settings())
        assert "database_read_url='postgres://billing_app:***@replica.example/billing'" in shown
        assert ":pw@" not in shown
    finally:
        get_read_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_the_read_engine_is_read_only_and_writes_through_it_fail(replica_db: Engine) -> None:
    ids = import_rows(replica_db, 2)
    replica, primary = get_read_engine(), get_engine()
    with replica.connect() as conn:
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        assert conn.execute(text("SELECT current_user")).scalar_one() == replica.url.username
        assert conn.execute(text("SELECT count(*) FROM charges")).scalar_one() == 2
    with primary.connect() as conn:
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "off"

    with pytest.raises(DBAPIError) as refused:
        mark_paid(replica, charge_id=ids["debt-001"], reason="at the branch", actor=OPERATOR)
    assert isinstance(refused.value.orig, psycopg.errors.ReadOnlySqlTransaction)
    assert status_of(replica_db, ids["debt-001"]) != "paid"
    # Why the Imports page reads from the primary: listing closes interrupted imports.
    with pytest.raises(DBAPIError) as refused:
        import_history(replica)
    assert isinstance(refused.value.orig, psycopg.errors.ReadOnlySqlTransaction)

    mark_paid(primary, charge_id=ids["debt-001"], reason="at the branch", actor=OPERATOR)
    assert status_of(replica_db, ids["debt-001"]) == "paid"


def test_every_page_renders_from_the_replica(
    replica_db: Engine, no_accounts: Engine, owner_engine: Engine
) -> None:
    ids = import_rows(replica_db, 12)
    add_failed_notice(replica_db, ids["debt-004"])
    accounts.create_account(
        replica_db, actor=ADMIN, email="boss@x.com", role="admin", password=PASSWORD
    )
    debtor = scalar(replica_db, "SELECT debtor_id FROM charges WHERE id = :i", i=ids["debt-002"])
    ran(page("0_Overview.py"))  # the first run migrates, through the primary

    get_read_engine().dispose()
    with statements() as seen:
        overview = ran(page("0_Overview.py"))
        assert {m.label: m.value for m in overview.metric}["Overdue charges"] == "0"

        charges = ran(page("3_Charges.py", charge=str(ids["debt-002"])))
        assert {m.label: m.value for m in charges.metric}["Charges"] == "12"
        assert len(charges.dataframe[0].value) == 12
        assert charges.subheader[0].value == f"Charge #{ids['debt-002']}"

        debtors = ran(page("5_Debtors.py", debtor=str(debtor)))
        assert "Débora Conceição" in debtors.text[0].value
        assert {m.label: m.value for m in debtors.metric}["Charges"] == "3"

        notifications = ran(page("4_Notifications.py"))
        assert {m.label: m.value for m in notifications.metric}["Failed"] == "1"
        assert list(notifications.dataframe[0].value["debt_id"]) == ["debt-004"]

        accounts_page = ran(page("6_Accounts.py", ADMIN))
        assert list(accounts_page.dataframe[0].value["E-mail"]) == ["boss@x.com"]

        audit = ran(page("7_Audit.py", ADMIN))
        assert "account.create" in set(audit.dataframe[0].value["Action"])

    # Every one of those reads went to the replica; before it, each went to the primary.
    assert seen["primary"] == []
    assert any("FROM charges" in sql for sql in seen["replica"])
    assert any("audit_events" in sql for sql in seen["replica"])
    assert any("FROM accounts" in sql for sql in seen["replica"])
    with owner_engine.connect() as conn:  # and the server saw them come as the read-only role
        users = conn.execute(
            text("SELECT usename FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        assert make_url(get_read_engine().url).username in set(users)

    with statements() as seen:  # the Imports page stays on the primary (see the test above)
        imports = ran(page("2_Imports.py"))
    assert list(imports.dataframe[0].value["file_name"]) == ["x.csv"]
    assert seen["primary"] and not seen["replica"]


def test_actions_write_to_the_primary_and_show_their_result_at_once(
    replica_db: Engine,
) -> None:
    ids = import_rows(replica_db, 3)
    at = ran(page("3_Charges.py", charge=str(ids["debt-002"])))
    assert WROTE_AT not in at.session_state

    with statements() as seen:
        button(at, "Show the whole CPF/CNPJ").click()  # audited: a write
        ran(at)
        at.text_area(key="cancel_reason").input("Sent twice by the seller")
        button(at, "Cancel the charge").click()
        ran(at)
        button(at, "Yes, cancel it").click()  # the cancel asks first
        ran(at)
    assert "Done: the charge was canceled" in at.success[0].value
    assert status_of(replica_db, ids["debt-002"]) == "canceled"
    # The rerun after the action read the charge back from the primary, not the replica,
    # which may not have replayed the change yet.
    assert any(sql.lstrip().startswith("UPDATE charges") for sql in seen["primary"])
    assert any("charge_events" in sql and "SELECT" in sql for sql in seen["primary"])
    assert list(at.dataframe[-1].value["reason"]) == ["Sent twice by the seller"]

    # Once the moment has passed, reads go back to the replica.
    at.session_state[WROTE_AT] = time.monotonic() - 3600
    with statements() as seen:
        ran(at)
    assert seen["primary"] == [] and seen["replica"]
    assert {m.label: m.value for m in at.metric}["Status"] == "Canceled"

    form_input = next(t for t in at.text_input if t.label.startswith("Open a charge"))
    form_input.input("debt-003")
    button(at, "Open").click()
    ran(at)
    assert at.subheader[0].value == f"Charge #{ids['debt-003']}"
    at.text_area(key="paid_reason").input("Paid at the branch")
    button(at, "Record the payment").click()
    ran(at)
    assert "recorded; the charge is now paid" in at.success[0].value
    assert {m.label: m.value for m in at.metric}["Still owed"] == "R$ 0,00"
    assert status_of(replica_db, ids["debt-003"]) == "paid"


def test_notices_accounts_and_uploads_write_to_the_primary(
    replica_db: Engine, no_accounts: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "FAILURE_DELAY_SECONDS", 0.0)
    ids = import_rows(replica_db, 2)
    add_failed_notice(replica_db, ids["debt-001"])

    notifications = ran(page("4_Notifications.py"))
    button(notifications, "Retry failed").click()
    ran(notifications)
    assert "1 failed notice queued again" in notifications.success[0].value
    metrics = {m.label: m.value for m in notifications.metric}
    assert (metrics["Queued"], metrics["Failed"]) == ("1", "0")  # read back at once

    accounts.create_account(
        replica_db, actor=ADMIN, email="boss@x.com", role="admin", password=PASSWORD
    )
    accounts_page = ran(page("6_Accounts.py", ADMIN))
    next(t for t in accounts_page.text_input if t.label == "E-mail").input("new@x.com")
    button(accounts_page, "Add the account").click()
    ran(accounts_page)
    assert "Added new@x.com as operator" in accounts_page.success[0].value
    assert list(accounts_page.dataframe[0].value["E-mail"]) == ["boss@x.com", "new@x.com"]

    upload = ran(page("1_Upload.py"))
    rows = [("Ana Souza", "52998224725", "ana@example.com", "250.00", "2030-02-01", "up-1")]
    upload.file_uploader[0].set_value(("more.csv", debtor_csv(rows), "text/csv"))
    ran(upload)
    button(upload, "Import").click()
    ran(upload)
    assert "Imported 1 charge" in upload.success[0].value
    charges = ran(page("3_Charges.py"))  # another session: straight from the replica
    assert {m.label: m.value for m in charges.metric}["Charges"] == "3"
