"""The KPI summary job: the worker folds the event log into ``kpi_days``, ``kpi_member_days`` and
``kpi_active_changes`` a batch at a time, in commit order, behind its own event cursor (``kpis``).

Each batch is a stretch of the log (``events.after``) aggregated by SQL in three statements, written in the same
transaction as the cursor's move: a batch counts once or not at all, so running the job twice is running it once.
The same selects, run on what the job has not reached yet, give the reader today's latest counts (``figures``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Numeric,
    Select,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal_column,
    select,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .. import events
from ..coupons import Coupon
from ..db import new_id, on_postgres, table_of
from ..events import EventCursor
from ..program import Program
from ..purchases import Purchase
from .days import prepare, sql_local_day
from .models import COUNTERS, KpiActiveChange, KpiDay, KpiMemberDay

CURSOR = "kpis"  # the event cursor the summary follows
BATCH = 50_000  # events per transaction
LEASE = timedelta(minutes=10)
WINDOWS = (30, 90)  # active_30d, active_90d
# A member is active on a day when they bought or checked in.
ACTIVITY_TYPES = ("purchase.recorded", "check_in.recorded")
# What ``by_channel`` counts: a member's or a marketer's own actions, one per action (the points, rewards and
# coupons a purchase brings with it are not counted again).
ACTION_TYPES = ("member.enrolled", "purchase.recorded", "purchase.refunded", "check_in.recorded", "scan.recorded",
                "coupon.redeemed", "message.sent")
SUMMARISED_TYPES = tuple(sorted({
    "member.enrolled", "member.erased", "purchase.recorded", "purchase.refunded", "points.earned", "points.spent",
    "points.expired", "points.adjusted", "coupon.issued", "coupon.redeemed", "coupon.redemption_rolled_back",
    "message.sent", *ACTION_TYPES}))

_events = table_of(events.Event)
_purchases = table_of(Purchase)
_coupons = table_of(Coupon)
_days = table_of(KpiDay)
_member_days = table_of(KpiMemberDay)
_changes = table_of(KpiActiveChange)
_OWNER = f"kpis:{os.getpid()}:{new_id('w')[-8:]}"


def _cents(amount: Any) -> Any:
    """A decimal amount (a string from an event's data, or a money column) in cents, exactly."""
    return cast(func.round(cast(amount, Numeric(14, 2)) * 100), BigInteger)


def _zero() -> Any:
    return literal_column("0", BigInteger)


def day_rows(session: Session, tz: str, where: Any) -> Select:
    """(day, channel, *COUNTERS) of the events matching ``where``, one row per club day and channel."""
    e, data, kind = _events, _events.c.data, _events.c.type
    points = data["points"].as_integer()
    movement = data["kind"].as_string()

    def one(*types: str) -> Any:
        return case((kind.in_(types), 1), else_=0)

    def only(condition: Any, value: Any) -> Any:
        return case((condition, value), else_=0)

    per_event = {
        "members_new": one("member.enrolled"),
        "members_erased": one("member.erased"),
        "purchases": one("purchase.recorded"),
        "revenue_cents": only(kind == "purchase.recorded", _cents(data["amount"].as_string())),
        "refunds": one("purchase.refunded"),
        # A partial return's event may carry its amount; a whole refund's is the purchase's (looked up by its key,
        # for refunds only: a correlated subquery the CASE evaluates only for them).
        "refunded_cents": only(kind == "purchase.refunded",
                               func.coalesce(_cents(data["amount"].as_string()), _cents(
                                   select(_purchases.c.amount).where(_purchases.c.id == data["purchase_id"].as_string())
                                   .scalar_subquery()), 0)),
        # A purchase's credit is in its own event (points_credited: what was not held as pending; a hold released
        # later writes points.earned then).
        "points_issued": case((kind == "points.earned", points),
                              (kind == "purchase.recorded", func.coalesce(data["points_credited"].as_integer(), 0)),
                              else_=0),
        "points_redeemed": only(kind == "points.spent", points),
        "points_expired": only(kind == "points.expired", points),
        "points_adjusted": only((kind == "points.adjusted") & (movement == "adjust"), points),
        "points_reversed": only((kind == "points.adjusted") & (movement == "reverse"), points),
        "coupons_issued": one("coupon.issued"),
        "coupons_redeemed": case((kind == "coupon.redeemed", 1), (kind == "coupon.redemption_rolled_back", -1),
                                 else_=0),
        "coupons_redeemed_of_issued": _zero(),
        "messages_sent": one("message.sent"),
        "actions": one(*ACTION_TYPES),
    }
    main = (select(sql_local_day(session, e.c.occurred_at, tz).label("day"), e.c.channel.label("channel"),
                   *[value.label(name) for name, value in per_event.items()])
            .where(where, kind.in_(SUMMARISED_TYPES)))
    # A redemption (or its rollback) also counts on the day its coupon was issued: the rate of a period's coupons.
    issued_at = select(_coupons.c.issued_at).where(_coupons.c.id == data["coupon_id"].as_string()).scalar_subquery()
    cohort = (select(sql_local_day(session, issued_at, tz).label("day"), e.c.channel.label("channel"),
                     *[(per_event["coupons_redeemed"] if name == "coupons_redeemed_of_issued" else _zero()).label(name)
                       for name in COUNTERS])
              .where(where, kind.in_(("coupon.redeemed", "coupon.redemption_rolled_back"))))
    both = union_all(main, cohort).subquery("per_event")
    return (select(both.c.day, both.c.channel,
                   *[cast(func.sum(both.c[name]), BigInteger).label(name) for name in COUNTERS])
            .group_by(both.c.day, both.c.channel))


def active_changes(session: Session, tz: str, where: Any, *, record: bool = False) -> Select:
    """(window_days, day, delta): how the events matching ``where`` change the active-member counts.

    Each active day d of a member counts them as active from d until the next of their active days or d + N,
    whichever comes first (so a member counts once however many days they were active). A day new to the member
    changes only its own span and its stored predecessor's: the spans of its stored neighbours (read from
    ``kpi_member_days`` by key) before and after it is added are all the change, in any order of arrival."""
    e, kept = _events, _member_days
    acts = (select(e.c.member_id.label("member_id"), sql_local_day(session, e.c.occurred_at, tz).label("day"))
            .where(where, e.c.type.in_(ACTIVITY_TYPES), e.c.member_id.is_not(None)).distinct().cte("acts"))
    new = (select(acts.c.member_id, acts.c.day)
           .where(~exists().where(kept.c.member_id == acts.c.member_id, kept.c.day == acts.c.day)).cte("new_days"))

    # The stored days whose span a new day can change, and those that bound it: each new day's stored neighbours,
    # found by the member's key (one index probe each), never the member's whole history.
    def neighbour(bound: Any, side: Any) -> Select:
        nearest = (select(bound(kept.c.day)).where(kept.c.member_id == new.c.member_id, side(kept.c.day, new.c.day))
                   .scalar_subquery())
        return select(new.c.member_id.label("member_id"), nearest.label("day"))

    around = union(neighbour(func.max, lambda kept_day, day: kept_day < day),
                   neighbour(func.min, lambda kept_day, day: kept_day > day)).subquery("around")
    old = select(around.c.member_id, around.c.day).where(around.c.day.is_not(None)).cte("old_days")
    after = union_all(select(old.c.member_id, old.c.day), select(new.c.member_id, new.c.day)).cte("all_days")

    def spans(days: Any, sign: int) -> Select:
        following = func.lead(days.c.day).over(partition_by=days.c.member_id, order_by=days.c.day)
        return select(days.c.day.label("day"), following.label("following"),
                      literal_column(str(sign), Integer).label("sign"))

    seq = union_all(spans(old, -1), spans(after, 1)).cte("spans")
    parts = []
    for n in WINDOWS:
        until = case(((seq.c.following.is_not(None)) & (seq.c.following < seq.c.day + n), seq.c.following),
                     else_=seq.c.day + n)
        parts.append(select(literal_column(str(n), Integer).label("window_days"), seq.c.day.label("day"),
                            seq.c.sign.label("delta")))
        parts.append(select(literal_column(str(n), Integer), until, -seq.c.sign))
    ends = union_all(*parts).subquery("ends")
    total = func.sum(ends.c.delta)
    changes = (select(ends.c.window_days, ends.c.day, cast(total, BigInteger).label("delta"))
               .group_by(ends.c.window_days, ends.c.day).having(total != 0))
    if record:
        changes = changes.add_cte(pg_insert(kept).from_select(["member_id", "day"], select(new.c.member_id, new.c.day))
                                  .cte("recorded"))
    return changes


_TAILS: dict[tuple[bool, str], tuple[Select, Select]] = {}


def tail(session: Session, tz: str) -> tuple[Select, Select]:
    """``day_rows`` and ``active_changes`` of the events after a cursor given as the parameters ``after_xact`` and
    ``after_position``: built once per database kind and timezone (every answer runs them)."""
    key = (on_postgres(session), tz)
    if key not in _TAILS:
        where = events.after(session, (bindparam("after_xact", type_=BigInteger()),
                                       bindparam("after_position", type_=BigInteger())))
        _TAILS[key] = (day_rows(session, tz, where), active_changes(session, tz, where))
    prepare(session)
    return _TAILS[key]


def _upsert(session: Session, table: Any, names: list[str], rows: Select, keys: list[str], add: list[str]) -> None:
    insert = pg_insert if on_postgres(session) else sqlite_insert
    statement = insert(table).from_select(names, rows)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + statement.excluded[name] for name in add})
    session.execute(statement)


