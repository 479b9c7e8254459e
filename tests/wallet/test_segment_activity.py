"""The segments' activity summary (wallet.segments.activity): written as of an hour before the refresh, read with
what changed since (purchases made, refunded, or gone out of a window; check-ins), the windows are exactly what a
live count gives, at any time up to a day later; older, or from the future, it is not read."""
from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import OperationalError

from api.cli import scheduled_jobs
from wallet import segments
from wallet.members import Member
from wallet.purchases import Purchase
from wallet.segments import activity
from wallet.segments.models import SegmentActivity
from wallet.segments.sql import _Compiler, compile_criteria

from .test_segments import NOW, _member, _purchase, _store, _visit, ids

FIELDS = ["spend_30d", "spend_90d", "spend_365d", "purchases_90d", "purchases_365d", "visits_90d"]


def _club(session, rng: random.Random) -> list[str]:
    """Members with purchases and check-ins everywhere, and many right at the windows' edges as of NOW - 1 hour (the
    summary's cutoff) and as of the hours after it."""
    store = _store(session)
    people = [_member(session, i).id for i in range(8)]
    for _ in range(120):
        edge = rng.choice([0, 30, 90, 365, None])
        at = NOW - (timedelta(days=edge, hours=rng.uniform(-8, 3)) if edge is not None
                    else timedelta(days=rng.uniform(0, 400)))
        _purchase(session, store, rng.choice(people), str(Decimal(rng.randrange(100, 40000)) / 100), at,
                  rng.choice(["completed"] * 5 + ["refunded"]))
    for _ in range(40):
        edge = rng.choice([0, 90, None])
        at = NOW - (timedelta(days=edge, hours=rng.uniform(-8, 3)) if edge is not None
                    else timedelta(days=rng.uniform(0, 120)))
        _visit(session, store, rng.choice(people), at, rng.choice(["accepted"] * 4 + ["refused"]))
    session.flush()
    return people


def _values(session, program) -> dict[str, dict[str, object]]:
    """Every member's window fields as a segment's SQL computes them now (the summary if usable, else live)."""
    criteria = {"all": [{"field": f, "op": ">=", "value": 0} for f in FIELDS]}
    compiler = _Compiler(program, segments.check_criteria(criteria), activity.as_of(session))
    source = Member.__table__
    for joined, on in compiler.joins:
        source = source.outerjoin(joined, on)
    rows = session.execute(select(Member.id, *[compiler.columns[f] for f in FIELDS]).select_from(source))
    return {member_id: dict(zip(FIELDS, (Decimal(v) for v in values), strict=True)) for member_id, *values in rows}


def _live(session, program) -> dict[str, dict[str, object]]:
    """The same, counted live: the summary set aside for the count."""
    kept = [(row.member_id, row.spend_30d) for row in session.scalars(select(SegmentActivity))]
    session.execute(update(SegmentActivity).values(as_of=NOW - timedelta(days=400)))  # too old: not read
    values = _values(session, program)
    session.execute(update(SegmentActivity).values(as_of=NOW - activity.MARGIN))
    assert kept
    return values


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_summary_and_the_changes_since_equal_the_live_count(session, program, clock, seed):
    rng = random.Random(seed)
    people = _club(session, rng)
    assert activity.refresh(session, program) == len(session.scalars(select(SegmentActivity.member_id)).all()) > 0
    assert activity.as_of(session) == NOW - activity.MARGIN
    store = _store(session)
    # after the cutoff: purchases made (one in the hour before the refresh: its transaction was still open),
    # check-ins, and purchases refunded (old and new ones) as the hours go by
    _purchase(session, store, people[0], "123.45", NOW - timedelta(minutes=20))
    for hours in (2, 5, 9):
        _purchase(session, store, rng.choice(people), str(Decimal(rng.randrange(100, 40000)) / 100),
                  NOW + timedelta(hours=hours - 1))
        _visit(session, store, rng.choice(people), NOW + timedelta(hours=hours - 1))
    session.flush()
    completed = list(session.scalars(select(Purchase).where(Purchase.status == "completed")
                                     .order_by(Purchase.created_at, Purchase.id)))
    refunds = sorted(((NOW + timedelta(minutes=rng.randrange(-50, 1400)), p) for p in rng.sample(completed, 15)),
                     key=lambda r: r[0])
    checked = 0
    for hours in (0, 1, 4, 10, 23, 24):
        clock.now = NOW - activity.MARGIN + timedelta(hours=hours)
        for at, purchase in refunds:
            if at <= clock.now and purchase.refunded_at is None:
                purchase.status, purchase.refunded_at = "refunded", at
        session.flush()
        summarised, live = _values(session, program), _live(session, program)
        assert summarised == live, hours
        checked += sum(1 for row in live.values() for v in row.values() if v)
    assert checked > 100


