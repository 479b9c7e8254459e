"""Throwaway keys for the phone's wallet tests, and checks made the way Apple's and Google's side would make them.

Apple: a root CA, an intermediate standing in for Apple's WWDR, and a Pass Type ID certificate it issued (subject
UID = the pass type id, as Apple's are); a pass is verified by unzipping it, recomputing every file's SHA-1 against
``manifest.json`` and running ``openssl cms -verify`` on the detached signature against the root. Google: a service
account's JSON key file. Plus the recording APNs sender and Google Wallet client the worker is given in tests.
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from wallet.passes import signing

PASS_TYPE_ID = "pass.club.example.loyalty"
TEAM_ID = "A1B2C3D4E5"
ISSUER_ID = "3388000000012345678"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: Any, signer: rsa.RSAPrivateKey, *, ca: bool,
                 not_before: datetime, not_after: datetime) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                      key_encipherment=False, data_encipherment=False,
                                                      key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                      encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class ApplePki:
    folder: Path
    root: Path
    wwdr: Path
    cert: Path
    key: Path
    pass_type_id: str = PASS_TYPE_ID
    extra: dict[str, Path] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        return {"LOYALTY_APPLE_PASS_TYPE_ID": self.pass_type_id, "LOYALTY_APPLE_TEAM_ID": TEAM_ID,
                "LOYALTY_APPLE_CERT": str(self.cert), "LOYALTY_APPLE_KEY": str(self.key),
                "LOYALTY_APPLE_WWDR": str(self.wwdr)}


def make_apple_pki(folder: Path, *, pass_type_id: str = PASS_TYPE_ID, now: datetime | None = None,
                   valid: timedelta = timedelta(days=365), expired: bool = False) -> ApplePki:
    """root -> intermediate ("WWDR") -> Pass Type ID certificate, as PEM files in ``folder``. ``expired``: the pass
    certificate's last day was yesterday."""
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    root_key, wwdr_key, pass_key = _key(), _key(), _key()
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway Test Root CA")])
    wwdr_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway Worldwide Developer Relations"),
                           x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "G4")])
    pass_name = x509.Name([x509.NameAttribute(NameOID.USER_ID, pass_type_id),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
                           x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, TEAM_ID)])
    long_ago, far = now - timedelta(days=400), now + timedelta(days=3650)
    root = _certificate(root_name, root_name, root_key.public_key(), root_key, ca=True, not_before=long_ago,
                        not_after=far)
    wwdr = _certificate(wwdr_name, root_name, wwdr_key.public_key(), root_key, ca=True, not_before=long_ago,
                        not_after=far)
    pass_until = now - timedelta(days=1) if expired else now + valid
    certificate = _certificate(pass_name, wwdr_name, pass_key.public_key(), wwdr_key, ca=False,
                               not_before=now - timedelta(days=30) if not expired else long_ago,
                               not_after=pass_until)
    paths = {name: folder / f"{name}.pem" for name in ("root", "wwdr", "cert", "key")}
    paths["root"].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths["wwdr"].write_bytes(wwdr.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(_pem(pass_key))
    return ApplePki(folder, paths["root"], paths["wwdr"], paths["cert"], paths["key"], pass_type_id)


def make_google_account(folder: Path) -> Path:
    """A service account's JSON key file, as the Google Cloud console gives it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = _key()
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "club-test", "private_key_id": "0123456789abcdef",
        "private_key": _pem(key).decode(), "client_email": "wallet@club-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


def public_key_of_account(path: Path) -> Any:
    account = json.loads(path.read_text())
    return serialization.load_pem_private_key(account["private_key"].encode(), None).public_key()


# ------------------------------------------------------------------ verifying a pass as Apple would


@dataclass
class VerifiedPass:
    pass_json: dict[str, Any]
    files: dict[str, bytes]
    manifest: dict[str, str]

    def strings(self, lang: str) -> dict[str, str]:
        """A ``pass.strings`` file read back (UTF-16 with its byte order mark)."""
        text = self.files[f"{lang}.lproj/pass.strings"].decode("utf-16")
        out = {}
        for line in text.splitlines():
            key, _, value = line.partition(" = ")
            out[json.loads(key)] = json.loads(value.rstrip(";"))
        return out


def verify_pkpass(data: bytes, root: Path, tmp: Path) -> VerifiedPass:
    """Unzip, recompute every file's SHA-1 against the manifest (every file listed, nothing more), and verify the
    detached signature over the manifest with ``openssl cms -verify`` against the root (the chain through the
    intermediate the signature carries). AssertionError if any of it fails."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest_bytes, signature = files.pop("manifest.json"), files.pop("signature")
    manifest = json.loads(manifest_bytes)
    assert set(manifest) == set(files), (set(manifest) ^ set(files))
    for name, content in files.items():
        assert manifest[name] == hashlib.sha1(content).hexdigest(), name
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "manifest.json").write_bytes(manifest_bytes)
    (tmp / "signature").write_bytes(signature)
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "signature"),
                           "-content", str(tmp / "manifest.json"), "-CAfile", str(root), "-purpose", "any",
                           "-out", str(tmp / "verified")], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr, done.stderr
    assert (tmp / "verified").read_bytes() == manifest_bytes
    return VerifiedPass(json.loads(files["pass.json"]), files, manifest)


def cms_print(data: bytes, tmp: Path) -> str:
    """``openssl cms -cmsout -print`` of a pass's signature: its structure, signed attributes and certificates."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (tmp / "signature.der").write_bytes(archive.read("signature"))
    return subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(tmp / "signature.der")],
                          capture_output=True, text=True, timeout=30, check=True).stdout


# ------------------------------------------------------------------ what the worker is given in tests


@dataclass
class RecordingSender:
    """An APNs sender that sends nothing: it records (topic, token) and answers what the test says per token."""

    answers: dict[str, str] = field(default_factory=dict)  # token -> "sent" (default), "gone" or "retry"
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, topic: str, tokens) -> dict:
        self.sent += [(topic, token) for token in tokens]
        return {token: self.answers.get(token, "sent") for token in tokens}


@dataclass
class RecordingGoogle:
    """A Google Wallet API client that records each upsert; ``fail`` makes the next calls raise."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    def upsert(self, resource: str, body: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("Google is unreachable (test)")
        self.calls.append((resource, body))

    def objects(self, resource: str) -> list[dict[str, Any]]:
        return [body for kind, body in self.calls if kind == resource]


# ------------------------------------------------------------------ fixtures (import them into a test module)


@pytest.fixture(scope="session")
def apple_pki(tmp_path_factory) -> ApplePki:
    return make_apple_pki(tmp_path_factory.mktemp("apple-pki"))


@pytest.fixture(scope="session")
def google_account(tmp_path_factory) -> Path:
    return make_google_account(tmp_path_factory.mktemp("google"))


@pytest.fixture
def apple_on(program, apple_pki):
    """Apple Wallet passes on for the test app's programme (restored after the test by conftest's _clean)."""
    program.apple_wallet = signing.load_apple(pass_type_id=apple_pki.pass_type_id, team_id=TEAM_ID,
                                              cert_path=str(apple_pki.cert), key_path=str(apple_pki.key),
                                              wwdr_path=str(apple_pki.wwdr), key_password=None, now=program.now())
    program.public_url = "https://club.example"
    return program.apple_wallet


@pytest.fixture
def google_on(program, google_account):
    program.google_wallet = signing.load_google(issuer_id=ISSUER_ID, service_account_path=str(google_account))
    program.public_url = "https://club.example"
    return program.google_wallet
