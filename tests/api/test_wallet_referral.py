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
    assert factory.balance(referrer["id"]) == 40
    again = client.post("/api/v1/me/referral", json={"referral_code": code}, headers=member["headers"])
    assert_problem(again, 409, "referral_already_claimed")
    assert factory.balance(referrer["id"]) == 40
