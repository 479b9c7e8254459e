"""The real senders, against servers on 127.0.0.1 (never the internet): the APNs sender speaks HTTP/2 over TLS with
the Pass Type ID certificate as its client certificate to a loopback HTTP/2 server (the ``h2`` library's server
side); the Google Wallet client gets an OAuth token by the JWT bearer grant and patches, or inserts, objects on a
loopback HTTP server."""
from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from wallet.passes import ApnsSender, HttpWalletApi, signing

from ..wallet_keys import ISSUER_ID, make_apple_pki, make_google_account, public_key_of_account

DEAD = "de" * 32
ALIVE = "ab" * 32


def _server_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the loopback APNs's), and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class LoopbackApns:
    """An HTTP/2 server on 127.0.0.1 that requires a client certificate from the test's chain and answers like
    APNs: 200, or 410 Unregistered for the dead token. It records each request's headers and body."""

    def __init__(self, folder: Path, client_ca: Path):
        cert, key = _server_certificate(folder)
        self.ca = cert
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["h2"])
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.requests: list[dict] = []
        self.client_subject: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True) as tls:
            tls.settimeout(10)
            peer = tls.getpeercert()
            self.client_subject = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
            connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            connection.initiate_connection()
            tls.sendall(connection.data_to_send())
            streams: dict[int, dict] = {}
            while True:
                data = tls.recv(65536)
                if not data:
                    return
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = {"headers": {k.decode(): v.decode() for k, v in event.headers},
                                                    "body": b""}
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id]["body"] += event.data
                        connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        request = streams.pop(event.stream_id)
                        self.requests.append(request)
                        dead = request["headers"][":path"].endswith(DEAD)
                        body = json.dumps({"reason": "Unregistered"}).encode() if dead else b""
                        connection.send_headers(event.stream_id, [(":status", "410" if dead else "200"),
                                                                  ("apns-id", "x")], end_stream=not body)
                        if body:
                            connection.send_data(event.stream_id, body, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        tls.sendall(connection.data_to_send())
                        return
                tls.sendall(connection.data_to_send())

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.listener.close()


def test_the_apns_sender_speaks_http2_with_the_pass_certificate(tmp_path):
    pki = make_apple_pki(tmp_path / "pki")
    bundle = tmp_path / "client-ca.pem"  # the loopback APNs trusts the test's root and intermediate
    bundle.write_bytes(pki.root.read_bytes() + pki.wwdr.read_bytes())
    server = LoopbackApns(tmp_path, bundle)
    try:
        sender = ApnsSender(cert_path=str(pki.cert), key_path=str(pki.key), host="127.0.0.1", port=server.port,
                            ca_file=str(server.ca))
        outcomes = sender.send(pki.pass_type_id, [ALIVE, DEAD])
    finally:
        server.close()
    assert outcomes == {ALIVE: "sent", DEAD: "gone"}
    assert server.client_subject == f"Pass Type ID: {pki.pass_type_id}"
    assert sorted(r["headers"][":path"] for r in server.requests) == [f"/3/device/{ALIVE}", f"/3/device/{DEAD}"]
    for request in server.requests:
        assert request["headers"][":method"] == "POST" and request["body"] == b"{}"
        assert request["headers"]["apns-topic"] == pki.pass_type_id
        assert request["headers"]["apns-push-type"] == "background"


def test_an_unreachable_apns_means_try_again(tmp_path):
    pki = make_apple_pki(tmp_path / "pki")
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    sender = ApnsSender(cert_path=str(pki.cert), key_path=str(pki.key), host="127.0.0.1", port=port, timeout=2)
    assert sender.send(pki.pass_type_id, [ALIVE]) == {ALIVE: "retry"}


class _FakeGoogle(BaseHTTPRequestHandler):
    log: list[tuple[str, str, dict]] = []
    objects: dict[str, dict] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:  # noqa: N802
        data = self._body()
        if self.path == "/token":
            form = dict(urllib.parse.parse_qsl(data.decode()))
            self.log.append(("TOKEN", self.path, form))
            return self._answer(200, {"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"})
        body = json.loads(data)
        self.log.append(("POST", self.path, {"auth": self.headers["Authorization"], **body}))
        self.objects[body["id"]] = body
        return self._answer(200, body)

    def do_PATCH(self) -> None:  # noqa: N802
        body = json.loads(self._body())
        self.log.append(("PATCH", self.path, {"auth": self.headers["Authorization"], **body}))
        if body["id"] not in self.objects:
            return self._answer(404, {"error": {"code": 404, "message": "not found"}})
        self.objects[body["id"]] |= body
        return self._answer(200, self.objects[body["id"]])


@pytest.fixture
def fake_google():
    _FakeGoogle.log, _FakeGoogle.objects = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGoogle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_google_client_authorises_then_inserts_and_later_patches(tmp_path, fake_google):
    account = make_google_account(tmp_path)
    settings = replace(signing.load_google(issuer_id=ISSUER_ID, service_account_path=str(account)),
                       token_uri=f"{fake_google}/token")
    client = HttpWalletApi(settings, api_base=f"{fake_google}/walletobjects/v1")
    body = {"id": f"{ISSUER_ID}.crd_1", "state": "ACTIVE", "loyaltyPoints": {"balance": {"int": 5}}}
    client.upsert("loyaltyObject", body)
    client.upsert("loyaltyObject", body | {"loyaltyPoints": {"balance": {"int": 9}}})
    kinds = [(method, path) for method, path, _ in _FakeGoogle.log]
    assert kinds == [("TOKEN", "/token"), ("PATCH", f"/walletobjects/v1/loyaltyObject/{ISSUER_ID}.crd_1"),
                     ("POST", "/walletobjects/v1/loyaltyObject"),
                     ("PATCH", f"/walletobjects/v1/loyaltyObject/{ISSUER_ID}.crd_1")]  # one token for all
    grant = _FakeGoogle.log[0][2]
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(grant["assertion"], public_key_of_account(account), algorithms=["RS256"],
                        audience=f"{fake_google}/token")
    assert claims["scope"] == "https://www.googleapis.com/auth/wallet_object.issuer"
    assert claims["iss"] == settings.service_account_email
    assert all(entry[2]["auth"] == "Bearer ya29.test" for entry in _FakeGoogle.log[1:])
    assert _FakeGoogle.objects[f"{ISSUER_ID}.crd_1"]["loyaltyPoints"] == {"balance": {"int": 9}}
