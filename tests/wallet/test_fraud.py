"""The defences in the domain: the ledger's bounds (hypothesis), the travel arithmetic, the burst counter's windows,
flags counted per hour, welcome holds released once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from wallet import enrolment, fraud, ledger, rules, statement
from wallet.db import MAX_BALANCE, MAX_POINTS_PER_MOVEMENT
from wallet.errors import Invalid, Rejected, TooManyRequests
from wallet.fraud import BurstCounter, Flag

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def member(session, program, clock):
    m = enrolment.register_member(session, program, email="dana@example.com", password="correct horse", name="Dana")
    session.commit()
    return m


def balance(session, member_id: str) -> tuple[int, int]:
    row = session.execute(select(ledger.Balance.points, ledger.Balance.pending)
                          .where(ledger.Balance.member_id == member_id)).one()
    return row.points, row.pending


# ------------------------------------------------------------------ the ledger's bounds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.one_of(st.integers(1, MAX_POINTS_PER_MOVEMENT), st.integers(MAX_POINTS_PER_MOVEMENT + 1, 2**80)))
def test_one_movement_carries_at_most_100_million_points(session, program, member, points):
    key = f"earn:{points}"
    if points > MAX_POINTS_PER_MOVEMENT:
        with pytest.raises(Invalid) as refused:
            ledger.earn(session, program, member_id=member.id, points=points, reason="manual", idempotency_key=key,
                        description="test")
        assert refused.value.code == "points_out_of_range" and list(refused.value.errors) == ["points"]
        with pytest.raises(Invalid):
            ledger.hold(session, program, member_id=member.id, points=points, reason="manual", source="t",
                        idempotency_key=key, description="test", available_at=T0)
    else:
        before = balance(session, member.id)[0]
        entry = ledger.earn(session, program, member_id=member.id, points=points, reason="manual",
                            idempotency_key=key, description="test")
        assert entry.delta == points and balance(session, member.id)[0] == before + points
    session.rollback()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, MAX_BALANCE), points=st.integers(1, MAX_POINTS_PER_MOVEMENT))
def test_a_balance_never_passes_2_to_the_53_minus_1(session, program, member, start, points):
    session.execute(ledger.Balance.__table__.update().where(ledger.Balance.member_id == member.id)
                    .values(points=start))
    if start + points > MAX_BALANCE:
        with pytest.raises(Rejected) as refused:
            ledger.earn(session, program, member_id=member.id, points=points, reason="manual", idempotency_key="k",
                        description="test")
        assert refused.value.code == "balance_limit"
        assert balance(session, member.id)[0] == start
    else:
        entry = ledger.earn(session, program, member_id=member.id, points=points, reason="manual",
                            idempotency_key="k", description="test")
        assert entry.balance_after == start + points <= MAX_BALANCE
    session.rollback()


def test_a_64_bit_balance_round_trips(session, program, member):
    for n in range(3):
        ledger.earn(session, program, member_id=member.id, points=MAX_POINTS_PER_MOVEMENT, reason="manual",
                    idempotency_key=f"big:{n}", description="big")
    session.execute(ledger.Balance.__table__.update().where(ledger.Balance.member_id == member.id)
                    .values(points=3_000_000_000 + 3 * MAX_POINTS_PER_MOVEMENT))  # past 2^31, as a long-lived club
    entry = ledger.earn(session, program, member_id=member.id, points=5, reason="manual", idempotency_key="big:4",
                        description="big")
    session.commit()
    assert entry.balance_after == 3_300_000_005
    assert session.scalar(select(func.max(ledger.LedgerEntry.balance_after))) == 3_300_000_005


# ------------------------------------------------------------------ impossible travel, the arithmetic


def test_travel_speed():
    def speed(distance_m, slack_m, seconds, max_kmh=300.0):
        return fraud.travel_from_last(previous_check_in_id="chk_1", previous_store_id="sto_1", previous_at=T0,
                                      distance_m=distance_m, slack_m=slack_m, now=T0 + timedelta(seconds=seconds),
                                      max_kmh=max_kmh)
    assert speed(54_000, 400, 600).speed_kmh == pytest.approx(321.6)  # Tel Aviv to Jerusalem in 10 minutes
    assert speed(54_000, 400, 600).impossible
    assert not speed(54_000, 400, 1200).impossible  # in 20: 160.8 km/h
    assert speed(54_000, 400, 0).speed_kmh == float("inf")  # at the same instant
    assert speed(54_000, 400, 0).details()["speed_kmh"] is None  # JSON has no infinity
    assert speed(300, 400, 0).speed_kmh == 0.0 and not speed(300, 400, 0).impossible  # two neighbouring stores
    assert not speed(54_000, 400, 600, max_kmh=400).impossible  # LOYALTY_MAX_TRAVEL_KMH


# ------------------------------------------------------------------ bursts and flags


def test_a_burst_counter_counts_per_minute_one_row_per_subject(session, clock):
    now = T0 + timedelta(seconds=59)
    assert [fraud.count(session, kind="enrolment_burst", subject="device:a", now=now)[0] for _ in range(3)] == \
        [1, 2, 3]
    assert fraud.count(session, kind="enrolment_burst", subject="device:b", now=now)[0] == 1
    assert fraud.count(session, kind="claim_burst", subject="device:a", now=now)[0] == 1
    counted, ends = fraud.count(session, kind="enrolment_burst", subject="device:a", now=T0 + timedelta(seconds=60))
    assert (counted, ends) == (1, T0 + timedelta(minutes=2))  # a new minute starts again
    session.commit()
    assert session.scalar(select(func.count()).select_from(BurstCounter)) == 3


def test_a_late_request_of_the_last_minute_counts_in_the_new_one(session, clock):
    """Two requests at a minute's edge, written out of order (the one that read the clock first writes last): the
    window stays the new minute and the late one is counted in it, not a reset to 1 that opens the door again."""
    new_minute, last_minute = T0 + timedelta(seconds=60, milliseconds=100), T0 + timedelta(seconds=59, milliseconds=900)
    assert fraud.count(session, kind="enrolment_burst", subject="device:a", now=T0 + timedelta(seconds=30))[0] == 1
    assert fraud.count(session, kind="enrolment_burst", subject="device:a", now=new_minute)[0] == 1  # a new minute
    assert fraud.count(session, kind="enrolment_burst", subject="device:a", now=last_minute)[0] == 2
    assert fraud.count(session, kind="enrolment_burst", subject="device:a", now=new_minute)[0] == 3
    session.commit()
    assert session.scalar(select(BurstCounter.window_start)) == T0 + timedelta(minutes=1)


def test_past_the_limit_a_burst_is_refused_flagged_and_kept(session, clock):
    for _ in range(2):
        fraud.check_burst(session, kind="claim_burst", subjects=["member:m1"], limit=2, now=T0, code="too_many_claims",
                          detail="slow down", member_id="m1")
    with pytest.raises(TooManyRequests) as refused:
        fraud.check_burst(session, kind="claim_burst", subjects=["member:m1"], limit=2, now=T0 + timedelta(seconds=15),
                          code="too_many_claims", detail="slow down", member_id="m1")
    assert refused.value.code == "too_many_claims" and refused.value.commit  # the request fails; the flag stays
    assert refused.value.extra["retry_after"] == 45
    session.commit()
    [flag] = session.scalars(select(Flag)).all()
    assert (flag.kind, flag.subject, flag.member_id, flag.count, flag.window_start) == (
        "claim_burst", "member:m1", "m1", 1, T0)


def test_a_reviewed_flag_opens_again_when_it_happens_again_within_its_hour(session, clock):
    fraud.raise_flag(session, kind="impossible_travel", subject="member:m1", at=T0, member_id="m1")
    [flag] = session.scalars(select(Flag)).all()
    reviewed, before = fraud.review_flag(session, flag.id, actor="staff:s1", now=T0, note="seen")
    assert (before["status"], reviewed.status, reviewed.reviewed_by) == ("open", "reviewed", "staff:s1")
    fraud.raise_flag(session, kind="impossible_travel", subject="member:m1", at=T0 + timedelta(minutes=59),
                     member_id="m1", details={"n": 2})
    session.refresh(flag)
    assert (flag.count, flag.status, flag.details, flag.first_seen_at) == (2, "open", {"n": 2}, T0)
    fraud.raise_flag(session, kind="impossible_travel", subject="member:m1", at=T0 + timedelta(minutes=60))
    assert session.scalar(select(func.count()).select_from(Flag)) == 2  # the next hour: a flag of its own
    with pytest.raises(ValueError):
        fraud.raise_flag(session, kind="nonsense", subject="x", at=T0)


# ------------------------------------------------------------------ welcome holds


def test_a_welcome_hold_is_released_once_and_its_lot_lives_from_then(session, program, clock):
    program.points_expiry_days = 365
    rules.create_rule(session, program, {"title": "Welcome", "trigger": "enrolment", "reward": {"points": 50},
                                         "points_expiry_days": 30})
    member = enrolment.register_member(session, program, email="noa@example.com", password="correct horse",
                                       name="Noa")
    assert balance(session, member.id) == (0, 50)
    [held] = statement.pending_of(session, member.id)
    assert (held.awaits, held.reason, held.points) == ("first_purchase", "welcome", 50)
    clock.advance(days=100)
    assert ledger.release_due(session, program) == 0  # no window to wait out: only a purchase releases it
    assert fraud.release_welcome(session, program, member.id) == 50
    assert fraud.release_welcome(session, program, member.id) == 0
    assert balance(session, member.id) == (50, 0)
    [lot] = session.scalars(select(ledger.Lot).where(ledger.Lot.member_id == member.id)).all()
    assert lot.expires_at == clock.now + timedelta(days=30)  # the rule's 30 days, counted from the release
