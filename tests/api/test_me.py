"""The member's own profile, wallet, card token and QR code, and points statement; nobody else's."""
from __future__ import annotations

import base64
import io
import json
import re
from datetime import datetime, timedelta

import PIL.Image
import pytest
import zxingcpp

from api.extensions import db
from tests.conftest import assert_problem
from wallet import codes, members, qr, tokens

ME = "/api/v1/me"


@pytest.fixture
def member(factory, clock):
    return factory.member(consents={"marketing_email": True})  # on the test clock


# ------------------------------------------------------------------ profile, preferences, consents

def test_get_me(client, member):
    r = client.get(ME, headers=member["headers"])
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == member["id"] and body["email"] == member["email"]
    assert body["card"]["number"] == member["card_number"]
    assert "password_hash" not in body and "password" not in body


def test_patch_profile(client, member, clock):
    r = client.patch(ME, json={"name": "  Dana Levi ", "phone": "+972-50-000-0000", "birthday": "1991-02-03"},
                     headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    # phones are kept in E.164 (LOYALTY_PHONE_REGION for local numbers)
    assert (body["name"], body["phone"], body["birthday"]) == ("Dana Levi", "+972500000000", "1991-02-03")
    again = client.get(ME, headers=member["headers"]).get_json()
    assert again["name"] == "Dana Levi" and again["email"] == member["email"]
    # clearing the optional fields
    r = client.patch(ME, json={"phone": None, "birthday": None}, headers=member["headers"])
    assert (r.get_json()["phone"], r.get_json()["birthday"]) == (None, None)


def test_patch_preferences_merges(client, member):
    before = client.get(ME, headers=member["headers"]).get_json()["preferences"]
    r = client.patch(ME, json={"preferences": {"sms": True}}, headers=member["headers"])
    assert r.get_json()["preferences"] == before | {"sms": True}
    r = client.patch(ME, json={"preferences": {"wallet": True, "email": False}}, headers=member["headers"])
    assert r.get_json()["preferences"] == before | {"sms": True, "wallet": True, "email": False}


def test_patch_consents_keeps_the_time_of_each_change(client, factory, member, clock):
    registered_at = "2026-11-22T10:00:00Z"
    assert client.get(ME, headers=member["headers"]).get_json()["consents"] == {
        "marketing_email": {"granted": True, "at": registered_at, "text_version": None}}
    clock.advance(days=3)
    headers = factory.headers(tokens.Principal(member["id"], "member"))  # the first one expired meanwhile
    r = client.patch(ME, json={"consents": {"marketing_email": True, "profiling": True}}, headers=headers)
    consents = r.get_json()["consents"]
    # an unchanged consent keeps the time it was given; a new one gets now
    assert consents["marketing_email"] == {"granted": True, "at": registered_at, "text_version": None}
    assert consents["profiling"] == {"granted": True, "at": "2026-11-25T10:00:00Z", "text_version": None}
    clock.advance(minutes=5)
    r = client.patch(ME, json={"consents": {"marketing_email": False}}, headers=headers)
    assert r.get_json()["consents"]["marketing_email"] == {"granted": False, "at": "2026-11-25T10:05:00Z", "text_version": None}
    assert r.get_json()["consents"]["profiling"]["granted"] is True


@pytest.mark.parametrize("body,field", [
    ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 121}, "name"), ({"name": "a\tb"}, "name"),
    ({"phone": "call me"}, "phone"), ({"birthday": "2999-01-01"}, "birthday"),
    ({"preferences": {"pigeon": True}}, "preferences"), ({"preferences": {"sms": "yes please"}}, "preferences"),
    ({"consents": {"marketing_email": "maybe"}}, "consents"), ({"consents": {"x" * 41: True}}, "consents"),
    ({"email": "new@example.com"}, "email"), ({"tier": "gold"}, "tier"), ({"card": {"number": "1"}}, "card"),
])
def test_patch_validation(client, member, body, field):
    before = client.get(ME, headers=member["headers"]).get_json()
    r = client.patch(ME, json=body, headers=member["headers"])
    errors = assert_problem(r, 422, "validation_error")["errors"]
    assert any(name == field or name.startswith(field + ".") for name in errors), errors
    assert client.get(ME, headers=member["headers"]).get_json() == before


