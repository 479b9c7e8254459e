"""gunicorn's threaded worker, hardened against slow and idle clients (``worker_class`` in gunicorn.conf.py).

gunicorn's own ``gthread`` worker hands every new connection to a pool thread at once, and that thread waits up
to 5 seconds for the first bytes before giving the connection back to the poller: a few dozen idle connections
(a port scan, a phone in a lift, a slow-loris) hold every thread in turn, and a real request queues behind them
(a sync worker is held for good). Here a new connection waits for its first bytes in the worker's poller, where
it costs no thread, and the worker's main loop reads the request head as its bytes arrive (non-blocking), so a
client that trickles its headers costs no thread either; only a whole head goes to a thread, and a connection
whose head is not complete within ``HEAD_TIMEOUT`` seconds is closed. Once a request is in a thread, each read
and write on its socket times out after ``READ_TIMEOUT`` seconds.

What this does not stop: a client that trickles its *body* (at most ``LOYALTY_MAX_BODY_BYTES``) holds a thread
while it does, up to ``READ_TIMEOUT`` per stalled read. A buffering proxy in front (nginx, a cloud load
balancer) reads whole requests before passing them on; a production deployment has one anyway for TLS
(README, "Security").
"""
from __future__ import annotations

import errno
import selectors
import socket
import time
from functools import partial

from gunicorn import http
from gunicorn.workers import gthread

READ_TIMEOUT = 10.0  # seconds one read or write on a client's socket may take while its request is served
HEAD_TIMEOUT = 10.0  # seconds a connection may take to send a whole request head (new or kept alive)
DRAIN_LIMIT = 65536  # gunicorn drains at most this much of a body the application did not read
HEAD_LIMIT = 65536  # a head this long goes to a thread anyway (gunicorn's own limits then refuse it)


class _TimedSocket(socket.socket):
    """A client socket whose "blocking" mode has a timeout, so a stalled client frees its thread; the timeout is
    reported as a connection reset, which gunicorn closes quietly (a timeout would be logged as a server error)."""

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(READ_TIMEOUT)
        else:
            super().setblocking(False)

    def recv(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().recv(*args, **kwargs)
        except TimeoutError:
            raise ConnectionResetError(errno.ECONNRESET, "client too slow") from None

    def recv_into(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().recv_into(*args, **kwargs)
        except TimeoutError:
            raise ConnectionResetError(errno.ECONNRESET, "client too slow") from None

    def sendall(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().sendall(*args, **kwargs)
        except TimeoutError:
            raise ConnectionResetError(errno.ECONNRESET, "client too slow") from None


class Worker(gthread.ThreadWorker):
    """``gthread`` whose connections wait for a whole request head in the poller, not in a thread (module doc)."""

    def accept(self, listener):
        if self.cfg.is_ssl:  # TLS is the proxy's job here; with it on, gunicorn's own handling
            return super().accept(listener)
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        timed = _TimedSocket(client.family, client.type, client.proto, fileno=client.detach())
        self.nr_conns += 1
        self._wait_for_head(gthread.TConn(self.cfg, timed, address, listener.getsockname()))
        return None

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection sent something: read its next request head here too."""
        if self.cfg.is_ssl:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._wait_for_head(conn)
        self._on_head_bytes(conn, conn.sock)
        return None

    def handle_request(self, req, conn):
        # A body gunicorn will not drain (over 64 KB; this API refuses bodies that large unread) means the connection
        # is closed after the answer: say so in the answer ("Connection: close"), or the client may already be
        # sending its next request on it. An application cannot set that header itself (it is hop-by-hop).
        length = next((v for h, v in req.headers if h == "CONTENT-LENGTH"), "0")
        if not length.isdigit() or int(length) > DRAIN_LIMIT:
            req.must_close = True
        return super().handle_request(req, conn)

    def _wait_for_head(self, conn) -> None:
        conn.sock.setblocking(False)
        conn.head = bytearray()
        # One deadline for every waiting connection (so the pending deque stays in deadline order, as
        # murder_pending needs): closed if the request head is not complete by then.
        conn.timeout = time.monotonic() + HEAD_TIMEOUT
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn, client) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.head += data
        if data and b"\r\n\r\n" not in conn.head and len(conn.head) < HEAD_LIMIT:
            return  # not a whole head yet: keep waiting in the poller
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        if not conn.head:  # closed before sending anything
            self.nr_conns -= 1
            conn.close()
            return
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head = bytearray()
        conn.data_ready = True
        self.enqueue_req(conn)
