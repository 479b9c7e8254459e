"""The rules engine's core through the domain: purchase rules (per currency unit, fixed, multipliers), conditions
(stores, amount, days and hours in the store's timezone, categories, tiers, the n-th purchase), priority and
stacking, the active window, pause and resume, and versions that keep every grant explainable."""
from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from wallet import enrolment, ledger, members, rules, stores, tiers, till
from wallet.errors import Invalid, Rejected
from wallet.ledger import LedgerEntry
from wallet.rules import RuleGrant, RuleVersion
from wallet.stores import Store

_n = itertools.count(1)


# ------------------------------------------------------------------ helpers (imported by the other rules tests)

def make_store(session, **overrides) -> Store:
    n = next(_n)
    store = Store(**({"code": f"R{n:04d}", "name": f"Store {n}", "lat": 32.0753, "lon": 34.7754,
                      "timezone": "Asia/Jerusalem"} | overrides))
    session.add(store)
    session.flush()
    return store


def make_member(session, program, **overrides) -> members.Member:
    n = next(_n)
    data = {"email": f"rules{n}@example.com", "password": "correct horse", "name": f"Member {n}"} | overrides
    member = enrolment.register_member(session, program, **data)
    session.flush()
    return member


def make_product(session, sku: str, barcode: str, category: str) -> stores.Product:
    product = stores.Product(sku=sku, barcode=barcode, name=sku, category=category, price=Decimal("1.00"),
                             currency="ILS")
    session.add(product)
    session.flush()
    return product


def make_rule(session, program, **data) -> rules.Rule:
    return rules.create_rule(session, program, {"title": "rule", "trigger": "purchase"} | data)


def buy(session, program, store, member, amount: str, items=None, receipt=None) -> till.PurchaseResult:
    return till.record_purchase(session, program, store_id=store.id, card_code=member.card.number,
                                amount=Decimal(amount), currency=program.currency,
                                receipt_id=receipt or f"r{next(_n)}", items=items)


def event(member_id: str, trigger: str = "check_in", **kwargs) -> rules.Event:
    return rules.Event(trigger=trigger, member_id=member_id, source=f"{trigger}:test{next(_n)}", **kwargs)


def balance(session, member_id: str) -> int:
    return ledger.balance_of(session, member_id).points


def grants(session, rule_id: str | None = None) -> list[RuleGrant]:
    query = select(RuleGrant).order_by(RuleGrant.granted_at, RuleGrant.id)
    if rule_id:
        query = query.where(RuleGrant.rule_id == rule_id)
    return list(session.scalars(query))


@pytest.fixture
def store(session, program, clock):
    return make_store(session)


@pytest.fixture
def member(session, program, clock):
    return make_member(session, program)


# ------------------------------------------------------------------ rewards

def test_points_per_currency_unit_round_down_and_name_their_rule(session, program, store, member):
    earning = make_rule(session, program, title="1 point per shekel", reward={"points_per_currency_unit": 1})
    result = buy(session, program, store, member, "123.99")
    assert result.purchase.points_awarded == 123
    assert [r["rule_id"] for r in result.rewards] == [earning.id]
    assert result.rewards[0] | {"grant_id": None} == {
        "rule_id": earning.id, "title": "1 point per shekel", "points": 123, "coupon": None, "pending": False,
        "surprise": False, "grant_id": None}
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.member_id == member.id, LedgerEntry.reason == "purchase"))
    assert (entry.delta, entry.rule_id, entry.source, entry.description) == (
        123, earning.id, f"purchase:{result.purchase.id}", "1 point per shekel")
    assert balance(session, member.id) == 123


def test_fractional_rate_fixed_points_and_a_multiplier_add_up(session, program, store, member):
    make_rule(session, program, title="half a point", reward={"points_per_currency_unit": "0.5"})
    make_rule(session, program, title="visit bonus", reward={"points": 10})
    double = make_rule(session, program, title="double", reward={"multiplier": 2})
    result = buy(session, program, store, member, "101.00")
    # base = 50 + 10; the multiplier adds the base once more
    assert result.purchase.points_awarded == 120
    assert {r["title"]: r["points"] for r in result.rewards} == {"half a point": 50, "visit bonus": 10, "double": 60}
    assert grants(session, double.id)[0].points == 60


def test_a_multiplier_alone_grants_nothing(session, program, store, member):
    make_rule(session, program, reward={"multiplier": 3})
    assert buy(session, program, store, member, "80.00").rewards == []
    assert grants(session) == []


