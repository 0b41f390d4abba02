"""Queries on accounts and their dashboard sessions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, text

ACCOUNT_COLUMNS = (
    "id, email, role, password_hash, disabled_at, failed_attempts, locked_until, "
    "last_sign_in_at, created_at, created_by"
)


class AccountRow(TypedDict):
    """An account's row (ACCOUNT_COLUMNS)."""

    id: int
    email: str
    role: str
    password_hash: str | None  # None: signs in through OIDC only
    disabled_at: datetime | None
    failed_attempts: int
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime
    created_by: str


class OpenSession(TypedDict):
    """A session still in use and the account behind it."""

    session_id: int
    last_seen_at: datetime
    id: int  # the account's
    email: str
    role: str


class SessionOwner(TypedDict):
    """The account a session token belongs to, whether the session is open or not."""

    id: int
    email: str


def _one(conn: Connection, sql: str, params: Mapping[str, object]) -> Mapping[str, Any] | None:
    row = conn.execute(text(sql), params).mappings().first()
    return dict(row) if row else None


def lock_first_account_creation(conn: Connection) -> None:
    """Serialise 'is there any account? then create the first one' across sessions."""
    conn.execute(text("SELECT pg_advisory_xact_lock(7301003)"))


def has_accounts(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT EXISTS (SELECT 1 FROM accounts)")).scalar_one())


def account_by_email(
    conn: Connection, email: str, *, for_update: bool = False
) -> AccountRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = _one(
        conn, f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = :email{lock}", {"email": email}
    )
    return cast(AccountRow | None, row)


def all_accounts(conn: Connection) -> list[AccountRow]:
    rows = conn.execute(text(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY email"))
    return cast(list[AccountRow], [dict(row) for row in rows.mappings()])


def count_active_admins(conn: Connection) -> int:
    return conn.execute(
        text("SELECT count(*) FROM accounts WHERE role = 'admin' AND disabled_at IS NULL")
    ).scalar_one()


def insert_account(
    conn: Connection, *, email: str, role: str, password_hash: str | None, created_by: str
) -> int:
    return conn.execute(
        text(
            "INSERT INTO accounts (email, role, password_hash, created_by) "
            "VALUES (:email, :role, :password_hash, :created_by) RETURNING id"
        ),
        {"email": email, "role": role, "password_hash": password_hash, "created_by": created_by},
    ).scalar_one()


def update_account(conn: Connection, account_id: int, **values: Any) -> None:
    """Set the given columns (names from code only, values as parameters)."""
    allowed = {
        "role",
        "password_hash",
        "disabled_at",
        "failed_attempts",
        "locked_until",
        "last_sign_in_at",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not an account column: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    conn.execute(
        text(f"UPDATE accounts SET {assignments} WHERE id = :id"), {**values, "id": account_id}
    )


def insert_session(conn: Connection, *, account_id: int, token_sha256: str) -> None:
    conn.execute(
        text(
            "INSERT INTO account_sessions (account_id, token_sha256) "
            "VALUES (:account_id, :token_sha256)"
        ),
        {"account_id": account_id, "token_sha256": token_sha256},
    )


_OPEN_SESSION = """
SELECT s.id AS session_id, s.last_seen_at, a.id, a.email, a.role
FROM account_sessions AS s
JOIN accounts AS a ON a.id = s.account_id
WHERE s.token_sha256 = :token_sha256
  AND s.ended_at IS NULL
  AND a.disabled_at IS NULL
  AND s.last_seen_at > now() - make_interval(mins => :idle_minutes)
"""


def open_session(conn: Connection, *, token_sha256: str, idle_minutes: int) -> OpenSession | None:
    """The account behind a session still in use, or None (unknown, ended, idle, disabled)."""
    params = {"token_sha256": token_sha256, "idle_minutes": idle_minutes}
    return cast(OpenSession | None, _one(conn, _OPEN_SESSION, params))


def touch_session(conn: Connection, session_id: int) -> None:
    conn.execute(
        text("UPDATE account_sessions SET last_seen_at = now() WHERE id = :id"),
        {"id": session_id},
    )


def account_of_session(conn: Connection, token_sha256: str) -> SessionOwner | None:
    row = _one(
        conn,
        "SELECT a.id, a.email FROM account_sessions AS s JOIN accounts AS a "
        "ON a.id = s.account_id WHERE s.token_sha256 = :token_sha256",
        {"token_sha256": token_sha256},
    )
    return cast(SessionOwner | None, row)


def end_sessions(conn: Connection, account_id: int) -> int:
    """End every open session of an account; returns how many were open."""
    return conn.execute(
        text(
            "UPDATE account_sessions SET ended_at = now() "
            "WHERE account_id = :account_id AND ended_at IS NULL"
        ),
        {"account_id": account_id},
    ).rowcount


def now(conn: Connection) -> datetime:
    return conn.execute(text("SELECT now()")).scalar_one()


def account_language(conn: Connection, email: str) -> str | None:
    """The language an account chose, or None: the default (LANGUAGE), or no such account."""
    return conn.execute(
        text("SELECT language FROM accounts WHERE email = :email"), {"email": email}
    ).scalar_one_or_none()


def set_account_language(conn: Connection, email: str, language: str | None) -> bool:
    """Keep an account's language (None: the default); False when there is no such account."""
    updated = conn.execute(
        text("UPDATE accounts SET language = :language WHERE email = :email"),
        {"email": email, "language": language},
    )
    return updated.rowcount == 1
