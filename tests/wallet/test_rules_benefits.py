"""Benefits: a multiplier on the member's next N purchases or within a time window, granted by any trigger,
applied by the purchase rules, each use taken once even when tills race."""
from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import benefits, rules, till
from wallet.benefits import BenefitUse, MemberBenefit
from wallet.ledger import LedgerEntry

from .test_rules import balance, buy, event, grants, make_member, make_rule, make_store


@pytest.fixture
def store(session, program, clock):
    return make_store(session)


@pytest.fixture
def member(session, program, clock):
    return make_member(session, program)


@pytest.fixture
def earning(session, program, clock):
    return make_rule(session, program, title="1 per shekel", reward={"points_per_currency_unit": 1})


def test_double_points_on_the_next_three_purchases(session, program, store, member, earning):
    gift = make_rule(session, program, title="Double your next 3", trigger="check_in",
                     reward={"multiplier": 2, "purchases": 3})
    [granted] = rules.fire(session, program, event(member.id))
    assert granted.points == 0 and granted.benefit is not None
    reward = granted.as_reward()
    assert reward["benefit"] | {"id": None} == {"id": None, "multiplier": "2", "purchases": 3, "uses_left": 3,
                                               "valid_until": None, "applied": False}
    record = grants(session, gift.id)[0]
    assert (record.points, record.benefit_id, record.entry_id) == (0, granted.benefit.id, None)
    awarded = [buy(session, program, store, member, f"{10 * (i + 1)}.00").purchase.points_awarded for i in range(4)]
    assert awarded == [20, 40, 60, 40]
    benefit = session.get(MemberBenefit, granted.benefit.id)
    assert benefit.uses_left == 0 and not benefit.usable_at(program.now())
    uses = benefits.uses_of(session, benefit.id)
    assert [(u.base_points, u.points) for u in uses] == [(10, 10), (20, 20), (30, 30)]
    assert all(session.get(LedgerEntry, u.entry_id).description == "Double your next 3: points ×2" for u in uses)
    assert balance(session, member.id) == 160


def test_the_answer_names_the_benefit_that_boosted_the_purchase(session, program, store, member, earning):
    make_rule(session, program, title="Triple next", trigger="check_in", reward={"multiplier": 3, "purchases": 1})
    [granted] = rules.fire(session, program, event(member.id))
    result = buy(session, program, store, member, "10.00")
    assert [(r["title"], r["points"]) for r in result.rewards] == [("1 per shekel", 10), ("Triple next", 20)]
    assert result.rewards[1]["benefit"]["id"] == granted.benefit.id
    assert result.rewards[1]["benefit"]["applied"] is True and result.rewards[1]["surprise"] is False


def test_double_points_for_two_days(session, program, clock, store, member, earning):
    make_rule(session, program, title="Double weekend", trigger="check_in", reward={"multiplier": 2, "days": 2})
    rules.fire(session, program, event(member.id))
    got = [buy(session, program, store, member, "10.00").purchase.points_awarded for _ in range(3)]
    clock.advance(days=1, hours=23)
    got.append(buy(session, program, store, member, "10.00").purchase.points_awarded)
    clock.advance(hours=1)
    got.append(buy(session, program, store, member, "10.00").purchase.points_awarded)
    assert got == [20, 20, 20, 20, 10]


def test_next_purchases_within_a_window(session, program, clock, store, member, earning):
    make_rule(session, program, trigger="check_in", reward={"multiplier": "1.5", "purchases": 5, "days": 1})
    rules.fire(session, program, event(member.id))
    first = buy(session, program, store, member, "11.00").purchase.points_awarded
    clock.advance(days=1)
    second = buy(session, program, store, member, "11.00").purchase.points_awarded
    assert (first, second) == (16, 11)  # 11 + floor(5.5); then the window has closed with 4 uses left


def test_a_benefit_earned_by_a_purchase_starts_with_the_next_one(session, program, store, member, earning):
    make_rule(session, program, title="Big basket: double next", conditions={"min_amount": "100.00"},
              reward={"multiplier": 2, "purchases": 1}, per_member_limit=1)
    first = buy(session, program, store, member, "150.00")
    second = buy(session, program, store, member, "20.00")
    assert (first.purchase.points_awarded, second.purchase.points_awarded) == (150, 40)


def test_benefits_multiply_the_earning_not_each_other(session, program, store, member, earning):
    make_rule(session, program, title="Friday x2", reward={"multiplier": 2})
    make_rule(session, program, title="Gift x3", trigger="check_in", reward={"multiplier": 3, "purchases": 1})
    rules.fire(session, program, event(member.id))
    result = buy(session, program, store, member, "10.00")
    assert {r["title"]: r["points"] for r in result.rewards} == {"1 per shekel": 10, "Friday x2": 10, "Gift x3": 20}


def test_a_purchase_that_earns_nothing_keeps_the_benefit(session, program, store, member):
    make_rule(session, program, trigger="check_in", reward={"multiplier": 2, "purchases": 1})
    rules.fire(session, program, event(member.id))
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 0
    assert session.scalar(select(MemberBenefit.uses_left)) == 1