def test_points_on_matching_items_only(session, program, store, member):
    make_product(session, "COF", "7290001234518", "coffee")
    make_product(session, "MLK", "4006381333931", "dairy")
    make_rule(session, program, title="coffee x3", conditions={"categories": ["coffee"]},
              reward={"points_per_currency_unit": 3, "basis": "matching_items"})
    items = [{"barcode": "7290001234518", "quantity": 2, "unit_price": Decimal("20.00")},
             {"barcode": "4006381333931", "quantity": 1, "unit_price": Decimal("5.00")}]
    assert buy(session, program, store, member, "45.00", items=items).purchase.points_awarded == 120
    only_milk = [{"barcode": "4006381333931", "quantity": 1, "unit_price": Decimal("5.00")}]
    assert buy(session, program, store, member, "5.00", items=only_milk).purchase.points_awarded == 0


# ------------------------------------------------------------------ conditions

def test_store_and_minimum_amount(session, program, store, member):
    other = make_store(session)
    make_rule(session, program, conditions={"stores": [store.id], "min_amount": "50.00"}, reward={"points": 7})
    assert buy(session, program, store, member, "50.00").purchase.points_awarded == 7
    assert buy(session, program, store, member, "49.99").purchase.points_awarded == 0
    assert buy(session, program, other, member, "500.00").purchase.points_awarded == 0


def test_days_and_hours_are_read_in_the_stores_timezone(session, program, clock, member):
    tlv = make_store(session, timezone="Asia/Jerusalem")
    nyc = make_store(session, timezone="America/New_York")
    # Friday 09:00-12:00 local time
    make_rule(session, program, conditions={"days_of_week": [4], "hours": {"from": "09:00", "to": "12:00"}},
              reward={"points": 5})
    clock.now = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)  # Friday 10:30 in Tel Aviv, 03:30 in New York
    assert buy(session, program, tlv, member, "10.00").purchase.points_awarded == 5
    assert buy(session, program, nyc, member, "10.00").purchase.points_awarded == 0
    seen = grants(session)[0].event  # what the rule saw, kept for the audit
    assert (seen["local_time"], seen["timezone"]) == ("Fri 2026-11-27 10:30", "Asia/Jerusalem")
    clock.now = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday 17:00 in Tel Aviv, 10:00 in New York
    assert buy(session, program, tlv, member, "10.00").purchase.points_awarded == 0
    assert buy(session, program, nyc, member, "10.00").purchase.points_awarded == 5
    clock.now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # Saturday 10:00 in Tel Aviv
    assert buy(session, program, tlv, member, "10.00").purchase.points_awarded == 0


def test_an_hours_window_past_midnight(session, program, clock, store, member):
    make_rule(session, program, conditions={"hours": {"from": "22:00", "to": "02:00"}}, reward={"points": 3})
    expected = {19: 0, 20: 3, 23: 3, 0: 0}  # UTC hours; Jerusalem is UTC+2 in November
    for hour, points in expected.items():
        clock.now = datetime(2026, 11, 23, hour, 30, tzinfo=UTC)
        assert buy(session, program, store, member, "10.00").purchase.points_awarded == points, hour


def test_tiers(session, program, store, member):
    tiers.create_tier(session, program, {"code": "gold", "name": "Gold", "rank": 1,
                                          "qualify": {"metric": "spend", "threshold": "1000.00"}})
    make_rule(session, program, conditions={"tiers": ["gold"]}, reward={"points": 9})
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    member.tier = "gold"
    session.flush()
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 9


def test_the_nth_purchase_of_the_month(session, program, clock, store, member):
    make_rule(session, program, conditions={"nth": {"n": 3, "period": "month"}}, reward={"points": 30})
    awarded = [buy(session, program, store, member, "10.00").purchase.points_awarded for _ in range(4)]
    assert awarded == [0, 0, 30, 0]
    clock.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    awarded = [buy(session, program, store, member, "10.00").purchase.points_awarded for _ in range(3)]
    assert awarded == [0, 0, 30]


# ------------------------------------------------------------------ priority, stacking, lifecycle

def test_a_non_stackable_rule_takes_the_event_alone(session, program, store, member):
    make_rule(session, program, title="base", reward={"points_per_currency_unit": 1}, priority=0)
    vip = make_rule(session, program, title="vip", reward={"points": 100}, priority=10, stackable=False)
    make_rule(session, program, title="double", reward={"multiplier": 2})
    result = buy(session, program, store, member, "40.00")
    assert [(r["title"], r["points"]) for r in result.rewards] == [("vip", 100)]
    rules.pause_rule(session, program, vip.id)
    result = buy(session, program, store, member, "40.00")
    assert [(r["title"], r["points"]) for r in result.rewards] == [("base", 40), ("double", 40)]


def test_a_non_stackable_rule_below_one_that_granted_is_skipped(session, program, store, member):
    make_rule(session, program, title="base", reward={"points": 1}, priority=5)
    make_rule(session, program, title="exclusive", reward={"points": 50}, priority=0, stackable=False)
    evaluation = rules.simulate(session, program, event(member.id, "purchase", amount=Decimal(10)))
    assert [g.rule.title for g in evaluation.grants] == ["base"]
    assert [(s.rule.title, s.reason) for s in evaluation.skipped] == [("exclusive", "not_stackable")]


