"""What did the scanner read? The one answer, asked once per request, for every code a till meets.

A till's scanner or a cashier's keyboard gives a string. It can be a card's signed QR token (``C1-...``), a
typed card number (16 digits, Luhn-checked), a card pass's code (Apple Wallet's static ``P1-...``, Google
Wallet's rotating ``G1-...``), a coupon's signed QR token (``K1-...``) or its typed code (``KQ7M-3D9X-T2AB``).
:func:`read` tells which, checks its signature, age and check digit (no database needed), and names what it
points at: the rest of the till looks the thing up by :class:`Scanned` and never parses the string again. A pass
code names its card by id like a card token, and says it came from a pass (``pass_code``), so the till can
record the use (``wallet.passes.uses``).

A refusal is 422, not 401: the till's own sign-in is fine, the code on the phone or paper is not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from . import codes, qr
from .errors import Invalid, InvalidCoupon, InvalidToken, Rejected, TokenExpired
from .program import Program

Kind = Literal["card", "coupon"]
_SEPARATORS = re.compile(r"[\s-]")


@dataclass(frozen=True)
class Scanned:
    """What a scanned or typed code names: a card by ``id`` (from its token) or ``number``, or a coupon by ``id``
    (from its token) or ``code`` (its stored form)."""

    kind: Kind
    by: Literal["id", "number", "code"]
    key: str
    pass_code: Literal["P1", "G1"] | None = None  # a wallet pass's code: Apple's static one, Google's rotating one
    step: int | None = None  # G1: the TOTP time step the code was made for


def read(program: Program, text: str, *, want: Kind | None = None) -> Scanned:
    """What ``text`` names. ``want``: the field expects a card or a coupon, and the other kind is refused (without
    it, digits are a card number and anything else a coupon code)."""
    kind = qr.token_kind(text)
    if kind == "card":
        if want == "coupon":
            raise InvalidCoupon("That is a loyalty card, not a coupon", code="not_a_coupon",
                                errors={"coupon": ["A loyalty card code."]})
        return _card(program, text)
    if kind == "coupon":
        if want == "card":
            raise Invalid("That is a coupon, not a loyalty card", code="not_a_card", errors={"card": ["A coupon code."]})
        return Scanned("coupon", "id", _coupon_id(program, text))
    bare = _SEPARATORS.sub("", text)
    if want == "card" or (want is None and bare.isdigit()):
        if len(bare) != 16 or not codes.luhn_valid(bare):
            raise Invalid("Not a valid card number", code="invalid_card_number",
                          errors={"card": ["Not a valid card number."]})
        return Scanned("card", "number", bare)
    return Scanned("coupon", "code", codes.normalise_code(text))


def _card(program: Program, text: str) -> Scanned:
    head = text.strip()[:3].upper()
    try:
        if head == "P1-":
            return Scanned("card", "id", qr.verify_pass_code(program.qr_keys, text), pass_code="P1")
        if head == "G1-":
            card_id, step = qr.verify_rotating_code(program.qr_keys, text, program.now())
            return Scanned("card", "id", card_id, pass_code="G1", step=step)
        return Scanned("card", "id", qr.verify_card_token(program.qr_keys, text, program.now(), program.card_token_ttl))
    except TokenExpired as error:
        raise Rejected(error.detail, code="token_expired", errors={"card": ["The card code has expired."]}) from None
    except InvalidToken as error:
        raise Invalid(error.detail, code="invalid_token", errors={"card": ["Not a genuine card code."]}) from None


def _coupon_id(program: Program, text: str) -> str:
    try:
        return qr.verify_coupon_token(program.qr_keys, text)
    except InvalidToken:
        raise InvalidCoupon("This coupon's QR code is not genuine", code="invalid_coupon_token",
                            errors={"coupon": ["The signature does not match."]}) from None