def test_an_empty_patch_changes_nothing(client, member):
    before = client.get(ME, headers=member["headers"]).get_json()
    r = client.patch(ME, json={}, headers=member["headers"])
    assert r.status_code == 200 and r.get_json() == before


# ------------------------------------------------------------------ the wallet

def test_wallet_after_registration(client):
    r = client.post("/api/v1/auth/register", json={"email": "w@example.com", "password": "correct horse",
                                                   "name": "W"})
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    wallet = client.get("/api/v1/me/wallet", headers=headers)
    assert wallet.status_code == 200
    body = wallet.get_json()
    assert body["card"]["number"] == r.get_json()["member"]["card"]["number"]
    assert body["card"]["status"] == "active" and body["card"]["tier"]
    assert codes.luhn_valid(body["card"]["number"]) and len(body["card"]["number"]) == 16
    assert body["points"]["balance"] == 0 and body["points"]["expiring"] == []
    assert body["coupons"] == []


def test_wallet_shows_points_and_what_expires(client, factory, clock, program):
    member = factory.member()
    factory.earn(member["id"], 120, expires_at=clock.now + timedelta(days=10))
    body = client.get("/api/v1/me/wallet", headers=member["headers"]).get_json()
    assert body["points"]["balance"] == 120
    assert [e["points"] for e in body["points"]["expiring"]] == [120]
    assert datetime.fromisoformat(body["points"]["expiring"][0]["expires_at"]) == clock.now + timedelta(days=10)


# ------------------------------------------------------------------ the card's token and QR code

def test_card_token_verifies_and_expires(client, member, program, clock):
    r = client.get("/api/v1/me/card/token", headers=member["headers"])
    assert r.status_code == 200
    body = r.get_json()
    assert re.fullmatch(r"[0-9A-Z-]{20,80}", body["token"]), body["token"]
    assert member["card_number"] not in body["token"]
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert clock.now < expires_at <= clock.now + program.card_token_ttl
    assert qr.verify_card_token(program.secret, body["token"], clock.now, program.card_token_ttl) == member["card_id"]
    with pytest.raises(qr.TokenExpired):
        qr.verify_card_token(program.secret, body["token"], expires_at, program.card_token_ttl)


def decode_png(png: bytes) -> str:
    found = zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(png)))
    assert len(found) == 1, found
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


def test_card_qr_png_carries_a_token_that_verifies(client, member, program, clock):
    r = client.get("/api/v1/me/card/qr", headers=member["headers"])
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["Cache-Control"] == "no-store"
    payload = decode_png(r.data)
    assert payload == client.get("/api/v1/me/card/token", headers=member["headers"]).get_json()["token"]
    assert qr.verify_card_token(program.secret, payload, clock.now, program.card_token_ttl) == member["card_id"]
    assert len(payload) <= 80


def test_card_qr_svg(client, member):
    r = client.get("/api/v1/me/card/qr?format=svg", headers=member["headers"])
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    assert r.data.lstrip().startswith(b"<?xml") or b"<svg" in r.data[:300]
    assert b"<svg" in r.data and b"path" in r.data
    r = client.get("/api/v1/me/card/qr?format=png", headers=member["headers"])
    assert r.mimetype == "image/png" and r.data.startswith(b"\x89PNG")


def test_a_closed_card_gives_no_token(client, app, member):
    """Only an active card gets a code the till would accept."""
    with app.app_context():
        card = db.session.get(members.Card, member["card_id"])
        card.status = "blocked"
        db.session.commit()
    r = client.get("/api/v1/me/card/token", headers=member["headers"])
    assert_problem(r, 422, "card_inactive")
    assert_problem(client.get("/api/v1/me/card/qr", headers=member["headers"]), 422, "card_inactive")


