"""The wallet's benefits and naming a referrer after joining."""
from __future__ import annotations

from api.extensions import db
from wallet.members import Member

from ..conftest import assert_problem


def test_wallet_lists_benefits_and_a_member_can_name_a_referrer(client, factory):
    referrer = factory.member()
    member = factory.member()
    factory.rule(title="Thanks for the referral", trigger="referral", reward={"points": 40},
                 conditions={"side": "referrer"})
    wallet = client.get("/api/v1/me/wallet", headers=member["headers"]).get_json()
    assert wallet["benefits"] == []
    with client.application.app_context():
        code = db.session.get(Member, referrer["id"]).referral_code
    r = client.post("/api/v1/me/referral", json={"referral_code": code}, headers=member["headers"])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["referrer_id"] == referrer["id"]
    assert factory.balance(referrer["id"]) == 0  # pays at the member's first purchase
    again = client.post("/api/v1/me/referral", json={"referral_code": code}, headers=member["headers"])
    assert_problem(again, 409, "referral_already_claimed")
    cashier = factory.staff("cashier")
    bought = client.post("/api/v1/pos/purchases", json={"card": member["card_number"], "amount": "12.00",
                                                         "currency": "ILS", "receipt_id": "R-1"},
                         headers=cashier["headers"])
    assert bought.status_code == 201
    assert factory.balance(referrer["id"]) == 40


def test_a_referral_is_named_only_before_the_first_purchase(client, factory):
    referrer, member = factory.member(), factory.member()
    cashier = factory.staff("cashier")
    assert client.post("/api/v1/pos/purchases", json={"card": member["card_number"], "amount": "12.00",
                                                      "currency": "ILS", "receipt_id": "R-1"},
                       headers=cashier["headers"]).status_code == 201
    with client.application.app_context():
        code = db.session.get(Member, referrer["id"]).referral_code
    r = client.post("/api/v1/me/referral", json={"referral_code": code}, headers=member["headers"])
    assert "referral_code" in assert_problem(r, 422, "referral_after_first_purchase")["errors"]
    with client.application.app_context():
        assert db.session.get(Member, member["id"]).referred_by_id is None


def test_naming_myself_or_a_shared_device_is_refused(client, factory):
    referrer, member = factory.member(), factory.member()
    with client.application.app_context():
        mine = db.session.get(Member, member["id"]).referral_code
        theirs = db.session.get(Member, referrer["id"]).referral_code
    assert_problem(client.post("/api/v1/me/referral", json={"referral_code": mine}, headers=member["headers"]),
                   422, "self_referral")
    assert client.post("/api/v1/auth/token", json={"email": referrer["email"], "password": "correct horse"},
                       headers={"X-Device-ID": "tablet-77"}).status_code == 200
    r = client.post("/api/v1/me/referral", json={"referral_code": theirs},
                    headers=member["headers"] | {"X-Device-ID": "tablet-77"})
    assert_problem(r, 422, "self_referral")
    with client.application.app_context():
        assert db.session.get(Member, member["id"]).referred_by_id is None
