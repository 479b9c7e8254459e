"""The keys of the phone's wallet: Apple's Pass Type ID certificate, key and WWDR intermediate, and Google's
service account, read and checked once at start-up; and the pass's signature.

A setting that is missing, unreadable, expired or inconsistent turns that wallet off with one clear log line:
the service starts anyway, and the wallet's endpoints answer 404 ``wallet_pass_unavailable`` until it is fixed.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from ..errors import PassUnavailable
from ..program import AppleWallet, GoogleWallet, Program

log = logging.getLogger("loyalty.passes")


class Misconfigured(Exception):
    """A wallet setting that can't be used; the message says which and why."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise Misconfigured(f"{what} can't be read from {path}: {error.strerror or error}") from None


def _certificate(path: str, what: str) -> x509.Certificate:
    data = _read(path, what)
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise Misconfigured(f"{what} at {path} is not a PEM or DER certificate") from None


def _check_dates(certificate: x509.Certificate, what: str, now: datetime) -> None:
    if now >= certificate.not_valid_after_utc:
        raise Misconfigured(f"{what} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < certificate.not_valid_before_utc:
        raise Misconfigured(f"{what} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def _subject_uid(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(values[0].value) if values else None


def load_apple(*, pass_type_id: str, team_id: str, cert_path: str, key_path: str, wwdr_path: str,
               key_password: str | None, now: datetime) -> AppleWallet:
    """Apple's settings, checked: the certificate is valid now, the key is its key, the WWDR certificate issued it,
    and (where the certificate names one, as Apple's do) the pass type id is the certificate's. Misconfigured if not."""
    if not pass_type_id.startswith("pass."):
        raise Misconfigured(f"LOYALTY_APPLE_PASS_TYPE_ID must start with 'pass.' (got {pass_type_id!r})")
    if not team_id:
        raise Misconfigured("LOYALTY_APPLE_TEAM_ID is not set")
    certificate = _certificate(cert_path, "the Pass Type ID certificate (LOYALTY_APPLE_CERT)")
    wwdr = _certificate(wwdr_path, "Apple's WWDR certificate (LOYALTY_APPLE_WWDR)")
    try:
        key = serialization.load_pem_private_key(_read(key_path, "the pass key (LOYALTY_APPLE_KEY)"),
                                                 key_password.encode() if key_password else None)
    except (ValueError, TypeError) as error:
        raise Misconfigured(f"the pass key at {key_path} can't be loaded: {error}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise Misconfigured("the pass key must be an RSA or EC private key")
    _check_dates(certificate, "the Pass Type ID certificate", now)
    _check_dates(wwdr, "Apple's WWDR certificate", now)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            certificate.public_key().public_bytes(serialization.Encoding.DER, public):
        raise Misconfigured("LOYALTY_APPLE_KEY is not the key of LOYALTY_APPLE_CERT")
    try:
        certificate.verify_directly_issued_by(wwdr)
    except (ValueError, TypeError, InvalidSignature):
        raise Misconfigured("LOYALTY_APPLE_WWDR did not issue LOYALTY_APPLE_CERT (check the WWDR generation: G4 "
                            "for certificates made since 2022)") from None
    uid = _subject_uid(certificate)
    if uid is not None and uid != pass_type_id:
        raise Misconfigured(f"the certificate is for {uid}, not LOYALTY_APPLE_PASS_TYPE_ID {pass_type_id}")
    return AppleWallet(pass_type_id=pass_type_id, team_id=team_id, certificate=certificate, key=key, wwdr=wwdr)


def load_google(*, issuer_id: str, service_account_path: str) -> GoogleWallet:
    """Google's settings from the service account's JSON key file; Misconfigured if it is not one."""
    if not issuer_id.isdigit():
        raise Misconfigured(f"LOYALTY_GOOGLE_ISSUER_ID is the issuer's number (got {issuer_id!r})")
    try:
        account = json.loads(_read(service_account_path, "the service account key (LOYALTY_GOOGLE_SERVICE_ACCOUNT)"))
        key = serialization.load_pem_private_key(account["private_key"].encode(), None)
        email, key_id = account["client_email"], account["private_key_id"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise Misconfigured(f"{service_account_path} is not a service account's JSON key: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise Misconfigured("the service account's key must be an RSA key (Google signs save links with RS256)")
    return GoogleWallet(issuer_id=issuer_id, service_account_email=email, key=key, key_id=key_id,
                        token_uri=account.get("token_uri") or "https://oauth2.googleapis.com/token")


def apple_or_off(*, pass_type_id: str, team_id: str, cert_path: str, key_path: str, wwdr_path: str,
                 key_password: str | None, now: datetime) -> AppleWallet | None:
    """:func:`load_apple`, or None with an error logged (the service starts; Apple passes answer 404)."""
    try:
        return load_apple(pass_type_id=pass_type_id, team_id=team_id, cert_path=cert_path, key_path=key_path,
                          wwdr_path=wwdr_path, key_password=key_password, now=now)
    except Misconfigured as error:
        log.error("Apple Wallet passes are OFF: %s. /me/card/pass.pkpass, the coupon passes and the PassKit web "
                  "service answer 404 wallet_pass_unavailable until this is fixed and the service restarted.", error)
        return None


def google_or_off(*, issuer_id: str, service_account_path: str) -> GoogleWallet | None:
    """:func:`load_google`, or None with an error logged."""
    try:
        return load_google(issuer_id=issuer_id, service_account_path=service_account_path)
    except Misconfigured as error:
        log.error("Google Wallet is OFF: %s. The google-wallet endpoints answer 404 wallet_pass_unavailable.", error)
        return None


def apple(program: Program) -> AppleWallet:
    """The Apple settings, if passes can be signed now; PassUnavailable if not configured or the certificate has
    expired since start-up."""
    settings = program.apple_wallet
    if settings is None:
        raise PassUnavailable("Apple Wallet passes are not available in this club")
    if program.now() >= settings.certificate.not_valid_after_utc:
        log.error("Apple Wallet passes are OFF: the Pass Type ID certificate expired on %s UTC",
                  f"{settings.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}")
        raise PassUnavailable("Apple Wallet passes are not available in this club")
    return settings


def google(program: Program) -> GoogleWallet:
    if program.google_wallet is None:
        raise PassUnavailable("Google Wallet is not available in this club")
    return program.google_wallet


def sign_manifest(settings: AppleWallet, manifest: bytes) -> bytes:
    """The pass's ``signature``: a detached PKCS #7 (CMS SignedData, DER) over the manifest, by the Pass Type ID
    certificate, carrying it and the WWDR intermediate, with a signing time (cryptography adds one)."""
    return (pkcs7.PKCS7SignatureBuilder().set_data(manifest)
            .add_signer(settings.certificate, settings.key, hashes.SHA256())
            .add_certificate(settings.wwdr)
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
