"""The embedded PostgreSQL: started with the settings the product gives it."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import Engine

from db.engine import EMBEDDED_SERVER_SETTINGS


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
