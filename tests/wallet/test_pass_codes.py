"""The passes' codes: Apple's static ``P1-`` and Google's rotating ``G1-``. The rotating side is checked against a
TOTP implementation that is not ours (pyotp): what a phone computes from the key in the save link is what the
scanner accepts, within one period either side and no further."""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from wallet import qr, scanner
from wallet.errors import Invalid, InvalidToken, Rejected, TokenExpired
from wallet.program import Program

SECRET = b"k" * 32
OLD = b"o" * 32
CARD = "crd_01JD3M5W8ZB3Q4K2C7YV1N6T9R"
NOW = datetime(2026, 11, 22, 10, 0, 7, tzinfo=UTC)


def phone(key_hex: str) -> pyotp.TOTP:
    """What Google Wallet does with ``totpDetails``: RFC 6238, SHA-1, 30 s, 8 digits, the key given as hex."""
    return pyotp.TOTP(base64.b32encode(bytes.fromhex(key_hex)).decode(), digits=8, interval=30, digest="sha1")


def test_the_static_pass_code_is_short_signed_and_names_only_the_card():
    code = qr.pass_code(SECRET, CARD)
    assert code.startswith("P1-") and len(code) <= 50
    assert set(code) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-")  # QR alphanumeric mode
    assert qr.verify_pass_code(SECRET, code) == CARD
    assert qr.verify_pass_code((OLD, SECRET), code.lower()) == CARD  # a retired key still in the ring
    assert qr.token_kind(code) == "card"


@pytest.mark.parametrize("tamper", [
    lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
    lambda c: c.replace("P1-01", "P1-02", 1),
    lambda c: c.replace("P1-", "C1-", 1),
    lambda c: c + "-X",
])
def test_a_tampered_pass_code_is_refused(tamper):
    with pytest.raises(InvalidToken):
        qr.verify_pass_code(SECRET, tamper(qr.pass_code(SECRET, CARD)))


def test_the_rotating_code_is_what_an_independent_totp_computes():
    key = qr.totp_key(SECRET, CARD)
    assert len(key) == 20 and key != qr.totp_key(SECRET, "crd_01JD3M5W8ZB3Q4K2C7YV1N6T9S")  # a key per card
    theirs = phone(key.hex())
    for moment in (NOW, NOW + timedelta(seconds=29), NOW + timedelta(days=400)):
        value = theirs.at(moment)
        assert qr.rotating_code(SECRET, CARD, moment) == f"G1-{CARD[4:]}-{value}"
        assert qr.rotating_pattern(CARD).replace("{totp_value_0}", value) == f"G1-{CARD[4:]}-{value}"
    # RFC 6238's own test vector (SHA-1, T = 59 s, 8 digits)
    assert qr.totp_value(b"12345678901234567890", 59 // 30) == "94287082"


def test_a_rotating_code_is_good_one_period_either_side_and_no_further():
    theirs = phone(qr.totp_key(SECRET, CARD).hex())
    code = f"G1-{CARD[4:]}-{theirs.at(NOW)}"
    step = int(NOW.timestamp()) // 30
    for delta in (-37, 0, 30, 52):  # the till one step either side of the code's
        assert qr.verify_rotating_code(SECRET, code, NOW + timedelta(seconds=delta)) == (CARD, step)
    with pytest.raises(TokenExpired):
        qr.verify_rotating_code(SECRET, code, NOW + timedelta(seconds=90))
    with pytest.raises(InvalidToken):  # made more than a period ahead of the till's clock
        qr.verify_rotating_code(SECRET, code, NOW - timedelta(seconds=65))
    with pytest.raises(InvalidToken):  # another card's code with this card's id
        other = phone(qr.totp_key(SECRET, "crd_01JD3M5W8ZB3Q4K2C7YV1N6T9S").hex())
        qr.verify_rotating_code(SECRET, f"G1-{CARD[4:]}-{other.at(NOW)}", NOW)
    for malformed in ("G1-" + CARD[4:], f"G1-{CARD[4:]}-1234567", f"G1-{CARD[4:]}-12345678X", "G1--12345678"):
        with pytest.raises(InvalidToken):
            qr.verify_rotating_code(SECRET, malformed, NOW)


def test_the_scanner_names_the_card_and_says_which_pass_code_it_was():
    program = Program(secret=SECRET, clock=lambda: NOW)
    read = scanner.read(program, qr.pass_code(SECRET, CARD))
    assert (read.kind, read.by, read.key, read.pass_code, read.step) == ("card", "id", CARD, "P1", None)
    read = scanner.read(program, qr.rotating_code(SECRET, CARD, NOW), want="card")
    assert (read.kind, read.by, read.key, read.pass_code, read.step) == ("card", "id", CARD, "G1",
                                                                        int(NOW.timestamp()) // 30)
    token = qr.card_token(SECRET, CARD, NOW, timedelta(minutes=5)).token
    assert scanner.read(program, token).pass_code is None  # a card token is not a pass's
    with pytest.raises(Invalid) as caught:
        scanner.read(program, qr.pass_code(b"x" * 32, CARD))
    assert caught.value.code == "invalid_token"
    late = Program(secret=SECRET, clock=lambda: NOW + timedelta(minutes=3))
    with pytest.raises(Rejected) as caught:
        scanner.read(late, qr.rotating_code(SECRET, CARD, NOW))
    assert caught.value.code == "token_expired"
    with pytest.raises(Invalid) as caught:
        scanner.read(program, qr.pass_code(SECRET, CARD), want="coupon")
    assert caught.value.code == "not_a_coupon"
