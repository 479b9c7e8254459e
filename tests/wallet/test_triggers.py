"""Life events: the birthday and inactivity job (once per birthday a year and per quiet spell, whatever the
timezone, 29 February, reruns or concurrent hosts) and referrals claimed after enrolment."""
from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import instore, ledger, referrals, rules, tiers, triggers
from wallet.errors import Conflict, Invalid, Rejected
from wallet.ledger import LedgerEntry
from wallet.referrals import Referral
from wallet.triggers import LifeEvent

from .test_rules import balance, buy, grants, make_member, make_rule, make_store


@pytest.fixture
def club(program, clock):
    """The app's programme, in Jerusalem (UTC+2 in winter), with the clock in hand."""
    saved = program.timezone
    program.timezone = "Asia/Jerusalem"
    yield program
    program.timezone = saved


def run(session, program, **kwargs) -> dict[str, triggers.Tally]:
    return triggers.run(session, program, commit=session.commit, **kwargs)


def birthday_rule(session, program, **data):
    return make_rule(session, program, title="Birthday gift", trigger="birthday", reward={"points": 100}, **data)


def rewarded(session, rule_id) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in grants(session, rule_id):
        out[g.member_id] = out.get(g.member_id, 0) + 1
    return out


# ------------------------------------------------------------------ birthdays

def test_a_birthday_is_rewarded_once_however_often_the_job_runs(session, club, clock):
    rule = birthday_rule(session, club)
    today = make_member(session, club, birthday=date(1990, 11, 22))
    tomorrow = make_member(session, club, birthday=date(1990, 11, 23))
    nobody = make_member(session, club)
    session.commit()
    summary = run(session, club)
    assert (summary["birthday"].events, summary["birthday"].grants, summary["birthday"].points) == (1, 1, 100)
    for _ in range(3):
        clock.advance(hours=3)
        assert run(session, club)["birthday"].events == 0
    assert rewarded(session, rule.id) == {today.id: 1}
    assert (balance(session, today.id), balance(session, tomorrow.id), balance(session, nobody.id)) == (100, 0, 0)
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.member_id == today.id))
    assert (entry.reason, entry.description, entry.source) == (
        "birthday", "Happy birthday! Birthday gift", f"birthday:{today.id}:2026")
    event = session.scalar(select(LifeEvent))
    assert (event.member_id, event.trigger, event.grants, event.points) == (today.id, "birthday", 1, 100)


@pytest.mark.parametrize("zone", ["Asia/Jerusalem", "Asia/Tokyo", "Pacific/Kiritimati"])
def test_today_is_the_programmes_day_even_at_2330_utc(session, program, clock, zone):
    saved = program.timezone
    program.timezone = zone
    try:
        rule = birthday_rule(session, program)
        on_21st = make_member(session, program, birthday=date(1985, 11, 21))
        on_22nd = make_member(session, program, birthday=date(1985, 11, 22))
        session.commit()
        clock.now = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # the 21st there (22:00 in Kiritimati, UTC+14)
        run(session, program)
        first = set(rewarded(session, rule.id))
        clock.now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # already the 22nd in the programme's timezone
        run(session, program)
        second = set(rewarded(session, rule.id)) - first
        clock.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # still the 22nd: a rerun
        run(session, program)
        assert (first, second) == ({on_21st.id}, {on_22nd.id})
        assert rewarded(session, rule.id) == {on_21st.id: 1, on_22nd.id: 1}
    finally:
        program.timezone = saved


def test_born_on_29_february(session, club, clock):
    rule = birthday_rule(session, club)
    leapling = make_member(session, club, birthday=date(2000, 2, 29))
    on_28th = make_member(session, club, birthday=date(2001, 2, 28))
    on_1st = make_member(session, club, birthday=date(2001, 3, 1))
    session.commit()
    celebrated = {}
    for day in (date(2027, 2, 27), date(2027, 2, 28), date(2027, 3, 1),
                date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)):
        clock.now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
        before = set(g.id for g in grants(session, rule.id))
        run(session, club)
        run(session, club)  # twice the same day
        celebrated[day.isoformat()] = sorted(g.member_id for g in grants(session, rule.id) if g.id not in before)
    assert celebrated == {
        "2027-02-27": [],
        "2027-02-28": sorted([leapling.id, on_28th.id]),  # a common year: 29 February is celebrated on the 28th
        "2027-03-01": [on_1st.id],
        "2028-02-28": [on_28th.id],
        "2028-02-29": [leapling.id],  # a leap year: on the day itself, and not on the 28th
        "2028-03-01": [on_1st.id],
    }
    assert [g.event_source for g in grants(session, rule.id) if g.member_id == leapling.id] == [
        f"birthday:{leapling.id}:2027", f"birthday:{leapling.id}:2028"]
    assert triggers.celebrated_on(date(2000, 2, 29), 2027) == date(2027, 2, 28)
    assert triggers.celebrated_on(date(2000, 2, 29), 2028) == date(2028, 2, 29)