# ------------------------------------------------------------------ the points statement

def test_statement_newest_first_and_paged(client, factory):
    member = factory.member()
    for points in (10, 20, 30, 40, 50):
        factory.earn(member["id"], points)
    r = client.get("/api/v1/me/ledger?limit=2", headers=member["headers"])
    page = r.get_json()
    assert [e["delta"] for e in page["items"]] == [50, 40]
    assert set(page["items"][0]) >= {"id", "delta", "kind", "reason", "balance_after", "created_at", "expires_at",
                                     "description"}
    assert page["items"][0]["balance_after"] == 150
    seen = [e["delta"] for e in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/me/ledger?limit=2&cursor={page['next_cursor']}",
                          headers=member["headers"]).get_json()
        seen += [e["delta"] for e in page["items"]]
    assert seen == [50, 40, 30, 20, 10]


@pytest.mark.parametrize("value", [10**30, -5, 2**63, "seq", 1.5, True, None, [1]])
def test_statement_refuses_cursors_it_never_gave(client, member, value):
    cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    r = client.get(f"/api/v1/me/ledger?cursor={cursor}", headers=member["headers"])
    assert_problem(r, 422, "invalid_cursor")


# ------------------------------------------------------------------ ownership: one member never sees another's data

def test_a_member_sees_only_their_own_data(client, factory):
    dana, eli = factory.member(name="Dana"), factory.member(name="Eli")
    factory.earn(dana["id"], 70)
    factory.earn(eli["id"], 5)
    me = client.get(ME, headers=eli["headers"]).get_json()
    assert me["id"] == eli["id"] and me["email"] == eli["email"]
    wallet = client.get("/api/v1/me/wallet", headers=eli["headers"]).get_json()
    assert wallet["card"]["number"] == eli["card_number"] and wallet["points"]["balance"] == 5
    statement = client.get("/api/v1/me/ledger", headers=eli["headers"]).get_json()
    assert [e["delta"] for e in statement["items"]] == [5]
    token = client.get("/api/v1/me/card/token", headers=eli["headers"]).get_json()["token"]
    assert eli["card_id"].split("_", 1)[1] in token and dana["card_id"].split("_", 1)[1] not in token
    everything = json.dumps([me, wallet, statement])
    for secret in (dana["id"], dana["email"], dana["card_number"], "Dana"):
        assert secret not in everything


def test_a_members_id_in_the_url_or_body_changes_nothing(client, factory):
    """There are no member ids in /me routes; an id smuggled in is refused or ignored, never obeyed."""
    dana, eli = factory.member(), factory.member()
    assert client.get(f"/api/v1/me/{dana['id']}", headers=eli["headers"]).status_code == 404
    assert client.get(f"/api/v1/me?member_id={dana['id']}", headers=eli["headers"]).get_json()["id"] == eli["id"]
    r = client.patch(ME, json={"id": dana["id"], "name": "Hijack"}, headers=eli["headers"])
    assert_problem(r, 422, "validation_error")
    assert client.get(ME, headers=dana["headers"]).get_json()["name"] != "Hijack"


def test_me_routes_take_no_member_id(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/me"):
            assert "member" not in " ".join(rule.arguments), rule.rule


def test_a_token_for_a_member_that_no_longer_exists(client, factory):
    """A signed token whose member is gone is a wrong token (401), not a missing page."""
    ghost = factory.headers(tokens.Principal("mem_01JZZZZZZZZZZZZZZZZZZZZZZZ", "member"))
    for url in (ME, "/api/v1/me/wallet", "/api/v1/me/card/token", "/api/v1/me/card/qr"):
        assert_problem(client.get(url, headers=ghost), 401, "invalid_token")
