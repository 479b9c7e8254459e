"""Blocking and replacing a member's card (issue 18): the old number, its QR tokens and its wallet pass codes are
refused at every till; each change is an event (ids only) and an audit entry; blocking twice changes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.extensions import db
from wallet import events, qr
from wallet.audit import AuditEntry
from wallet.members import Card
from wallet.passes import updates

from ..conftest import assert_problem

API = "/api/v1"


@pytest.fixture
def till(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    return {"h": cashier["headers"], "n": 0}


@pytest.fixture
def admin(factory):
    return factory.staff("admin")


def buy(client, till, card: str):
    till["n"] += 1
    return client.post(f"{API}/pos/purchases", headers=till["h"],
                       json={"card": card, "amount": "10.00", "currency": "ILS", "receipt_id": f"C-{till['n']}"})


def codes_of(app, client, member) -> dict[str, str]:
    """Every code a till may meet for the member's current card: number, C1 token, Apple P1, Google G1."""
    program = app.extensions["loyalty.program"]
    card_id = client.get(f"{API}/me", headers=member["headers"]).get_json()["card"]
    with app.app_context():
        card = db.session.scalar(select(Card).where(Card.number == card_id["number"]))
        cid = card.id
    return {"number": card_id["number"], "C1": qr.card_token(program.secret, cid, program.now(),
                                                              program.card_token_ttl).token,
            "P1": qr.pass_code(program.secret, cid), "G1": qr.rotating_code(program.secret, cid, program.now())}


def card_events(app, member_id):
    with app.app_context():
        found = [(e.type, e.data, e.actor, e.channel) for e in events.read(db.session, member_id=member_id, limit=500)
                 if e.type.startswith("card.")]
        db.session.remove()
        return found


def audits(app, action):
    with app.app_context():
        found = [(a.actor_id, a.entity, a.entity_id, a.before, a.after)
                 for a in db.session.scalars(select(AuditEntry).where(AuditEntry.action == action))]
        db.session.remove()
        return found


def test_a_blocked_card_is_refused_at_the_till_by_every_code(app, client, factory, till, admin):
    member = factory.member()
    old = codes_of(app, client, member)
    for code in old.values():
        assert buy(client, till, code).status_code == 201, code
    r = client.post(f"{API}/admin/members/{member['id']}/card/block", headers=admin["headers"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["changed"] is True
    assert body["card"]["id"] == member["card_id"] and body["card"]["number"] == member["card_number"]
    assert body["card"]["status"] == "blocked" and body["card"]["blocked_at"] is not None
    assert body["card"]["replaced_by"] is None
    for code in old.values():
        assert_problem(buy(client, till, code), 422, "card_inactive")
        assert_problem(client.post(f"{API}/pos/identify", json={"qr": code}, headers=till["h"]), 422, "card_inactive")
    assert_problem(client.get(f"{API}/me/card/token", headers=member["headers"]), 422, "card_inactive")
    assert card_events(app, member["id"]) == [("card.blocked", {"card_id": member["card_id"]},
                                               f"staff:{admin['id']}", "console")]
    assert audits(app, "block_card") == [(admin["id"], "member", member["id"], None,
                                          {"card_id": member["card_id"], "status": "blocked"})]


def test_blocking_twice_answers_the_same_card_and_writes_nothing_more(app, client, factory, admin):
    member = factory.member()
    url = f"{API}/admin/members/{member['id']}/card/block"
    first = client.post(url, headers=admin["headers"]).get_json()
    again = client.post(url, headers=admin["headers"])
    assert again.status_code == 200
    assert again.get_json() == first | {"changed": False}
    assert len(card_events(app, member["id"])) == 1
    assert len(audits(app, "block_card")) == 1


def test_replace_issues_a_new_number_and_the_old_codes_die(app, client, factory, till, admin):
    member = factory.member()
    old = codes_of(app, client, member)
    r = client.post(f"{API}/admin/members/{member['id']}/card/replace", headers=admin["headers"])
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    new, replaced = body["card"], body["replaced"]
    assert replaced["id"] == member["card_id"] and replaced["status"] == "blocked"
    assert replaced["replaced_by"] == new["id"] != member["card_id"]
    assert new["status"] == "active" and new["number"] != member["card_number"] and new["blocked_at"] is None
    for code in old.values():
        assert_problem(buy(client, till, code), 422, "card_inactive")
    fresh = codes_of(app, client, member)
    assert fresh["number"] == new["number"]
    for code in fresh.values():
        assert buy(client, till, code).status_code == 201, code
    me = client.get(f"{API}/me", headers=member["headers"]).get_json()
    assert me["card"] == {"number": new["number"], "status": "active"}
    assert card_events(app, member["id"]) == [("card.replaced", {"card_id": member["card_id"], "new_card_id": new["id"]},
                                               f"staff:{admin['id']}", "console")]
    assert audits(app, "replace_card") == [(admin["id"], "member", member["id"], {"card_id": member["card_id"]},
                                            {"card_id": new["id"]})]
    # the old number still finds its member for the marketer (a lost card reported by its number)
    found = client.get(f"{API}/admin/members", query_string={"q": member["card_number"]}, headers=admin["headers"])
    assert [m["id"] for m in found.get_json()["items"]] == [member["id"]]


def test_replacing_a_blocked_card_and_replacing_again(app, client, factory, admin):
    member = factory.member()
    base = f"{API}/admin/members/{member['id']}/card"
    blocked = client.post(f"{base}/block", headers=admin["headers"]).get_json()["card"]
    first = client.post(f"{base}/replace", headers=admin["headers"]).get_json()
    assert first["replaced"]["blocked_at"] == blocked["blocked_at"]  # blocked since it was blocked, not since now
    second = client.post(f"{base}/replace", headers=admin["headers"]).get_json()
    assert second["replaced"]["id"] == first["card"]["id"] and second["card"]["id"] not in (
        member["card_id"], first["card"]["id"])
    assert [t for t, *_ in card_events(app, member["id"])] == ["card.blocked", "card.replaced", "card.replaced"]
    with app.app_context():
        cards = db.session.scalars(select(Card).where(Card.member_id == member["id"])).all()
        assert sorted(c.status for c in cards) == ["active", "blocked", "blocked"]
        db.session.remove()
    # a blocked card is blocked again idempotently; the current card is the one blocked
    again = client.post(f"{base}/block", headers=admin["headers"]).get_json()
    assert again["card"]["id"] == second["card"]["id"] and again["changed"] is True


@pytest.mark.parametrize("action", ["block", "replace"])
def test_unknown_members_and_who_may_do_it(client, factory, admin, action):
    member = factory.member()
    url = f"{API}/admin/members/{member['id']}/card/{action}"
    assert_problem(client.post(f"{API}/admin/members/mem_nobody/card/{action}", headers=admin["headers"]), 404,
                   "not_found")
    assert_problem(client.post(url), 401, "unauthorized")
    assert_problem(client.post(url, headers=member["headers"]), 403, "forbidden")
    assert_problem(client.post(url, headers=factory.staff("marketer")["headers"]), 403, "forbidden")
    assert_problem(client.post(url, headers=factory.staff("cashier")["headers"]), 403, "forbidden")


def test_card_events_update_the_members_passes():
    assert {"card.blocked", "card.replaced"} <= updates.CARD_EVENTS
    assert {"card.blocked", "card.replaced"} <= set(updates.EVENT_TYPES)
