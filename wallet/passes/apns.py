"""Telling iPhones that a pass changed: Apple Push Notification service, HTTP/2, authenticated by the Pass Type ID
certificate, topic = the pass type id, payload ``{}``. The phone then asks the PassKit web service what changed.

The sender is pluggable (:class:`PushSender`): the worker is given one; tests give a recording one, or point
:class:`ApnsSender` at a loopback HTTP/2 server."""
from __future__ import annotations

import json
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions

log = logging.getLogger("loyalty.passes")

Outcome = Literal["sent", "gone", "retry"]  # gone: the token is dead, forget the device's registrations
PRODUCTION = "api.push.apple.com"
SANDBOX = "api.sandbox.push.apple.com"
_BATCH = 100  # streams in flight on one connection (APNs allows many more; this keeps a round small)
_GONE_REASONS = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"}


class PushSender(Protocol):
    def send(self, topic: str, tokens: Sequence[str]) -> dict[str, Outcome]:
        """Send an empty notification to each token; what became of each."""
        ...


@dataclass
class ApnsSender:
    """APNs over HTTP/2 (the ``h2`` protocol library on a TLS socket; no HTTP client with HTTP/2 is needed)."""

    cert_path: str
    key_path: str
    key_password: str | None = None
    host: str = PRODUCTION
    port: int = 443
    ca_file: str | None = None  # None: the system's trust store (Apple's servers); tests give their own CA
    timeout: float = 10.0

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_path, self.key_path, self.key_password)
        context.set_alpn_protocols(["h2"])
        return context

    def send(self, topic: str, tokens: Sequence[str]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        if not tokens:
            return outcomes
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as raw, \
                    self._context().wrap_socket(raw, server_hostname=self.host) as tls:
                if tls.selected_alpn_protocol() != "h2":
                    raise ConnectionError(f"{self.host} did not agree to HTTP/2")
                connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                connection.initiate_connection()
                tls.sendall(connection.data_to_send())
                for start in range(0, len(tokens), _BATCH):
                    outcomes |= self._round(tls, connection, topic, tokens[start:start + _BATCH])
                connection.close_connection()
                tls.sendall(connection.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.H2Error) as error:
            log.warning("APNs push failed (%s); %d passes' devices are tried again later", error, len(tokens))
        return outcomes | {token: "retry" for token in tokens if token not in outcomes}

    def _round(self, tls: ssl.SSLSocket, connection: h2.connection.H2Connection, topic: str,
               tokens: Sequence[str]) -> dict[str, Outcome]:
        streams: dict[int, str] = {}
        for token in tokens:
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, [
                (":method", "POST"), (":scheme", "https"), (":authority", self.host), (":path", f"/3/device/{token}"),
                ("apns-topic", topic), ("apns-push-type", "background"), ("apns-priority", "5"),
                ("content-type", "application/json"), ("content-length", "2")])
            connection.send_data(stream, b"{}", end_stream=True)
            streams[stream] = token
        tls.sendall(connection.data_to_send())
        statuses: dict[int, int] = {}
        bodies: dict[int, bytes] = {stream: b"" for stream in streams}
        open_streams = set(streams)
        while open_streams:
            data = tls.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id is not None:
                    statuses[event.stream_id] = int(dict(event.headers or []).get(b":status", b"0"))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
                    bodies[event.stream_id] += event.data or b""
                    connection.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    open_streams.discard(event.stream_id or 0)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    open_streams.clear()
            tls.sendall(connection.data_to_send())
        return {token: _outcome(statuses.get(stream, 0), bodies.get(stream, b"")) for stream, token in streams.items()}


def _outcome(status: int, body: bytes) -> Outcome:
    if status == 200:
        return "sent"
    if status == 410:
        return "gone"
    try:
        reason = json.loads(body or b"{}").get("reason", "")
    except ValueError:
        reason = ""
    if status == 400 and reason in _GONE_REASONS:
        return "gone"
    if status not in (429, 500, 503, 0):
        log.warning("APNs refused a push: %s %s", status, reason or body[:100])
    return "retry"
