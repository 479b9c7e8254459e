"""Compact QR tokens: short, alphanumeric, signed, expiring; a real decoder reads the image."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from PIL import Image

from wallet import qr
from wallet.errors import InvalidToken, TokenExpired

SECRET = b"k" * 32
NOW = datetime(2026, 11, 22, 10, 0, 7, tzinfo=UTC)
TTL = timedelta(minutes=5)
CARD = "crd_01JD3M5W8ZB3Q4K2C7YV1N6T9R"


def test_card_token_is_short_alphanumeric_and_round_trips():
    made = qr.card_token(SECRET, CARD, NOW, TTL)
    assert len(made.token) <= 80
    assert set(made.token) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert made.expires_at == datetime(2026, 11, 22, 10, 5, 0, tzinfo=UTC)
    assert qr.verify_card_token(SECRET, made.token, NOW + timedelta(minutes=4), TTL) == CARD
    assert CARD.split("_")[1] in made.token and "@" not in made.token  # an opaque id, nothing personal


def test_expired_and_replayed_after_expiry_card_tokens_are_refused():
    token = qr.card_token(SECRET, CARD, NOW, TTL).token
    with pytest.raises(TokenExpired) as caught:
        qr.verify_card_token(SECRET, token, NOW + timedelta(minutes=5), TTL)
    assert caught.value.code == "token_expired"
    with pytest.raises(TokenExpired):
        qr.verify_card_token(SECRET, token, NOW + timedelta(days=3), TTL)


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),          # the MAC
    lambda t: t.replace("C1-01", "C1-02", 1),                   # the card id
    lambda t: "-".join(t.split("-")[:2] + ["ZZZZZZZ"] + t.split("-")[3:]),  # the time step
    lambda t: t.replace("C1", "C2", 1),                          # the version
    lambda t: t + "-X",
    lambda t: "",
    lambda t: "C1--" + "-",
])
def test_tampered_card_tokens_are_refused(tamper):
    token = qr.card_token(SECRET, CARD, NOW, TTL).token
    with pytest.raises(InvalidToken) as caught:
        qr.verify_card_token(SECRET, tamper(token), NOW, TTL)
    assert caught.value.code == "invalid_token"


def test_a_token_signed_with_another_key_is_refused():
    token = qr.card_token(b"x" * 32, CARD, NOW, TTL).token
    with pytest.raises(InvalidToken):
        qr.verify_card_token(SECRET, token, NOW, TTL)


def test_a_token_from_the_future_is_refused():
    token = qr.card_token(SECRET, CARD, NOW + timedelta(minutes=10), TTL).token
    with pytest.raises(InvalidToken):
        qr.verify_card_token(SECRET, token, NOW, TTL)


def test_coupon_token_round_trips_and_tampering_fails():
    token = qr.coupon_token(SECRET, "cpn_01JD3M5W8ZB3Q4K2C7YV1N6T9R")
    assert qr.verify_coupon_token(SECRET, token) == "cpn_01JD3M5W8ZB3Q4K2C7YV1N6T9R"
    assert qr.token_kind(token) == "coupon"
    with pytest.raises(InvalidToken):
        qr.verify_coupon_token(SECRET, token.replace("K1-01", "K1-03"))
    with pytest.raises(InvalidToken):
        qr.verify_card_token(SECRET, token, NOW, TTL)  # a coupon never passes for a card


def test_png_decodes_with_a_real_scanner_to_the_token_at_version_5_or_below():
    token = qr.card_token(SECRET, CARD, NOW, TTL).token
    png, mimetype = qr.qr_image(token, "png")
    assert mimetype == "image/png"
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [r.text for r in results] == [token]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    assert qr.verify_card_token(SECRET, results[0].text, NOW, TTL) == CARD
    # 4 modules of quiet zone each side and 8 px a module: the width gives the symbol's version.
    modules = Image.open(io.BytesIO(png)).size[0] // 8 - 8
    assert (modules - 17) // 4 <= 5


def test_svg_is_an_svg_document():
    svg, mimetype = qr.qr_image("K1-ABC-DEF", "svg")
    assert mimetype == "image/svg+xml"
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg


def test_codes_signed_with_a_retired_key_still_verify_after_rotation():
    old, new = b"o" * 32, b"n" * 32
    coupon = qr.coupon_token(old, "cpn_01JD3M5W8ZB3Q4K2C7YV1N6T9R")
    card = qr.card_token(old, CARD, NOW, TTL).token
    assert qr.verify_coupon_token((new, old), coupon) == "cpn_01JD3M5W8ZB3Q4K2C7YV1N6T9R"
    assert qr.verify_card_token((new, old), card, NOW, TTL) == CARD
    with pytest.raises(InvalidToken):
        qr.verify_coupon_token((new,), coupon)  # once the old key is dropped, its codes stop