def summarise(session: Session, program: Program, *, batch_size: int = BATCH, owner: str = _OWNER) -> int:
    """Fold the next batch of the log into the summaries; how many events it read (0: none left). The caller
    commits; until then the cursor's row is locked, so two summarisers never count one batch twice."""
    now = program.now()
    claimed = events.claim_cursor(session, CURSOR, owner, now, LEASE)
    if claimed is None:
        return 0
    upto = events.last_of_next(session, claimed.after, batch_size)
    if upto is None:
        events.advance_cursor(session, claimed, claimed.after, release=True, now=now)
        return 0
    where = events.after(session, claimed.after, upto)
    tz = program.timezone
    _upsert(session, _days, ["day", "channel", *COUNTERS], day_rows(session, tz, where), ["day", "channel"],
            list(COUNTERS))
    # The changes read the member days as they were before this batch: written first (on PostgreSQL the same
    # statement records the batch's new member days).
    postgres = on_postgres(session)
    _upsert(session, _changes, ["window_days", "day", "delta"], active_changes(session, tz, where, record=postgres),
            ["window_days", "day"], ["delta"])
    if not postgres:
        acts = (select(_events.c.member_id, sql_local_day(session, _events.c.occurred_at, tz))
                .where(where, _events.c.type.in_(ACTIVITY_TYPES), _events.c.member_id.is_not(None)).distinct())
        session.execute(sqlite_insert(_member_days).from_select(["member_id", "day"], acts).on_conflict_do_nothing())
    read = session.scalar(select(func.count()).select_from(_events).where(where)) or 0
    events.advance_cursor(session, claimed, upto, release=True, now=now)
    return int(read)


def summarise_all(session: Session, program: Program, commit: Callable[[], None], *,
                  batch_size: int = BATCH) -> int:
    """Run the job until it has caught up (``loyalty kpis summarise``, the demo, the benchmark); events read."""
    total = 0
    while True:
        done = summarise(session, program, batch_size=batch_size)
        commit()
        if not done:
            return total
        total += done


def forget(session: Session) -> None:
    """Drop the summaries and the cursor (``loyalty kpis rebuild``: after LOYALTY_TIMEZONE changed). The caller
    commits, then runs the job again from the start of the log."""
    for table in (_days, _member_days, _changes):
        session.execute(delete(table))
    session.execute(delete(table_of(EventCursor)).where(table_of(EventCursor).c.name == CURSOR))


def position(session: Session) -> tuple[int, int]:
    """How far the summaries have read the log."""
    row = session.execute(select(EventCursor.xact_id, EventCursor.position).where(EventCursor.name == CURSOR)).first()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))
