"""Which e-mail notices are due, and the record of each one.

Four kinds, each switched on or off in settings:

* ``issued``: the boleto exists (sent at the first cycle after it is issued);
* ``reminder``: NOTICE_REMINDER_DAYS before the due date (0: off);
* ``due``: on the due date (NOTICE_ON_DUE_DATE);
* ``overdue``: NOTICE_OVERDUE_DAYS after the due date, if still unpaid (0: off).

Each (charge, kind) is e-mailed at most once: the `notices` table has one row per pair,
whatever happens to the e-mail afterwards. Paid and canceled charges get none. Planning
is one INSERT ... SELECT per kind over all charges, never a loop in Python.
"""

from __future__ import annotations

from datetime import date, datetime
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.core.errors import OperatorError
from billing.core.i18n import N_, _
from billing.core.settings import Settings, get_settings
from db import notices as notices_db
from db.notices import FailedNotice

NOTICE_KINDS = ("issued", "reminder", "due", "overdue")
NOTICE_STATUSES = ("queued", "sending", "sent", "failed", "skipped")

KIND_LABELS = {  # in English, marked for the catalogs: shown with _() (billing.core.i18n)
    "issued": N_("Boleto issued"),
    "reminder": N_("Reminder before the due date"),
    "due": N_("On the due date"),
    "overdue": N_("Overdue"),
}


def zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OperatorError(
            _("TIMEZONE must be a time zone name such as America/Sao_Paulo, not {value}.").format(
                value=repr(settings.timezone)
            )
        ) from exc


def today_in(settings: Settings | None = None) -> date:
    """Today's date where the fund works (TIMEZONE), which is what due dates mean."""
    settings = settings or get_settings()
    return datetime.now(zone(settings)).date()


def sender_domain(mail_from: str) -> str:
    """The domain of MAIL_FROM, which names our Message-IDs."""
    address = parseaddr(mail_from)[1]
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c.isspace() or c in "<>" for c in domain):
        raise OperatorError(
            _(
                "MAIL_FROM must hold an e-mail address such as "
                "'Cobrança <cobranca@example.com>', not {value}."
            ).format(value=repr(mail_from))
        )
    return domain.lower()


def message_id_for(*, charge_id: int, kind: str, mail_from: str) -> str:
    """The Message-ID of a notice: the same pair always gets the same one."""
    return f"<notice-{charge_id}-{kind}@{sender_domain(mail_from)}>"


def enabled_kinds(settings: Settings) -> dict[str, int]:
    """The kinds switched on, each with its number of days (0 where none applies)."""
    kinds: dict[str, int] = {}
    if settings.notice_on_issue:
        kinds["issued"] = 0
    if settings.notice_reminder_days > 0:
        kinds["reminder"] = settings.notice_reminder_days
    if settings.notice_on_due_date:
        kinds["due"] = 0
    if settings.notice_overdue_days > 0:
        kinds["overdue"] = settings.notice_overdue_days
    return kinds


def plan_notices(
    engine: Engine, *, today: date, settings: Settings | None = None
) -> dict[str, int]:
    """Queue every notice due on `today` that was never queued; return new ones per kind."""
    settings = settings or get_settings()
    if settings.notice_reminder_days < 0 or settings.notice_overdue_days < 0:
        raise OperatorError(
            _("NOTICE_REMINDER_DAYS and NOTICE_OVERDUE_DAYS must be 0 (off) or more days.")
        )
    zone(settings)  # refuse an unknown time zone before writing anything
    domain = sender_domain(settings.mail_from)
    planned = dict.fromkeys(NOTICE_KINDS, 0)
    with engine.begin() as conn:
        for kind, days in enabled_kinds(settings).items():
            planned[kind] = notices_db.plan_kind(
                conn,
                kind=kind,
                today=today,
                days=days,
                domain=domain,
                on_issue=settings.notice_on_issue,
                timezone=settings.timezone,
                requires_registration=settings.notice_requires_registration,
            )
    return planned


def notice_counts(engine: Engine) -> dict[str, int]:
    """How many notices are in each status (every status present, zero included)."""
    counts = notices_db.status_counts(engine)
    return {status: counts.get(status, 0) for status in NOTICE_STATUSES}


def queue_parts(engine: Engine) -> dict[str, int]:
    """The queue now (queued + sending), in parts that add up to it: `due` to send now,
    `sending` claimed by a sender (this one or the worker's), `later` to be tried again
    after a failure, `waiting` for the mail server to answer."""
    return notices_db.queue_parts(engine)


def notices_version(engine: Engine) -> tuple[object, ...]:
    """A value that moves whenever notice_counts may have (a cache key; cheap)."""
    return notices_db.notices_version(engine)


def failed_notices(engine: Engine, *, limit: int = 500) -> list[FailedNotice]:
    """The failed notices, newest first, each with the reason it failed."""
    return notices_db.failed_notices(engine, limit=limit)


def retry_failed_notices(engine: Engine, *, actor: Actor) -> int:
    """Queue the failed notices again, with a fresh count of attempts; return how many."""
    require(actor, Permission.SEND_NOTICES)
    with engine.begin() as conn:
        retried = notices_db.requeue_failed(conn)
        audit.record(
            conn, actor=actor, action=audit.Action.RETRY_FAILED, details={"notices": retried}
        )
    return retried


def resend_notice(engine: Engine, *, actor: Actor, charge_id: int, kind: str) -> None:
    """Send one notice of a charge again at the next sending round (an operator's call)."""
    require(actor, Permission.SEND_NOTICES)
    if kind not in NOTICE_KINDS:
        raise OperatorError(_("There is no notice kind {kind}.").format(kind=repr(kind)))
    with engine.begin() as conn:
        if not notices_db.requeue_notice(conn, charge_id=charge_id, kind=kind):
            raise OperatorError(
                _(
                    "That notice is not finished yet (it is queued or being sent), "
                    "or it was never planned for this charge."
                ),
                title=_("Nothing to resend"),
            )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.RESEND,
            subject=f"charge:{charge_id}",
            details={"kind": kind},
        )
