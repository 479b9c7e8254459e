"""The member's side of the phone's wallet over HTTP: the card and coupon passes, Google Wallet save links (the JWT
checked as Google would, the rotating barcode exactly as API.md gives it), and the pass codes at the till: a
Google Wallet value for one identify and one purchase at one store, an Apple pass code that dies with its card."""
from __future__ import annotations

import base64
import io
from datetime import timedelta

import jwt
import pyotp
import pytest
from PIL import Image

from api.extensions import db
from wallet import qr
from wallet.members import Card
from wallet.passes.models import PassScan, WalletPass

from .. import wallet_keys
from ..conftest import assert_problem
from ..wallet_keys import ISSUER_ID, public_key_of_account, verify_pkpass
from .test_coupons import claim
from .test_offers import make_offer

# The wallet's shared fixtures (tests/wallet_keys.py), used here by name.
apple_on = wallet_keys.apple_on
apple_pki = wallet_keys.apple_pki
google_account = wallet_keys.google_account
google_on = wallet_keys.google_on

API = "/api/v1"


@pytest.fixture
def member(factory):
    made = factory.member(name="Dana Cohen")
    factory.earn(made["id"], 250)
    return made


@pytest.fixture
def tills(factory):
    """Two stores with a cashier each."""
    out = []
    for _ in range(2):
        store = factory.store()
        out.append({"store": store, "h": factory.staff("cashier", store_id=store["id"])["headers"], "n": 0})
    return out


def buy(client, till, card: str, amount: str = "20.00"):
    till["n"] += 1
    return client.post(f"{API}/pos/purchases", headers=till["h"],
                       json={"card": card, "amount": amount, "currency": "ILS", "receipt_id": f"P-{till['n']}"})


def identify(client, till, code: str):
    return client.post(f"{API}/pos/identify", json={"qr": code}, headers=till["h"])


# ------------------------------------------------------------------ Apple


