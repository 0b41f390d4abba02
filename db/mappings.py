"""Queries on saved column mappings (sql/016_column_mappings.sql)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypedDict

from sqlalchemy import Connection, RowMapping, text


class SavedMapping(TypedDict):
    name: str
    headers_key: str
    columns: dict[str, str]  # required column -> the file's header name


def save_mapping(
    conn: Connection, *, name: str, headers_key: str, columns: Mapping[str, str], actor: str
) -> bool:
    """Insert or replace the mapping called `name`; True when it replaced one."""
    replaced = conn.execute(
        text(
            """
            INSERT INTO column_mappings (name, headers_key, columns, created_by, updated_by)
            VALUES (:name, :headers_key, CAST(:columns AS jsonb), :actor, :actor)
            ON CONFLICT (name) DO UPDATE
               SET headers_key = EXCLUDED.headers_key,
                   columns = EXCLUDED.columns,
                   updated_by = EXCLUDED.updated_by
            RETURNING (xmax <> 0) AS replaced
            """
        ),
        {"name": name, "headers_key": headers_key, "columns": json.dumps(columns), "actor": actor},
    ).scalar_one()
    return bool(replaced)


def mapping_named(conn: Connection, name: str) -> SavedMapping | None:
    row = (
        conn.execute(
            text("SELECT name, headers_key, columns FROM column_mappings WHERE name = :name"),
            {"name": name},
        )
        .mappings()
        .first()
    )
    return _saved(row) if row else None


def mapping_for_headers(conn: Connection, headers_key: str) -> SavedMapping | None:
    """The mapping saved last for a file with exactly this header, if any."""
    row = (
        conn.execute(
            text(
                """
                SELECT name, headers_key, columns FROM column_mappings
                WHERE headers_key = :headers_key
                ORDER BY updated_at DESC, name
                LIMIT 1
                """
            ),
            {"headers_key": headers_key},
        )
        .mappings()
        .first()
    )
    return _saved(row) if row else None


def mapping_names(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT name FROM column_mappings ORDER BY name")).scalars())


def _saved(row: RowMapping) -> SavedMapping:
    columns = row["columns"]
    assert isinstance(columns, dict)
    return SavedMapping(
        name=str(row["name"]), headers_key=str(row["headers_key"]), columns=dict(columns)
    )