def test_the_summary_is_what_is_read_while_it_is_usable(session, program, clock):
    store = _store(session)
    _member(session, 1)
    _purchase(session, store, "mem_T0001", "50.00", NOW - timedelta(days=10))
    session.flush()
    activity.refresh(session, program)
    criteria = {"field": "spend_90d", "op": ">=", "value": "1000"}
    assert ids(session, program, criteria) == []
    # what the summary says is believed (plus the changes since): here, a row made wrong on purpose
    session.execute(update(SegmentActivity).values(spend_90d=Decimal("5000.00")))
    assert ids(session, program, criteria) == ["mem_T0001"]
    assert "segment_activity" in str(segments.member_ids(session, criteria, program=program))
    # one member's test (a rule's, an offer's) counts that member's purchases: one query, no summary read
    assert segments.contains(session, criteria, "mem_T0001", program=program) is False
    clock.now = NOW - activity.MARGIN + activity.MAX_AGE
    assert ids(session, program, criteria) == ["mem_T0001"]
    clock.now = NOW - activity.MARGIN + activity.MAX_AGE + timedelta(seconds=1)  # stale: counted live
    assert ids(session, program, criteria) == []
    clock.now = NOW - activity.MARGIN - timedelta(seconds=1)  # before its cutoff: counted live
    assert ids(session, program, criteria) == []
    # fields it does not keep never read it
    assert "segment_activity" not in str(compile_criteria(program, segments.check_criteria(
        {"field": "points_balance", "op": ">", "value": 1}), activity_as_of=NOW))


def test_the_worker_refreshes_it_once_it_is_half_an_hour_old(session, program, clock):
    store = _store(session)
    _member(session, 1)
    _purchase(session, store, "mem_T0001", "50.00", NOW - timedelta(days=10))
    session.flush()
    (job,) = [job for job in scheduled_jobs() if job.name == "segments-activity"]
    assert job.every == timedelta(hours=1)
    assert job.run(session, program) == 1
    assert job.run(session, program) == 0  # the worker calls again until 0: done
    clock.now = NOW + timedelta(minutes=29)
    assert activity.refresh_due(session, program) == 0
    clock.now = NOW + timedelta(minutes=30)
    assert activity.refresh_due(session, program) == 1
    assert activity.as_of(session) == clock.now - activity.MARGIN


@pytest.mark.postgres
def test_a_refresh_waits_for_the_transaction_that_read_the_cutoff(session, program, clock):
    """A reader's later statements see the summary of the cutoff it read: the next refresh's DELETE waits."""
    store = _store(session)
    _member(session, 1)
    _purchase(session, store, "mem_T0001", "50.00", NOW - timedelta(days=10))
    session.flush()
    activity.refresh(session, program)
    session.commit()
    assert activity.as_of(session) == NOW - activity.MARGIN
    engine = session.get_bind()
    with engine.connect() as other:
        other.execute(text("SET lock_timeout = '300ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            other.execute(delete(SegmentActivity))
        other.rollback()
    session.commit()  # the reader is done: the refresh goes ahead
    with engine.connect() as other:
        assert other.execute(delete(SegmentActivity)).rowcount == 1
        other.rollback()


@pytest.mark.postgres
def test_a_reader_does_not_wait_for_a_refresh_that_is_writing(session, program, clock):
    """While a refresh's transaction holds the summary's rows (deleted, its new rows not committed), a segment's
    query counts live at once (the same members), instead of waiting for the refresh to commit."""
    store = _store(session)
    _member(session, 1)
    _member(session, 2)
    _purchase(session, store, "mem_T0001", "350.00", NOW - timedelta(days=10))
    session.flush()
    activity.refresh(session, program)
    session.commit()
    criteria = {"all": [{"field": "spend_90d", "op": ">=", "value": "300.00"}]}
    assert ids(session, program, criteria) == ["mem_T0001"]
    session.commit()
    engine = session.get_bind()
    with engine.connect() as refresh:  # a refresh under way: its DELETE done, not committed
        refresh.execute(delete(SegmentActivity))
        session.execute(text("SET LOCAL lock_timeout = '300ms'"))  # waiting for the refresh would fail here
        assert activity.as_of(session) is None
        assert ids(session, program, criteria) == ["mem_T0001"]
        session.rollback()
        refresh.rollback()
    assert activity.as_of(session) == NOW - activity.MARGIN  # the refresh rolled back: the summary is read again
