"""Webhook receivers for tests and benchmarks: a real HTTP server on 127.0.0.1 in a thread, answering as told."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the server got, and how it answers: ``answer(handler, received)`` writes the response."""

    url: str
    received: list[Received] = field(default_factory=list)
    answer: Callable[[BaseHTTPRequestHandler, Received], None] | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)  # for answers that wait
    bytes_sent: list[int] = field(default_factory=list)


def ok(handler: BaseHTTPRequestHandler, _: Received, status: int = 200, headers: dict[str, str] | None = None,
       body: bytes = b"") -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def status(code: int, headers: dict[str, str] | None = None) -> Callable:
    return lambda handler, received: ok(handler, received, code, headers)


@contextlib.contextmanager
def receiver(answer: Callable | None = None) -> Iterator[Receiver]:
    """Serve on a free loopback port until the block ends."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            state.received.append(got)
            state.arrived.set()
            try:
                (state.answer or ok)(self, got)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender went away: what these tests look at is what it read

        def do_GET(self):  # noqa: N802
            ok(self, Received(self.path, {}, b""), 200, body=b"redirected here")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    state.answer = answer
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
