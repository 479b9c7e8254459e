"""The marketers' rules over HTTP: CRUD and validation, pause and resume, versions, the dry run, and the audit of
grants that tells a marketer why a member won."""
from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ..conftest import assert_problem

RULES = "/api/v1/admin/rules"


@pytest.fixture
def marketer(factory, clock):
    return factory.staff("marketer")["headers"]


@pytest.fixture
def till(factory, clock):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    return {"store": store, "h": cashier["headers"]}


def create(client, headers, **data):
    r = client.post(RULES, json={"title": "rule", "trigger": "purchase"} | data, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def buy(client, till, member, amount="10.00", receipt=None):
    r = client.post("/api/v1/pos/purchases", headers=till["h"], json={
        "card": member["card_number"], "amount": amount, "currency": "ILS",
        "receipt_id": receipt or f"r-{random.random()}"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# ------------------------------------------------------------------ CRUD

def test_create_read_list_and_archive(client, marketer, clock):
    rule = create(client, marketer, title="1 per shekel", reward={"points_per_currency_unit": 1})
    assert rule | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None, "title": "1 per shekel", "description": "", "trigger": "purchase", "conditions": {},
        "reward": {"points_per_currency_unit": 1}, "probability": 1.0, "priority": 0, "stackable": True,
        "status": "active", "starts_at": None, "ends_at": None, "per_member_limit": None,
        "per_member_period_days": None, "daily_limit": None, "total_limit": None, "points_budget": None,
        "points_expiry_days": None, "version": 1, "created_at": None, "updated_at": None}
    create(client, marketer, title="welcome", trigger="enrolment", reward={"points": 50})
    assert client.get(f"{RULES}/{rule['id']}", headers=marketer).get_json()["title"] == "1 per shekel"
    listed = client.get(f"{RULES}?trigger=enrolment", headers=marketer).get_json()
    assert [r["title"] for r in listed["items"]] == ["welcome"] and listed["next_cursor"] is None
    first = client.get(f"{RULES}?limit=1", headers=marketer).get_json()
    second = client.get(f"{RULES}?limit=1&cursor={first['next_cursor']}", headers=marketer).get_json()
    assert len(first["items"]) == len(second["items"]) == 1 and second["next_cursor"] is None
    assert client.delete(f"{RULES}/{rule['id']}", headers=marketer).status_code == 204
    assert_problem(client.get(f"{RULES}/{rule['id']}", headers=marketer), 404, "rule_not_found")
    assert [r["title"] for r in client.get(RULES, headers=marketer).get_json()["items"]] == ["welcome"]


@pytest.mark.parametrize("body, field", [
    ({"reward": {"points": 5, "multiplier": 2}}, "reward"),
    ({"reward": {"points": 5}, "conditions": {"weather": "sunny"}}, "conditions"),
    ({"reward": {"points": 5}, "probability": 0}, "probability"),
    ({"reward": {"points": 5}, "probability": 1.01}, "probability"),
    ({"reward": {"points": 5}, "trigger": "sunrise"}, "trigger"),
    ({"reward": {"points": 5}, "status": "archived"}, "status"),
    ({"reward": {"points": 5}, "daily_limit": 0}, "daily_limit"),
    ({"reward": {"points": 5}, "per_member_period_days": 30}, "per_member_period_days"),
    ({"reward": {"points": 5}, "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}, "ends_at"),
    ({"reward": {"points": 5}, "starts_at": "2026-12-01T00:00:00"}, "starts_at"),
    ({"reward": {"points": 5}, "colour": "red"}, "colour"),
    ({"trigger": "inactivity", "reward": {"points": 5}}, "conditions"),
])
def test_invalid_rules_are_422_naming_the_field(client, marketer, body, field):
    r = client.post(RULES, json={"title": "bad", "trigger": "purchase"} | body, headers=marketer)
    assert field in assert_problem(r, 422, "validation_error")["errors"]


def test_only_marketers_and_admins(client, factory):
    assert_problem(client.get(RULES), 401, "unauthorized")
    member = factory.member()
    assert_problem(client.get(RULES, headers=member["headers"]), 403, "forbidden")
    cashier = factory.staff("cashier")
    assert_problem(client.post(f"{RULES}/simulate", json={}, headers=cashier["headers"]), 403, "forbidden")
    assert client.get(RULES, headers=factory.staff("admin")["headers"]).status_code == 200


def test_patch_pause_resume_and_the_history(client, marketer, factory, till, clock):
    member = factory.member()
    rule = create(client, marketer, title="Coffee", reward={"points": 10})
    assert buy(client, till, member)["points_awarded"] == 10
    r = client.patch(f"{RULES}/{rule['id']}", json={"reward": {"points": 20}}, headers=marketer)
    assert (r.status_code, r.get_json()["version"]) == (200, 2)
    paused = client.post(f"{RULES}/{rule['id']}/pause", headers=marketer).get_json()
    assert (paused["status"], paused["version"]) == ("paused", 3)
    assert buy(client, till, member)["points_awarded"] == 0
    assert client.get(f"{RULES}?status=paused", headers=marketer).get_json()["items"][0]["id"] == rule["id"]
    assert client.post(f"{RULES}/{rule['id']}/resume", headers=marketer).get_json()["status"] == "active"
    assert buy(client, till, member)["points_awarded"] == 20
    history = client.get(f"{RULES}/{rule['id']}/versions", headers=marketer).get_json()["items"]
    marketer_id = history[0]["actor"]
    assert marketer_id.startswith("staff:stf_")
    assert [(v["version"], v["change"], v["changed_fields"], v["snapshot"]["reward"]) for v in history[:3]] == [
        (4, "resumed", ["status"], {"points": 20}), (3, "paused", ["status"], {"points": 20}),
        (2, "updated", ["reward"], {"points": 20})]
    created = history[3]
    assert (created["version"], created["change"], created["snapshot"]["reward"]) == (1, "created", {"points": 10})
    assert {"title", "trigger", "reward"} <= set(created["changed_fields"])


def test_a_rule_that_granted_keeps_its_trigger(client, marketer, factory, till):
    rule = create(client, marketer, reward={"points": 10})
    buy(client, till, factory.member())
    r = client.patch(f"{RULES}/{rule['id']}", json={"trigger": "check_in"}, headers=marketer)
    assert "trigger" in assert_problem(r, 422, "rule_has_grants")["errors"]


# ------------------------------------------------------------------ the audit

def test_why_a_member_won(client, marketer, factory, till, program, clock):
    """A marketer reads a surprise: the draw, the event, the rule as it was, the caps, in words."""
    program.random = random.Random(11)  # first draw: 0.4523, below 0.5
    lucky = factory.member()
    rule = create(client, marketer, title="Lucky basket", reward={"points": 25}, probability=0.5,
                  conditions={"min_amount": "20.00"}, per_member_limit=1, per_member_period_days=30,
                  daily_limit=100)
    answer = buy(client, till, lucky, amount="42.00", receipt="R-77")
    [reward] = answer["rewards"]
    assert reward["grant_id"].startswith("gnt_")
    assert reward == {"rule_id": rule["id"], "title": "Lucky basket", "points": 25, "coupon": None,
                      "pending": False, "surprise": True, "grant_id": reward["grant_id"], "benefit": None}
    client.patch(f"{RULES}/{rule['id']}", json={"reward": {"points": 99}}, headers=marketer)
    page = client.get(f"{RULES}/{rule['id']}/grants?member_id={lucky['id']}", headers=marketer).get_json()
    [grant] = page["items"]
    assert grant["draw"] == pytest.approx(random.Random(11).random()) and grant["draw"] < 0.5
    assert grant["probability"] == 0.5
    assert (grant["member_id"], grant["trigger"], grant["event_source"], grant["points"], grant["rule_version"]) == (
        lucky["id"], "purchase", f"purchase:{answer['purchase_id']}", 25, 1)
    assert grant["event"]["amount"] == "42.00" and grant["event"]["store_id"] == till["store"]["id"]
    assert grant["rule_snapshot"]["reward"] == {"points": 25}  # what the rule was, not what it is now
    assert grant["caps"] == {"per_member_limit": {"used": 1, "limit": 1, "period_days": 30},
                             "daily_limit": {"used": 1, "limit": 100, "day": "2026-11-22"}}
    assert grant["explanation"] == (
        f'Rule "Lucky basket" (version 1) granted 25 points to member {lucky["id"]} for purchase '
        f'purchase:{answer["purchase_id"]} of 42.00 ILS at store {till["store"]["id"]} at 2026-11-22T10:00:00Z: '
        f"it met the conditions (amount at least 20.00); the draw {grant['draw']:.4f} was below the probability 0.5; "
        "within its caps (1 of 1 for this member in 30 days, 1 of 100 on 2026-11-22).")
    same = client.get(f"/api/v1/admin/grants/{grant['id']}", headers=marketer).get_json()
    assert same == grant
    across = client.get(f"/api/v1/admin/grants?member_id={lucky['id']}", headers=marketer).get_json()
    assert [g["id"] for g in across["items"]] == [grant["id"]]
    assert_problem(client.get("/api/v1/admin/grants/gnt_nope", headers=marketer), 404, "grant_not_found")


def test_an_archived_rules_grants_and_history_stay_readable(client, marketer, factory, till):
    rule = create(client, marketer, reward={"points": 3})
    buy(client, till, factory.member())
    assert client.delete(f"{RULES}/{rule['id']}", headers=marketer).status_code == 204
    grants = client.get(f"{RULES}/{rule['id']}/grants", headers=marketer).get_json()["items"]
    assert [g["points"] for g in grants] == [3]
    history = client.get(f"{RULES}/{rule['id']}/versions", headers=marketer).get_json()["items"]
    assert [v["change"] for v in history] == ["archived", "created"]
    assert_problem(client.patch(f"{RULES}/{rule['id']}", json={"title": "x"}, headers=marketer), 404, "rule_not_found")


def test_grants_page_newest_first(client, marketer, factory, till):
    rule = create(client, marketer, reward={"points": 1})
    member = factory.member()
    sources = [buy(client, till, member)["purchase_id"] for _ in range(3)]
    first = client.get(f"{RULES}/{rule['id']}/grants?limit=2", headers=marketer).get_json()
    rest = client.get(f"{RULES}/{rule['id']}/grants?limit=2&cursor={first['next_cursor']}", headers=marketer).get_json()
    seen = [g["event_source"] for g in first["items"] + rest["items"]]
    assert seen == [f"purchase:{p}" for p in reversed(sources)] and rest["next_cursor"] is None


# ------------------------------------------------------------------ the dry run

def test_simulate_a_purchase(client, marketer, factory, clock):
    store = factory.store(timezone="Asia/Jerusalem")
    member = factory.member()
    create(client, marketer, title="1 per shekel", reward={"points_per_currency_unit": 1})
    create(client, marketer, title="Friday double", conditions={"days_of_week": [4]}, reward={"multiplier": 2})
    create(client, marketer, title="Coffee surprise", conditions={"categories": ["coffee"]}, reward={"points": 30},
           probability=0.2)
    create(client, marketer, title="Other store", conditions={"stores": [factory.store()["id"]]},
           reward={"points": 5})
    draft = create(client, marketer, title="Draft", reward={"points": 7}, status="paused")
    body = {"trigger": "purchase", "member_id": member["id"], "store_id": store["id"], "amount": "55.90",
            "at": "2026-11-27T10:00:00Z",
            "items": [{"barcode": "7290001234518", "unit_price": "55.90", "category": "coffee"}]}
    r = client.post(f"{RULES}/simulate", json=body, headers=marketer)
    assert r.status_code == 200, r.get_json()
    result = r.get_json()
    assert result["points_awarded"] == 55 + 30 + 85
    assert [(g["title"], g["points"], g["probability"], g["surprise"]) for g in result["grants"]] == [
        ("1 per shekel", 55, 1.0, False), ("Coffee surprise", 30, 0.2, True), ("Friday double", 85, 1.0, False)]
    assert [(s["title"], s["reason"]) for s in result["skipped"]] == [("Other store", "condition:stores")]
    on_sunday = client.post(f"{RULES}/simulate", json=body | {"at": "2026-11-22T10:00:00Z", "items": []},
                            headers=marketer).get_json()
    assert on_sunday["points_awarded"] == 55
    draft_only = client.post(f"{RULES}/simulate", json=body | {"rule_ids": [draft["id"]]}, headers=marketer).get_json()
    assert [g["title"] for g in draft_only["grants"]] == ["Draft"]
    assert factory.balance(member["id"]) == 0
    grants = client.get(f"{RULES}/{draft['id']}/grants", headers=marketer).get_json()
    assert grants["items"] == []


def test_simulate_other_triggers_and_bad_input(client, marketer, factory):
    member = factory.member()
    create(client, marketer, title="Thanks", trigger="referral", conditions={"side": "referrer"},
           reward={"points": 100})
    create(client, marketer, title="We miss you", trigger="inactivity", conditions={"inactive_days": 30},
           reward={"multiplier": 2, "purchases": 2})
    referral = client.post(f"{RULES}/simulate", headers=marketer, json={
        "trigger": "referral", "member_id": member["id"], "attributes": {"side": "referrer"}}).get_json()
    assert [(g["title"], g["points"]) for g in referral["grants"]] == [("Thanks", 100)]
    quiet = client.post(f"{RULES}/simulate", headers=marketer, json={
        "trigger": "inactivity", "member_id": member["id"], "attributes": {"inactive_days": 30}}).get_json()
    assert [(g["title"], g["points"], g["benefit"]) for g in quiet["grants"]] == [
        ("We miss you", 0, {"multiplier": 2, "purchases": 2, "days": None})]
    assert_problem(client.post(f"{RULES}/simulate", headers=marketer, json={
        "trigger": "purchase", "member_id": "mem_nope"}), 404, "not_found")
    assert_problem(client.post(f"{RULES}/simulate", headers=marketer, json={
        "trigger": "purchase", "member_id": member["id"], "amount": 12.5}), 422, "validation_error")


# ------------------------------------------------------------------ benefits and rewards in the member's answers

def test_a_check_in_surprise_benefit_shows_in_the_admin_view(client, marketer, factory, till, program):
    from api.extensions import db
    from wallet import rules
    create(client, marketer, title="1 per shekel", reward={"points_per_currency_unit": 1})
    gift = create(client, marketer, title="Double your next 2", trigger="check_in",
                  reward={"multiplier": 2, "purchases": 2})
    member = factory.member()
    with factory.app.app_context():
        rules.fire(db.session, program, rules.Event(trigger="check_in", member_id=member["id"], source="check_in:t1"))
        db.session.commit()
        db.session.remove()
    held = client.get(f"/api/v1/admin/members/{member['id']}/benefits", headers=marketer).get_json()["items"]
    assert [(b["rule_id"], b["multiplier"], b["uses_left"], b["status"]) for b in held] == [
        (gift["id"], "2.000", 2, "active")]
    assert buy(client, till, member, "15.00")["points_awarded"] == 30
    assert buy(client, till, member, "15.00")["points_awarded"] == 30
    assert buy(client, till, member, "15.00")["points_awarded"] == 15
    assert client.get(f"/api/v1/admin/members/{member['id']}/benefits", headers=marketer).get_json()["items"] == []
    finished = client.get(f"/api/v1/admin/members/{member['id']}/benefits?all=true", headers=marketer).get_json()
    assert finished["items"][0]["uses_left"] == 0
    revoked = client.post(f"/api/v1/admin/benefits/{held[0]['id']}/revoke", headers=marketer).get_json()
    assert revoked["status"] == "revoked"
    grant = client.get(f"{RULES}/{gift['id']}/grants", headers=marketer).get_json()["items"][0]
    assert grant["benefit_id"] == held[0]["id"]
    assert "points ×2 for next 2 purchases" in grant["explanation"]


def test_the_clock_of_a_rule_window(client, marketer, factory, till, clock):
    create(client, marketer, title="Happy five minutes", reward={"points": 5}, starts_at="2026-11-22T10:05:00Z",
           ends_at="2026-11-22T12:10:00+02:00")
    member = factory.member()
    got = []
    for minute in (0, 4, 5, 9, 10):
        clock.now = datetime(2026, 11, 22, 10, minute, tzinfo=UTC)
        got.append(buy(client, till, member)["points_awarded"])
    assert got == [0, 0, 5, 5, 0]