def test_the_card_pass_downloads_signed(client, clock, apple_on, apple_pki, member, tmp_path):
    r = client.get(f"{API}/me/card/pass.pkpass", headers=member["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/vnd.apple.pkpass"
    assert r.headers["Content-Disposition"] == 'attachment; filename="loyalty-card.pkpass"'
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Last-Modified"]
    checked = verify_pkpass(r.data, apple_pki.root, tmp_path)
    assert checked.pass_json["storeCard"]["headerFields"][0]["value"] == 250
    assert checked.pass_json["serialNumber"] == member["card_id"]


def test_a_coupon_pass_downloads_and_anothers_is_not_found(client, clock, apple_on, apple_pki, member, factory,
                                                           tmp_path):
    marketer = factory.staff("marketer")
    coupon = claim(client, member, make_offer(client, marketer)["id"]).get_json()
    r = client.get(f"{API}/me/coupons/{coupon['id']}/pass.pkpass", headers=member["headers"])
    assert r.status_code == 200
    assert verify_pkpass(r.data, apple_pki.root, tmp_path).pass_json["barcodes"][0]["message"] == coupon["token"]
    stranger = factory.member()
    assert_problem(client.get(f"{API}/me/coupons/{coupon['id']}/pass.pkpass", headers=stranger["headers"]),
                   404, "coupon_not_found")


def test_unconfigured_the_wallet_answers_404_and_nothing_else_changes(client, member, app):
    for path in ("/me/card/pass.pkpass", "/me/card/google-wallet", "/me/coupons/cpn_x/pass.pkpass",
                 "/me/coupons/cpn_x/google-wallet"):
        assert_problem(client.get(API + path, headers=member["headers"]), 404, "wallet_pass_unavailable")
    assert client.get(f"{API}/me/wallet", headers=member["headers"]).status_code == 200
    with app.app_context():
        assert db.session.query(WalletPass).count() == 0


def test_a_blocked_card_gets_no_pass(client, app, clock, apple_on, member):
    with app.app_context():
        db.session.get(Card, member["card_id"]).status = "blocked"
        db.session.commit()
    assert_problem(client.get(f"{API}/me/card/pass.pkpass", headers=member["headers"]), 422, "card_inactive")


def test_the_apple_pass_code_works_at_the_till_until_the_card_is_blocked(client, app, clock, apple_on, member,
                                                                         tills):
    code = qr.pass_code(app.extensions["loyalty.program"].secret, member["card_id"])
    r = identify(client, tills[0], code)
    assert r.status_code == 200 and r.get_json()["member"]["id"] == member["id"]
    assert buy(client, tills[0], code).status_code == 201
    assert buy(client, tills[0], code).status_code == 201  # static: it works again (a screenshot would too)
    with app.app_context():
        db.session.get(Card, member["card_id"]).status = "replaced"
        db.session.commit()
    assert_problem(buy(client, tills[0], code), 422, "card_inactive")
    assert_problem(identify(client, tills[0], code), 422, "card_inactive")


def test_an_apple_pass_code_at_two_stores_within_a_minute_is_flagged(client, app, clock, apple_on, member, tills):
    code = qr.pass_code(app.extensions["loyalty.program"].secret, member["card_id"])
    assert buy(client, tills[0], code).status_code == 201
    clock.advance(seconds=40)
    assert buy(client, tills[1], code).status_code == 201  # not refused: flagged for review
    clock.advance(minutes=5)
    assert identify(client, tills[0], code).status_code == 200
    with app.app_context():
        scans = db.session.query(PassScan).order_by(PassScan.at).all()
        assert [(s.store_id, s.purpose, s.flagged, s.other_store_id) for s in scans] == [
            (tills[0]["store"]["id"], "purchase", False, None),
            (tills[1]["store"]["id"], "purchase", True, tills[0]["store"]["id"]),
            (tills[0]["store"]["id"], "identify", False, None)]


# ------------------------------------------------------------------ Google


def _save_link(client, member, path="/me/card/google-wallet") -> dict:
    r = client.get(API + path, headers=member["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store"
    return r.get_json()


def test_the_google_save_link_is_an_rs256_jwt_with_the_rotating_barcode(client, clock, google_on, google_account,
                                                                        member):
    body = _save_link(client, member)
    assert body["save_url"] == "https://pay.google.com/gp/v/save/" + body["jwt"]
    assert jwt.get_unverified_header(body["jwt"]) == {"alg": "RS256", "kid": "0123456789abcdef", "typ": "JWT"}
    claims = jwt.decode(body["jwt"], public_key_of_account(google_account), algorithms=["RS256"], audience="google")
    assert claims["typ"] == "savetowallet" and claims["iss"] == "wallet@club-test.iam.gserviceaccount.com"
    assert claims["origins"] == ["https://club.example"]
    [klass] = claims["payload"]["loyaltyClasses"]
    [card] = claims["payload"]["loyaltyObjects"]
    assert klass["id"] == f"{ISSUER_ID}.club-loyalty" and card["classId"] == klass["id"]
    assert klass["programLogo"]["sourceUri"]["uri"] == "https://club.example/wallet/logo.png"
    assert card["id"] == f"{ISSUER_ID}.{member['card_id']}" and card["state"] == "ACTIVE"
    assert card["loyaltyPoints"]["balance"] == {"int": 250} and card["accountName"] == "Dana Cohen"
    key = card["rotatingBarcode"]["totpDetails"]["parameters"][0]["key"]
    assert card["rotatingBarcode"] == {
        "type": "QR_CODE", "valuePattern": f"G1-{member['card_id'][4:]}-{{totp_value_0}}",
        "totpDetails": {"periodMillis": 30000, "algorithm": "TOTP_SHA1",
                        "parameters": [{"key": key, "valueLength": 8}]}}
    assert len(key) == 40 and int(key, 16) >= 0  # 160 bits as hex


def _phone_code(client, member, moment) -> str:
    """What Google Wallet shows: the value pattern filled with RFC 6238 by pyotp from the key in the save link."""
    card = jwt.decode(_save_link(client, member)["jwt"], options={"verify_signature": False})
    rotating = card["payload"]["loyaltyObjects"][0]["rotatingBarcode"]
    secret = base64.b32encode(bytes.fromhex(rotating["totpDetails"]["parameters"][0]["key"])).decode()
    value = pyotp.TOTP(secret, digits=8, interval=30, digest="sha1").at(moment)
    return rotating["valuePattern"].replace("{totp_value_0}", value)


def test_a_google_wallet_code_identifies_once_and_buys_once_at_one_store(client, app, clock, google_on, member,
                                                                         tills):
    code = _phone_code(client, member, clock.now)
    assert identify(client, tills[0], code).get_json()["member"]["id"] == member["id"]
    assert_problem(identify(client, tills[0], code), 422, "pass_code_used")
    assert_problem(buy(client, tills[1], code), 422, "pass_code_used_elsewhere")
    assert_problem(identify(client, tills[1], code), 422, "pass_code_used_elsewhere")
    assert buy(client, tills[0], code).status_code == 201
    assert_problem(buy(client, tills[0], code), 422, "pass_code_used")
    # the next value the phone shows, 30 seconds on, works again; the old one, later, does not
    clock.advance(seconds=30)
    assert buy(client, tills[1], _phone_code(client, member, clock.now)).status_code == 201
    clock.advance(minutes=2)
    assert_problem(buy(client, tills[0], code), 422, "token_expired")


def test_a_google_wallet_code_made_a_period_off_the_tills_clock_still_works(client, clock, google_on, member, tills):
    assert buy(client, tills[0], _phone_code(client, member, clock.now - timedelta(seconds=30))).status_code == 201
    assert buy(client, tills[0], _phone_code(client, member, clock.now + timedelta(seconds=30))).status_code == 201
    assert_problem(buy(client, tills[0], _phone_code(client, member, clock.now + timedelta(seconds=75))),
                   422, "invalid_token")


def test_a_purchase_retried_with_the_same_google_code_replays(client, clock, google_on, member, tills):
    code = _phone_code(client, member, clock.now)
    body = {"card": code, "amount": "20.00", "currency": "ILS", "receipt_id": "R-once"}
    first = client.post(f"{API}/pos/purchases", json=body, headers=tills[0]["h"])
    again = client.post(f"{API}/pos/purchases", json=body, headers=tills[0]["h"])
    assert first.status_code == again.status_code == 201
    assert again.get_json()["purchase_id"] == first.get_json()["purchase_id"]


def test_a_coupons_google_link_is_an_offer_object(client, clock, google_on, google_account, member, factory):
    marketer = factory.staff("marketer")
    coupon = claim(client, member, make_offer(client, marketer)["id"]).get_json()
    body = _save_link(client, member, f"/me/coupons/{coupon['id']}/google-wallet")
    claims = jwt.decode(body["jwt"], public_key_of_account(google_account), algorithms=["RS256"], audience="google")
    [offer] = claims["payload"]["offerObjects"]
    assert offer["id"] == f"{ISSUER_ID}.{coupon['id']}" and offer["state"] == "ACTIVE"
    assert offer["barcode"] == {"type": "QR_CODE", "value": coupon["token"], "alternateText": coupon["code"]}
    assert claims["payload"]["offerClasses"][0]["title"] == "Ten percent off"


def test_the_program_logo_is_public(client):
    r = client.get("/wallet/logo.png")
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert Image.open(io.BytesIO(r.data)).size == (660, 660)
