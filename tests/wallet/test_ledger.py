"""The ledger's rules, driven straight through wallet/ with a session and no app requests."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from wallet import ledger, statement
from wallet.errors import IdempotencyConflict, InsufficientPoints, Rejected
from wallet.ledger import Balance, LedgerEntry, Lot


def entries(session, member_id):
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id)
                                .order_by(LedgerEntry.seq)))


def assert_consistent(session, member_id):
    balance = session.get(Balance, member_id, populate_existing=True)
    total = session.scalar(select(func.coalesce(func.sum(LedgerEntry.delta), 0))
                           .where(LedgerEntry.member_id == member_id))
    lots = session.scalar(select(func.coalesce(func.sum(Lot.remaining), 0)).where(Lot.member_id == member_id))
    assert balance.points == total == lots
    assert balance.points >= 0
    rows = entries(session, member_id)
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
    running = 0
    for e in rows:
        running += e.delta
        assert e.balance_after == running


@pytest.fixture
def member(factory):
    return factory.member()


def earn(session, program, member_id, points, key, **kw):
    return ledger.earn(session, program, member_id=member_id, points=points, reason="purchase",
                       idempotency_key=key, description="test earn", **kw)


def spend(session, program, member_id, points, key):
    return ledger.spend(session, program, member_id=member_id, points=points, reason="coupon",
                        idempotency_key=key, description="test spend")


def test_earn_and_spend_move_balance_and_entries(session, program, clock, member):
    earn(session, program, member["id"], 100, "e1")
    entry = spend(session, program, member["id"], 30, "s1")
    assert entry.delta == -30 and entry.kind == "spend" and entry.balance_after == 70
    assert ledger.balance_of(session, member["id"]).points == 70
    assert_consistent(session, member["id"])


def test_spend_more_than_balance_is_refused_and_writes_nothing(session, program, clock, member):
    earn(session, program, member["id"], 10, "e1")
    session.commit()
    with pytest.raises(InsufficientPoints) as caught:
        spend(session, program, member["id"], 11, "s1")
    assert caught.value.code == "insufficient_points"
    assert caught.value.extra == {"balance": 10, "required": 11}
    session.rollback()
    assert ledger.balance_of(session, member["id"]).points == 10
    assert len(entries(session, member["id"])) == 1


def test_same_key_same_movement_is_counted_once(session, program, clock, member):
    first = earn(session, program, member["id"], 50, "k")
    again = earn(session, program, member["id"], 50, "k")
    assert again.id == first.id
    assert ledger.balance_of(session, member["id"]).points == 50
    assert len(entries(session, member["id"])) == 1


def test_same_key_other_movement_is_a_conflict(session, program, clock, member, factory):
    earn(session, program, member["id"], 50, "k")
    with pytest.raises(IdempotencyConflict):
        earn(session, program, member["id"], 51, "k")
    other = factory.member()
    with pytest.raises(IdempotencyConflict):
        earn(session, program, other["id"], 50, "k")


def test_spend_takes_the_lots_that_expire_first(session, program, clock, member):
    now = clock.now
    late = earn(session, program, member["id"], 100, "late", expires_at=now + timedelta(days=300))
    soon = earn(session, program, member["id"], 40, "soon", expires_at=now + timedelta(days=10))
    forever = earn(session, program, member["id"], 5, "forever", expires_at=None)
    program.points_expiry_days = None
    spend(session, program, member["id"], 60, "s")
    remaining = {lot.entry_id: lot.remaining for lot in session.scalars(select(Lot))}
    assert remaining == {soon.id: 0, late.id: 80, forever.id: 5}
    assert_consistent(session, member["id"])


def test_expiry_writes_expire_entries_once(session, program, clock, member):
    earn(session, program, member["id"], 100, "a", expires_at=clock.now + timedelta(days=1))
    earn(session, program, member["id"], 20, "b", expires_at=clock.now + timedelta(days=5))
    spend(session, program, member["id"], 30, "s")  # takes 30 of the first lot
    clock.advance(days=2)
    assert ledger.expire_due(session, program) == 70
    assert ledger.expire_due(session, program) == 0  # a second run finds nothing
    rows = entries(session, member["id"])
    assert [(e.kind, e.delta) for e in rows] == [("earn", 100), ("earn", 20), ("spend", -30), ("expire", -70)]
    assert ledger.balance_of(session, member["id"]).points == 20
    assert_consistent(session, member["id"])


def test_expiring_soon_is_reported_by_date(session, program, clock, member):
    at = clock.now + timedelta(days=20)
    earn(session, program, member["id"], 10, "a", expires_at=at)
    earn(session, program, member["id"], 15, "b", expires_at=at)
    earn(session, program, member["id"], 7, "c", expires_at=clock.now + timedelta(days=400))
    assert statement.expiring(session, member["id"], clock.now) == [{"points": 25, "expires_at": at}]


def test_reversing_an_earn_takes_back_only_what_is_left(session, program, clock, member):
    original = earn(session, program, member["id"], 100, "e")
    spend(session, program, member["id"], 70, "s")
    result = ledger.reverse(session, program, original, actor="staff:x", description="refund")
    assert (result.requested, result.reversed, result.shortfall) == (100, 30, 70)
    assert result.entry.reverses_id == original.id and result.entry.delta == -30
    assert ledger.balance_of(session, member["id"]).points == 0
    again = ledger.reverse(session, program, original, actor="staff:x", description="refund")
    assert again.entry.id == result.entry.id  # a second reversal is the first one
    assert_consistent(session, member["id"])


def test_reversing_a_spend_puts_points_back_in_their_lots(session, program, clock, member):
    lot_entry = earn(session, program, member["id"], 50, "e", expires_at=clock.now + timedelta(days=30))
    spent = spend(session, program, member["id"], 20, "s")
    ledger.reverse(session, program, spent, actor="staff:x", description="voided")
    lot = session.scalar(select(Lot).where(Lot.entry_id == lot_entry.id))
    assert lot.remaining == 50
    assert ledger.balance_of(session, member["id"]).points == 50
    assert_consistent(session, member["id"])


def test_reversing_a_spend_whose_lot_expired_gives_a_fresh_lot(session, program, clock, member):
    earn(session, program, member["id"], 50, "e", expires_at=clock.now + timedelta(days=1))
    spent = spend(session, program, member["id"], 20, "s")
    clock.advance(days=2)
    ledger.expire_due(session, program)
    reversal = ledger.reverse(session, program, spent, actor="staff:x", description="voided")
    assert ledger.balance_of(session, member["id"]).points == 20
    fresh = session.scalar(select(Lot).where(Lot.entry_id == reversal.entry.id))
    assert fresh.remaining == 20 and fresh.expires_at > clock.now
    assert_consistent(session, member["id"])


def test_a_reversal_is_not_reversed(session, program, clock, member):
    original = earn(session, program, member["id"], 10, "e")
    result = ledger.reverse(session, program, original, actor="x", description="r")
    with pytest.raises(Rejected) as caught:
        ledger.reverse(session, program, result.entry, actor="x", description="r")
    assert caught.value.code == "cannot_reverse"


def test_pending_points_are_released_by_the_job(session, program, clock, member):
    held = ledger.hold(session, program, member_id=member["id"], points=40, reason="purchase", source="purchase:p1",
                       idempotency_key="h1", description="held", available_at=clock.now + timedelta(days=14))
    assert ledger.balance_of(session, member["id"]).pending == 40
    assert ledger.balance_of(session, member["id"]).points == 0
    assert ledger.release_due(session, program) == 0  # not yet
    clock.advance(days=14)
    assert ledger.release_due(session, program) == 1
    assert ledger.release_due(session, program) == 0
    balance = ledger.balance_of(session, member["id"])
    assert (balance.points, balance.pending) == (40, 0)
    assert held.status == "released"
    assert_consistent(session, member["id"])


def test_cancelling_pending_points_inside_the_window(session, program, clock, member):
    ledger.hold(session, program, member_id=member["id"], points=40, reason="purchase", source="purchase:p1",
                idempotency_key="h1", description="held", available_at=clock.now + timedelta(days=14))
    assert ledger.cancel_pending(session, "purchase:p1") == 40
    assert ledger.cancel_pending(session, "purchase:p1") == 0
    clock.advance(days=15)
    assert ledger.release_due(session, program) == 0
    balance = ledger.balance_of(session, member["id"])
    assert (balance.points, balance.pending) == (0, 0)
    assert entries(session, member["id"]) == []


def test_adjustments_record_actor_and_reason(session, program, clock, member):
    entry = ledger.adjust(session, program, member_id=member["id"], points=25, reason="goodwill",
                          idempotency_key="adj1", actor="staff:stf_1", description="Sorry for the wait")
    assert (entry.kind, entry.reason, entry.actor, entry.delta) == ("adjust", "manual", "staff:stf_1", 25)
    debit = ledger.adjust(session, program, member_id=member["id"], points=-5, reason="fix",
                          idempotency_key="adj2", actor="staff:stf_1", description="Correction")
    assert debit.delta == -5 and ledger.balance_of(session, member["id"]).points == 20
    with pytest.raises(InsufficientPoints):
        ledger.adjust(session, program, member_id=member["id"], points=-21, reason="fix",
                      idempotency_key="adj3", actor="staff:stf_1", description="too much")


def test_statement_is_newest_first_with_a_cursor(session, program, clock, member):
    for i in range(5):
        earn(session, program, member["id"], i + 1, f"e{i}")
    first = statement.entries(session, member["id"], limit=2)
    assert [e.delta for e in first] == [5, 4]
    rest = statement.entries(session, member["id"], limit=10, before_seq=first[-1].seq)
    assert [e.delta for e in rest] == [3, 2, 1]