def test_the_active_window_and_pause_resume(session, program, clock, store, member):
    start = clock.now + timedelta(days=1)
    rule = make_rule(session, program, reward={"points": 4}, starts_at=start, ends_at=start + timedelta(days=2))
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    clock.advance(days=1)
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 4
    rules.pause_rule(session, program, rule.id)
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    rules.resume_rule(session, program, rule.id)
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 4
    clock.advance(days=2)
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    assert [v.change for v in rules.versions_of(session, rule.id)] == ["resumed", "paused", "created"]


def test_editing_keeps_what_the_rule_was_when_it_granted(session, program, clock, store, member):
    rule = make_rule(session, program, title="Coffee club", reward={"points": 10})
    first = buy(session, program, store, member, "10.00")
    clock.advance(minutes=5)
    rules.update_rule(session, program, rule.id, {"reward": {"points": 25}, "title": "Coffee club+"},
                      actor="staff:stf_1")
    second = buy(session, program, store, member, "10.00")
    old, new = grants(session, rule.id)
    assert (old.event_source, old.rule_version, old.points) == (f"purchase:{first.purchase.id}", 1, 10)
    assert old.rule_snapshot["reward"] == {"points": 10} and old.rule_snapshot["title"] == "Coffee club"
    assert (new.event_source, new.rule_version, new.points) == (f"purchase:{second.purchase.id}", 2, 25)
    assert new.rule_snapshot["title"] == "Coffee club+"
    history = rules.versions_of(session, rule.id)
    assert [(v.version, v.change, v.changed_fields, v.actor) for v in history] == [
        (2, "updated", ["reward", "title"], "staff:stf_1"), (1, "created", ["reward", "title", "trigger"], "system")]
    assert history[1].snapshot["reward"] == {"points": 10}


def test_an_edit_that_changes_nothing_keeps_the_version(session, program, member):
    rule = make_rule(session, program, reward={"points": 10})
    rules.update_rule(session, program, rule.id, {"reward": {"points": 10}})
    assert rule.version == 1
    assert session.scalar(select(func.count()).select_from(RuleVersion)) == 1


def test_a_rule_that_granted_keeps_its_trigger(session, program, store, member):
    rule = make_rule(session, program, reward={"points": 10})
    rules.update_rule(session, program, rule.id, {"trigger": "check_in"})  # nothing granted yet: allowed
    rules.update_rule(session, program, rule.id, {"trigger": "purchase"})
    buy(session, program, store, member, "10.00")
    with pytest.raises(Rejected) as caught:
        rules.update_rule(session, program, rule.id, {"trigger": "check_in"})
    assert caught.value.code == "rule_has_grants"


def test_archived_rules_stop_and_stay_in_the_audit(session, program, store, member):
    rule = make_rule(session, program, reward={"points": 10})
    buy(session, program, store, member, "10.00")
    rules.archive_rule(session, program, rule.id)
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    assert len(grants(session, rule.id)) == 1
    assert rules.list_rules(session) == []


def test_one_event_earns_a_rules_reward_once(session, program, member):
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5})
    once = event(member.id)
    assert len(rules.fire(session, program, once)) == 1
    assert rules.fire(session, program, once) == []
    assert len(grants(session, rule.id)) == 1
    assert balance(session, member.id) == 5


def test_pending_points_are_held_then_released(session, program, clock, store, member):
    program.pending_days = 14
    try:
        make_rule(session, program, reward={"points_per_currency_unit": 1})
        result = buy(session, program, store, member, "30.00")
        assert result.rewards[0]["pending"] is True
        assert balance(session, member.id) == 0
        assert ledger.balance_of(session, member.id).pending == 30
        clock.advance(days=15)
        assert ledger.release_due(session, program) == 1
        assert balance(session, member.id) == 30
    finally:
        program.pending_days = 0


def test_a_refund_takes_back_every_rules_points(session, program, store, member):
    make_rule(session, program, reward={"points_per_currency_unit": 1})
    make_rule(session, program, reward={"multiplier": 2})
    result = buy(session, program, store, member, "25.00")
    assert balance(session, member.id) == 50
    refund = till.refund_purchase(session, program, result.purchase.id, store_id=None, actor="staff:x")
    assert (refund.points_reversed, refund.points_not_reversed, balance(session, member.id)) == (50, 0, 0)


# ------------------------------------------------------------------ coupons as rewards

