"""Apple Wallet passes: the card as a ``storeCard`` and a coupon as a ``coupon``, in English and Hebrew, packaged
as Apple's PassKit Package Format says (``pass.json``, images, ``<lang>.lproj/pass.strings`` in UTF-16,
``manifest.json`` with every file's SHA-1, ``signature``: a detached PKCS #7 over the manifest)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from ..clock import iso
from ..program import AppleWallet, Program
from . import images
from .content import LANGUAGES, WORDS, CardView, CouponView, benefit_words, status_words, tier_words
from .signing import sign_manifest

WEB_SERVICE_PATH = "/api/passkit"  # webServiceURL = <public base>/api/passkit; Apple appends /v1/...
MEDIA_TYPE = "application/vnd.apple.pkpass"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # entries carry a fixed time: the same pass packs to the same bytes


@dataclass(frozen=True)
class PassContent:
    """A pass before packaging: ``pass.json`` and the strings of each language."""

    serial: str
    pass_json: dict[str, Any]
    strings: dict[str, dict[str, str]]

    @property
    def digest(self) -> str:
        """A hash of what the pass shows: it moves exactly when the pass's content does."""
        canonical = json.dumps([self.pass_json, self.strings], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def authentication_token(secret: bytes, serial: str) -> str:
    """The pass's ``authenticationToken`` (Apple's ``ApplePass`` credential for this serial): derived, not stored."""
    digest = hmac.new(secret, f"passkit:{serial}".encode(), hashlib.sha256).digest()[:20]
    return base64.b32encode(digest).decode()  # 32 characters; Apple asks for at least 16


def token_matches(program: Program, serial: str, presented: str) -> bool:
    return any(hmac.compare_digest(authentication_token(key, serial), presented) for key in program.qr_keys)


def _common(program: Program, settings: AppleWallet, serial: str, description: str) -> dict[str, Any]:
    return {
        "formatVersion": 1,
        "passTypeIdentifier": settings.pass_type_id,
        "serialNumber": serial,
        "teamIdentifier": settings.team_id,
        "organizationName": program.name,
        "description": description,
        "logoText": program.name,
        "backgroundColor": images.rgb(images.BACKGROUND),
        "foregroundColor": images.rgb(images.FOREGROUND),
        "labelColor": images.rgb(images.LABEL),
        "webServiceURL": program.public_url.rstrip("/") + WEB_SERVICE_PATH,
        "authenticationToken": authentication_token(program.secret, serial),
        "sharingProhibited": True,
    }


def _strings(keys: set[str], extra: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    words = {key: WORDS[key] for key in keys if key in WORDS} | extra
    return {lang: {key: text[lang] for key, text in sorted(words.items())} for lang in LANGUAGES}


def card_content(program: Program, settings: AppleWallet, card: CardView,
                 locations: list[dict[str, float]]) -> PassContent:
    """The card as a ``storeCard``: points, name and tier; its QR is the static pass code (``P1-...``). A card
    that no longer works is voided and shows no code; an erased member's shows nothing personal."""
    body = _common(program, settings, card.serial, "CARD_DESCRIPTION")
    extra = {"TIER_NAME": tier_words(card.tier)}
    store_card: dict[str, Any] = {
        "headerFields": [{"key": "points", "label": "POINTS", "value": card.balance,
                          "numberStyle": "PKNumberStyleDecimal", "changeMessage": "BALANCE_CHANGED"}],
        "secondaryFields": [],
        "backFields": [],
    }
    if card.name is not None:
        store_card["secondaryFields"].append({"key": "member", "label": "MEMBER", "value": card.name})
    if card.usable and card.code is not None:
        store_card["secondaryFields"].append({"key": "tier", "label": "TIER", "value": "TIER_NAME",
                                              "changeMessage": "TIER_CHANGED", "textAlignment": "PKTextAlignmentRight"})
        body["barcodes"] = [{"format": "PKBarcodeFormatQR", "message": card.code, "messageEncoding": "iso-8859-1",
                             "altText": _spaced(card.number) if card.number else ""}]
        store_card["backFields"] += [{"key": "number", "label": "CARD_NUMBER", "value": _spaced(card.number or "")},
                                     {"key": "how", "label": "", "value": "CARD_HOW"}]
        if locations:
            body["locations"] = [{**place, "relevantText": "RELEVANT"} for place in locations]
    else:
        body["voided"] = True
        store_card["headerFields"] = []  # the points stay the member's, on their current card
        store_card["secondaryFields"].append({"key": "status", "label": "CARD_STATUS", "value": "NOT_VALID"})
        store_card["backFields"].append({"key": "void", "label": "", "value": "CARD_VOID"})
    body["storeCard"] = store_card
    keys = {"CARD_DESCRIPTION", "POINTS", "MEMBER", "TIER", "BALANCE_CHANGED", "TIER_CHANGED", "CARD_NUMBER",
            "CARD_HOW", "RELEVANT", "CARD_STATUS", "NOT_VALID", "CARD_VOID"}
    return PassContent(card.serial, body, _strings(keys, extra))


def coupon_content(program: Program, settings: AppleWallet, coupon: CouponView) -> PassContent:
    """A coupon as a ``coupon`` pass: the benefit, the offer, its expiry and terms, and its own QR (``K1-...``)
    while it can be used; used, cancelled or expired it is voided and shows why."""
    body = _common(program, settings, coupon.serial, "COUPON_DESCRIPTION")
    status = status_words(coupon.status)
    extra = {"BENEFIT": benefit_words(coupon.benefit, program.currency)}
    fields: dict[str, Any] = {
        "primaryFields": [{"key": "benefit", "label": "OFFER", "value": "BENEFIT"}],
        "secondaryFields": [{"key": "title", "label": "", "value": coupon.title}],
        "auxiliaryFields": [{"key": "expires", "label": "EXPIRES", "value": iso(coupon.expires_at),
                             "dateStyle": "PKDateStyleMedium", "timeStyle": "PKDateStyleNone"},
                            {"key": "status", "label": "STATUS", "value": status, "changeMessage": "%@",
                             "textAlignment": "PKTextAlignmentRight"}],
        "backFields": [{"key": "terms", "label": "TERMS", "value": coupon.terms or "-"}],
    }
    body["expirationDate"] = iso(coupon.expires_at)
    if coupon.usable and coupon.token is not None:
        body["barcodes"] = [{"format": "PKBarcodeFormatQR", "message": coupon.token, "messageEncoding": "iso-8859-1",
                             "altText": coupon.code or ""}]
        fields["backFields"] += [{"key": "code", "label": "CODE", "value": coupon.code or ""},
                                 {"key": "how", "label": "", "value": "COUPON_HOW"}]
    else:
        body["voided"] = True
    body["coupon"] = fields
    keys = {"COUPON_DESCRIPTION", "OFFER", "EXPIRES", "STATUS", "TERMS", "CODE", "COUPON_HOW", status}
    return PassContent(coupon.serial, body, _strings(keys, extra))


def _spaced(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def _strings_file(strings: dict[str, str]) -> bytes:
    """A ``pass.strings`` file: ``"key" = "value";`` lines, UTF-16 with a byte order mark, as Apple asks."""
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return "".join(f"{quoted(k)} = {quoted(v)};\n" for k, v in strings.items()).encode("utf-16")


def files_of(content: PassContent) -> dict[str, bytes]:
    """Every file of the pass but the manifest and the signature."""
    files = {"pass.json": json.dumps(content.pass_json, ensure_ascii=False, separators=(",", ":")).encode()}
    files |= images.apple_files()
    for lang, strings in content.strings.items():
        files[f"{lang}.lproj/pass.strings"] = _strings_file(strings)
    return files


def manifest_of(files: dict[str, bytes]) -> bytes:
    return json.dumps({name: hashlib.sha1(data).hexdigest() for name, data in sorted(files.items())},
                      separators=(",", ":")).encode()


def package(settings: AppleWallet, content: PassContent) -> bytes:
    """The ``.pkpass``: a ZIP of the files, ``manifest.json`` and ``signature``."""
    files = files_of(content)
    manifest = manifest_of(files)
    files["manifest.json"] = manifest
    files["signature"] = sign_manifest(settings, manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            # PNGs are compressed already; deflating them again costs time for nothing.
            entry.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()
