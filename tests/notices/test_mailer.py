"""Notice e-mails: what they say (parsed back with the `email` package) and the SMTP
session against a real aiosmtpd server: refusals sorted, reconnection, rate limit."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

from billing.notices.mailer import (
    DeliveryError,
    MailServerUnavailable,
    NoticeMail,
    RateLimiter,
    SmtpConnection,
    render_notice,
)
from tests.support.network import free_port
from tests.support.notices import notice_settings
from tests.support.smtp_server import SmtpTestServer

LINE = "10490.05505 77000.100048 00000.000182 7 65560000010050"
PIX = "00020101021226360014br.gov.bcb.pix0114+5511999999999520400005303986540510.005802BR6304ABCD"


def mail(**changes: object) -> NoticeMail:
    values: dict[str, object] = {
        "kind": "issued",
        "charge_id": 42,
        "message_id": "<notice-42-issued@fundo.example>",
        "to_name": "Maria da Conceição",
        "to_address": "maria@example.com",
        "amount": Decimal("2952.95"),
        "due_date": date(2040, 7, 8),
        "debt_id": "debt-0042",
        "digitable_line": LINE,
        "pix_code": None,
    }
    values.update(changes)
    return NoticeMail(**values)  # type: ignore[arg-type]


def parse(data: bytes):
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    return message_from_bytes(data, policy=policy.default)


def test_the_message_says_who_what_and_when() -> None:
    sent_at = datetime(2040, 7, 1, 11, 0, tzinfo=UTC)
    message = parse(render_notice(mail(), settings=notice_settings(), sent_at=sent_at))

    assert message["From"] == "Cobrança <cobranca@fundo.example>"
    assert message["To"] == "Maria da Conceição <maria@example.com>"
    assert message["Message-ID"] == "<notice-42-issued@fundo.example>"
    assert message["Subject"] == "Seu boleto de R$ 2.952,95 com vencimento em 08/07/2040"
    assert message["Date"] == "Sun, 01 Jul 2040 11:00:00 +0000"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    for body in (text, page):
        assert "Maria da Conceição" in body
        assert "R$ 2.952,95" in body
        assert "08/07/2040" in body
        assert LINE in body
        assert "Pix" not in body
        assert "PDF" not in body
    assert list(message.iter_attachments()) == []


def test_the_pix_code_is_included_when_present() -> None:
    message = parse(render_notice(mail(pix_code=PIX), settings=notice_settings()))

    assert PIX in message.get_body(("plain",)).get_content()
    assert PIX in message.get_body(("html",)).get_content()


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("issued", "Seu boleto de R$ 2.952,95 com vencimento em 08/07/2040"),
        ("reminder", "Lembrete: seu boleto de R$ 2.952,95 vence em 08/07/2040"),
        ("due", "Seu boleto de R$ 2.952,95 vence hoje (08/07/2040)"),
        ("overdue", "Boleto vencido em 08/07/2040: R$ 2.952,95 em aberto"),
    ],
)
def test_each_kind_has_its_subject(kind: str, subject: str) -> None:
    message = parse(render_notice(mail(kind=kind), settings=notice_settings()))
    assert message["Subject"] == subject


def test_names_cannot_inject_headers_or_html() -> None:
    data = render_notice(
        mail(to_name="Eve <b>\r\nBcc: victim@example.com"), settings=notice_settings()
    )
    message = parse(data)

    assert message["Bcc"] is None
    assert "<b>" not in message.get_body(("html",)).get_content()
    assert "Eve &lt;b&gt;" in message.get_body(("html",)).get_content()


def test_a_long_accented_name_is_encoded_in_short_words() -> None:
    """RFC 2047 words of at most 75 characters, decoded back whole (with the RFC's own
    decoder: the `email` package's newer address parser splits such names)."""
    name = "Maria " + "Conceição " * 12
    data = render_notice(mail(to_name=name), settings=notice_settings())
    raw = message_from_bytes(data)["To"]

    assert max(len(word) for word in raw.split()) <= 75
    assert str(make_header(decode_header(raw))) == f"{name.strip()} <maria@example.com>"


def test_the_pdf_is_attached_as_base64() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    message = parse(render_notice(mail(), settings=notice_settings(), pdf=pdf))

    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "boleto-debt-0042.pdf"
    assert attachment.get_content() == pdf
    assert "PDF" in message.get_body(("plain",)).get_content()


def test_messages_reach_the_server(smtp: SmtpTestServer) -> None:
    settings = notice_settings(smtp)
    with SmtpConnection(settings) as connection:
        for n in range(3):
            connection.send(
                sender="cobranca@fundo.example",
                recipient=f"p{n}@example.com",
                message=render_notice(mail(message_id=f"<m{n}@x>"), settings=settings),
            )

    assert [r.rcpt_tos for r in smtp.received] == [(f"p{n}@example.com",) for n in range(3)]
    assert [r.message_id for r in smtp.received] == ["<m0@x>", "<m1@x>", "<m2@x>"]


@pytest.mark.parametrize(
    ("fail", "transient", "code"),
    [("fail_transiently", True, "451"), ("fail_permanently", False, "550")],
)
def test_refusals_are_sorted(smtp: SmtpTestServer, fail: str, transient: bool, code: str) -> None:
    getattr(smtp, fail)("nobody@example.com")
    with SmtpConnection(notice_settings(smtp)) as connection:
        with pytest.raises(DeliveryError) as refused:
            connection.send(sender="a@fundo.example", recipient="nobody@example.com", message=b"x")
        # The session survives a refusal: the next message goes on the same connection.
        connection.send(sender="a@fundo.example", recipient="ok@example.com", message=b"x")

    assert refused.value.transient is transient
    assert code in refused.value.reason
    assert len(smtp.received) == 1


def test_a_message_refused_after_its_data_is_a_permanent_failure(smtp: SmtpTestServer) -> None:
    smtp.refuse_content_for("spam@example.com")
    with SmtpConnection(notice_settings(smtp)) as connection:
        with pytest.raises(DeliveryError, match="554") as refused:
            connection.send(sender="a@fundo.example", recipient="spam@example.com", message=b"x")
        connection.send(sender="a@fundo.example", recipient="ok@example.com", message=b"y")

    assert refused.value.transient is False
    assert [r.rcpt_tos for r in smtp.received] == [("ok@example.com",)]


def test_lines_starting_with_a_dot_arrive_intact(smtp: SmtpTestServer) -> None:
    body = b"Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend"
    with SmtpConnection(notice_settings(smtp)) as connection:
        connection.send(sender="a@fundo.example", recipient="b@example.com", message=body)

    assert smtp.received[0].content == body + b"\r\n"


def test_the_next_message_is_prepared_while_the_server_takes_one_in(
    smtp: SmtpTestServer,
) -> None:
    """start() returns before the server's verdict; finish() reads it."""
    smtp.delay = 0.3
    with SmtpConnection(notice_settings(smtp)) as connection:
        started = time.monotonic()
        connection.start(sender="a@fundo.example", recipient="b@example.com", message=b"x")
        assert time.monotonic() - started < 0.25
        connection.finish()
        assert time.monotonic() - started >= 0.3
    assert len(smtp.received) == 1


@pytest.mark.parametrize("address", ["", "no-at-sign", "two@@example.com", "joão@exemplo.com"])
def test_an_invalid_address_is_a_permanent_failure(smtp: SmtpTestServer, address: str) -> None:
    with (
        SmtpConnection(notice_settings(smtp)) as connection,
        pytest.raises(DeliveryError, match="Invalid recipient") as refused,
    ):
        connection.send(sender="a@fundo.example", recipient=address, message=b"x")
    assert refused.value.transient is False


def test_a_dropped_connection_is_reopened(smtp: SmtpTestServer) -> None:
    with SmtpConnection(notice_settings(smtp)) as connection:
        connection.send(sender="a@fundo.example", recipient="one@example.com", message=b"1")
        smtp.restart()  # the server drops every session
        connection.send(sender="a@fundo.example", recipient="two@example.com", message=b"2")

    assert [r.rcpt_tos for r in smtp.received] == [("one@example.com",), ("two@example.com",)]


def test_no_server_is_an_operator_error() -> None:
    settings = notice_settings(smtp_host="127.0.0.1", smtp_port=free_port())
    with (
        SmtpConnection(settings) as connection,
        pytest.raises(MailServerUnavailable, match="SMTP_HOST"),
    ):
        connection.send(sender="a@fundo.example", recipient="b@example.com", message=b"x")


def test_an_unknown_security_mode_is_refused() -> None:
    from billing.core.errors import OperatorError

    with pytest.raises(OperatorError, match="SMTP_SECURITY"):
        SmtpConnection(notice_settings(smtp_security="tls"))


def test_the_rate_limit_spaces_messages() -> None:
    limiter = RateLimiter(50)
    started = time.monotonic()
    for _ in range(11):
        limiter.wait()
    assert time.monotonic() - started >= 0.19  # 10 intervals of 20 ms


def test_no_rate_limit_does_not_wait() -> None:
    limiter = RateLimiter(0)
    started = time.monotonic()
    for _ in range(1000):
        limiter.wait()
    assert time.monotonic() - started < 0.1


def test_message_bytes_parse_as_the_standard_library_would_build_them() -> None:
    data = render_notice(mail(kind="overdue", pix_code=PIX), settings=notice_settings())
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message["Auto-Submitted"] == "auto-generated"
