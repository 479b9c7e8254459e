"""Compact signed tokens for QR codes, and the QR images themselves.

A card token is ``C1-<card>-<step>-<mac>``: version and kind, the card's opaque id, the 30-second time step it
was made in, and a truncated HMAC, all in upper-case Crockford base32 so QR encodes it in alphanumeric mode
(about 55 characters: QR version 4). It carries no personal data and stops working minutes after it is made.
A coupon token is ``K1-<coupon>-<mac>``: it names the coupon; the database decides if it is still redeemable.

The phone's wallet adds two card codes. Apple Wallet cannot rotate a barcode, so a card pass shows a static
``P1-<card>-<mac>`` (dead once the card is blocked or replaced, which the till checks). Google Wallet computes
``G1-<card>-<8 digits>`` itself by RFC 6238 (TOTP, SHA-1, 30 s) from a key per card derived here, so verifying one
needs no database either.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import qrcode
import qrcode.image.svg

from .errors import InvalidToken, TokenExpired

STEP_SECONDS = 30
_MAC_BYTES = 10  # 80 bits: 16 base32 characters
_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_B32_BACK = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode().translate(_B32)


def _b32int(value: int) -> str:
    out = ""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    while True:
        out = alphabet[value & 31] + out
        value >>= 5
        if not value:
            return out


def _intb32(text: str) -> int:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for ch in text:
        i = alphabet.find(ch)
        if i < 0:
            raise InvalidToken("Malformed token")
        value = value * 32 + i
    return value


def _bare(entity_id: str) -> str:
    return entity_id.split("_", 1)[1]


@dataclass(frozen=True)
class CardToken:
    token: str
    expires_at: datetime


def card_token(secret: bytes, card_id: str, now: datetime, ttl: timedelta) -> CardToken:
    step = int(now.timestamp()) // STEP_SECONDS
    body = f"C1-{_bare(card_id)}-{_b32int(step)}"
    expires = datetime.fromtimestamp(step * STEP_SECONDS, UTC) + ttl
    return CardToken(token=f"{body}-{_mac(secret, body)}", expires_at=expires)


def _signed(keys: bytes | tuple[bytes, ...], body: str, mac: str) -> bool:
    """Whether any of the keys (the current one first, then retired ones) made this MAC."""
    keys = (keys,) if isinstance(keys, bytes) else keys
    return any(hmac.compare_digest(_mac(key, body), mac) for key in keys)


def verify_card_token(secret: bytes | tuple[bytes, ...], token: str, now: datetime, ttl: timedelta) -> str:
    """The card id a card token names, if its signature holds and it has not expired."""
    parts = token.strip().upper().split("-")
    if len(parts) != 4 or parts[0] != "C1":
        raise InvalidToken("Not a card token")
    body = "-".join(parts[:3])
    if not _signed(secret, body, parts[3]):
        raise InvalidToken("The card code's signature does not match")
    made = datetime.fromtimestamp(_intb32(parts[2]) * STEP_SECONDS, UTC)
    if now >= made + ttl:
        raise TokenExpired("This card code has expired: refresh the app's card screen")
    if made > now + timedelta(seconds=STEP_SECONDS):
        raise InvalidToken("This card code was made in the future")
    return f"crd_{parts[1]}"


def coupon_token(secret: bytes, coupon_id: str) -> str:
    body = f"K1-{_bare(coupon_id)}"
    return f"{body}-{_mac(secret, body)}"


def verify_coupon_token(secret: bytes | tuple[bytes, ...], token: str) -> str:
    parts = token.strip().upper().split("-")
    if len(parts) != 3 or parts[0] != "K1":
        raise InvalidToken("Not a coupon token")
    body = "-".join(parts[:2])
    if not _signed(secret, body, parts[2]):
        raise InvalidToken("The coupon code's signature does not match")
    return f"cpn_{parts[1]}"


def token_kind(text: str) -> str | None:
    """'card' or 'coupon' for what a scanner read, by its version tag; None for anything else."""
    return _KINDS.get(text.strip().upper()[:3])


_KINDS = {"C1-": "card", "K1-": "coupon", "P1-": "card", "G1-": "card"}


# ---------------------------------------------------------------- the phone's wallet: pass codes

def pass_code(secret: bytes, card_id: str) -> str:
    """The static code an Apple Wallet card pass shows: ``P1-<card>-<mac>``, no time in it and nothing personal."""
    body = f"P1-{_bare(card_id)}"
    return f"{body}-{_mac(secret, body)}"


def verify_pass_code(secret: bytes | tuple[bytes, ...], code: str) -> str:
    """The card id a pass code names, if its signature holds (whether the card still works is the till's to ask)."""
    parts = code.strip().upper().split("-")
    if len(parts) != 3 or parts[0] != "P1":
        raise InvalidToken("Not a pass code")
    if not _signed(secret, "-".join(parts[:2]), parts[2]):
        raise InvalidToken("The pass code's signature does not match")
    return f"crd_{parts[1]}"


TOTP_PERIOD = 30  # seconds; Google Wallet's periodMillis is this times 1000
TOTP_DIGITS = 8
_TOTP_LATE_STEPS = 20  # how far back a refused code is looked for, to say "expired" rather than "not genuine"


def totp_key(secret: bytes, card_id: str) -> bytes:
    """The card's TOTP key (160 bits, as RFC 6238 uses with SHA-1): derived, so a new card has a new key."""
    return hmac.new(secret, f"G1-totp:{card_id}".encode(), hashlib.sha256).digest()[:20]


def totp_value(key: bytes, step: int, digits: int = TOTP_DIGITS) -> str:
    """RFC 4226's HOTP of the time step (RFC 6238), zero-padded to ``digits``."""
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def rotating_pattern(card_id: str) -> str:
    """Google Wallet's ``valuePattern``: the phone puts the current TOTP value in place of ``{totp_value_0}``."""
    return f"G1-{_bare(card_id)}-{{totp_value_0}}"


def rotating_code(secret: bytes, card_id: str, now: datetime) -> str:
    """What a phone with the card's key shows at ``now`` (tests and the demo; phones compute it themselves)."""
    return f"G1-{_bare(card_id)}-{totp_value(totp_key(secret, card_id), int(now.timestamp()) // TOTP_PERIOD)}"


def verify_rotating_code(secret: bytes | tuple[bytes, ...], code: str, now: datetime) -> tuple[str, int]:
    """(card id, time step) of a rotating code valid within one period either side of ``now``."""
    parts = code.strip().upper().split("-")
    if len(parts) != 3 or parts[0] != "G1" or len(parts[2]) != TOTP_DIGITS or not parts[2].isdigit():
        raise InvalidToken("Not a rotating pass code")
    card_id = f"crd_{parts[1]}"
    keys = [totp_key(key, card_id) for key in ((secret,) if isinstance(secret, bytes) else secret)]
    step = int(now.timestamp()) // TOTP_PERIOD
    for candidate in (step, step - 1, step + 1):
        if any(hmac.compare_digest(totp_value(key, candidate), parts[2]) for key in keys):
            return card_id, candidate
    if any(hmac.compare_digest(totp_value(key, step - back), parts[2])
           for back in range(2, _TOTP_LATE_STEPS) for key in keys):
        raise TokenExpired("This pass code has expired: show the card in Google Wallet again")
    raise InvalidToken("The pass code does not match this card")


def qr_image(payload: str, fmt: str = "png") -> tuple[bytes, str]:
    """The payload as a QR code image: (bytes, mimetype). Medium error correction survives a cracked screen."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    qr.add_data(qrcode.util.QRData(payload.encode(), mode=qrcode.util.MODE_ALPHA_NUM)
                if all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" for c in payload) else payload)
    qr.make(fit=True)
    buf = io.BytesIO()
    if fmt == "svg":
        qr.make_image(image_factory=qrcode.image.svg.SvgPathImage).save(buf)
        return buf.getvalue(), "image/svg+xml"
    qr.make_image().save(buf)
    return buf.getvalue(), "image/png"
