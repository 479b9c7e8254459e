"""Google Wallet: the club's loyalty class and a card's loyalty object with its rotating barcode (RFC 6238, a key
per card), coupons as offer classes and objects, the "save to Google Wallet" link (a JWT signed RS256 with the
service account's key), and the Wallet API client that updates saved objects."""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt

from .. import qr
from ..clock import iso
from ..program import GoogleWallet, Program
from . import images
from .content import CardView, CouponView, benefit_words, tier_words

SAVE_URL = "https://pay.google.com/gp/v/save/"
API_BASE = "https://walletobjects.googleapis.com/walletobjects/v1"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
LOGO_PATH = "/wallet/logo.png"  # the program logo Google fetches (public, under LOYALTY_PUBLIC_URL)

log = logging.getLogger("loyalty.passes")


def loyalty_class_id(settings: GoogleWallet) -> str:
    return f"{settings.issuer_id}.club-loyalty"


def offer_class_id(settings: GoogleWallet, offer_id: str) -> str:
    return f"{settings.issuer_id}.offer-{offer_id}"


def object_id(settings: GoogleWallet, serial: str) -> str:
    return f"{settings.issuer_id}.{serial}"


def _localized(words: dict[str, str]) -> dict[str, Any]:
    return {"defaultValue": {"language": "en", "value": words["en"]},
            "translatedValues": [{"language": lang, "value": text} for lang, text in words.items() if lang != "en"]}


def loyalty_class(program: Program, settings: GoogleWallet) -> dict[str, Any]:
    return {"id": loyalty_class_id(settings), "issuerName": program.name, "programName": program.name,
            "programLogo": {"sourceUri": {"uri": program.public_url.rstrip("/") + LOGO_PATH}},
            "hexBackgroundColor": images.hex_colour(images.BACKGROUND), "reviewStatus": "UNDER_REVIEW"}


def rotating_barcode(program: Program, card_id: str) -> dict[str, Any]:
    """Exactly API.md's ``rotatingBarcode``: the phone shows ``G1-<card>-<TOTP value>``, 8 digits every 30 s."""
    return {"type": "QR_CODE", "valuePattern": qr.rotating_pattern(card_id),
            "totpDetails": {"periodMillis": qr.TOTP_PERIOD * 1000, "algorithm": "TOTP_SHA1",
                            "parameters": [{"key": qr.totp_key(program.secret, card_id).hex(),
                                            "valueLength": qr.TOTP_DIGITS}]}}


def loyalty_object(program: Program, settings: GoogleWallet, card: CardView) -> dict[str, Any]:
    """The card as a loyalty object; a card that no longer works is INACTIVE and has no barcode."""
    body: dict[str, Any] = {
        "id": object_id(settings, card.serial), "classId": loyalty_class_id(settings),
        "state": "ACTIVE" if card.usable else "INACTIVE",
        "loyaltyPoints": {"label": "Points", "localizedLabel": _localized({"en": "Points", "he": "נקודות"}),
                          "balance": {"int": card.balance if card.usable else 0}},
        "textModulesData": [{"id": "tier", "header": "Tier", "body": tier_words(card.tier)["en"],
                             "localizedHeader": _localized({"en": "Tier", "he": "דרגה"}),
                             "localizedBody": _localized(tier_words(card.tier))}],
    }
    if card.name is not None:
        body["accountName"] = card.name
    if card.number is not None:
        body["accountId"] = card.number
    if card.usable:
        body["rotatingBarcode"] = rotating_barcode(program, card.serial)
    return body


def offer_class(program: Program, settings: GoogleWallet, coupon: CouponView) -> dict[str, Any]:
    return {"id": offer_class_id(settings, coupon.offer_id), "issuerName": program.name, "provider": program.name,
            "title": coupon.title, "redemptionChannel": "INSTORE", "reviewStatus": "UNDER_REVIEW",
            "details": coupon.terms or "", "hexBackgroundColor": images.hex_colour(images.BACKGROUND)}


_STATES = {"issued": "ACTIVE", "redeemed": "COMPLETED", "expired": "EXPIRED", "void": "INACTIVE"}


