"""One webhook POST: to the address the SSRF guard checked, no redirects followed, a time limit, a capped read."""
from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..errors import DomainError
from . import urls

USER_AGENT = "loyalty-webhooks/1"


@dataclass(frozen=True)
class Answer:
    """What came back: a status code (None when there was no answer) and why not."""

    status: int | None
    retry_after: float | None = None
    error: str | None = None
    body_read: int = 0


class _Connection(http.client.HTTPConnection):
    """Connects to the checked address, not to whatever the host name resolves to by the time we connect."""

    def __init__(self, target: urls.Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target

    def connect(self) -> None:
        self.sock = socket.create_connection((self._target.address, self._target.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._target.scheme == "https":
            self.sock = _tls().wrap_socket(self.sock, server_hostname=self._target.host)


_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    """One verifying TLS context per process: making one loads the CA store (milliseconds each time)."""
    if not _TLS:
        _TLS.append(ssl.create_default_context())
    return _TLS[0]


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, max_body: int,
         allow_private: bool) -> Answer:
    """POST ``body`` to ``url``; never raises for what the receiver or the network does."""
    try:
        target = urls.check(url, allow_private=allow_private)  # again at delivery: DNS can change
    except DomainError as error:
        return Answer(None, error=f"{error.code}: {error.detail}")
    deadline = time.monotonic() + timeout
    connection = _Connection(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, "Connection": "close", **headers})
        response = connection.getresponse()
        # Read a little of the body at most, and only while time is left: the answer is its status code.
        read = 0
        while read < max_body and time.monotonic() < deadline:
            chunk = response.read1(min(16384, max_body - read))
            if not chunk:
                break
            read += len(chunk)
        return Answer(response.status, retry_after(response.getheader("Retry-After"), time.time()), None, read)
    except TimeoutError:
        return Answer(None, error=f"timeout after {timeout:g} s")
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        return Answer(None, error=f"{type(error).__name__}: {error}"[:240])
    finally:
        connection.close()  # also drops what is left of a large body unread
