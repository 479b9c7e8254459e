"""Surprise and delight: the seeded draw, the recorded audit, and caps (per member per period, per day in the
programme's timezone, per campaign, points budget) that hold sequentially and under 32-way concurrency."""
from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import rules
from wallet.ledger import LedgerEntry
from wallet.rules import RuleCounter, RuleGrant

from ..conftest import run_together
from .test_rules import balance, event, grants, make_member, make_rule


def binomial_interval(n: int, p: float, confidence: float) -> tuple[int, int]:
    """The central ``confidence`` interval of Binomial(n, p), from the exact distribution."""
    tail = (1 - confidence) / 2
    cdf, low, high = 0.0, None, None
    for k in range(n + 1):
        log_pmf = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                   + k * math.log(p) + (n - k) * math.log(1 - p))
        cdf += math.exp(log_pmf)
        if low is None and cdf >= tail:
            low = k
        if cdf >= 1 - tail:
            high = k
            break
    return low, high


@pytest.fixture
def member(session, program, clock):
    return make_member(session, program)


@pytest.fixture
def jerusalem(program):
    saved = program.timezone
    program.timezone = "Asia/Jerusalem"
    yield program
    program.timezone = saved


# ------------------------------------------------------------------ the draw

@pytest.mark.slow
def test_probability_one_in_ten_over_ten_thousand_events(session, program, clock):
    program.random = random.Random(42)
    people = [make_member(session, program) for _ in range(20)]
    rule = make_rule(session, program, title="Free coffee", trigger="check_in", reward={"points": 1},
                     probability=0.1)
    session.commit()
    won = 0
    for i in range(10_000):
        won += len(rules.fire(session, program, event(people[i % 20].id)))
        if i % 1000 == 999:
            session.commit()
    session.commit()
    low, high = binomial_interval(10_000, 0.1, 0.999)
    assert (low, high) == (903, 1100)
    assert low <= won <= high, won
    recorded = grants(session, rule.id)
    assert len(recorded) == won
    assert all(g.draw is not None and 0 <= g.draw < 0.1 for g in recorded)
    assert sum(balance(session, p.id) for p in people) == won


def test_probability_one_grants_every_time_without_drawing(session, program, clock, member):
    program.random = random.Random(42)
    state = program.random.getstate()
    rule = make_rule(session, program, trigger="check_in", reward={"points": 2}, probability=1)
    for _ in range(500):
        assert len(rules.fire(session, program, event(member.id))) == 1
    assert len(grants(session, rule.id)) == 500
    assert all(g.draw is None for g in grants(session, rule.id))
    assert balance(session, member.id) == 1000
    assert program.random.getstate() == state


def test_the_same_seed_picks_the_same_winners(session, program, clock):
    people = [make_member(session, program) for _ in range(10)]
    make_rule(session, program, trigger="check_in", reward={"points": 1}, probability=0.3)

    def winners(seed):
        program.random = random.Random(seed)
        return [bool(rules.fire(session, program, event(p.id))) for _ in range(5) for p in people]

    first, again, other = winners(1), winners(1), winners(2)
    assert first == again
    assert first != other


def test_a_win_is_recorded_with_the_draw_the_event_and_the_rule(session, program, clock, member):
    program.random = random.Random(3)
    expected = random.Random(3).random()
    rule = make_rule(session, program, title="Lucky visit", trigger="check_in", reward={"points": 15},
                     probability=0.9, per_member_limit=1, per_member_period_days=30)
    happened = event(member.id, store_id=None, attributes={"visit_number": 4})
    [grant] = rules.fire(session, program, happened)
    assert grant.as_reward()["surprise"] is True and grant.as_reward()["title"] == "Lucky visit"
    record = grants(session, rule.id)[0]
    assert record.draw == pytest.approx(expected) and expected < 0.9
    assert (record.member_id, record.trigger, record.event_source, record.points) == (
        member.id, "check_in", happened.source, 15)
    assert record.event["visit_number"] == 4 and record.event["trigger"] == "check_in"
    assert record.rule_snapshot["probability"] == 0.9 and record.rule_version == 1
    assert record.caps == {"per_member_limit": {"used": 1, "limit": 1, "period_days": 30}}
    entry = session.get(LedgerEntry, record.entry_id)
    assert (entry.reason, entry.description, entry.delta) == ("surprise", "Surprise! Lucky visit", 15)
    text = rules.explain(record)
    assert f"draw {expected:.4f} was below the probability 0.9" in text
    assert "1 of 1 for this member in 30 days" in text


