"""Referrals at registration: recorded then, paid when the friend first buys (both sides' referral rules); an unknown
code is 422, a member can't refer themselves (422), and a person is referred once (409), even when two registrations
race."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet.events import Event
from wallet.referrals import Referral
from wallet.rules import RuleGrant

from ..conftest import assert_problem

REGISTER = "/api/v1/auth/register"


def register(client, email, referral_code=None, **extra):
    body = {"email": email, "password": "correct horse", "name": email.split("@")[0]} | extra
    if referral_code is not None:
        body["referral_code"] = referral_code
    return client.post(REGISTER, json=body)


@pytest.fixture
def referral_rules(factory, clock):
    return {"referrer": factory.rule(title="Thanks for bringing a friend", trigger="referral",
                                     conditions={"side": "referrer"}, reward={"points": 200}),
            "referred": factory.rule(title="A gift from your friend", trigger="referral",
                                     conditions={"side": "referred"}, reward={"points": 50})}


@pytest.fixture
def till(factory):
    store = factory.store()
    return {"h": factory.staff("cashier", store_id=store["id"])["headers"], "n": 0}


def buy(client, till, card_number, amount="30.00"):
    till["n"] += 1
    r = client.post("/api/v1/pos/purchases", json={"card": card_number, "amount": amount, "currency": "ILS",
                                                   "receipt_id": f"R-{till['n']}"}, headers=till["h"])
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def card_of(app, member_id) -> str:
    from wallet.members import Member
    with app.app_context():
        number = db.session.get(Member, member_id).card.number
        db.session.remove()
        return number


@pytest.fixture
def dana(client, clock):
    r = register(client, "dana@example.com", phone="+972 50-123-4567")
    assert r.status_code == 201
    return r.get_json()["member"]


def count(app, model) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
        return n


def test_both_sides_are_rewarded_at_the_friends_first_purchase(client, app, factory, referral_rules, dana, till):
    r = register(client, "noa@example.com", referral_code=f" {dana['referral_code'].lower()} ")
    assert r.status_code == 201, r.get_json()
    noa = r.get_json()["member"]
    assert (factory.balance(dana["id"]), factory.balance(noa["id"])) == (0, 0)  # a sign-up alone pays nothing
    with app.app_context():
        assert db.session.scalar(select(Referral)).qualified_at is None
        db.session.remove()
    first = buy(client, till, card_of(app, noa["id"]))
    assert (factory.balance(dana["id"]), factory.balance(noa["id"])) == (200, 50)
    assert first["balance"] == 50
    buy(client, till, card_of(app, noa["id"]))  # the second purchase qualifies nothing more
    assert (factory.balance(dana["id"]), factory.balance(noa["id"])) == (200, 50)
    with app.app_context():
        grants = {g.rule_id: g for g in db.session.scalars(select(RuleGrant))}
        referral = db.session.scalar(select(Referral))
        qualified = list(db.session.scalars(select(Event).where(Event.type == "referral.qualified")))
        db.session.remove()
    thanks, gift = grants[referral_rules["referrer"]], grants[referral_rules["referred"]]
    assert (thanks.member_id, thanks.event_source, thanks.event["referred_member_id"]) == (
        dana["id"], f"referral:{noa['id']}", noa["id"])
    assert (gift.member_id, gift.event_source, gift.event["referrer_member_id"]) == (
        noa["id"], f"referred:{noa['id']}", dana["id"])
    assert (referral.referrer_id, referral.referred_id, referral.purchase_id) == (
        dana["id"], noa["id"], first["purchase_id"])
    assert referral.qualified_at is not None
    assert [(e.member_id, e.data["referral_id"], e.data["referrer_id"], e.data["points"]) for e in qualified] == [
        (noa["id"], referral.id, dana["id"], 250)]
    statement = client.get("/api/v1/me/ledger", headers={
        "Authorization": f"Bearer {r.get_json()['access_token']}"}).get_json()["items"]
    assert [(e["delta"], e["reason"], e["description"]) for e in statement] == [
        (50, "referral", "A gift from your friend")]


def test_an_unknown_code_is_a_clear_422(client, app, referral_rules, dana):
    r = register(client, "noa@example.com", referral_code="ZZZZ2222")
    body = assert_problem(r, 422, "unknown_referral_code")
    assert body["errors"] == {"referral_code": ["Unknown referral code."]}
    assert count(app, Referral) == 0
    assert register(client, "noa@example.com").status_code == 201  # nothing was half-created


@pytest.mark.parametrize("email, phone", [
    ("dana+second@example.com", None),  # the same mailbox
    ("DANA@example.com ", None),  # the same address: taken, 409 before anything else
    ("other@example.com", "050 1234567"),  # the same phone, written another way
])
def test_no_self_referral(client, app, factory, referral_rules, dana, email, phone):
    extra = {"phone": phone} if phone else {}
    r = register(client, email, referral_code=dana["referral_code"], **extra)
    if email.strip().lower() == "dana@example.com":
        assert_problem(r, 409, "email_taken")
    else:
        assert "referral_code" in assert_problem(r, 422, "self_referral")["errors"]
    assert (count(app, Referral), factory.balance(dana["id"])) == (0, 0)


def test_a_person_is_referred_once(client, app, factory, referral_rules, dana):
    eli = register(client, "eli@example.com").get_json()["member"]
    assert register(client, "noa@example.com", referral_code=dana["referral_code"], phone="052-765-4321"
                    ).status_code == 201
    again_by_phone = register(client, "noa.second@example.com", referral_code=eli["referral_code"],
                              phone="+972527654321")
    assert "referral_code" in assert_problem(again_by_phone, 409, "referral_already_claimed")["errors"]
    again_by_mailbox = register(client, "noa+2@example.com", referral_code=eli["referral_code"])
    assert_problem(again_by_mailbox, 409, "referral_already_claimed")
    assert count(app, Referral) == 1
    assert (factory.balance(dana["id"]), factory.balance(eli["id"])) == (0, 0)  # nobody bought yet


def test_a_closed_members_code_is_unknown(client, app, referral_rules, dana):
    from wallet.members import Member
    with app.app_context():
        db.session.get(Member, dana["id"]).status = "closed"
        db.session.commit()
        db.session.remove()
    assert_problem(register(client, "noa@example.com", referral_code=dana["referral_code"]), 422,
                   "unknown_referral_code")


def test_a_cap_on_the_referrers_reward(client, app, factory, clock, dana, till):
    factory.rule(title="Thanks (up to 2 a year)", trigger="referral", conditions={"side": "referrer"},
                 reward={"points": 200}, per_member_limit=2, per_member_period_days=365)
    for i in range(4):
        r = register(client, f"friend{i}@example.com", referral_code=dana["referral_code"])
        assert r.status_code == 201
        buy(client, till, card_of(app, r.get_json()["member"]["id"]))
    assert factory.balance(dana["id"]) == 400


def test_a_device_the_referrer_used_is_a_self_referral(client, app, factory, referral_rules, dana):
    signed_in = client.post("/api/v1/auth/token", json={"email": "dana@example.com", "password": "correct horse"},
                            headers={"X-Device-ID": "phone-1234"})
    assert signed_in.status_code == 200
    r = client.post(REGISTER, json={"email": "other@example.com", "password": "correct horse", "name": "Other",
                                    "referral_code": dana["referral_code"]}, headers={"X-Device-ID": "phone-1234"})
    assert "referral_code" in assert_problem(r, 422, "self_referral")["errors"]
    assert count(app, Referral) == 0
    other = client.post(REGISTER, json={"email": "other@example.com", "password": "correct horse", "name": "Other",
                                        "referral_code": dana["referral_code"]}, headers={"X-Device-ID": "phone-9"})
    assert other.status_code == 201


@pytest.mark.postgres
def test_the_same_person_registering_twice_at_once_is_referred_once(app, factory, referral_rules, dana):
    barrier = threading.Barrier(2)
    answers = [None, None]

    def attempt(i: int) -> None:
        local = app.test_client()
        barrier.wait(timeout=30)
        answers[i] = register(local, f"twin{i}@example.com", referral_code=dana["referral_code"],
                              phone="054-000-1111")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409], [a.get_json() for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.get_json()["code"] == "referral_already_claimed"
    assert count(app, Referral) == 1
    assert factory.balance(dana["id"]) == 0  # paid at the friend's first purchase
