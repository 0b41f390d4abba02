"""Queries on the audit trail (audit_events): append and read, never change."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, text

AUDIT_COLUMNS = ("id", "at", "actor", "action", "subject", "details")


class AuditEvent(TypedDict):
    """One event of the trail (AUDIT_COLUMNS)."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]  # the jsonb object as recorded


class AuditQuery(TypedDict):
    """What narrows the trail: each field a value to match, None for any."""

    actor: str | None
    action: str | None
    subject: str | None
    since: datetime | None  # inclusive
    until: datetime | None  # exclusive


_INSERT = """
INSERT INTO audit_events (actor, action, subject, details)
VALUES (:actor, :action, :subject, CAST(:details AS jsonb))
RETURNING id
"""


def insert_event(
    conn: Connection, *, actor: str, action: str, subject: str, details: Mapping[str, Any]
) -> int:
    return conn.execute(
        text(_INSERT),
        {
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": json.dumps(details, ensure_ascii=False, default=str),
        },
    ).scalar_one()


def _where(
    *,
    actor: str | None,
    action: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, dict[str, Any]]:
    """The filter as a WHERE clause with parameters; every value is a parameter."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if actor:
        clauses.append("actor = :actor")
        params["actor"] = actor
    if action:
        clauses.append("action = :action")
        params["action"] = action
    if subject:
        clauses.append("subject = :subject")
        params["subject"] = subject
    if since is not None:
        clauses.append("at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("at < :until")
        params["until"] = until
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def events(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The newest events first, matching every filter given; keyset pages by id."""
    where, params = _where(actor=actor, action=action, subject=subject, since=since, until=until)
    if before_id is not None:
        where += (" AND " if where else " WHERE ") + "id < :before_id"
        params["before_id"] = before_id
    params["limit"] = limit
    rows = conn.execute(
        text(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events{where} "
            "ORDER BY id DESC LIMIT :limit"
        ),
        params,
    ).mappings()
    return cast(list[AuditEvent], [dict(row) for row in rows])


def stream_events(
    conn: Connection, *, batch_rows: int = 5000, **filters: Any
) -> Iterator[list[tuple[Any, ...]]]:
    """Every matching event, oldest first, in batches from a server-side cursor."""
    where, params = _where(**filters)
    result = conn.execute(
        text(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events{where} ORDER BY id"),
        params,
        execution_options={"stream_results": True, "max_row_buffer": batch_rows},
    )
    while batch := result.fetchmany(batch_rows):
        yield [tuple(row) for row in batch]


def distinct_values(conn: Connection, column: str) -> list[str]:
    """The actors or actions seen so far, for the page's filters."""
    if column not in ("actor", "action"):
        raise ValueError(column)
    return list(
        conn.execute(text(f"SELECT DISTINCT {column} FROM audit_events ORDER BY 1")).scalars()
    )