def test_a_surprise_birthday_is_drawn_once_not_once_per_run(session, club, clock):
    club.random = random.Random(0)  # the first draw, 0.844, loses a 0.5 chance
    rule = birthday_rule(session, club, probability=0.5)
    member = make_member(session, club, birthday=date(1990, 11, 22))
    session.commit()
    assert run(session, club)["birthday"].events == 1
    state = club.random.getstate()
    for _ in range(5):
        run(session, club)
    assert grants(session, rule.id) == []
    assert club.random.getstate() == state  # no second chance by running the job again
    assert session.scalar(select(LifeEvent.member_id)) == member.id


def test_rules_apply_when_they_are_active(session, club, clock):
    member = make_member(session, club, birthday=date(1990, 11, 22))
    closed = make_member(session, club, birthday=date(1990, 11, 22))
    closed.status = "closed"
    session.commit()
    assert run(session, club)["birthday"].events == 0  # no birthday rule yet: nothing is marked as celebrated
    rule = birthday_rule(session, club, status="paused")
    session.commit()
    assert run(session, club)["birthday"].events == 0
    rules.resume_rule(session, club, rule.id)
    session.commit()
    assert run(session, club)["birthday"].events == 1
    assert rewarded(session, rule.id) == {member.id: 1}


def test_a_missed_day_can_be_caught_up(session, club, clock):
    rule = birthday_rule(session, club)
    member = make_member(session, club, birthday=date(1990, 11, 21))
    session.commit()
    run(session, club)
    assert grants(session, rule.id) == []
    run(session, club, day=date(2026, 11, 21))
    run(session, club, day=date(2026, 11, 21))
    assert rewarded(session, rule.id) == {member.id: 1}


def test_the_next_year_is_another_birthday(session, club, clock):
    rule = birthday_rule(session, club)
    member = make_member(session, club, birthday=date(1990, 11, 22))
    session.commit()
    run(session, club)
    clock.advance(days=365)
    run(session, club)
    assert [g.event_source for g in grants(session, rule.id)] == [f"birthday:{member.id}:2026",
                                                                 f"birthday:{member.id}:2027"]


def test_birthday_rules_with_conditions_and_a_coupon_less_benefit(session, club, clock):
    tiers.create_tier(session, club, {"code": "gold", "name": "Gold", "rank": 1,
                                          "qualify": {"metric": "spend", "threshold": "1000.00"}})
    gold_only = birthday_rule(session, club, conditions={"tiers": ["gold"]})
    treat = make_rule(session, club, title="Birthday week double", trigger="birthday",
                      reward={"multiplier": 2, "days": 7})
    gold = make_member(session, club, birthday=date(1990, 11, 22))
    basic = make_member(session, club, birthday=date(1990, 11, 22))
    gold.tier = "gold"
    session.commit()
    run(session, club)
    assert rewarded(session, gold_only.id) == {gold.id: 1}
    assert rewarded(session, treat.id) == {gold.id: 1, basic.id: 1}


def test_many_birthdays_in_batches(session, club, clock):
    rule = birthday_rule(session, club)
    people = [make_member(session, club, birthday=date(1980 + i % 30, 11, 22)) for i in range(25)]
    session.commit()
    summary = triggers.run(session, club, batch_size=7, commit=session.commit)
    assert summary["birthday"].events == 25
    assert rewarded(session, rule.id) == {p.id: 1 for p in people}


# ------------------------------------------------------------------ inactivity

def inactivity_rule(session, program, days=30, **data):
    return make_rule(session, program, title=f"We miss you ({days})", trigger="inactivity",
                     conditions={"inactive_days": days}, reward={"points": 50}, **data)


def test_a_quiet_member_is_nudged_once_per_quiet_spell(session, club, clock):
    rule = inactivity_rule(session, club)
    quiet = make_member(session, club)
    shopper = make_member(session, club)
    store = make_store(session)
    clock.advance(days=20)
    newcomer = make_member(session, club)
    buy(session, club, store, shopper, "10.00")
    session.commit()
    clock.advance(days=10, seconds=1)  # quiet: 30 days since enrolment; shopper: 10 days since buying
    run(session, club)
    run(session, club)
    assert rewarded(session, rule.id) == {quiet.id: 1}  # newcomer: 10 days; shopper: 10 days since buying
    clock.advance(days=25)
    run(session, club)
    # 35 days since the shopper bought and since the newcomer joined
    assert rewarded(session, rule.id) == {quiet.id: 1, shopper.id: 1, newcomer.id: 1}
    # the nudge worked: quiet buys, then goes quiet again for 30 days: a new spell, a new nudge
    buy(session, club, store, quiet, "10.00")
    session.commit()
    clock.advance(days=29)
    run(session, club)
    assert rewarded(session, rule.id)[quiet.id] == 1
    clock.advance(days=1, seconds=1)
    run(session, club)
    run(session, club)
    assert rewarded(session, rule.id)[quiet.id] == 2
    sources = [g.event_source for g in grants(session, rule.id) if g.member_id == quiet.id]
    assert len(set(sources)) == 2 and all(s.startswith(f"inactivity:30:{quiet.id}:") for s in sources)
    spells = session.scalars(select(LifeEvent).where(LifeEvent.member_id == quiet.id)
                             .order_by(LifeEvent.occurred_at)).all()
    assert spells[1].detail["last_activity_at"] > spells[0].detail["last_activity_at"]


