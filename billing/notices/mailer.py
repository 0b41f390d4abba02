"""Notice e-mails: rendering from the templates, and sending over SMTP (smtplib).

A message is laid out by hand as MIME bytes (multipart/alternative: plain text and HTML,
inside multipart/mixed when the boleto PDF is attached). The standard `email` package
takes about 1.5 ms per message, longer than the SMTP exchange itself on a local relay;
this takes a few tens of microseconds, and tests parse the result with `email` to check it.

`SmtpConnection` keeps one connection for many messages, reconnects when the server
drops it, and sorts every refusal into transient (4xx, connection lost, time-out: try
again later) or permanent (5xx, invalid address: give up and say why).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from string import Template

from billing.core.errors import OperatorError
from billing.core.formatting import brl, date_br
from billing.core.i18n import _
from billing.core.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# What each kind says ({amount} and {due_date} already formatted for Brazil). The
# bodies are in templates/notice.txt and notice.html, in string.Template's $name syntax.
SUBJECTS = {
    "issued": "Seu boleto de {amount} com vencimento em {due_date}",
    "reminder": "Lembrete: seu boleto de {amount} vence em {due_date}",
    "due": "Seu boleto de {amount} vence hoje ({due_date})",
    "overdue": "Boleto vencido em {due_date}: {amount} em aberto",
}
INTROS = {
    "issued": "O boleto da sua cobrança está disponível. Ele vence em {due_date}.",
    "reminder": "Lembramos que o seu boleto vence em {due_date}.",
    "due": "O seu boleto vence hoje, {due_date}.",
    "overdue": "O seu boleto venceu em {due_date} e ainda não identificamos o pagamento.",
}
PIX_TEXT = "\r\nPix copia e cola:\r\n{pix_code}\r\n"
PIX_HTML = (
    '<p>Ou pague com Pix copia e cola:<br><code style="word-break: break-all;">'
    "{pix_code}</code></p>\r\n"
)
ATTACHMENT_TEXT = "\r\nO boleto em PDF está anexo a este e-mail.\r\n"
ATTACHMENT_HTML = "<p>O boleto em PDF está anexo a este e-mail.</p>\r\n"

# Plain ASCII, one @, a dot in the domain: what every relay accepts without SMTPUTF8.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_DOT_AT_LINE_START = re.compile(rb"^\.", re.MULTILINE)  # dot-stuffing (RFC 5321 4.5.2)
# "=_" never occurs in quoted-printable or base64 text, so these cannot clash with a body.
_ALTERNATIVE_BOUNDARY = "=_notice_alternative"
_MIXED_BOUNDARY = "=_notice_mixed"
_ALTERNATIVE_TYPE = f'Content-Type: multipart/alternative; boundary="{_ALTERNATIVE_BOUNDARY}"\r\n'


@dataclass(frozen=True)
class NoticeMail:
    """What one notice e-mail says, and to whom."""

    kind: str
    charge_id: int
    message_id: str
    to_name: str
    to_address: str
    amount: Decimal
    due_date: date
    debt_id: str
    digitable_line: str
    pix_code: str | None = None


class DeliveryError(Exception):
    """The server did not take one message; `transient` says whether to try again later."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class MailServerUnavailable(OperatorError):
    """No usable connection to the SMTP server: nothing can be sent until it is fixed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title=_("Cannot reach the mail server"))


@lru_cache(maxsize=2)
def _template(name: str) -> str:
    """A template file as a str.format string with CRLF line ends: the same result as
    string.Template.substitute, several times faster (one render per e-mail)."""
    source = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    source = source.replace("\r\n", "\n").replace("\n", "\r\n")
    source = source.replace("{", "{{").replace("}", "}}")

    def placeholder(found: re.Match[str]) -> str:
        if found.group("escaped") is not None:
            return "$"
        name = found.group("named") or found.group("braced")
        if name is None:
            raise ValueError(f"invalid placeholder in template {name!r}")
        return "{" + name + "}"

    return Template.pattern.sub(placeholder, source)


def _one_line(value: str) -> str:
    """A value fit for a header or a line: no line breaks or control characters."""
    if value.isprintable():
        return value.strip()
    return _CONTROL.sub(" ", value).strip()


def _encode_header(value: str) -> str:
    """RFC 2047 encoded words (base64, UTF-8) for non-ASCII text; ASCII stays as is."""
    value = _one_line(value)
    if value.isascii():
        return value
    data = value.encode()
    if len(data) <= 45:  # 45 bytes: 60 base64 characters, a 72-character word
        return f"=?utf-8?b?{base64.b64encode(data).decode()}?="
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode())
        if size + width > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(word.encode()).decode()}?=" for word in words)


def _address_header(name: str, address: str) -> str:
    name = _one_line(name)
    if name.isascii():
        return formataddr((name, address))
    return f"{_encode_header(name)} <{address}>"


@lru_cache(maxsize=8)
def _from_header(mail_from: str) -> tuple[str, str]:
    """(envelope sender, From header) of MAIL_FROM."""
    name, address = parseaddr(mail_from)
    if not is_deliverable_address(address):
        raise OperatorError(
            _(
                "MAIL_FROM must hold an e-mail address such as "
                "'Cobrança <cobranca@example.com>', not {value}."
            ).format(value=repr(mail_from))
        )
    return address, _address_header(name, address)


def envelope_sender(settings: Settings) -> str:
    return _from_header(settings.mail_from)[0]


def is_deliverable_address(address: str) -> bool:
    return bool(address) and _ADDRESS.fullmatch(address) is not None


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode(), istext=True)


def _base64_lines(data: bytes) -> bytes:
    return b"".join(
        binascii.b2a_base64(data[i : i + 57], newline=False) + b"\r\n"
        for i in range(0, len(data), 57)
    )


def render_notice(
    mail: NoticeMail,
    *,
    settings: Settings,
    pdf: bytes | None = None,
    sent_at: datetime | None = None,
) -> bytes:
    """The whole message, headers and bodies, ready for SMTP (CRLF line ends)."""
    text_values, html_values = _template_values(mail, settings=settings, attached=bool(pdf))
    alternative = _alternative_part(
        text_body=_template("notice.txt").format_map(text_values),
        html_body=_template("notice.html").format_map(html_values),
    )
    headers = _headers(mail, subject=text_values["subject"], settings=settings, sent_at=sent_at)
    if not pdf:
        return (headers + _ALTERNATIVE_TYPE + "\r\n").encode() + alternative
    return _mixed_with_pdf(headers, alternative, pdf=pdf, debt_id=mail.debt_id)


def _template_values(
    mail: NoticeMail, *, settings: Settings, attached: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """What fills the templates: as text for notice.txt, HTML-escaped for notice.html."""
    amount = brl(mail.amount)
    due = date_br(mail.due_date)
    text_values = {
        "subject": SUBJECTS[mail.kind].format(amount=amount, due_date=due),
        "name": _one_line(mail.to_name),
        "intro": INTROS[mail.kind].format(amount=amount, due_date=due),
        "amount": amount,
        "due_date": due,
        "debt_id": _one_line(mail.debt_id),
        "digitable_line": mail.digitable_line,
        "beneficiary": settings.beneficiary_name,
    }
    html_values = {key: html.escape(value) for key, value in text_values.items()}
    pix_code = _one_line(mail.pix_code or "")
    text_values["pix_section"] = PIX_TEXT.format(pix_code=pix_code) if pix_code else ""
    html_values["pix_section"] = PIX_HTML.format(pix_code=html.escape(pix_code)) if pix_code else ""
    text_values["attachment_section"] = ATTACHMENT_TEXT if attached else ""
    html_values["attachment_section"] = ATTACHMENT_HTML if attached else ""
    return text_values, html_values


def _headers(
    mail: NoticeMail, *, subject: str, settings: Settings, sent_at: datetime | None
) -> str:
    """The message's headers up to, not including, its Content-Type."""
    when = sent_at or datetime.now().astimezone()
    return (
        f"From: {_from_header(settings.mail_from)[1]}\r\n"
        f"To: {_address_header(_one_line(mail.to_name), mail.to_address)}\r\n"
        f"Subject: {_encode_header(subject)}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: {mail.message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-generated\r\n"
    )