# ------------------------------------------------------------------ caps, one at a time

def test_per_member_cap_in_a_rolling_period(session, program, clock, member):
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5}, per_member_limit=1,
                     per_member_period_days=30)
    other = make_member(session, program)
    assert len(rules.fire(session, program, event(member.id))) == 1
    assert rules.fire(session, program, event(member.id)) == []
    assert len(rules.fire(session, program, event(other.id))) == 1  # another member has their own
    clock.advance(days=29, hours=23)
    assert rules.fire(session, program, event(member.id)) == []
    clock.advance(hours=1, seconds=1)
    assert len(rules.fire(session, program, event(member.id))) == 1
    assert [g.member_id for g in grants(session, rule.id)] == [member.id, other.id, member.id]


def test_per_member_cap_for_ever(session, program, clock, member):
    make_rule(session, program, trigger="check_in", reward={"points": 5}, per_member_limit=2)
    got = [len(rules.fire(session, program, event(member.id))) for _ in range(4)]
    clock.advance(days=400)
    got.append(len(rules.fire(session, program, event(member.id))))
    assert got == [1, 1, 0, 0, 0]


def test_daily_cap_resets_at_midnight_in_the_programmes_timezone(session, jerusalem, clock):
    people = [make_member(session, jerusalem) for _ in range(4)]
    rule = make_rule(session, jerusalem, trigger="check_in", reward={"points": 5}, daily_limit=2)
    clock.now = datetime(2026, 11, 22, 21, 58, tzinfo=UTC)  # 23:58 in Jerusalem
    got = [len(rules.fire(session, jerusalem, event(p.id))) for p in people[:3]]
    clock.now = datetime(2026, 11, 22, 22, 1, tzinfo=UTC)  # 00:01 on the 23rd in Jerusalem (still the 22nd in UTC)
    got += [len(rules.fire(session, jerusalem, event(p.id))) for p in people]
    assert got == [1, 1, 0, 1, 1, 0, 0]
    assert [g.day.isoformat() for g in grants(session, rule.id)] == ["2026-11-22"] * 2 + ["2026-11-23"] * 2
    counters = {c.period: c.grants for c in session.scalars(select(RuleCounter))}
    assert counters == {"2026-11-22": 2, "2026-11-23": 2}


def test_total_cap_over_the_campaign(session, program, clock):
    people = [make_member(session, program) for _ in range(5)]
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5}, total_limit=3)
    got = [len(rules.fire(session, program, event(p.id))) for p in people]
    clock.advance(days=10)
    got.append(len(rules.fire(session, program, event(people[0].id))))
    assert got == [1, 1, 1, 0, 0, 0]
    assert [g.caps["total_limit"]["used"] for g in grants(session, rule.id)] == [1, 2, 3]


def test_points_budget_refuses_a_grant_that_does_not_fit(session, program, clock):
    people = [make_member(session, program) for _ in range(3)]
    from .test_rules import buy, make_store
    store = make_store(session)
    rule = make_rule(session, program, reward={"points_per_currency_unit": 1}, points_budget=100)
    assert buy(session, program, store, people[0], "60.00").purchase.points_awarded == 60
    assert buy(session, program, store, people[1], "50.00").purchase.points_awarded == 0  # 110 > 100
    assert buy(session, program, store, people[2], "40.00").purchase.points_awarded == 40  # exactly 100
    assert buy(session, program, store, people[1], "1.00").purchase.points_awarded == 0
    assert sum(g.points for g in grants(session, rule.id)) == 100


