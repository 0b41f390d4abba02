"""A real SMTP server (aiosmtpd) on a free port for tests, recording what it receives.

Chosen recipients can be refused transiently (451, optionally only the first N times)
or permanently (550), or have their message refused after its data (554). `delay`
slows every DATA down, so a test can kill a sender while messages are in flight. The
server runs in a thread of the test process, so it outlives the subprocesses a test kills.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.network import free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def message_id(self) -> str | None:
        head = self.content.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        return found.group(1).decode() if found else None

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)  # type: ignore[return-value]


@dataclass
class _Handler:
    transient: dict[str, int | None] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)
    refuse_data: set[str] = field(default_factory=set)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            if address in self.permanent:
                return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
            if address in self.transient:
                left = self.transient[address]
                if left is None or left > 0:
                    if left is not None:
                        self.transient[address] = left - 1
                    return f"451 4.7.1 <{address}>: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.refuse_data.intersection(envelope.rcpt_tos):
                return "554 5.7.1 Message content rejected"
            self.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 2.0.0 Ok: queued"


class SmtpTestServer:
    """`with SmtpTestServer() as smtp:` then point SMTP_HOST/SMTP_PORT at smtp.host/port."""

    host = "127.0.0.1"

    def __init__(self, *, delay: float = 0.0) -> None:
        self.port = free_port()
        self._handler = _Handler(delay=delay)
        self._controller: Controller | None = None

    def start(self) -> SmtpTestServer:
        self._controller = Controller(self._handler, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        """Drop every open connection and listen again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_transiently(self, address: str, *, times: int | None = None) -> None:
        """Answer 451 to RCPT for `address`: always, or only its first `times` times."""
        with self._handler.lock:
            self._handler.transient[address] = times

    def fail_permanently(self, address: str) -> None:
        with self._handler.lock:
            self._handler.permanent.add(address)

    def refuse_content_for(self, address: str) -> None:
        """Accept `address` at RCPT, then refuse the message after its data (554)."""
        with self._handler.lock:
            self._handler.refuse_data.add(address)

    @property
    def delay(self) -> float:
        return self._handler.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._handler.delay = seconds

    @property
    def received(self) -> list[Received]:
        with self._handler.lock:
            return list(self._handler.received)

    def message_id_counts(self) -> Counter[str | None]:
        return Counter(message.message_id for message in self.received)

    def wait_for(self, count: int, *, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.received)} of {count} messages after {timeout} s")
            time.sleep(0.01)

    def settings_env(self) -> dict[str, str]:
        """Environment pointing the project's mailer at this server."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}
