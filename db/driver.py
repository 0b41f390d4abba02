"""The psycopg connection under a SQLAlchemy one, for what SQLAlchemy does not say:
COPY, a file of several statements, privileges built with psycopg.sql."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection


def driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection `conn` runs on (always there while `conn` is open)."""
    driver = conn.connection.driver_connection
    assert driver is not None, "an open Connection holds its driver connection"
    return driver


def server_major_version(conn: Connection) -> int:
    """PostgreSQL's major version on the other end of `conn` (17 for 17.2)."""
    version = conn.dialect.server_version_info
    assert version is not None, "the dialect reads the version when it first connects"
    return int(version[0])
