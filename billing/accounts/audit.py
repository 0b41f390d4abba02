"""The audit trail: who signed in, and who did what to money, personal data and accounts.

`record` writes in the caller's transaction, so an action and its audit row commit
together or not at all; `record_now` is for events that stand alone (a sign-in). Rows
are never changed: the table refuses UPDATE and DELETE (sql/007_accounts_audit.sql).
Reading the trail, and exporting it (itself recorded), is for admins.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from billing.accounts.access import Actor, Permission, require
from billing.core.csv_files import csv_chunks
from db import audit as audit_db
from db.audit import AuditEvent, AuditQuery


class Action:
    """The names of the actions recorded, in one place."""

    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    SIGN_OUT = "auth.sign_out"
    LOCKED = "auth.locked"
    IMPORT = "import.file"
    MARK_PAID = "charge.mark_paid"
    CANCEL = "charge.cancel"
    REOPEN = "charge.reopen"  # a canceled charge back to what it was
    RESEND = "notice.resend"
    RETRY_FAILED = "notice.retry_failed"
    SEND_NOW = "notice.send_now"
    EXPORT_CHARGES = "charges.export"
    EXPORT_REJECTED = "import.export_rejected_rows"
    MAPPING_SAVED = "import.mapping_saved"  # a column mapping kept for a source's files
    REVEAL_DOCUMENT = "debtor.reveal_document"
    ACCOUNT_CREATE = "account.create"
    ACCOUNT_DISABLE = "account.disable"
    ACCOUNT_SET_ROLE = "account.set_role"
    ACCOUNT_RESET_PASSWORD = "account.reset_password"
    ACCOUNT_SET_LANGUAGE = "account.set_language"  # its own choice, from the sidebar
    WEBHOOK_PAYMENT = "payment.webhook"
    PAYMENT = "payment.recorded"  # from any other source
    EXPORT_AUDIT = "audit.export"
    REMESSA = "bank_file.remessa"  # a remessa generated: its NSA, counts and sum
    REMESSA_DOWNLOAD = "bank_file.remessa_download"  # personal data leaving again
    RETORNO = "bank_file.retorno"  # a retorno imported: its counts
    WRITTEN_OFF = "charge.written_off"  # a baixa in a retorno canceled an open charge
    REGISTRATION_RESENT = "charge.registration_resent"  # a refused registration, again
    DEBTOR_ADDRESS_SAVED = "debtor.address_saved"  # the postal address segment Q carries
    DEBTOR_EMAIL_CHANGED = "debtor.email_changed"  # corrected: old and new address


AUDIT_HEADER = ("id", "at", "actor", "action", "subject", "details")
PAGE_SIZE = 100


def record(
    conn: Connection,
    *,
    actor: Actor | str,
    action: str,
    subject: str = "",
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one event in the caller's transaction; returns its id."""
    name = actor.name if isinstance(actor, Actor) else actor
    return audit_db.insert_event(
        conn, actor=name, action=action, subject=subject, details=dict(details or {})
    )


def record_now(
    engine: Engine,
    *,
    actor: Actor | str,
    action: str,
    subject: str = "",
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one event in a transaction of its own."""
    with engine.begin() as conn:
        return record(conn, actor=actor, action=action, subject=subject, details=details)


@dataclass(frozen=True)
class AuditFilter:
    """What the Audit page asks for: each field narrows, None means any."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    day_from: date | None = None
    day_to: date | None = None  # inclusive

    def query_args(self, timezone: str) -> AuditQuery:
        zone = ZoneInfo(timezone)
        since = until = None
        if self.day_from is not None:
            since = datetime.combine(self.day_from, time(), zone)
        if self.day_to is not None:
            until = datetime.combine(self.day_to + timedelta(days=1), time(), zone)
        return {
            "actor": (self.actor or "").strip() or None,
            "action": (self.action or "").strip() or None,
            "subject": (self.subject or "").strip() or None,
            "since": since,
            "until": until,
        }


def audit_events(
    engine: Engine,
    *,
    actor: Actor,
    audit_filter: AuditFilter,
    timezone: str,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[AuditEvent]:
    """A page of the trail, newest first (admins only)."""
    require(actor, Permission.READ_AUDIT)
    with engine.connect() as conn:
        return audit_db.events(
            conn, **audit_filter.query_args(timezone), before_id=before_id, limit=limit
        )


def audit_choices(engine: Engine, *, actor: Actor) -> dict[str, list[str]]:
    """The actors and actions seen so far, to choose from."""
    require(actor, Permission.READ_AUDIT)
    with engine.connect() as conn:
        return {
            "actor": audit_db.distinct_values(conn, "actor"),
            "action": audit_db.distinct_values(conn, "action"),
        }


def audit_csv_file(
    engine: Engine, *, actor: Actor, audit_filter: AuditFilter, timezone: str
) -> io.RawIOBase:
    """Every event matching the filter as a CSV file (admins only); the export is recorded."""
    require(actor, Permission.READ_AUDIT)
    args = audit_filter.query_args(timezone)
    file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (returned to the caller)
    rows = 0

    def batches(conn: Connection) -> Iterator[list[tuple[Any, ...]]]:
        nonlocal rows
        for batch in audit_db.stream_events(conn, **args):
            rows += len(batch)
            yield [
                (*row[:-1], json.dumps(row[-1], ensure_ascii=False, sort_keys=True))
                for row in batch
            ]

    with engine.begin() as conn:
        for chunk in csv_chunks(batches(conn), header=AUDIT_HEADER):
            file.write(chunk)
        record(
            conn,
            actor=actor,
            action=Action.EXPORT_AUDIT,
            details={"filter": {k: v for k, v in args.items() if v is not None}, "rows": rows},
        )
    file.seek(0)
    return file
