"""The embedded PostgreSQL: started with the settings the product gives it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from db.engine import (
    EMBEDDED_SERVER_SETTINGS,
    EMBEDDED_START_SETTINGS_FILE,
    TEMP_BUFFERS,
    embedded_start_settings,
    make_engine,
    write_start_settings,
)


def test_the_embedded_server_runs_with_its_settings(engine: Engine) -> None:
    if os.environ.get("DATABASE_URL"):
        pytest.skip("a server named by DATABASE_URL is configured by its owner")
    with engine.connect() as conn:
        for name, value in EMBEDDED_SERVER_SETTINGS.items():
            deadline = time.monotonic() + 5  # a reload reaches new sessions within moments
            while (current := conn.exec_driver_sql(f"SHOW {name}").scalar_one()) != value:
                assert time.monotonic() < deadline, (name, current)
                time.sleep(0.05)
                conn.rollback()
        # Read only at start: written into the data folder before the server started.
        for name, value in embedded_start_settings().items():
            current = conn.exec_driver_sql(f"SHOW {name}").scalar_one()
            same = conn.exec_driver_sql(
                "SELECT pg_size_bytes(%(current)s) = pg_size_bytes(%(value)s)",
                {"current": current, "value": value},
            ).scalar_one()
            assert same, (name, current, value)


def test_every_session_gets_its_temporary_tables_memory_and_keeps_the_url_s_options(
    app_database_url: str,
) -> None:
    """Whatever server it is (an import stages its pieces in temporary tables), and with
    options the URL gives its own."""
    separator = "&" if "?" in app_database_url else "?"
    engine = make_engine(f"{app_database_url}{separator}options=-c%20work_mem%3D12MB")
    try:
        with engine.connect() as conn:
            shown = [
                conn.exec_driver_sql(f"SHOW {name}").scalar_one()
                for name in ("temp_buffers", "work_mem", "idle_in_transaction_session_timeout")
            ]
    finally:
        engine.dispose()
    assert shown[:2] == [TEMP_BUFFERS, "12MB"]
    assert shown[2] != "0"


@pytest.mark.parametrize(
    ("memory_gb", "shared_buffers"),
    [(0, "128MB"), (0.25, "128MB"), (1, "256MB"), (6, "1536MB"), (8, "2048MB"), (64, "2048MB")],
)
def test_shared_buffers_is_a_quarter_of_memory_within_bounds(
    memory_gb: float, shared_buffers: str
) -> None:
    memory = int(memory_gb * 1024**3)
    assert embedded_start_settings(memory) == {"shared_buffers": shared_buffers}


def test_start_settings_are_written_once_into_an_existing_data_folder(tmp_path: Path) -> None:
    write_start_settings(tmp_path)  # no postgresql.conf yet (before initdb): nothing
    assert list(tmp_path.iterdir()) == []
    conf = tmp_path / "postgresql.conf"
    conf.write_text("max_connections = 100\n")
    for _ in range(2):
        write_start_settings(tmp_path)
    assert conf.read_text().count(f"include_if_exists = '{EMBEDDED_START_SETTINGS_FILE}'") == 1
    written = (tmp_path / EMBEDDED_START_SETTINGS_FILE).read_text()
    assert f"shared_buffers = '{embedded_start_settings()['shared_buffers']}'" in written