def test_each_threshold_fires_its_own_rule_once(session, club, clock):
    month = inactivity_rule(session, club, days=30)
    quarter = inactivity_rule(session, club, days=90)
    member = make_member(session, club)
    session.commit()
    clock.advance(days=31)
    run(session, club)
    assert (rewarded(session, month.id), rewarded(session, quarter.id)) == ({member.id: 1}, {})
    clock.advance(days=60)
    run(session, club)
    run(session, club)
    assert (rewarded(session, month.id), rewarded(session, quarter.id)) == ({member.id: 1}, {member.id: 1})
    assert balance(session, member.id) == 100


def test_what_counts_as_activity(session, club, clock):
    rule = inactivity_rule(session, club)
    store = make_store(session)
    people = {name: make_member(session, club) for name in ("checked_in", "refused", "scanned", "spent", "gifted")}
    session.commit()
    clock.advance(days=20)
    common = {"store_id": store.id, "lat": store.lat, "lon": store.lon, "distance_m": 0.0, "created_at": clock.now}
    session.add(instore.CheckIn(member_id=people["checked_in"].id, status="accepted", visit_number=1, **common))
    session.add(instore.CheckIn(member_id=people["refused"].id, status="refused", reason="too_far", **common))
    from wallet.stores import Product
    product = Product(sku="P1", barcode="4006381333931", name="p", category="c", price=Decimal("1"), currency="ILS")
    session.add(product)
    session.flush()
    session.add(instore.Scan(member_id=people["scanned"].id, product_id=product.id, barcode=product.barcode,
                             created_at=clock.now))
    for name in ("spent", "gifted"):
        ledger.earn(session, club, member_id=people[name].id, points=10, reason="manual", description="gift",
                    idempotency_key=f"gift:{name}")
    ledger.spend(session, club, member_id=people["spent"].id, points=5, reason="coupon", description="coffee",
                 idempotency_key="spend:1")
    session.commit()
    clock.advance(days=10, seconds=1)
    run(session, club)
    assert set(rewarded(session, rule.id)) == {people["refused"].id, people["gifted"].id}


def test_a_paused_inactivity_rule_marks_nothing(session, club, clock):
    rule = inactivity_rule(session, club, status="paused")
    member = make_member(session, club)
    session.commit()
    clock.advance(days=40)
    run(session, club)
    assert session.scalar(select(func.count()).select_from(LifeEvent)) == 0
    rules.resume_rule(session, club, rule.id)
    session.commit()
    run(session, club)
    assert rewarded(session, rule.id) == {member.id: 1}


# ------------------------------------------------------------------ several hosts at once (PostgreSQL)

@pytest.mark.postgres
def test_four_hosts_running_the_job_at_once_reward_each_member_once(app, program, factory, clock):
    saved = program.timezone
    program.timezone = "Asia/Jerusalem"
    try:
        clock.now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
        birthday = factory.rule(title="Birthday", trigger="birthday", reward={"points": 100})
        people = [factory.member(birthday=date(1990, 11, 22))["id"] for _ in range(30)]
        clock.advance(days=31)
        nudge = factory.rule(title="Nudge", trigger="inactivity", conditions={"inactive_days": 30},
                             reward={"points": 5})
        barrier = threading.Barrier(4)
        failures = []

        def host() -> None:
            with app.app_context():
                try:
                    barrier.wait(timeout=30)
                    triggers.run(db.session, program, day=date(2026, 11, 22), batch_size=4, commit=db.session.commit)
                except Exception as error:  # noqa: BLE001
                    failures.append(error)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=host) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures, failures
        with app.app_context():
            counts = dict(db.session.execute(select(rules.RuleGrant.rule_id, func.count())
                                             .group_by(rules.RuleGrant.rule_id)).all())
            per_member = db.session.execute(select(rules.RuleGrant.member_id, func.count())
                                            .group_by(rules.RuleGrant.member_id)).all()
            db.session.remove()
        assert counts == {birthday: 30, nudge: 30}
        assert {m for m, _ in per_member} == set(people) and {n for _, n in per_member} == {2}
        assert all(factory.balance(m) == 105 for m in people)
    finally:
        program.timezone = saved


