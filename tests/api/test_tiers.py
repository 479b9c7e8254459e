"""Tiers over HTTP: the marketers' ladder and its checks (422/409 with stable codes naming the field), audited;
moving up at once at the till (the crossing purchase earns at the old tier); /me/tier in plain words; the wallet's
card.tier; status matches; a review moving members down only after their retention time; two purchases crossing
one threshold at once (PostgreSQL) make one tier.changed."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import tiers
from wallet.audit import AuditEntry
from wallet.events import Event
from wallet.members import Member
from wallet.tokens import Principal

from ..conftest import assert_problem, run_together

TIERS = "/api/v1/admin/tiers"


@pytest.fixture
def club(factory, clock):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    return {"h": cashier["headers"], "m": marketer["headers"], "n": 0, "store": store, "factory": factory,
            "cashier": Principal(cashier["id"], "cashier", store["id"])}


def buy(client, club, member, amount):
    club["n"] += 1
    headers = club["factory"].headers(club["cashier"])  # a fresh token: tests move the clock
    r = client.post("/api/v1/pos/purchases", json={"card": member["card_number"], "amount": amount, "currency": "ILS",
                                                    "receipt_id": f"R-{club['n']}"}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def add_tier(client, club, code, rank, metric="spend", threshold="100.00", **extra):
    body = {"code": code, "name": code.capitalize(), "rank": rank,
            "qualify": {"metric": metric, "threshold": threshold, "window_days": extra.pop("window_days", 365)}} | extra
    return client.post(TIERS, json=body, headers=club["m"])


@pytest.fixture
def ladder(client, club):
    silver = add_tier(client, club, "silver", 1, threshold="100.00", retain_days=30)
    gold = add_tier(client, club, "gold", 2, threshold="500.00", retain_days=30)
    assert silver.status_code == gold.status_code == 201, (silver.get_json(), gold.get_json())
    return {"silver": silver.get_json(), "gold": gold.get_json()}


def tier_of(app, member_id) -> str:
    with app.app_context():
        code = db.session.get(Member, member_id).tier
        db.session.remove()
        return code


def events_of(app, type_):
    with app.app_context():
        found = list(db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.position)))
        db.session.remove()
        return found


def test_the_ladder_starts_with_its_entry_tier_and_is_audited(client, app, club, ladder):
    items = client.get(TIERS, headers=club["m"]).get_json()["items"]
    assert [(t["code"], t["rank"], t["qualify"]["threshold"]) for t in items] == [
        ("basic", 0, "0.00"), ("silver", 1, "100.00"), ("gold", 2, "500.00")]
    assert ladder["silver"]["qualify"] == {"metric": "spend", "threshold": "100.00", "window_days": 365}
    visits = add_tier(client, club, "regular", 3, metric="visits", threshold=12)
    assert visits.status_code == 201 and visits.get_json()["qualify"]["threshold"] == 12
    with app.app_context():
        audited = [(a.action, a.entity) for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.at))]
        db.session.remove()
    assert audited.count(("create", "tier")) == 3


@pytest.mark.parametrize("body, status, code, field", [
    ({"code": "bronze", "name": "Bronze", "rank": 1, "qualify": {"metric": "spend", "threshold": "50.00"}},
     422, "tier_rank_taken", "rank"),
    ({"code": "plat", "name": "Platinum", "rank": 3, "qualify": {"metric": "spend", "threshold": "400.00"}},
     422, "threshold_below_tier_beneath", "qualify.threshold"),
    ({"code": "mid", "name": "Mid", "rank": 2, "qualify": {"metric": "spend", "threshold": "600.00"}},
     422, "tier_rank_taken", "rank"),
    ({"code": "low", "name": "Low", "rank": 0, "qualify": {"metric": "spend", "threshold": "5.00"}},
     422, "entry_tier_threshold", "qualify.threshold"),
    ({"code": "pts", "name": "Points", "rank": 5, "qualify": {"metric": "points_earned", "threshold": "100"}},
     422, "invalid_threshold", "qualify.threshold"),
    ({"code": "money", "name": "Money", "rank": 5, "qualify": {"metric": "spend", "threshold": 1000}},
     422, "invalid_threshold", "qualify.threshold"),
    ({"code": "frac", "name": "Frac", "rank": 5, "qualify": {"metric": "spend", "threshold": "1000.005"}},
     422, "invalid_threshold", "qualify.threshold"),
    ({"code": "what", "name": "What", "rank": 5, "qualify": {"metric": "likes", "threshold": 1}},
     422, "validation_error", "qualify.metric"),
    ({"code": "silver", "name": "Silver again", "rank": 7, "qualify": {"metric": "spend", "threshold": "900.00"}},
     409, "tier_code_taken", "code"),
    ({"code": "Bad Code!", "name": "x", "rank": 7, "qualify": {"metric": "spend", "threshold": "900.00"}},
     422, "invalid_tier_code", "code"),
    ({"code": "x" * 40, "name": "x", "rank": 7, "qualify": {"metric": "spend", "threshold": "900.00"}},
     422, "validation_error", "code"),
    ({"code": "neg", "name": "Neg", "rank": -1, "qualify": {"metric": "spend", "threshold": "900.00"}},
     422, "validation_error", "rank"),
    ({"code": "big", "name": "Big", "rank": 7, "qualify": {"metric": "visits", "threshold": True}},
     422, "validation_error", "qualify.threshold"),
    ({"code": "sql", "name": "<b>x</b>'; DROP TABLE tiers;--", "rank": 7,
      "qualify": {"metric": "spend", "threshold": "1e3"}}, 422, "invalid_threshold", "qualify.threshold"),
])
def test_a_bad_tier_is_refused_naming_the_field(client, app, club, ladder, body, status, code, field):
    r = client.post(TIERS, json=body, headers=club["m"])
    problem = assert_problem(r, status, code)
    assert field in problem["errors"], problem
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(tiers.Tier)) == 3
        db.session.remove()


def test_changing_and_deleting_tiers(client, app, club, ladder, factory):
    gold = ladder["gold"]
    too_low = client.patch(f"{TIERS}/{gold['id']}", json={"qualify": {"threshold": "90.00"}}, headers=club["m"])
    assert "qualify.threshold" in assert_problem(too_low, 422, "threshold_below_tier_beneath")["errors"]
    renamed = client.patch(f"{TIERS}/{gold['id']}", json={"code": "golden"}, headers=club["m"])
    assert_problem(renamed, 422, "tier_code_immutable")
    ok = client.patch(f"{TIERS}/{gold['id']}", json={"name": "Gold club", "qualify": {"threshold": "750.00"}},
                      headers=club["m"])
    assert ok.status_code == 200 and ok.get_json()["qualify"]["threshold"] == "750.00"
    basic = client.get(TIERS, headers=club["m"]).get_json()["items"][0]
    assert_problem(client.delete(f"{TIERS}/{basic['id']}", headers=club["m"]), 422, "entry_tier_required")
    assert_problem(client.patch(f"{TIERS}/{basic['id']}", json={"rank": 9}, headers=club["m"]), 422,
                   "entry_tier_required")
    member = factory.member()
    buy(client, club, member, "150.00")
    assert tier_of(app, member["id"]) == "silver"
    assert_problem(client.delete(f"{TIERS}/{ladder['silver']['id']}", headers=club["m"]), 409, "tier_in_use")
    assert client.delete(f"{TIERS}/{gold['id']}", headers=club["m"]).status_code == 204
    assert_problem(client.get(f"{TIERS}/{gold['id']}", headers=club["m"]), 404, "tier_not_found")


def test_members_and_cashiers_cannot_edit_the_ladder(client, club, factory):
    member = factory.member()
    assert client.get(TIERS, headers=member["headers"]).status_code == 403
    assert client.post(TIERS, json={}, headers=club["h"]).status_code == 403


def test_up_at_once_and_the_crossing_purchase_earns_at_the_old_tier(client, app, club, ladder, factory):
    factory.rule(title="Silver bonus", reward={"points": 7}, conditions={"tiers": ["silver"]})
    member = factory.member()
    first = buy(client, club, member, "60.00")
    assert tier_of(app, member["id"]) == "basic" and first["points_awarded"] == 60
    crossing = buy(client, club, member, "50.00")
    assert crossing["points_awarded"] == 50  # earned at basic: no silver bonus
    assert tier_of(app, member["id"]) == "silver"
    after = buy(client, club, member, "10.00")
    assert after["points_awarded"] == 17  # the next purchase earns at silver
    changed = events_of(app, "tier.changed")
    assert [(e.member_id, e.data["from"], e.data["to"], e.data["reason"], e.channel) for e in changed] == [
        (member["id"], "basic", "silver", "qualified", "till")]
    wallet = client.get("/api/v1/me/wallet", headers=member["headers"]).get_json()
    assert wallet["card"]["tier"] == "silver"
    history = client.get("/api/v1/me/tier/history", headers=member["headers"]).get_json()["items"]
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [("basic", "silver", "qualified")]
    assert "Spent in 365 days: 110.00" in history[0]["detail"]


def test_my_tier_in_plain_words(client, club, ladder, factory, clock):
    member = factory.member()
    buy(client, club, member, "120.00")
    me = client.get("/api/v1/me/tier", headers=member["headers"]).get_json()
    assert me["tier"] == {"code": "silver", "name": "Silver", "rank": 1}
    assert me["next_tier"] == {"code": "gold", "name": "Gold", "remaining": "380.00"}
    assert me["qualifying"] == {"metric": "spend", "value": "120.00", "window_days": 365}
    assert me["keeps_until"] == "2026-12-22T10:00:00Z"  # 30 days' retention from the move
    assert me["summary"] == ("You are Silver. Spend 380.00 more within 365 days to reach Gold. "
                             "You keep Silver at least until 2026-12-22.")
    fresh = factory.member()
    plain = client.get("/api/v1/me/tier", headers=fresh["headers"]).get_json()
    assert (plain["tier"]["code"], plain["next_tier"]["remaining"], plain["keeps_until"]) == ("basic", "100.00", None)


def test_a_refund_takes_its_part_back(client, app, club, ladder, factory):
    member = factory.member()
    bought = buy(client, club, member, "80.00")
    r = client.post(f"/api/v1/pos/purchases/{bought['purchase_id']}/refund", headers=club["h"])
    assert r.status_code == 200, r.get_json()
    buy(client, club, member, "30.00")  # 110 spent, 80 of it refunded: not silver
    assert tier_of(app, member["id"]) == "basic"
    assert client.get("/api/v1/me/tier", headers=member["headers"]).get_json()["qualifying"]["value"] == "30.00"


def test_only_the_window_counts(client, app, club, ladder, factory, clock):
    member = factory.member()
    buy(client, club, member, "90.00")
    clock.advance(days=366)
    buy(client, club, member, "20.00")  # 110 in all, 20 in the last 365 days
    assert tier_of(app, member["id"]) == "basic"


def test_a_status_match_by_hand(client, app, club, ladder, factory, clock):
    member = factory.member()
    path = f"/api/v1/admin/members/{member['id']}/tier"
    until = (clock.now + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post(path, json={"code": "gold", "until": until, "reason": "Gold at a rival club"}, headers=club["m"])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["changed"] is True and r.get_json()["tier"] == {"code": "gold"}
    assert tier_of(app, member["id"]) == "gold"
    me = client.get("/api/v1/me/tier", headers=member["headers"]).get_json()
    assert me["status_match"]["code"] == "gold" and me["keeps_until"] == until
    assert "A status match keeps you at least Gold until" in me["summary"]
    staff_view = client.get(path, headers=club["m"]).get_json()
    assert [(h["to"], h["reason"], h["actor"]) for h in staff_view["history"]] == [
        ("gold", "status_match", f"staff:{club_marketer_id(app)}")]
    assert_problem(client.post(path, json={"code": "diamond", "until": until, "reason": "why not"},
                               headers=club["m"]), 422, "unknown_tier")
    assert_problem(client.post(path, json={"code": "gold", "until": "2020-01-01T00:00:00Z", "reason": "old"},
                               headers=club["m"]), 422, "invalid_until")
    assert client.post(path, json={"code": "gold", "until": until, "reason": "self-service"},
                       headers=member["headers"]).status_code == 403
    assert_problem(client.post("/api/v1/admin/members/mem_nobody/tier", json={"code": "gold", "until": until,
                                                                              "reason": "ghost"},
                               headers=club["m"]), 404, "not_found")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "status_match")) == 1
        # the review keeps gold until the match ends, then the member goes down to what they qualify for
        clock.advance(days=60)
        tiers.review(db.session, app.extensions["loyalty.program"])
        db.session.commit()
        assert db.session.get(Member, member["id"]).tier == "gold"
        clock.advance(days=31)
        result = tiers.review(db.session, app.extensions["loyalty.program"])
        db.session.commit()
        assert (result.down, db.session.get(Member, member["id"]).tier) == (1, "basic")
        db.session.remove()


def club_marketer_id(app) -> str:
    with app.app_context():
        return db.session.scalar(select(AuditEntry.actor_id).where(AuditEntry.action == "status_match"))


def test_the_review_moves_down_only_after_the_retention_time(client, app, club, ladder, factory, clock):
    member = factory.member()
    buy(client, club, member, "150.00")
    assert tier_of(app, member["id"]) == "silver"
    program = app.extensions["loyalty.program"]
    with app.app_context():
        clock.advance(days=366)  # the purchase left the window; silver was kept 30 days from the move: over
        result = tiers.review(db.session, program)
        db.session.commit()
        assert (result.down, db.session.get(Member, member["id"]).tier) == (1, "basic")
        again = tiers.review(db.session, program)
        db.session.commit()
        assert (again.up, again.down) == (0, 0)
        db.session.remove()
    down = events_of(app, "tier.changed")[-1]
    assert (down.data["from"], down.data["to"], down.data["reason"], down.channel) == (
        "silver", "basic", "review_down", "job")


def test_the_review_keeps_a_tier_while_the_member_qualifies(client, app, club, ladder, factory, clock):
    member = factory.member()
    buy(client, club, member, "150.00")
    program = app.extensions["loyalty.program"]
    with app.app_context():
        clock.advance(days=200)  # past the 30 days' retention, but still qualifying: kept, and for longer
        result = tiers.review(db.session, program)
        db.session.commit()
        state = db.session.get(tiers.MemberTier, member["id"])
        assert (result.down, result.kept, db.session.get(Member, member["id"]).tier) == (0, 1, "silver")
        assert state.keeps_until == clock.now + timedelta(days=30)
        db.session.remove()


def test_my_referrals_name_friends_by_first_name_and_initial(client, app, club, factory):
    factory.rule(title="Thanks", trigger="referral", conditions={"side": "referrer"}, reward={"points": 100})
    dana = factory.member(name="Dana Levi")
    with app.app_context():
        code = db.session.get(Member, dana["id"]).referral_code
    noa = factory.member(name="Noa Ben David", referral_code=code)
    factory.member(name="<script>alert(1)</script>", referral_code=code)
    buy(client, club, noa, "20.00")
    mine = client.get("/api/v1/me/referrals", headers=dana["headers"]).get_json()
    assert mine["referral_code"] == code and mine["link"].endswith(f"/join?ref={code}")
    assert [(f["friend"], f["status"], f["points_earned"]) for f in mine["friends"]] == [
        ("Noa D.", "qualified", 100), ("<script>alert(1)</script>", "pending", 0)]
    assert (mine["qualified"], mine["points_earned"]) == (1, 100)


@pytest.mark.postgres
def test_two_purchases_crossing_one_threshold_at_once_make_one_tier_change(app, club, ladder, factory):
    member = factory.member()
    buy(app.test_client(), club, member, "90.00")

    def purchase(i):
        r = app.test_client().post("/api/v1/pos/purchases", json={
            "card": member["card_number"], "amount": "20.00", "currency": "ILS", "receipt_id": f"RACE-{i}"},
            headers=club["h"])
        return r.status_code

    assert sorted(run_together(2, purchase)) == [201, 201]
    assert tier_of(app, member["id"]) == "silver"
    assert [(e.data["from"], e.data["to"]) for e in events_of(app, "tier.changed")] == [("basic", "silver")]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(tiers.TierChange)) == 1
        assert db.session.get(tiers.MemberTier, member["id"]).spend == 130
        db.session.remove()


def test_the_demo_club_shows_tiers_a_status_match_and_a_qualified_referral(app, client):
    from wallet import demo
    from wallet.referrals import Referral
    program = app.extensions["loyalty.program"]
    with app.app_context():
        demo.load(db.session, program)
        db.session.commit()
        demo.load(db.session, program)  # twice: nothing doubles
        db.session.commit()
        codes = [t.code for t in tiers.list_tiers(db.session)]
        held = dict(db.session.execute(select(Member.email, Member.tier).where(Member.email.like("%@demo.club"))).all())
        referral = db.session.scalar(select(Referral))
        dana = db.session.scalar(select(Member).where(Member.email == "member@demo.club"))
        changes = db.session.scalar(select(func.count()).select_from(tiers.TierChange))
        db.session.remove()
    assert codes == ["basic", "silver", "gold", "vip"]
    assert (held["member@demo.club"], held["silver@demo.club"], held["gold@demo.club"]) == ("basic", "silver", "gold")
    assert referral.referrer_id == dana.id and referral.qualified_at is not None
    assert changes == 2
    token = client.post("/api/v1/auth/token", json={"email": "gold@demo.club", "password": "demo-gold-1"}).get_json()
    me = client.get("/api/v1/me/tier", headers={"Authorization": f"Bearer {token['access_token']}"}).get_json()
    assert me["tier"]["code"] == "gold" and me["status_match"]["code"] == "gold"


def test_tier_history_pages_and_refuses_a_forged_cursor(client, app, club, ladder, factory):
    member = factory.member()
    buy(client, club, member, "150.00")  # silver
    buy(client, club, member, "400.00")  # gold
    first = client.get("/api/v1/me/tier/history?limit=1", headers=member["headers"]).get_json()
    assert [(h["from"], h["to"]) for h in first["items"]] == [("silver", "gold")]
    second = client.get(f"/api/v1/me/tier/history?limit=1&cursor={first['next_cursor']}",
                        headers=member["headers"]).get_json()
    assert [(h["from"], h["to"]) for h in second["items"]] == [("basic", "silver")] and second["next_cursor"] is None
    assert_problem(client.get("/api/v1/me/tier/history?cursor=bm9wZQ", headers=member["headers"]), 422,
                   "invalid_cursor")
    other = factory.member()
    assert client.get("/api/v1/me/tier/history", headers=other["headers"]).get_json()["items"] == []
    assert_problem(client.get("/api/v1/admin/members/mem_nobody/tier", headers=club["m"]), 404, "not_found")
