"""A real SMTP server on 127.0.0.1 (aiosmtpd) for tests and benchmarks, answering as told."""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SmtpServer:
    """What the server received and how it answers: ``answer(mail)`` gives the reply line ("250 OK"), ``"hang"``
    (never answer), or ``"drop"`` (close the connection after taking the message: its acceptance is lost)."""

    port: int
    received: list[Mail] = field(default_factory=list)
    answer: Callable[[Mail], str] | None = None
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, state: SmtpServer):
        self.state = state

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's API)
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content))
        self.state.received.append(mail)
        reply = (self.state.answer or (lambda _: "250 OK"))(mail)
        if reply == "hang":
            while not self.state.release.is_set():
                await asyncio.sleep(0.05)
            return "250 OK"
        if reply == "drop":
            server.transport.close()
            return "250 OK"
        return reply


@contextlib.contextmanager
def smtp_server(answer: Callable[[Mail], str] | None = None) -> Iterator[SmtpServer]:
    state = SmtpServer(port=free_port(), answer=answer)
    controller = Controller(_Handler(state), hostname="127.0.0.1", port=state.port)
    controller.start()
    try:
        yield state
    finally:
        state.release.set()
        controller.stop()
