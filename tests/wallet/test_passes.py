"""Apple Wallet passes as Apple's side checks them: unzipped, every hash recomputed, the signature verified by
``openssl cms -verify`` against a throwaway root; and what each pass shows (card, coupon, used, blocked, erased)."""
from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from wallet import coupons, passes, scanner
from wallet.errors import PassUnavailable, Rejected
from wallet.members import Card, Member
from wallet.passes import apple, signing
from wallet.passes.models import WalletPass

from .. import wallet_keys
from ..wallet_keys import TEAM_ID, cms_print, make_apple_pki, verify_pkpass

# The wallet's shared fixtures (tests/wallet_keys.py), used here by name.
apple_on = wallet_keys.apple_on
apple_pki = wallet_keys.apple_pki

FREE_COFFEE = {"kind": "free_item", "sku": "COF-250"}


@pytest.fixture
def member(factory, session):
    made = factory.member(name="Noa Levi")
    factory.earn(made["id"], 120)
    return made


def _coupon(session, program, member_id: str, **offer):
    created = coupons.create_offer(session, program, {"title": "Ten off", "terms": "One per visit.",
                                                      "benefit": {"kind": "percent_off", "value": "10"}} | offer)
    coupon = coupons.issue_coupon(session, program, offer_id=created.id, member_id=member_id, idempotency_key="t",
                                  source=None, actor="test")
    session.commit()
    return coupon


def test_a_card_pass_verifies_as_apple_would(session, program, clock, apple_on, apple_pki, member, tmp_path):
    made = passes.card_pass(session, program, member["id"])
    session.commit()
    checked = verify_pkpass(made.data, apple_pki.root, tmp_path)
    body = checked.pass_json
    assert body["formatVersion"] == 1 and body["passTypeIdentifier"] == apple_pki.pass_type_id
    assert body["teamIdentifier"] == TEAM_ID and body["serialNumber"] == member["card_id"] == made.serial
    assert body["webServiceURL"] == "https://club.example/api/passkit"
    assert len(body["authenticationToken"]) >= 16
    card = body["storeCard"]
    assert card["headerFields"][0]["value"] == 120 and card["headerFields"][0]["label"] == "POINTS"
    assert {"key": "member", "label": "MEMBER", "value": "Noa Levi"} in card["secondaryFields"]
    [barcode] = body["barcodes"]
    assert barcode["format"] == "PKBarcodeFormatQR" and barcode["message"].startswith("P1-")
    assert "Noa" not in barcode["message"] and "@" not in barcode["message"]  # no personal data in the code
    read = scanner.read(program, barcode["message"], want="card")
    assert (read.key, read.pass_code) == (member["card_id"], "P1")
    # English and Hebrew, every label and message the pass uses
    assert checked.strings("en")["POINTS"] == "Points" and checked.strings("he")["POINTS"] == "נקודות"
    assert checked.strings("he")["BALANCE_CHANGED"] == "יש לך עכשיו %@ נקודות"
    assert set(checked.strings("en")) == set(checked.strings("he"))
    assert checked.files["en.lproj/pass.strings"].startswith(b"\xff\xfe")  # UTF-16 with its byte order mark
    # images: icon and logo at 1x, 2x and 3x, real PNGs of Apple's sizes
    sizes = {name: Image.open(io.BytesIO(checked.files[name])).size for name in checked.files if name.endswith(".png")}
    assert sizes == {"icon.png": (29, 29), "icon@2x.png": (58, 58), "icon@3x.png": (87, 87),
                     "logo.png": (160, 50), "logo@2x.png": (320, 100), "logo@3x.png": (480, 150)}
    # the signature: signed attributes with a signing time, the pass certificate and the WWDR intermediate
    printed = cms_print(made.data, tmp_path)
    assert "signingTime" in printed and "messageDigest" in printed
    assert "Pass Type ID: " + apple_pki.pass_type_id in printed and "Throwaway Worldwide Developer Relations" in printed
    row = session.get(WalletPass, member["card_id"])
    assert (row.kind, row.apple, row.google, row.modified) == ("card", True, False, made.modified)


def test_a_pass_signed_by_another_chain_fails_verification(session, program, clock, apple_on, member, tmp_path):
    """The check can fail: against another root, openssl refuses the same pass."""
    made = passes.card_pass(session, program, member["id"])
    other = make_apple_pki(tmp_path / "other")
    with pytest.raises(AssertionError):
        verify_pkpass(made.data, other.root, tmp_path / "v")


def test_a_coupon_pass_shows_the_benefit_terms_expiry_and_its_own_code(session, program, clock, apple_on, apple_pki,
                                                                       member, tmp_path):
    coupon = _coupon(session, program, member["id"])
    made = passes.coupon_pass(session, program, member["id"], coupon.id)
    checked = verify_pkpass(made.data, apple_pki.root, tmp_path)
    body = checked.pass_json
    assert body["serialNumber"] == coupon.id and "coupon" in body and "voided" not in body
    assert body["expirationDate"] == coupon.expires_at.isoformat().replace("+00:00", "Z")
    assert body["coupon"]["primaryFields"][0]["value"] == "BENEFIT"
    assert checked.strings("en")["BENEFIT"] == "10% off" and checked.strings("he")["BENEFIT"] == "10% הנחה"
    assert body["coupon"]["secondaryFields"][0]["value"] == "Ten off"
    assert {"key": "terms", "label": "TERMS", "value": "One per visit."} in body["coupon"]["backFields"]
    [barcode] = body["barcodes"]
    assert scanner.read(program, barcode["message"], want="coupon").key == coupon.id
    assert barcode["altText"].replace("-", "") == coupon.code


