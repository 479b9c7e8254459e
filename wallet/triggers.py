"""Life-event triggers: birthdays and inactivity, fired by the ``loyalty triggers run`` job.

The job is safe to run many times a day and from several hosts at once. Each life event has a deterministic
source (``birthday:<member>:<year>``, ``inactivity:<days>:<member>:<last activity>``) and is *claimed* by
inserting it into ``life_events`` (unique source, ``INSERT ... ON CONFLICT DO NOTHING``) in the same
transaction as its rewards. A second run, or a second host, finds the claim and skips the member: the rules
are evaluated once per life event, so a surprise is drawn once, not once per run. On PostgreSQL a host that
meets another's uncommitted claim waits for it and then skips. Behind that, the rule grants' unique
(rule, source) and the ledger's idempotency keys would refuse a duplicate anyway.

Birthdays are celebrated on the member's birthday in the programme's timezone; members born on 29 February
are celebrated on 28 February in years without one (still in their birthday month, and never twice).
A member is inactive after N days without activity: a purchase, an accepted check-in, a scan, a coupon
redeemed, points spent, or enrolment. One quiet spell fires each inactivity threshold once; activity starts
a new spell. Only the rules active when the job reaches the member apply.
"""
from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ForeignKey, Index, String, and_, exists, extract, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from . import rules
from .clock import iso, utcnow
from .coupons.models import Redemption
from .db import Base, Points, id_column
from .instore import CheckIn, Scan
from .ledger import LedgerEntry
from .members import Member
from .program import Program
from .purchases import Purchase


class LifeEvent(Base):
    """A birthday or an inactivity spell the job celebrated (or nudged): claimed once, with what it granted."""

    __tablename__ = "life_events"
    __table_args__ = (Index("ix_life_events_member", "member_id", "trigger", "threshold_days"),)

    id: Mapped[str] = id_column("lev")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    trigger: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(80), unique=True)
    threshold_days: Mapped[int | None]  # inactivity: the quiet days this event marks
    anchor_at: Mapped[datetime | None]  # inactivity: the last activity the spell counts from
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict] = mapped_column(default=dict)
    grants: Mapped[int] = mapped_column(default=0)
    points: Mapped[int] = mapped_column(Points, default=0)


@dataclass
class Tally:
    events: int = 0
    grants: int = 0
    points: int = 0

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.grants += other.grants
        self.points += other.points


@dataclass
class _Batch:
    found: int = 0
    tally: Tally = field(default_factory=Tally)


# ---------------------------------------------------------------- birthdays

def celebrated_on(born: date, year: int) -> date:
    """The day a birthday is celebrated in ``year``: 29 February falls on 28 February in a common year."""
    if born.month == 2 and born.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return born.replace(year=year)


def _birthdays_on(day: date) -> list[tuple[int, int]]:
    days = [(day.month, day.day)]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        days.append((2, 29))
    return days


def birthday_source(member_id: str, year: int) -> str:
    return f"birthday:{member_id}:{year}"


def birthdays_batch(session: Session, program: Program, *, day: date, limit: int = 200) -> _Batch:
    """Celebrate up to ``limit`` members whose birthday is ``day`` and who were not celebrated this year yet."""
    now = program.now()
    source = literal("birthday:") + Member.id + literal(f":{day.year}")
    born_today = or_(*(and_(extract("month", Member.birthday) == m, extract("day", Member.birthday) == d)
                       for m, d in _birthdays_on(day)))
    ids = list(session.scalars(
        select(Member.id).where(Member.status == "active", Member.birthday.is_not(None), born_today,
                                ~exists().where(LifeEvent.source == source))
        .order_by(Member.id).limit(limit)))
    batch = _Batch(found=len(ids))
    for member_id in ids:
        event = rules.Event(trigger="birthday", member_id=member_id, source=birthday_source(member_id, day.year),
                            channel="job", occurred_at=now, attributes={"celebrated_on": day.isoformat()})
        batch.tally.add(_celebrate(session, program, event, detail={"celebrated_on": day.isoformat()}))
    return batch


# ---------------------------------------------------------------- inactivity

def _activity_sources() -> list[tuple[Any, Any, Any, list[Any]]]:
    """What counts as the member doing something: (table, member column, time column, filters)."""
    return [
        (Purchase.__table__, Purchase.member_id, Purchase.created_at, []),
        (CheckIn.__table__, CheckIn.member_id, CheckIn.created_at, [CheckIn.status == "accepted"]),
        (Scan.__table__, Scan.member_id, Scan.created_at, []),
        (Redemption.__table__, Redemption.member_id, Redemption.redeemed_at, []),
        (LedgerEntry.__table__, LedgerEntry.member_id, LedgerEntry.created_at, [LedgerEntry.kind == "spend"]),
    ]


def _active_after(sources: list, member_id: Any, after: Any) -> Any:
    return or_(*(exists().where(member_col == member_id, at > after, *conds)
                 for _, member_col, at, conds in sources))


def _last_activity(session: Session, sources: list, member_ids: list[str]) -> dict[str, datetime]:
    last = dict(session.execute(select(Member.id, Member.created_at).where(Member.id.in_(member_ids))).all())
    for _table, member_col, at, conds in sources:
        for member_id, when in session.execute(select(member_col, func.max(at)).where(member_col.in_(member_ids), *conds)
                                               .group_by(member_col)).all():
            if when is not None and isinstance(when, datetime):
                when = when if when.tzinfo else when.replace(tzinfo=last[member_id].tzinfo)
                last[member_id] = max(last[member_id], when)
    return last