def _alternative_part(*, text_body: str, html_body: str) -> bytes:
    """The plain-text and HTML bodies as one multipart/alternative (quoted-printable)."""
    return (
        (
            f"--{_ALTERNATIVE_BOUNDARY}\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        + _qp(text_body)
        + (
            f"\r\n--{_ALTERNATIVE_BOUNDARY}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        + _qp(html_body)
        + f"\r\n--{_ALTERNATIVE_BOUNDARY}--\r\n".encode()
    )


def _mixed_with_pdf(headers: str, alternative: bytes, *, pdf: bytes, debt_id: str) -> bytes:
    """The whole message as multipart/mixed: the bodies, then the boleto PDF attached."""
    file_name = re.sub(r"[^A-Za-z0-9._-]", "_", f"boleto-{debt_id}.pdf")
    return (
        (
            headers + f'Content-Type: multipart/mixed; boundary="{_MIXED_BOUNDARY}"\r\n\r\n'
            f"--{_MIXED_BOUNDARY}\r\n" + _ALTERNATIVE_TYPE + "\r\n"
        ).encode()
        + alternative
        + (
            f"\r\n--{_MIXED_BOUNDARY}\r\n"
            f'Content-Type: application/pdf; name="{file_name}"\r\n'
            f'Content-Disposition: attachment; filename="{file_name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + _base64_lines(pdf)
        + f"\r\n--{_MIXED_BOUNDARY}--\r\n".encode()
    )


def _reply_text(message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return " ".join(message.split())


class SmtpConnection:
    """One SMTP session reused for many messages; reconnects when the server drops it."""

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_security not in {"none", "starttls", "ssl"}:
            raise OperatorError(
                _("SMTP_SECURITY must be none, starttls or ssl, not {value}.").format(
                    value=repr(settings.smtp_security)
                )
            )
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._awaiting = False  # a message was sent and its verdict not read yet

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def connect(self) -> None:
        s = self.settings
        try:
            if s.smtp_security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host,
                    s.smtp_port,
                    timeout=s.smtp_timeout_seconds,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
            try:
                smtp.ehlo_or_helo_if_needed()
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise MailServerUnavailable(
                _(
                    "The mail server {server} refused the login of SMTP_USER ({reply}). "
                    "Check SMTP_USER and SMTP_PASSWORD; the notices stay queued."
                ).format(server=self.where, reply=f"{exc.smtp_code} {_reply_text(exc.smtp_error)}")
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailServerUnavailable(
                _(
                    "Cannot connect to the mail server {server} ({error}). Check SMTP_HOST, "
                    "SMTP_PORT and SMTP_SECURITY; the notices stay queued and go out once "
                    "the server answers."
                ).format(server=self.where, error=exc or type(exc).__name__)
            ) from exc
        self._smtp = smtp

    def close(self) -> None:
        if self._awaiting:
            self._drop()  # never QUIT over an unread verdict
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _drop(self) -> None:
        self._awaiting = False
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def send(self, *, sender: str, recipient: str, message: bytes) -> None:
        """Hand one message to the server, or raise DeliveryError (MailServerUnavailable
        when no connection can be made at all)."""
        self.start(sender=sender, recipient=recipient, message=message)
        self.finish()

    def start(self, *, sender: str, recipient: str, message: bytes) -> None:
        """MAIL, RCPT, DATA and the message itself; `finish` reads the server's verdict.

        Between the two, the caller can prepare the next message or write to the
        database while the server takes this one in: the one slow step of the exchange
        then costs the sender nothing. A connection found closed before the message
        went out (a server dropping idle sessions) is reopened and the message tried
        once more.
        """
        if self._awaiting:
            raise RuntimeError("finish() the message in flight before starting another")
        if not is_deliverable_address(recipient):
            raise DeliveryError(
                f"Invalid recipient address {recipient!r}: fix the debtor's e-mail.",
                transient=False,
            )
        payload = _DOT_AT_LINE_START.sub(b"..", message)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        payload += b".\r\n"
        for attempt in (1, 2):
            if self._smtp is None:
                self.connect()
            smtp = self._smtp
            assert smtp is not None
            try:
                self._command(smtp, f"mail FROM:<{sender}>", (250,), "refused the sender")
                self._command(smtp, f"rcpt TO:<{recipient}>", (250, 251), "refused the recipient")
                self._command(smtp, "data", (354,), "refused the message")
                smtp.send(payload)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if attempt == 2:
                    raise self._lost(exc) from exc
                continue
            self._awaiting = True
            return

    def finish(self) -> None:
        """Read the server's verdict on the message `start` sent."""
        if not self._awaiting:
            return
        self._awaiting = False
        smtp = self._smtp
        assert smtp is not None
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # It may or may not have been taken: it goes again later, same Message-ID.
            self._drop()
            raise self._lost(exc) from exc
        if code != 250:
            if code == 421:
                self._drop()
            raise self._refusal("refused the message", code, reply)

    def _command(
        self, smtp: smtplib.SMTP, command: str, expected: tuple[int, ...], what: str
    ) -> None:
        smtp.putcmd(command)
        code, reply = smtp.getreply()
        if code in expected:
            return
        if code == 421:  # the server is closing the session
            self._drop()
        else:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        raise self._refusal(what, code, reply)

    def _lost(self, exc: BaseException) -> DeliveryError:
        reason = "timed out" if isinstance(exc, socket.timeout) else "disconnected"
        return DeliveryError(
            f"The mail server {self.where} {reason} ({exc or type(exc).__name__})",
            transient=True,
        )

    @staticmethod
    def _refusal(what: str, code: int, reply: bytes | str) -> DeliveryError:
        transient = not 500 <= code < 600
        return DeliveryError(
            f"The mail server {what}: {code} {_reply_text(reply)}", transient=transient
        )


class RateLimiter:
    """At most `per_second` messages a second from this process (0: no limit)."""

    def __init__(self, per_second: int) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


_limiters: dict[int, RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter(per_second: int) -> RateLimiter:
    """The process's limiter for this rate, shared by all its senders."""
    with _limiters_lock:
        return _limiters.setdefault(per_second, RateLimiter(per_second))
