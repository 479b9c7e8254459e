"""The segment fields' windows kept per member by the worker, exact to the second when read.

Counting a window of purchases live means aggregating every purchase in it (2.5 million rows for 90 days of a club
with 10 million a year: seconds). :func:`refresh` (the worker, hourly) writes ``segment_activity``: every member's
spend over 30, 90 and 365 days, purchases over 90 and 365 and accepted check-ins over 90, exactly as of a cutoff
``as_of`` an hour before it runs (so the transactions of the purchases before it have long committed). The
segments' compiler reads that row and adds, live, only what changed since (:func:`purchase_changes`,
:func:`visit_changes`): purchases made since the cutoff, those that have since left the window (made between the
cutoff's window start and now's), and those refunded since the cutoff (``refunded_at``; a partial index finds
them). The sum is the value now, exactly; the live part reads a few hours of rows through the BRIN index on
``created_at``. Nothing is added to the till's purchase: the summary is the worker's, and a purchase's insert
writes no ``refunded_at`` (the partial index holds refunded purchases only).

A reader key-share locks one summary row when it reads the cutoff (:func:`as_of`), so a refresh waits for the
reader's transaction instead of replacing the rows under its later statements. A summary older than
:data:`MAX_AGE` (the worker stopped) is not used: the windows are counted live, as before.
The one thing it cannot see is a purchase (or refund) whose transaction commits more than :data:`MARGIN` after the
time it was stamped with.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    case,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    union_all,
)
from sqlalchemy.orm import Session

from ..db import UTCDateTime
from ..program import Program
from ..purchases import Purchase
from .models import SegmentActivity

# Check-ins belong to wallet.instore, a use case above this layer: the three columns read here, named as a table.
CHECK_INS = table("check_ins", column("member_id", String), column("status", String),
                  column("created_at", UTCDateTime()))
PURCHASE_WINDOWS = {"spend_30d": 30, "spend_90d": 90, "spend_365d": 365, "purchases_90d": 90, "purchases_365d": 365}
VISITS_DAYS = 90
FIELDS = frozenset({*PURCHASE_WINDOWS, "visits_90d"})
MARGIN = timedelta(hours=1)  # the cutoff trails the refresh by this much
MAX_AGE = timedelta(days=1)  # an older summary is not read (far below the shortest window: the sums stay exact)


def _counted(purchase_value: str) -> Any:
    return Purchase.amount if purchase_value.startswith("spend") else literal(1)


def _completed_at(at: datetime) -> ColumnElement[bool]:
    """Completed as things stood at ``at``: completed now, or refunded since."""
    return or_(Purchase.status == "completed", Purchase.refunded_at >= at)


def refresh(session: Session, program: Program) -> int:
    """Rewrite the summary as of an hour ago: one DELETE and one INSERT ... SELECT (the year's purchases and the
    quarter's check-ins read once); the number of rows written."""
    cutoff = program.now() - MARGIN
    since = {days: cutoff - timedelta(days=days) for days in {*PURCHASE_WINDOWS.values(), VISITS_DAYS}}
    bought = select(Purchase.member_id.label("member_id"),
                    *[case((Purchase.created_at >= since[days], _counted(name)), else_=0).label(name)
                      for name, days in PURCHASE_WINDOWS.items()],
                    literal(0).label("visits_90d")).where(
        Purchase.created_at >= min(since.values()), Purchase.created_at < cutoff, _completed_at(cutoff))
    came = select(CHECK_INS.c.member_id, *[literal(0).label(name) for name in PURCHASE_WINDOWS],
                  literal(1).label("visits_90d")).where(
        CHECK_INS.c.status == "accepted", CHECK_INS.c.created_at >= since[VISITS_DAYS],
        CHECK_INS.c.created_at < cutoff)
    rows = union_all(bought, came).subquery("activity")
    names = [*PURCHASE_WINDOWS, "visits_90d"]
    summed = select(rows.c.member_id, *[func.sum(rows.c[n]) for n in names], literal(cutoff, UTCDateTime())) \
        .group_by(rows.c.member_id)
    session.execute(delete(SegmentActivity))
    session.execute(insert(SegmentActivity).from_select(["member_id", *names, "as_of"], summed))
    return int(session.scalar(select(func.count()).select_from(SegmentActivity)) or 0)


def as_of(session: Session) -> datetime | None:
    """The summary's cutoff (None: none written, or it holds nobody); every row has the same, one row says it.
    That row stays key-share locked until the caller's transaction ends: a refresh (its DELETE) waits for it, so
    the caller's later statements read the summary of the cutoff they were given, not the next one's rows. While a
    refresh is writing (its DELETE holds every row) the rows are skipped, not waited for: None, and the caller
    counts live (a console's count as the marketer types must not hang for the refresh's half minute)."""
    return session.scalar(select(SegmentActivity.as_of).limit(1)
                          .with_for_update(read=True, key_share=True, skip_locked=True))


def usable(cutoff: datetime | None, now: datetime) -> bool:
    """Whether a summary as of ``cutoff`` may be read at ``now``: written, not from the future, not stale."""
    return cutoff is not None and now - MAX_AGE <= cutoff <= now


def refresh_due(session: Session, program: Program, *, fresh_for: timedelta = timedelta(minutes=30)) -> int:
    """The worker's job: refresh unless the summary was written less than ``fresh_for`` ago; rows written."""
    cutoff = as_of(session)
    if cutoff is not None and cutoff + MARGIN <= program.now() < cutoff + MARGIN + fresh_for:
        return 0
    return refresh(session, program)


def purchase_changes(cutoff: datetime, now: datetime, names: Iterable[str]) -> Select:
    """``(member_id, <name>...)``: what to add to the summary's purchase windows ``names`` (as of ``cutoff``) for
    their values at ``now``, for the members with a change (``usable(cutoff, now)``)."""
    windows = {name: PURCHASE_WINDOWS[name] for name in names}
    new = and_(Purchase.created_at >= cutoff, Purchase.status == "completed")
    refunded = Purchase.refunded_at >= cutoff  # it was completed at the cutoff, and counted if still in the window

    def change(name: str, days: int) -> Any:
        start, left = cutoff - timedelta(days=days), now - timedelta(days=days)
        value = _counted(name)
        return func.coalesce(func.sum(case(
            (new, value),
            (and_(Purchase.created_at >= start, Purchase.created_at < left, _completed_at(cutoff)), -value),
            (and_(Purchase.created_at >= left, Purchase.created_at < cutoff, refunded), -value),
            else_=0)), 0).label(name)
    ranges = [and_(Purchase.created_at >= cutoff - timedelta(days=d), Purchase.created_at < now - timedelta(days=d))
              for d in set(windows.values())]
    return (select(Purchase.member_id.label("member_id"), *[change(n, d) for n, d in windows.items()])
            .where(or_(Purchase.created_at >= cutoff, refunded, *ranges))
            .group_by(Purchase.member_id))


def visit_changes(cutoff: datetime, now: datetime) -> Select:
    """``(member_id, visits_90d)``: what to add to the summary's visits (as of ``cutoff``) for the value at ``now``."""
    start, left = cutoff - timedelta(days=VISITS_DAYS), now - timedelta(days=VISITS_DAYS)
    made = CHECK_INS.c.created_at
    return (select(CHECK_INS.c.member_id.label("member_id"),
                   func.sum(case((made >= cutoff, 1), else_=-1)).label("visits_90d"))
            .where(CHECK_INS.c.status == "accepted", or_(made >= cutoff, and_(made >= start, made < left)))
            .group_by(CHECK_INS.c.member_id))


SPEND_WINDOWS = {30: "spend_30d", 90: "spend_90d", 365: "spend_365d"}  # days: the summary's column


def spend_over(session: Session, now: datetime, days: int) -> CompoundSelect | None:
    """``(member_id, spend)`` over the ``days`` before ``now`` (completed purchases), from the summary plus the
    changes since its cutoff: what :func:`wallet.influence.spend_since` counts, without aggregating the window's
    purchases (a tier review of a year at 10 million: 10 to 25 s). None when the summary keeps no such window or is
    not usable now; a member may have a row of 0."""
    name, cutoff = SPEND_WINDOWS.get(days), as_of(session)
    if name is None or not usable(cutoff, now):
        return None
    assert cutoff is not None
    since = purchase_changes(cutoff, now, [name]).subquery("since")
    kept = SegmentActivity.__table__.c
    # the summary's rows with their changes, then the changes of members it has no row for (no GROUP BY over the
    # two: the planner would guess 200 rows for it and walk a million members by their primary key)
    return union_all(
        select(kept.member_id.label("member_id"), (kept[name] + func.coalesce(since.c[name], 0)).label("spend"))
        .select_from(SegmentActivity.__table__.outerjoin(since, since.c.member_id == kept.member_id)),
        select(since.c.member_id, since.c[name]).where(~exists().where(kept.member_id == since.c.member_id)))
