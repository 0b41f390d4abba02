"""Closed by default: the dashboard's Streamlit configuration, read as Streamlit reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import streamlit.config as streamlit_config

CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"


def read_config() -> dict[str, dict[str, object]]:
    return tomllib.loads(CONFIG.read_text(encoding="utf-8"))


def test_the_dashboard_listens_on_this_machine_only() -> None:
    assert read_config()["server"]["address"] == "127.0.0.1"


def test_the_dashboard_shows_no_tracebacks_and_opens_no_browser() -> None:
    config = read_config()
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["headless"] is True


def test_every_option_is_one_streamlit_knows() -> None:
    known = streamlit_config._config_options_template
    options = {
        f"{section}.{name}": value
        for section, values in read_config().items()
        for name, value in values.items()
    }
    assert set(options) <= set(known), set(options) - set(known)
    shown = options["client.showErrorDetails"]
    assert shown in set(streamlit_config.ShowErrorDetailsConfigOptions)