def inactivity_thresholds(session: Session, now: datetime) -> list[int]:
    """The quiet-day thresholds of the active inactivity rules."""
    found = rules.active_rules(session, "inactivity", now)
    return sorted({r.conditions["inactive_days"] for r in found if "inactive_days" in (r.conditions or {})})


def inactivity_batch(session: Session, program: Program, *, days: int, limit: int = 200) -> _Batch:
    """Fire ``inactivity`` for up to ``limit`` members quiet for ``days`` days whose spell wasn't marked yet."""
    now = program.now()
    cutoff = now - timedelta(days=days)
    sources = _activity_sources()
    earlier = aliased(LifeEvent)
    marked = exists().where(earlier.member_id == Member.id, earlier.trigger == "inactivity",
                            earlier.threshold_days == days, ~_active_after(sources, Member.id, earlier.anchor_at))
    ids = list(session.scalars(
        select(Member.id).where(Member.status == "active", Member.created_at <= cutoff,
                                ~_active_after(sources, Member.id, cutoff), ~marked)
        .order_by(Member.id).limit(limit)))
    batch = _Batch(found=len(ids))
    last = _last_activity(session, sources, ids) if ids else {}
    for member_id in ids:
        anchor = last[member_id]
        source = f"inactivity:{days}:{member_id}:{anchor:%Y%m%dT%H%M%S}"
        detail = {"inactive_days": days, "last_activity_at": iso(anchor)}
        event = rules.Event(trigger="inactivity", member_id=member_id, source=source, channel="job",
                            occurred_at=now, attributes=dict(detail))
        batch.tally.add(_celebrate(session, program, event, detail=detail, threshold_days=days, anchor_at=anchor))
    return batch


# ---------------------------------------------------------------- the job

def _claim(session: Session, values: dict[str, Any]) -> bool:
    """Record a life event unless it is recorded already (by an earlier run or another host)."""
    dialect = session.get_bind().dialect.name
    upserts: dict[str, Callable[[type[LifeEvent]], postgresql.Insert | sqlite.Insert]] = {
        "postgresql": postgresql.insert, "sqlite": sqlite.insert}
    insert = upserts.get(dialect)
    if insert is None:
        if session.scalar(select(LifeEvent.id).where(LifeEvent.source == values["source"])):
            return False
        session.add(LifeEvent(**values))
        session.flush()
        return True
    stmt = insert(LifeEvent).values(values).on_conflict_do_nothing(index_elements=["source"]).returning(LifeEvent.id)
    return session.execute(stmt).first() is not None


def _celebrate(session: Session, program: Program, event: rules.Event, *, detail: dict[str, Any],
               threshold_days: int | None = None, anchor_at: datetime | None = None) -> Tally:
    claimed = _claim(session, {"member_id": event.member_id, "trigger": event.trigger, "source": event.source,
                               "threshold_days": threshold_days, "anchor_at": anchor_at,
                               "occurred_at": event.occurred_at, "detail": detail, "grants": 0, "points": 0})
    if not claimed:
        return Tally()
    grants = rules.fire(session, program, event)
    points = sum(g.points for g in grants)
    if grants:
        session.execute(update(LifeEvent).where(LifeEvent.source == event.source)
                        .values(grants=len(grants), points=points), execution_options={"synchronize_session": False})
    return Tally(events=1, grants=len(grants), points=points)


def fire_once(session: Session, program: Program, *, trigger: str, member_id: str, source: str, channel: str = "app",
              detail: dict[str, Any] | None = None) -> Tally:
    """Fire a life event that happens once per member ever (``data_shared``, ``profile_completed``): claimed
    under ``source`` in the caller's transaction, so a second call (or a concurrent one) fires nothing."""
    event = rules.Event(trigger=trigger, member_id=member_id, source=source, channel=channel,
                        occurred_at=program.now(), attributes=dict(detail or {}))
    return _celebrate(session, program, event, detail=dict(detail or {}))


def run(session: Session, program: Program, *, day: date | None = None, batch_size: int = 200,
        commit: Callable[[], None] | None = None) -> dict[str, Tally]:
    """Fire the time-based triggers due now: birthdays of ``day`` (today in the programme's timezone) and
    inactivity. Commits (through ``commit``) after each batch; idempotent, and safe beside another run."""
    commit = commit or session.flush
    now = program.now()
    day = day or now.astimezone(program.tz).date()
    summary = {"birthday": Tally(), "inactivity": Tally()}
    if rules.active_rules(session, "birthday", now):
        _drain(lambda: birthdays_batch(session, program, day=day, limit=batch_size), summary["birthday"], batch_size,
               commit)
    for days in inactivity_thresholds(session, now):
        _drain(partial(inactivity_batch, session, program, days=days, limit=batch_size), summary["inactivity"],
               batch_size, commit)
    return summary


def _drain(batch: Callable[[], _Batch], tally: Tally, size: int, commit: Callable[[], None]) -> None:
    while True:
        done = batch()
        commit()
        tally.add(done.tally)
        # Members another host claimed are skipped here and not found again, so this ends.
        if done.found < size:
            return