def test_a_refund_takes_back_the_benefits_points(session, program, store, member, earning):
    make_rule(session, program, trigger="check_in", reward={"multiplier": 2, "purchases": 1})
    rules.fire(session, program, event(member.id))
    result = buy(session, program, store, member, "30.00")
    refund = till.refund_purchase(session, program, result.purchase.id, store_id=None, actor="staff:x")
    assert (refund.points_reversed, balance(session, member.id)) == (60, 0)


def test_a_revoked_benefit_stops(session, program, clock, store, member, earning):
    make_rule(session, program, trigger="check_in", reward={"multiplier": 2, "purchases": 3})
    [granted] = rules.fire(session, program, event(member.id))
    benefits.revoke(session, granted.benefit.id, program.now())
    assert buy(session, program, store, member, "10.00").purchase.points_awarded == 10
    assert benefits.benefits_of(session, member.id, now=program.now()) == []
    assert [b.status for b in benefits.benefits_of(session, member.id, include_finished=True)] == ["revoked"]


def test_simulate_shows_the_benefit_without_using_it(session, program, store, member, earning):
    make_rule(session, program, title="Gift", trigger="check_in", reward={"multiplier": 2, "purchases": 1})
    rules.fire(session, program, event(member.id))
    result = rules.simulate(session, program, event(member.id, "purchase", store_id=store.id, amount=Decimal(10)))
    assert [(g.rule.title, g.kind, g.points) for g in result.grants] == [("1 per shekel", "rule", 10),
                                                                       ("Gift", "benefit", 10)]
    assert session.scalar(select(MemberBenefit.uses_left)) == 1
    assert session.scalar(select(func.count()).select_from(BenefitUse)) == 0


@pytest.mark.postgres
def test_eight_tills_at_once_take_a_single_use_once(app, program, factory):
    store = factory.store()
    people = factory.member()
    factory.rule(title="1 per shekel", reward={"points_per_currency_unit": 1})
    factory.rule(title="One double", trigger="check_in", reward={"multiplier": 2, "purchases": 1})
    with app.app_context():
        rules.fire(db.session, program, event(people["id"]))
        db.session.commit()
        db.session.remove()
    barrier = threading.Barrier(8)
    awarded, failures = [0] * 8, []

    def tills(i: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                result = till.record_purchase(db.session, program, store_id=store["id"],
                                              card_code=people["card_number"], amount=Decimal("10.00"),
                                              currency=program.currency, receipt_id=f"race-{i}")
                awarded[i] = result.purchase.points_awarded
                db.session.commit()
            except Exception as error:  # noqa: BLE001
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=tills, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert sorted(awarded) == [10] * 7 + [20]
    assert factory.balance(people["id"]) == 90
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BenefitUse)) == 1
        assert db.session.scalar(select(MemberBenefit.uses_left)) == 0
        db.session.remove()


def test_the_window_is_stored_from_the_grant(session, program, clock, member):
    make_rule(session, program, trigger="check_in", reward={"multiplier": 2, "days": 3})
    [granted] = rules.fire(session, program, event(member.id))
    assert granted.benefit.valid_until == clock.now + timedelta(days=3)
    assert granted.benefit.uses_left is None and granted.benefit.purchases is None


def test_a_refund_gives_the_benefit_its_use_back_once(session, program, store, member, earning):
    make_rule(session, program, title="Double your next 2", trigger="check_in", reward={"multiplier": 2, "purchases": 2})
    [granted] = rules.fire(session, program, event(member.id))
    first = buy(session, program, store, member, "10.00")
    assert first.purchase.points_awarded == 20
    benefit_id = granted.benefit.id
    assert session.get(MemberBenefit, benefit_id).uses_left == 1
    refund = till.refund_purchase(session, program, first.purchase.id, store_id=store.id, actor="staff:test")
    assert (refund.points_reversed, refund.benefit_uses_returned) == (20, 1)
    assert session.get(MemberBenefit, benefit_id).uses_left == 2
    again = till.refund_purchase(session, program, first.purchase.id, store_id=store.id, actor="staff:test")
    assert again.benefit_uses_returned == 0 and session.get(MemberBenefit, benefit_id).uses_left == 2
    [use] = benefits.uses_of(session, benefit_id)
    assert use.returned_at == program.now()
    # both uses are there to be had again
    awarded = [buy(session, program, store, member, "10.00").purchase.points_awarded for _ in range(3)]
    assert awarded == [20, 20, 10]


def test_a_refund_of_a_purchase_that_used_no_benefit_gives_nothing_back(session, program, store, member, earning):
    result = buy(session, program, store, member, "10.00")
    refund = till.refund_purchase(session, program, result.purchase.id, store_id=store.id, actor="staff:test")
    assert (refund.points_reversed, refund.benefit_uses_returned) == (10, 0)
