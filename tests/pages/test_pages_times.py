"""Times on every screen in TIMEZONE (America/Sao_Paulo by default), dd/mm/aaaa hh:mm,
and "—" where a value is missing: the Imports, Audit and Accounts pages and a charge's
payments and history, through AppTest on the real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from billing.payments.service import mark_paid
from tests.support.actors import ADMIN, OPERATOR, signed_in_page
from tests.support.database import scalar
from tests.support.debtor_files import import_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"
ZONE = "America/Sao_Paulo"  # the default TIMEZONE
BRASILIA = timedelta(hours=-3)  # no daylight saving time since 2019


@pytest.fixture()
def pages_db(dashboard_db: Engine) -> Iterator[Engine]:
    st.cache_data.clear()
    yield dashboard_db
    st.cache_data.clear()


def time_columns(at: AppTest) -> list[pd.Series]:
    """Every column of instants in the page's tables, as the page handed them to the grid."""
    return [
        table.value[column]
        for table in at.dataframe
        for column in table.value.columns
        if isinstance(table.value[column].dtype, pd.DatetimeTZDtype)
    ]


def column_formats(at: AppTest) -> list[dict]:
    """The grid's settings of each time column: its format and zone."""
    configs = [json.loads(table.proto.columns) for table in at.dataframe if table.proto.columns]
    return [
        column
        for config in configs
        for column in config.values()
        if column.get("type_config", {}).get("type") == "datetime"
    ]


def assert_times_in_the_zone(at: AppTest) -> None:
    assert not at.exception
    columns = time_columns(at)
    assert columns, "no column of times on the page"
    for column in columns:
        assert str(column.dt.tz) == ZONE, column.name
        assert all(t.utcoffset() == BRASILIA for t in column.dropna())
    formats = column_formats(at)
    assert formats and all(
        (c["type_config"]["format"], c["type_config"]["timezone"]) == ("DD/MM/YYYY HH:mm", ZONE)
        for c in formats
    ), formats
    assert all(table.proto.placeholder == "—" for table in at.dataframe)


def test_the_imports_page_says_when_in_brasilia_time(pages_db: Engine) -> None:
    import_rows(pages_db, 3)
    at = signed_in_page(PAGES / "2_Imports.py").run()
    assert_times_in_the_zone(at)
    started = at.dataframe[0].value["started_at"].iloc[0]
    assert started == scalar(pages_db, "SELECT started_at FROM imports")  # the same instant


def test_the_audit_page_says_when_in_brasilia_time(pages_db: Engine) -> None:
    import_rows(pages_db, 1)
    at = signed_in_page(PAGES / "7_Audit.py", ADMIN).run()
    assert_times_in_the_zone(at)


def test_the_accounts_page_leaves_a_missing_time_empty(pages_db: Engine) -> None:
    at = signed_in_page(PAGES / "6_Accounts.py", ADMIN).run()
    assert not at.exception
    for table in at.dataframe:
        assert table.proto.placeholder == "—"
        shown = table.value.astype(str).to_numpy().ravel()
        assert "None" not in shown


def test_a_charge_s_payments_and_history_in_brasilia_time(pages_db: Engine) -> None:
    ids = import_rows(pages_db, 2)
    mark_paid(pages_db, charge_id=ids["debt-001"], reason="Paid at the branch", actor=OPERATOR)
    at = signed_in_page(PAGES / "3_Charges.py")
    at.query_params["charge"] = str(ids["debt-001"])
    at.run()
    assert_times_in_the_zone(at)