def offer_object(program: Program, settings: GoogleWallet, coupon: CouponView) -> dict[str, Any]:
    benefit = benefit_words(coupon.benefit, program.currency)
    body: dict[str, Any] = {
        "id": object_id(settings, coupon.serial), "classId": offer_class_id(settings, coupon.offer_id),
        "state": _STATES.get(coupon.status, "INACTIVE"),
        "validTimeInterval": {"start": {"date": iso(coupon.issued_at)}, "end": {"date": iso(coupon.expires_at)}},
        "textModulesData": [{"id": "benefit", "header": "Offer", "body": benefit["en"],
                             "localizedBody": _localized(benefit)}],
    }
    if coupon.usable and coupon.token is not None:
        body["barcode"] = {"type": "QR_CODE", "value": coupon.token, "alternateText": coupon.code or ""}
    return body


def save_jwt(program: Program, settings: GoogleWallet, payload: dict[str, list[dict[str, Any]]]) -> str:
    """The "save to Google Wallet" JWT: RS256 by the service account, ``aud: google``, ``typ: savetowallet``."""
    public = urlsplit(program.public_url)
    claims = {"iss": settings.service_account_email, "aud": "google", "typ": "savetowallet",
              "iat": int(program.now().timestamp()), "origins": [f"{public.scheme}://{public.netloc}"],
              "payload": payload}
    return jwt.encode(claims, settings.key, algorithm="RS256", headers={"kid": settings.key_id})


def card_link(program: Program, settings: GoogleWallet, card: CardView) -> dict[str, str]:
    token = save_jwt(program, settings, {"loyaltyClasses": [loyalty_class(program, settings)],
                                         "loyaltyObjects": [loyalty_object(program, settings, card)]})
    return {"save_url": SAVE_URL + token, "jwt": token}


def coupon_link(program: Program, settings: GoogleWallet, coupon: CouponView) -> dict[str, str]:
    token = save_jwt(program, settings, {"offerClasses": [offer_class(program, settings, coupon)],
                                         "offerObjects": [offer_object(program, settings, coupon)]})
    return {"save_url": SAVE_URL + token, "jwt": token}


# ------------------------------------------------------------------ the Wallet API


class WalletApi(Protocol):
    """Brings a class or object at Google up to date: ``resource`` is loyaltyClass, loyaltyObject, offerClass or
    offerObject. Raises to be tried again later."""

    def upsert(self, resource: str, body: dict[str, Any]) -> None: ...


class GoogleApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"Google Wallet API answered {status}: {message}")
        self.status = status


@dataclass
class HttpWalletApi:
    """The Google Wallet REST API over HTTPS, authorised by the service account (OAuth 2.0 JWT bearer grant).
    ``api_base`` and the key file's ``token_uri`` may point elsewhere (tests use a loopback server)."""

    settings: GoogleWallet
    api_base: str = API_BASE
    timeout: float = 10.0
    _token: tuple[str, float] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def upsert(self, resource: str, body: dict[str, Any]) -> None:
        """PATCH the saved object (or class); if Google has none yet, insert it."""
        url = f"{self.api_base}/{resource}/{urllib.parse.quote(body['id'], safe='')}"
        status, answer = self._call("PATCH", url, body)
        if status == 404:
            status, answer = self._call("POST", f"{self.api_base}/{resource}", body)
            if status == 409:  # inserted meanwhile by another worker: patch that one
                status, answer = self._call("PATCH", url, body)
        if status >= 300:
            raise GoogleApiError(status, answer[:300])

    def _call(self, method: str, url: str, body: dict[str, Any]) -> tuple[int, str]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={
            "Authorization": f"Bearer {self._access_token()}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (https or a test's loopback)
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > time.time() + 60:
                return self._token[0]
            now = int(time.time())
            assertion = jwt.encode({"iss": self.settings.service_account_email, "scope": SCOPE,
                                    "aud": self.settings.token_uri, "iat": now, "exp": now + 3600},
                                   self.settings.key, algorithm="RS256", headers={"kid": self.settings.key_id})
            form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                           "assertion": assertion}).encode()
            request = urllib.request.Request(self.settings.token_uri, data=form, method="POST",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    answer = json.loads(response.read())
            except urllib.error.HTTPError as error:
                raise GoogleApiError(error.code, "the service account was refused a token") from None
            self._token = (answer["access_token"], time.time() + float(answer.get("expires_in", 3600)))
            return self._token[0]