# ------------------------------------------------------------------ the command

def test_the_job_command(app, factory, clock, program):
    saved = program.timezone
    program.timezone = "Asia/Jerusalem"
    try:
        factory.rule(title="Birthday", trigger="birthday", reward={"points": 100})
        member = factory.member(birthday=date(1990, 11, 22))
        runner = app.test_cli_runner()
        first = runner.invoke(args=["triggers", "run"])
        second = runner.invoke(args=["triggers", "run", "--batch-size", "10"])
        assert first.exit_code == 0, first.output
        assert first.output.splitlines() == ["birthday: 1 events, 1 rewards, 100 points",
                                             "inactivity: 0 events, 0 rewards, 0 points"]
        assert second.output.splitlines()[0] == "birthday: 0 events, 0 rewards, 0 points"
        assert factory.balance(member["id"]) == 100
        bad = runner.invoke(args=["triggers", "run", "--date", "22/11/2026"])
        assert bad.exit_code == 2
    finally:
        program.timezone = saved


# ------------------------------------------------------------------ enrolment

def test_a_welcome_bonus_at_enrolment(session, club, clock):
    club.welcome_pending = False  # LOYALTY_WELCOME_PENDING=0: credited at once (pending: tests/wallet/test_fraud.py)
    tiers.create_tier(session, club, {"code": "gold", "name": "Gold", "rank": 1,
                                          "qualify": {"metric": "spend", "threshold": "1000.00"}})
    rule = make_rule(session, club, title="Welcome to the club", trigger="enrolment", reward={"points": 50})
    make_rule(session, club, title="Gold welcome", trigger="enrolment", reward={"points": 10},
              conditions={"tiers": ["gold"]})
    member = make_member(session, club)
    [grant] = grants(session)
    assert (grant.rule_id, grant.member_id, grant.event_source) == (rule.id, member.id, f"member:{member.id}")
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.member_id == member.id))
    assert (entry.delta, entry.reason, entry.description) == (50, "welcome", "Welcome to the club")


# ------------------------------------------------------------------ referrals claimed after enrolment

def test_a_referral_can_be_claimed_once(session, club, clock):
    referrer_rule = make_rule(session, club, title="Thanks for the friend", trigger="referral",
                              conditions={"side": "referrer"}, reward={"points": 200})
    welcome = make_rule(session, club, title="Your friend's gift", trigger="referral", conditions={"side": "referred"},
                        reward={"points": 50})
    dana = make_member(session, club, phone="+972-50-123-4567")
    noa = make_member(session, club)
    other = make_member(session, club)
    referral = referrals.claim_referral(session, club, noa.id, f"  {dana.referral_code.lower()} ")
    assert (referral.referrer_id, referral.referred_id, noa.referred_by_id) == (dana.id, noa.id, dana.id)
    assert (balance(session, dana.id), balance(session, noa.id)) == (0, 0)  # paid at noa's first purchase
    assert referrals.qualify_on_first_purchase(session, club, member_id=noa.id, purchase_id="pur_first",
                                               actor="till") is False
    assert (balance(session, dana.id), balance(session, noa.id)) == (200, 50)
    with pytest.raises(Conflict) as twice:
        referrals.claim_referral(session, club, noa.id, other.referral_code)
    assert twice.value.code == "referral_already_claimed"
    with pytest.raises(Rejected) as back:
        referrals.claim_referral(session, club, dana.id, noa.referral_code)
    assert back.value.code == "circular_referral"
    with pytest.raises(Invalid) as own:
        referrals.claim_referral(session, club, other.id, other.referral_code)
    assert own.value.code == "self_referral"
    clock.advance(days=31)
    with pytest.raises(Rejected) as late:
        referrals.claim_referral(session, club, other.id, dana.referral_code)
    assert late.value.code == "referral_window_closed"
    assert (len(grants(session, referrer_rule.id)), len(grants(session, welcome.id))) == (1, 1)
    assert session.scalar(select(func.count()).select_from(Referral)) == 1


@pytest.mark.parametrize("email, phone", [("dana+club@example.com", None), ("d.ana@gmail.com", None),
                                          ("someone@example.com", "050-123-4567")])
def test_the_same_person_is_recognised(email, phone):
    dana = triggers.Member(email="dana@example.com" if "gmail" not in email else "dana@gmail.com",
                           phone="+972 50 1234567")
    assert referrals._same_person(dana, email, phone)
    assert not referrals._same_person(dana, "noa@example.com", "+972 52 7654321")
