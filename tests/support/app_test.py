"""Reaching the widgets of a page run by Streamlit's AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