def test_a_redeemed_coupon_pass_shows_it_used_and_voided(session, program, clock, apple_on, apple_pki, member,
                                                         factory, tmp_path):
    coupon = _coupon(session, program, member["id"])
    store = factory.store()
    coupons.redeem(session, program, coupons.coupon_qr_payload(session, program, member["id"], coupon.id),
                   store_id=store["id"])
    session.commit()
    checked = verify_pkpass(passes.coupon_pass(session, program, member["id"], coupon.id).data, apple_pki.root,
                            tmp_path)
    assert checked.pass_json["voided"] is True and "barcodes" not in checked.pass_json
    status = next(f for f in checked.pass_json["coupon"]["auxiliaryFields"] if f["key"] == "status")
    assert status["value"] == "COUPON_REDEEMED"
    assert checked.strings("en")["COUPON_REDEEMED"] == "Used" and checked.strings("he")["COUPON_REDEEMED"] == "מומש"


def test_another_members_coupon_has_no_pass(session, program, clock, apple_on, member, factory):
    coupon = _coupon(session, program, member["id"])
    stranger = factory.member()
    with pytest.raises(Exception) as caught:
        passes.coupon_pass(session, program, stranger["id"], coupon.id)
    assert caught.value.code == "coupon_not_found"


def test_no_pass_for_a_blocked_card_and_the_one_out_there_turns_void(session, program, clock, apple_on, member):
    passes.card_pass(session, program, member["id"])
    session.get(Card, member["card_id"]).status = "blocked"
    session.commit()
    with pytest.raises(Rejected) as caught:
        passes.card_pass(session, program, member["id"])
    assert caught.value.code == "card_inactive"
    from wallet.passes.content import card_view_by_serial
    content = apple.card_content(program, apple_on, card_view_by_serial(session, program, member["card_id"]), [])
    assert content.pass_json["voided"] is True and "barcodes" not in content.pass_json
    assert content.pass_json["storeCard"]["headerFields"] == []


def test_an_erased_members_pass_shows_nothing_personal(session, program, clock, apple_on, member):
    passes.card_pass(session, program, member["id"])
    session.get(Member, member["id"]).status = "erased"  # erasure's own feature marks the member so
    session.commit()
    with pytest.raises(Rejected):
        passes.card_pass(session, program, member["id"])
    from wallet.passes.content import card_view_by_serial
    content = apple.card_content(program, apple_on, card_view_by_serial(session, program, member["card_id"]), [])
    text = str(content.pass_json)
    assert content.pass_json["voided"] is True
    assert "Noa" not in text and member["card_number"] not in text and "barcodes" not in content.pass_json


def test_unconfigured_there_is_no_pass(session, program, member):
    assert program.apple_wallet is None and program.google_wallet is None
    for attempt in (lambda: passes.card_pass(session, program, member["id"]),
                    lambda: passes.card_google_link(session, program, member["id"])):
        with pytest.raises(PassUnavailable) as caught:
            attempt()
        assert caught.value.code == "wallet_pass_unavailable"
    assert session.query(WalletPass).count() == 0


def test_a_certificate_that_expires_while_running_stops_passes(session, program, clock, apple_on, member, caplog):
    clock.now = apple_on.certificate.not_valid_after_utc + timedelta(seconds=1)
    with caplog.at_level(logging.ERROR, "loyalty.passes"), pytest.raises(PassUnavailable):
        passes.card_pass(session, program, member["id"])
    assert "certificate expired" in caplog.text


# ------------------------------------------------------------------ start-up checks


def _load(pki, **changes):
    settings = {"pass_type_id": pki.pass_type_id, "team_id": TEAM_ID, "cert_path": str(pki.cert),
                "key_path": str(pki.key), "wwdr_path": str(pki.wwdr), "key_password": None,
                "now": datetime.now(UTC)} | changes
    return signing.load_apple(**settings)


def test_an_expired_certificate_at_start_up_is_one_clear_log_line(tmp_path, caplog):
    expired = make_apple_pki(tmp_path, expired=True)
    with pytest.raises(signing.Misconfigured, match="expired on"):
        _load(expired)
    with caplog.at_level(logging.ERROR, "loyalty.passes"):
        assert signing.apple_or_off(pass_type_id=expired.pass_type_id, team_id=TEAM_ID, cert_path=str(expired.cert),
                                    key_path=str(expired.key), wwdr_path=str(expired.wwdr), key_password=None,
                                    now=datetime.now(UTC)) is None
    [line] = [r for r in caplog.records if r.name == "loyalty.passes"]
    assert "Apple Wallet passes are OFF" in line.getMessage() and "expired on" in line.getMessage()


@pytest.mark.parametrize("change, message", [
    (lambda pki, other: {"key_path": str(other.key)}, "is not the key of"),
    (lambda pki, other: {"wwdr_path": str(other.wwdr)}, "did not issue"),
    (lambda pki, other: {"pass_type_id": "pass.club.example.other"}, "the certificate is for"),
    (lambda pki, other: {"pass_type_id": "club.example"}, "must start with 'pass.'"),
    (lambda pki, other: {"cert_path": str(pki.folder / "missing.pem")}, "can't be read"),
    (lambda pki, other: {"key_path": str(pki.cert)}, "can't be loaded"),
])
def test_inconsistent_apple_settings_are_refused_with_a_reason(apple_pki, tmp_path_factory, change, message):
    other = make_apple_pki(tmp_path_factory.mktemp("other"))
    with pytest.raises(signing.Misconfigured, match=message):
        _load(apple_pki, **change(apple_pki, other))