def test_a_grant_refused_by_the_daily_cap_is_not_counted_in_the_total(session, program, clock):
    people = [make_member(session, program) for _ in range(3)]
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5}, daily_limit=1, total_limit=10,
                     points_budget=1000)
    got = [len(rules.fire(session, program, event(p.id))) for p in people]
    assert got == [1, 0, 0]
    total = session.get(RuleCounter, (rule.id, "total"))
    assert (total.grants, total.points) == (1, 5)


def test_a_lost_draw_uses_no_cap(session, program, clock, member):
    program.random = random.Random(0)  # first draw 0.844..., second 0.757...
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5}, probability=0.8, total_limit=1)
    assert rules.fire(session, program, event(member.id)) == []
    assert len(rules.fire(session, program, event(member.id))) == 1
    assert session.get(RuleCounter, (rule.id, "total")).grants == 1


def test_a_cap_added_later_counts_what_the_rule_already_gave(session, program, clock):
    people = [make_member(session, program) for _ in range(4)]
    rule = make_rule(session, program, trigger="check_in", reward={"points": 5})
    for p in people[:2]:
        rules.fire(session, program, event(p.id))
    rules.update_rule(session, program, rule.id, {"total_limit": 3, "daily_limit": 2})
    got = [len(rules.fire(session, program, event(p.id))) for p in people[2:]]
    assert got == [0, 0]  # today's 2 are already given
    clock.advance(days=1)
    got = [len(rules.fire(session, program, event(p.id))) for p in people[2:]]
    assert got == [1, 0]  # the campaign's 3
    assert len(grants(session, rule.id)) == 3


def test_a_capped_rule_hands_over_to_the_next_rule(session, program, clock):
    """A non-stackable surprise that hit its cap doesn't block the rules after it."""
    people = [make_member(session, program) for _ in range(2)]
    make_rule(session, program, title="jackpot", trigger="check_in", reward={"points": 100}, stackable=False,
              priority=10, total_limit=1)
    make_rule(session, program, title="visit", trigger="check_in", reward={"points": 1})
    first = rules.fire(session, program, event(people[0].id))
    second = rules.fire(session, program, event(people[1].id))
    assert [g.rule.title for g in first] == ["jackpot"]
    assert [g.rule.title for g in second] == ["visit"]


def test_simulate_reports_a_reached_cap(session, program, clock, member):
    make_rule(session, program, title="once", trigger="check_in", reward={"points": 5}, per_member_limit=1)
    rules.fire(session, program, event(member.id))
    result = rules.simulate(session, program, event(member.id))
    assert result.grants == [] and [(s.rule.title, s.reason) for s in result.skipped] == [
        ("once", "cap:per_member_limit")]


# ------------------------------------------------------------------ caps under concurrency (PostgreSQL)

def _fire_at_once(app, program, events: list[rules.Event]) -> list[int]:
    """Fire each event in its own thread, session and transaction, all released together."""

    def fire(i: int) -> int:
        with app.app_context():
            try:
                granted = len(rules.fire(db.session, program, events[i]))
                db.session.commit()
                return granted
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

    return run_together(len(events), fire)


def _grant_count(app, rule_id: str) -> tuple[int, int]:
    with app.app_context():
        row = db.session.execute(select(func.count(), func.coalesce(func.sum(RuleGrant.points), 0))
                                 .where(RuleGrant.rule_id == rule_id)).one()
        db.session.remove()
        return row[0], row[1]


def _event(member_id: str, n: int) -> rules.Event:
    return rules.Event(trigger="check_in", member_id=member_id, source=f"check_in:race{n}")


@pytest.mark.postgres
def test_32_events_of_one_member_at_once_respect_the_per_member_cap(app, program, factory):
    person = factory.member()
    rule_id = factory.rule(title="twice a month", trigger="check_in", reward={"points": 10}, per_member_limit=2,
                           per_member_period_days=30)
    granted = _fire_at_once(app, program, [_event(person["id"], i) for i in range(32)])
    assert sum(granted) == 2
    assert _grant_count(app, rule_id) == (2, 20)
    assert factory.balance(person["id"]) == 20


