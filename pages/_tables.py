"""Tables on screen: times in TIMEZONE as dd/mm/aaaa hh:mm, money and dates that sort by
their value while they read the Brazilian way, and "—" where a value is missing.

Converted here, once, rather than page by page: a page passes its frame through
`in_local_time` and describes a time column with `time_column`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler
from streamlit.delta_generator import DeltaGenerator

from billing.charges.browsing import charge_table
from billing.core.formatting import brl, date_br
from billing.core.i18n import _
from billing.core.settings import get_settings

MISSING = "—"  # what an empty cell shows (st.dataframe's placeholder), never "None"
TIME_FORMAT = "DD/MM/YYYY HH:mm"  # the grid's (moment.js) way of writing dd/mm/aaaa hh:mm


def zone() -> str:
    return get_settings().timezone


def in_local_time(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """`frame` with these columns of instants moved to TIMEZONE (the database keeps UTC);
    a missing instant stays missing (NaT)."""
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_convert(zone())
    return frame


def time_column(label: str, **kwargs: Any) -> Any:
    """A column of instants shown dd/mm/aaaa hh:mm in TIMEZONE; sorts by the instant."""
    return st.column_config.DatetimeColumn(label, format=TIME_FORMAT, timezone=zone(), **kwargs)


# --------------------------------------------------------------------------
# Charges (the Charges page, a debtor's charges)
# --------------------------------------------------------------------------

# Due date, status and amount first, where the eye starts and without scrolling sideways
# at 1440 px; then who, then the references.
CHARGE_COLUMNS = ("Due", "Status", "Amount", "Debtor", "debtId", "Number", "CPF/CNPJ", "E-mail")
# Pixels: wide enough for "13/01/2030", "Emitida, vencida", "R$ 1.234.567,89" whole; the
# columns after them take what is left (about 1,100 px at 1440 with the sidebar open).
_CHARGE_WIDTHS: dict[str, int] = {
    "Due": 95,
    "Status": 140,
    "Amount": 125,
    "Debtor": 200,
    "debtId": 130,
    "Number": 70,
    "CPF/CNPJ": 125,
    "E-mail": 200,
}


def charge_frame(rows: Sequence[Mapping[str, Any]], *, without: Sequence[str] = ()) -> Styler:
    """A page of charges as a table: the amount a number and the due date a date, so that
    a header click orders them by value (R$ 9.769,82 after R$ 57.424,96 when descending),
    shown as R$ 9.769,82 and 31/10/2026; headers in the reader's language."""
    frame = pd.DataFrame(charge_table(rows), columns=list(CHARGE_COLUMNS))
    frame["Amount"] = [row["amount"] for row in rows]
    frame["Due"] = [row["due_date"] for row in rows]
    frame = frame.drop(columns=list(without)).rename(columns=_)
    return frame.style.format({_("Amount"): brl, _("Due"): date_br})


def charge_column_config(*, without: Sequence[str] = ()) -> dict[str, Any]:
    return {
        _(name): st.column_config.Column(width=width)
        for name, width in _CHARGE_WIDTHS.items()
        if name not in without
    }


# Streamlit's grid sorts by a header click in the browser, over the rows it was given:
# for a table showing one page of a larger set that order would lie (the page's 50 rows
# in order, not the filtered set's). Its headers are covered by a layer that takes the
# click; the page's own "Order" choice sorts through the query.
_HEADERS_TAKE_NO_CLICK = (
    "<style>[class*='st-key-one-page-'] [data-testid='stDataFrameResizable']::after"
    "{content:'';position:absolute;top:0;left:0;right:0;height:36px;z-index:3;"
    "cursor:default}</style>"
)


def one_page_of_many(key: str) -> DeltaGenerator:
    """A container for a table that shows one page of a larger set: its column headers
    do not sort (see above); the rows are ordered by the query that fetched them."""
    st.markdown(_HEADERS_TAKE_NO_CLICK, unsafe_allow_html=True)
    return st.container(key=f"one-page-{key}")
