"""Which notices are due, and what sending records: a real PostgreSQL and a real SMTP server."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billing.imports.service import import_file
from billing.notices.dispatch import send_due_notices
from billing.notices.planning import failed_notices as list_failed_notices
from billing.notices.planning import (
    message_id_for,
    notice_counts,
    plan_notices,
    retry_failed_notices,
    sender_domain,
)
from tests.support.actors import OPERATOR, signed_in_page
from tests.support.database import execute
from tests.support.notices import add_pending_charge, create_charges, notice_settings
from tests.support.smtp_server import SmtpTestServer

TODAY = date(2040, 3, 10)


def planned(db: Engine) -> set[tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT c.debt_id, n.kind FROM notices n JOIN charges c ON c.id = n.charge_id")
        )
        return {(debt_id, kind) for debt_id, kind in rows}


def notices_by_debt(db: Engine) -> dict[tuple[str, str], dict]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT c.debt_id, n.* FROM notices n JOIN charges c ON c.id = n.charge_id")
        ).mappings()
        return {(row["debt_id"], row["kind"]): dict(row) for row in rows}


def test_each_kind_is_queued_on_its_day(db: Engine) -> None:
    create_charges(
        db,
        {
            "later": TODAY + timedelta(days=10),
            "in-3-days": TODAY + timedelta(days=3),
            "in-4-days": TODAY + timedelta(days=4),
            "today": TODAY,
            "yesterday": TODAY - timedelta(days=1),
            "last-year": TODAY - timedelta(days=365),
        },
    )

    counts = plan_notices(db, today=TODAY, settings=notice_settings())

    assert planned(db) == {
        ("later", "issued"),
        ("in-3-days", "issued"),
        ("in-3-days", "reminder"),
        ("in-4-days", "issued"),
        ("today", "issued"),
        ("today", "due"),
        ("yesterday", "overdue"),
        ("last-year", "overdue"),
    }
    assert counts == {"issued": 4, "reminder": 1, "due": 1, "overdue": 2}


def test_planning_again_queues_nothing_new(db: Engine) -> None:
    create_charges(db, {"a": TODAY, "b": TODAY + timedelta(days=2)})
    first = plan_notices(db, today=TODAY, settings=notice_settings())
    again = plan_notices(db, today=TODAY, settings=notice_settings())
    next_day = plan_notices(db, today=TODAY + timedelta(days=1), settings=notice_settings())

    assert sum(first.values()) == 4
    assert sum(again.values()) == 0
    assert next_day == {"issued": 0, "reminder": 0, "due": 0, "overdue": 1}  # a is overdue
    assert len(planned(db)) == 5


def test_paid_canceled_and_pending_charges_get_no_notice(db: Engine) -> None:
    create_charges(db, {"paid": TODAY, "canceled": TODAY - timedelta(days=3), "open": TODAY})
    add_pending_charge(db, "pending", TODAY)
    execute(db, "UPDATE charges SET status = 'paid' WHERE debt_id = 'paid'")
    execute(db, "UPDATE charges SET status = 'canceled' WHERE debt_id = 'canceled'")

    plan_notices(db, today=TODAY, settings=notice_settings())

    assert planned(db) == {("open", "issued"), ("open", "due")}


def test_partially_paid_charges_are_reminded_but_not_announced(db: Engine) -> None:
    create_charges(db, {"soon": TODAY + timedelta(days=1), "late": TODAY - timedelta(days=2)})
    execute(db, "UPDATE charges SET status = 'partially_paid'")

    plan_notices(db, today=TODAY, settings=notice_settings())

    assert planned(db) == {("soon", "reminder"), ("late", "overdue")}


def test_kinds_switched_off_are_not_queued(db: Engine) -> None:
    create_charges(
        db, {"soon": TODAY + timedelta(days=1), "today": TODAY, "late": TODAY - timedelta(days=9)}
    )
    settings = notice_settings(
        notice_on_issue=False,
        notice_reminder_days=0,
        notice_on_due_date=False,
        notice_overdue_days=10,
    )

    counts = plan_notices(db, today=TODAY, settings=settings)

    assert counts == {"issued": 0, "reminder": 0, "due": 0, "overdue": 0}
    plan_notices(db, today=TODAY + timedelta(days=1), settings=settings)
    assert planned(db) == {("late", "overdue")}


def test_no_second_email_on_the_day_the_boleto_is_issued(db: Engine) -> None:
    """The 'issued' e-mail already says when it is due: no reminder or due-day e-mail on
    the day the boleto was issued."""
    create_charges(db, {"due-today": TODAY, "in-2-days": TODAY + timedelta(days=2)})
    execute(
        db,
        "UPDATE charges SET issued_at = CAST(:noon AS timestamp) AT TIME ZONE 'America/Sao_Paulo'",
        noon=f"{TODAY - timedelta(days=1)} 12:00",
    )
    execute(
        db,
        "UPDATE charges SET issued_at = CAST(:noon AS timestamp) AT TIME ZONE 'America/Sao_Paulo'"
        " WHERE debt_id = 'due-today'",
        noon=f"{TODAY} 09:00",
    )

    plan_notices(db, today=TODAY, settings=notice_settings())

    assert planned(db) == {("due-today", "issued"), ("in-2-days", "issued")}


def test_message_id_is_fixed_by_the_charge_and_kind(db: Engine) -> None:
    create_charges(db, {"a": TODAY})
    plan_notices(db, today=TODAY, settings=notice_settings())

    notices = notices_by_debt(db)
    charge_id = notices[("a", "due")]["charge_id"]
    assert notices[("a", "due")]["message_id"] == f"<notice-{charge_id}-due@fundo.example>"
    assert notices[("a", "issued")]["message_id"] == message_id_for(
        charge_id=charge_id, kind="issued", mail_from="Cobrança <cobranca@fundo.example>"
    )


@pytest.mark.parametrize(
    ("mail_from", "domain"),
    [
        ("Cobrança <cobranca@Fundo.Example>", "fundo.example"),
        ("cobranca@fundo.example", "fundo.example"),
    ],
)
def test_sender_domain(mail_from: str, domain: str) -> None:
    assert sender_domain(mail_from) == domain


@pytest.mark.parametrize("mail_from", ["", "Cobrança", "no-at-sign.example"])
def test_a_mail_from_without_an_address_is_refused(mail_from: str) -> None:
    from billing.core.errors import OperatorError

    with pytest.raises(OperatorError, match="MAIL_FROM"):
        sender_domain(mail_from)


def test_sent_notices_are_recorded_once(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {f"c{i}": TODAY + timedelta(days=10) for i in range(7)})
    settings = notice_settings(smtp)
    plan_notices(db, today=TODAY, settings=settings)

    counts = send_due_notices(db, settings=settings, today=TODAY, batch_size=3, group_size=2)
    again = send_due_notices(db, settings=settings, today=TODAY)

    assert (counts.sent, counts.failed, counts.retrying) == (7, 0, 0)
    assert again.sent == 0
    assert notice_counts(db) == {"queued": 0, "sending": 0, "sent": 7, "failed": 0, "skipped": 0}
    assert sorted(smtp.message_id_counts().values()) == [1] * 7
    notices = notices_by_debt(db)
    assert all(n["sent_at"] is not None and n["attempts"] == 1 for n in notices.values())
    ids = {n["message_id"] for n in notices.values()}
    assert set(smtp.message_id_counts()) == ids


def test_transient_failures_retry_with_backoff_then_fail(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"grey": TODAY + timedelta(days=10), "fine": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp, mail_max_attempts=3)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_transiently("grey@example.com")

    first = send_due_notices(db, settings=settings, today=TODAY, retry_base_seconds=60)

    assert (first.sent, first.retrying, first.failed) == (1, 1, 0)
    grey = notices_by_debt(db)[("grey", "issued")]
    assert grey["status"] == "queued" and grey["attempts"] == 1
    assert "451" in grey["last_error"]
    assert grey["next_attempt_at"] - grey["updated_at"] > timedelta(seconds=55)
    # Not due yet: a sender now leaves it alone.
    assert send_due_notices(db, settings=settings, today=TODAY).retrying == 0

    execute(db, "UPDATE notices SET next_attempt_at = now()")
    second = send_due_notices(db, settings=settings, today=TODAY, retry_base_seconds=60)
    grey = notices_by_debt(db)[("grey", "issued")]
    assert second.retrying == 1 and grey["attempts"] == 2
    assert grey["next_attempt_at"] - grey["updated_at"] > timedelta(seconds=115)  # doubled

    execute(db, "UPDATE notices SET next_attempt_at = now()")
    third = send_due_notices(db, settings=settings, today=TODAY, retry_base_seconds=60)
    grey = notices_by_debt(db)[("grey", "issued")]
    assert third.failed == 1
    assert grey["status"] == "failed" and grey["attempts"] == 3
    assert "gave up after 3 attempts" in grey["last_error"]
    assert len(smtp.received) == 1


def test_a_greylisted_notice_goes_out_on_a_later_attempt(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"grey": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_transiently("grey@example.com", times=1)

    first = send_due_notices(db, settings=settings, today=TODAY, retry_base_seconds=60)
    assert first.retrying == 1
    execute(db, "UPDATE notices SET next_attempt_at = now()")
    later = send_due_notices(db, settings=settings, today=TODAY, retry_base_seconds=60)

    assert later.sent == 1
    grey = notices_by_debt(db)[("grey", "issued")]
    assert (grey["status"], grey["attempts"]) == ("sent", 2)


def test_permanent_failures_are_failed_with_the_reason(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"gone": TODAY + timedelta(days=10), "ok": TODAY + timedelta(days=10)})
    execute(db, "UPDATE charges SET payer_email = 'not an address' WHERE debt_id = 'ok'")
    settings = notice_settings(smtp)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_permanently("gone@example.com")

    counts = send_due_notices(db, settings=settings, today=TODAY)

    assert (counts.sent, counts.failed, counts.retrying) == (0, 2, 0)
    failed = {row["debt_id"]: row for row in list_failed_notices(db)}
    assert "550" in failed["gone"]["last_error"]
    assert "Invalid recipient address" in failed["ok"]["last_error"]
    assert failed["gone"]["payer_email"] == "gone@example.com"
    assert smtp.received == []


def test_retry_failed_queues_them_again(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"gone": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp)
    plan_notices(db, today=TODAY, settings=settings)
    smtp.fail_permanently("gone@example.com")
    send_due_notices(db, settings=settings, today=TODAY)
    assert notice_counts(db)["failed"] == 1

    assert retry_failed_notices(db, actor=OPERATOR) == 1
    assert notice_counts(db)["queued"] == 1
    smtp_fixed = SmtpTestServer().start()  # the address was fixed on the other side
    try:
        counts = send_due_notices(db, settings=notice_settings(smtp_fixed), today=TODAY)
    finally:
        smtp_fixed.stop()
    assert counts.sent == 1
    assert notice_counts(db)["sent"] == 1


def test_notices_of_charges_paid_meanwhile_are_skipped(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"paid": TODAY + timedelta(days=2), "open": TODAY + timedelta(days=2)})
    settings = notice_settings(smtp, notice_on_issue=False)
    plan_notices(db, today=TODAY, settings=settings)
    execute(db, "UPDATE charges SET status = 'paid' WHERE debt_id = 'paid'")

    counts = send_due_notices(db, settings=settings, today=TODAY)

    assert (counts.sent, counts.skipped) == (1, 1)
    paid = notices_by_debt(db)[("paid", "reminder")]
    assert paid["status"] == "skipped" and "paid" in paid["last_error"]


def test_a_reminder_is_not_sent_once_the_due_date_came(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"a": TODAY + timedelta(days=2)})
    settings = notice_settings(smtp, notice_on_issue=False)
    plan_notices(db, today=TODAY, settings=settings)

    counts = send_due_notices(db, settings=settings, today=TODAY + timedelta(days=2))

    assert counts.skipped == 1 and smtp.received == []


def test_pdf_is_attached_when_asked(db: Engine, smtp: SmtpTestServer) -> None:
    create_charges(db, {"a": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp, mail_attach_pdf=True)
    plan_notices(db, today=TODAY, settings=settings)

    assert send_due_notices(db, settings=settings, today=TODAY).sent == 1

    message = smtp.received[0].parsed()
    attachments = list(message.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["application/pdf"]
    assert attachments[0].get_filename() == "boleto-a.pdf"
    assert attachments[0].get_content().startswith(b"%PDF")


def test_unreachable_server_keeps_notices_queued_without_losing_attempts(db: Engine) -> None:
    from billing.notices.mailer import MailServerUnavailable
    from tests.support.network import free_port

    create_charges(db, {"a": TODAY + timedelta(days=10), "b": TODAY + timedelta(days=10)})
    settings = notice_settings(smtp_host="127.0.0.1", smtp_port=free_port())
    plan_notices(db, today=TODAY, settings=settings)

    with pytest.raises(MailServerUnavailable, match="Cannot connect"):
        send_due_notices(db, settings=settings, today=TODAY)

    notices = notices_by_debt(db).values()
    assert {(n["status"], n["attempts"]) for n in notices} == {("queued", 0)}
    assert all("Cannot connect" in n["last_error"] for n in notices)
    assert notice_counts(db)["queued"] == 2


def test_the_notifications_page(
    db: Engine, smtp: SmtpTestServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    from billing.core.settings import get_settings
    from db.engine import get_engine

    for name, value in {
        "DATABASE_URL": database_url,
        **smtp.settings_env(),
        "MAIL_FROM": "Cobrança <cobranca@fundo.example>",
        "NOTICE_REMINDER_DAYS": "0",
        "NOTICE_ON_DUE_DATE": "false",
        "NOTICE_OVERDUE_DAYS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        create_charges(db, {"gone": TODAY + timedelta(days=10), "ok": TODAY + timedelta(days=10)})
        settings = notice_settings(smtp)
        plan_notices(db, today=TODAY, settings=settings)
        smtp.fail_permanently("gone@example.com")
        send_due_notices(db, settings=settings, today=TODAY)

        page = Path(__file__).resolve().parents[2] / "pages" / "4_Notifications.py"
        at = signed_in_page(page).run()
        assert not at.exception
        metrics = {m.label: m.value for m in at.metric}
        assert (metrics["Sent"], metrics["Failed"]) == ("1", "1")
        (failures,) = at.dataframe
        assert "550" in failures.value["last_error"].iloc[0]

        at.button[0].click().run()  # Retry failed
        assert not at.exception
        assert "1 failed notice queued again" in at.success[0].value
        assert {m.label: m.value for m in at.metric}["Queued"] == "1"

        at.button[1].click().run()  # Send now: the address is still refused
        assert not at.exception
        assert "0 sent, 1 failed" in at.success[0].value
        assert {m.label: m.value for m in at.metric}["Failed"] == "1"
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_an_operator_can_resend_a_sent_notice_once_more(db: Engine) -> None:
    from billing.core.errors import OperatorError
    from billing.notices.planning import resend_notice
    from tests.support.debtor_files import debtor_csv, sample_rows

    import_file(
        actor=OPERATOR,
        engine=db,
        data=debtor_csv(sample_rows(1)),
        file_name="r.csv",
        lenient_documents=False,
    )
    with db.begin() as conn:
        charge_id = conn.execute(text("SELECT id FROM charges")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO notices (charge_id, kind, status, attempts, sent_at, message_id) "
                "VALUES (:id, 'issued', 'sent', 1, now(), '<notice-1-issued@example.com>')"
            ),
            {"id": charge_id},
        )
    resend_notice(db, actor=OPERATOR, charge_id=charge_id, kind="issued")
    with db.connect() as conn:
        status, message_id = conn.execute(
            text("SELECT status, message_id FROM notices WHERE charge_id = :id"), {"id": charge_id}
        ).one()
    assert status == "queued"
    assert message_id.startswith("<notice-1-issued.resend")
    assert message_id.endswith("@example.com>")
    with pytest.raises(OperatorError, match="not finished"):
        resend_notice(db, actor=OPERATOR, charge_id=charge_id, kind="issued")  # already queued
