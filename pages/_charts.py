"""The dashboard's charts: Plotly bars of the overview's frames, in pt-BR.

Built here, beside the screens, so the domain (billing/) hands over figures and frames
and never a drawing. Their labels (statuses, age buckets) come in English and are shown
in the reader's language."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from billing.charges.overview import AGING_BUCKETS
from billing.core.i18n import N_, _
from billing.core.statuses import STATUS_LABELS

COLORS = {
    N_("Pending (no boleto yet)"): "#9e9e9e",
    N_("Issued"): "#1f77b4",
    N_("Registered at the bank"): "#17becf",
    N_("Partially paid"): "#ff7f0e",
    N_("Paid"): "#2ca02c",
    N_("Canceled"): "#d0d0d0",
    N_("Not yet due"): "#9ecae1",  # not late: drawn pale, apart from the late buckets
    N_("1-30 days"): "#f2c14e",
    N_("31-60 days"): "#f08a3c",
    N_("61-90 days"): "#d9482b",
    N_("Over 90 days"): "#8c1c13",
}
LABEL_COLUMNS = ("label", "bucket")  # English labels, translated when drawn
_DAY_MS = 86_400_000  # plotly measures date axes in milliseconds


def bar_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    money: bool = False,
    horizontal: bool = False,
) -> go.Figure:
    """Bars of one of the frames above, in pt-BR: "R$ 1.234" on the value axis, the
    frame's `hover` sentence on hover. A `day` axis is a date axis labelled dd/mm/yyyy,
    at least a week wide so a single day is not drawn across the whole chart."""
    frame = frame.copy()
    for column in LABEL_COLUMNS:
        if column in frame:
            frame[column] = frame[column].map(_)
    figure = px.bar(
        frame,
        x=x,
        y=y,
        color=color,
        orientation="h" if horizontal else "v",
        custom_data=["hover"],
        color_discrete_map={_(label): value for label, value in COLORS.items()},
        category_orders={
            "label": [_(label) for label in STATUS_LABELS.values()],
            "bucket": [_(bucket) for bucket in AGING_BUCKETS],
        },
    )
    figure.update_traces(hovertemplate="%{customdata[0]}<extra></extra>")
    value_axis = "xaxis" if horizontal else "yaxis"
    figure.update_layout(
        {
            "separators": ",.",
            "height": 320,
            "margin": {"l": 0, "r": 0, "t": 10, "b": 0},
            "legend_title_text": "",
            "showlegend": color is not None and color not in (x, y),
            "xaxis_title": None,
            "yaxis_title": None,
            f"{value_axis}_tickprefix": "R$ " if money else "",
            f"{value_axis}_tickformat": ",.0f" if money else ",d",
        }
    )
    if x == "day" and not frame.empty:
        last = pd.Timestamp(max(frame["day"]))
        first = min(pd.Timestamp(min(frame["day"])), last - pd.Timedelta(days=6))
        half_day = pd.Timedelta(hours=12)
        figure.update_traces(width=0.8 * _DAY_MS)  # a bar is most of its day wide
        figure.update_xaxes(
            type="date",
            tickformat="%d/%m/%Y",
            range=[first - half_day, last + half_day],
            dtick=_DAY_MS if (last - first).days <= 14 else None,
        )
    return figure