def test_a_coupon_reward_and_an_offer_that_runs_out(session, program, clock, member):
    from wallet import coupons
    from wallet.rules import RuleCounter
    offer = coupons.create_offer(session, program, {"title": "Free croissant", "total_limit": 1,
                                                    "benefit": {"kind": "percent_off", "value": "100"}})
    rule = make_rule(session, program, title="Croissant surprise", trigger="check_in",
                     reward={"offer_id": offer.id}, daily_limit=10)
    other = make_member(session, program)
    [won] = rules.fire(session, program, event(member.id))
    assert won.points == 0 and won.coupon["offer_id"] == offer.id and won.coupon["title"] == "Free croissant"
    assert won.as_reward()["coupon"] == won.coupon
    assert grants(session, rule.id)[0].coupon_id == won.coupon["id"]
    assert rules.fire(session, program, event(other.id)) == []  # the offer has no coupon left
    assert len(grants(session, rule.id)) == 1
    assert session.get(RuleCounter, (rule.id, program.now().astimezone(program.tz).date().isoformat())).grants == 1


def test_a_rule_for_an_unknown_offer_is_refused(session, program):
    with pytest.raises(Invalid) as caught:
        make_rule(session, program, trigger="check_in", reward={"offer_id": "off_nope"})
    assert caught.value.code == "unknown_offer"


# ------------------------------------------------------------------ dry run

def test_simulate_shows_what_would_be_earned_and_why_not_without_writing(session, program, clock, store, member):
    make_rule(session, program, title="base", reward={"points_per_currency_unit": 1})
    make_rule(session, program, title="big basket", conditions={"min_amount": "100.00"}, reward={"points": 50})
    make_rule(session, program, title="lucky", reward={"points": 20}, probability=0.25)
    draft = make_rule(session, program, title="draft", reward={"points": 99}, status="paused")
    entries_before = session.scalar(select(func.count()).select_from(LedgerEntry))
    program.random = random.Random(7)
    state = program.random.getstate()
    result = rules.simulate(session, program, event(member.id, "purchase", store_id=store.id, amount=Decimal("60")))
    assert [(g.rule.title, g.points, g.draw) for g in result.grants] == [("base", 60, None), ("lucky", 20, None)]
    assert [(s.rule.title, s.reason) for s in result.skipped] == [("big basket", "condition:min_amount")]
    assert result.points == 80
    only_draft = rules.simulate(session, program, event(member.id, "purchase", amount=Decimal("1")),
                                rule_ids=[draft.id])
    assert [(g.rule.title, g.points) for g in only_draft.grants] == [("draft", 99)]
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert grants(session) == []
    assert program.random.getstate() == state  # nothing drawn


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("data, field", [
    ({"trigger": "purchase", "reward": {}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": 5, "multiplier": 2}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": 0}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": True}}, "reward"),
    ({"trigger": "purchase", "reward": {"multiplier": "NaN"}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": 5, "bonus": 1}}, "reward"),
    ({"trigger": "check_in", "reward": {"points_per_currency_unit": 1}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": 5, "purchases": 3}}, "reward"),
    ({"trigger": "purchase", "reward": {"multiplier": 2, "purchases": 0}}, "reward"),
    ({"trigger": "purchase", "reward": {"multiplier": 1, "days": 2}}, "reward"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"weather": "sunny"}}, "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"hours": {"from": "25:00", "to": "02:00"}}},
     "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"days_of_week": [7]}}, "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"min_amount": "-1"}}, "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"nth": {"n": 0}}}, "conditions"),
    ({"trigger": "inactivity", "reward": {"points": 5}}, "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "conditions": {"inactive_days": 30}}, "conditions"),
    ({"trigger": "check_in", "reward": {"points": 5}, "conditions": {"side": "referrer"}}, "conditions"),
    ({"trigger": "purchase", "reward": {"points": 5}, "probability": 0}, "probability"),
    ({"trigger": "purchase", "reward": {"points": 5}, "probability": 1.5}, "probability"),
    ({"trigger": "purchase", "reward": {"points": 5}, "per_member_period_days": 30}, "per_member_period_days"),
    ({"trigger": "purchase", "reward": {"points": 5}, "starts_at": datetime(2026, 1, 2, tzinfo=UTC),
      "ends_at": datetime(2026, 1, 1, tzinfo=UTC)}, "ends_at"),
    ({"trigger": "sunrise", "reward": {"points": 5}}, "trigger"),
])
def test_invalid_rules_name_the_field(session, program, data, field):
    with pytest.raises(Invalid) as caught:
        rules.create_rule(session, program, {"title": "bad"} | data)
    assert field in caught.value.errors, caught.value.errors
    assert session.scalar(select(func.count()).select_from(rules.Rule)) == 0


def test_a_rule_for_an_unknown_store_is_refused(session, program):
    with pytest.raises(Invalid) as caught:
        make_rule(session, program, conditions={"stores": ["sto_nope"]}, reward={"points": 1})
    assert caught.value.code == "unknown_store"