@pytest.mark.postgres
def test_32_members_at_once_respect_the_daily_cap(app, program, factory):
    people = [factory.member()["id"] for _ in range(32)]
    rule_id = factory.rule(title="5 a day", trigger="check_in", reward={"points": 10}, daily_limit=5)
    granted = _fire_at_once(app, program, [_event(m, i) for i, m in enumerate(people)])
    assert sum(granted) == 5
    assert _grant_count(app, rule_id) == (5, 50)
    assert sum(factory.balance(m) for m in people) == 50


@pytest.mark.postgres
def test_32_members_at_once_respect_the_campaign_total(app, program, factory):
    people = [factory.member()["id"] for _ in range(32)]
    rule_id = factory.rule(title="first 7", trigger="check_in", reward={"points": 10}, total_limit=7)
    granted = _fire_at_once(app, program, [_event(m, i) for i, m in enumerate(people)])
    assert sum(granted) == 7
    assert _grant_count(app, rule_id) == (7, 70)


@pytest.mark.postgres
def test_32_members_at_once_respect_the_points_budget(app, program, factory):
    people = [factory.member()["id"] for _ in range(32)]
    rule_id = factory.rule(title="100 points to give", trigger="check_in", reward={"points": 30}, points_budget=100)
    granted = _fire_at_once(app, program, [_event(m, i) for i, m in enumerate(people)])
    assert sum(granted) == 3
    assert _grant_count(app, rule_id) == (3, 90)


@pytest.mark.postgres
def test_32_events_at_once_respect_every_cap_together(app, program, factory):
    """8 members each fire 4 events at once at a surprise with every kind of cap."""
    program.random = random.Random(5)
    people = [factory.member()["id"] for _ in range(8)]
    rule_id = factory.rule(title="all caps", trigger="check_in", reward={"points": 10}, probability=0.9,
                           per_member_limit=1, daily_limit=6, total_limit=5, points_budget=40)
    events = [_event(people[i % 8], i) for i in range(32)]
    granted = _fire_at_once(app, program, events)
    count, points = _grant_count(app, rule_id)
    assert sum(granted) == count == 4  # the points budget (40) binds first
    assert points == 40
    with app.app_context():
        winners = list(db.session.scalars(select(RuleGrant.member_id).where(RuleGrant.rule_id == rule_id)))
        counters = {c.period: (c.grants, c.points) for c in
                    db.session.scalars(select(RuleCounter).where(RuleCounter.rule_id == rule_id))}
        db.session.remove()
    assert len(set(winners)) == 4  # at most once per member
    today = datetime.now(UTC).astimezone(program.tz).date().isoformat()
    assert counters == {"total": (4, 40), today: (4, 40)}


@pytest.mark.postgres
def test_32_tills_at_once_through_the_api(app, program, factory, client):
    """The whole path: 32 purchases by 32 members at 32 tills; a surprise limited to 5 a day."""
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    people = [factory.member() for _ in range(32)]
    factory.rule(title="1 per shekel", reward={"points_per_currency_unit": 1})
    surprise = factory.rule(title="Big surprise", reward={"points": 100}, probability=1, daily_limit=5)

    def till(i: int):
        return app.test_client().post("/api/v1/pos/purchases", headers=cashier["headers"], json={
            "card": people[i]["card_number"], "amount": "20.00", "currency": program.currency,
            "receipt_id": f"race-{i}"})

    answers = run_together(32, till)
    assert [a.status_code for a in answers] == [201] * 32, [a.get_json() for a in answers if a.status_code != 201]
    surprised = [a.get_json() for a in answers if any(r["rule_id"] == surprise for r in a.get_json()["rewards"])]
    assert len(surprised) == 5
    assert all(a["points_awarded"] == 120 for a in surprised)
    assert _grant_count(app, surprise) == (5, 500)
    assert sum(factory.balance(p["id"]) for p in people) == 32 * 20 + 500


def test_a_sequence_sanity_check_of_the_interval_helper():
    assert binomial_interval(100, 0.5, 0.95) == (40, 60)
