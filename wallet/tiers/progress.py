"""Moving up at once: each event adds to the member's running totals (on the till's path inside its one
statement), and only an event that takes them to a threshold above the member's tier asks for the exact value and,
if it really crossed, moves the member up in the same transaction (``tier.changed`` and a history row).

Two purchases crossing one threshold at once: both write their totals (the row's lock orders them); the second
finds the member already moved (the move is a conditional UPDATE of ``members.tier``), so one ``tier.changed``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, Integer, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .. import events
from ..db import Money, UTCDateTime, on_postgres, rowcount, table_of
from ..fast_sql import Batch
from ..members import Member
from ..program import Program
from .ladder import Ladder, Step, Totals, may_cross
from .models import MemberTier, TierChange
from .qualifying import value_of

_totals = table_of(MemberTier)


def _upsert(make: Any) -> Any:
    """Add to a member's running totals (the row is made at the first event): ``t_member``, ``t_spend``,
    ``t_points``, ``t_visit`` (1: this event is a visit on ``t_day``, counted once a day), ``t_first`` (a purchase's
    time, kept as the first purchase's if there was none)."""
    statement = make(_totals).values(
        member_id=bindparam("t_member", type_=_totals.c.member_id.type),
        spend=bindparam("t_spend", type_=Money), points=bindparam("t_points", type_=BigInteger()),
        visits=bindparam("t_visit", type_=Integer()), last_visit_on=bindparam("t_day", type_=Date()),
        first_purchase_at=bindparam("t_first", type_=UTCDateTime()))
    new = statement.excluded
    same_day = (new.visits == 0) | (_totals.c.last_visit_on == new.last_visit_on)
    return statement.on_conflict_do_update(index_elements=[_totals.c.member_id], set_={
        "spend": _totals.c.spend + new.spend, "points": _totals.c.points + new.points,
        "visits": _totals.c.visits + case((same_day, 0), else_=1),
        "last_visit_on": func.coalesce(new.last_visit_on, _totals.c.last_visit_on),
        "first_purchase_at": func.coalesce(_totals.c.first_purchase_at, new.first_purchase_at)})


# Built once per dialect (every purchase binds its values into one of them).
_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}
_UPSERT_RETURNING = {name: s.returning(_totals.c.spend, _totals.c.points, _totals.c.visits, _totals.c.last_visit_on)
                     for name, s in _UPSERT.items()}


@dataclass(frozen=True)
class Counted:
    """What one event adds to the running totals."""

    spend: Decimal = Decimal(0)
    points: int = 0
    visit: bool = False
    purchase_at: datetime | None = None

    def after(self, totals: Totals, today: date) -> Totals:
        """The totals once this event is counted (as the statement will compute them)."""
        visits = totals.visits + (1 if self.visit and totals.last_visit_on != today else 0)
        return Totals(totals.spend + self.spend, totals.points + self.points, visits,
                      today if self.visit else totals.last_visit_on)

    def params(self, member_id: str, today: date) -> dict[str, Any]:
        return {"t_member": member_id, "t_spend": self.spend, "t_points": self.points,
                "t_visit": 1 if self.visit else 0, "t_day": today if self.visit else None,
                "t_first": self.purchase_at}


def _dialect(session: Session) -> str:
    return "postgresql" if on_postgres(session) else "sqlite"


def count_in_batch(session: Session, batch: Batch, ladder: Ladder, *, member_id: str, tier: str | None,
                   totals: Totals, counted: Counted, now: datetime) -> bool:
    """The till's part: its totals' update joins the purchase's batch (on PostgreSQL, one more CTE of its one
    statement); answers whether the purchase may cross a threshold (then the caller writes the batch inside a
    transaction and calls :func:`settle`)."""
    today = now.date()
    batch.statements.append((_UPSERT[_dialect(session)], counted.params(member_id, today)))
    return may_cross(ladder, tier, counted.after(totals, today))


def count(session: Session, program: Program, ladder: Ladder, member_id: str, counted: Counted, *,
          channel: str, cause: str) -> TierChange | None:
    """Count an event (a check-in, points earned, a refund's negative part) in the caller's transaction, and move
    the member up at once if it crossed a threshold."""
    now = program.now()
    row = session.execute(_UPSERT_RETURNING[_dialect(session)], counted.params(member_id, now.date())).first()
    if row is None or not ladder.above(None):
        return None
    tier = session.scalar(select(Member.tier).where(Member.id == member_id))
    totals = Totals(Decimal(row.spend or 0), int(row.points or 0), int(row.visits or 0), row.last_visit_on)
    if not may_cross(ladder, tier, totals):
        return None
    return settle(session, program, ladder, member_id, channel=channel, cause=cause)


_METRIC_WORDS = {"spend": "spent", "points_earned": "points earned", "visits": "visits",
                 "referral_value": "referral value"}


def qualified_step(session: Session, program: Program, ladder: Ladder, member_id: str, code: str | None,
                   now: datetime) -> tuple[Step, Decimal] | None:
    """The highest tier above ``code`` whose exact qualifying value the member reaches now, with that value.
    Tiers on referral value are left to the review: a member's own events do not change it (their friends'
    purchases do, counted there)."""
    values: dict[tuple[str, int], Decimal] = {}
    for step in reversed(ladder.above(code)):
        if step.metric == "referral_value":
            continue
        key = (step.metric, step.window_days)
        if key not in values:
            values[key] = value_of(session, member_id, step.metric, step.since(now),
                                   second_degree=program.influence_second_degree)
        if values[key] >= step.threshold:
            return step, values[key]
    return None


def settle(session: Session, program: Program, ladder: Ladder, member_id: str, *, channel: str,
           cause: str) -> TierChange | None:
    """After an event that may have crossed (its rows written in this transaction): the exact values decide."""
    now = program.now()
    code = session.scalar(select(Member.tier).where(Member.id == member_id))
    found = qualified_step(session, program, ladder, member_id, code, now)
    if found is None:
        return None
    step, value = found
    detail = (f"{_METRIC_WORDS[step.metric].capitalize()} in {step.window_days} days: {step.value(value)} "
              f"(needs {step.value(step.threshold)})")
    return move(session, program, member_id, from_code=code, to=step, reason="qualified", detail=detail,
                actor=cause, channel=channel)


def move(session: Session, program: Program, member_id: str, *, from_code: str | None, to: Step, reason: str,
         detail: str, actor: str, channel: str, keeps_until: datetime | None = None) -> TierChange | None:
    """Move a member from ``from_code`` to ``to``: ``members.tier`` (only if it is still ``from_code``: a concurrent
    move wins once), their tier state, a history row and ``tier.changed``. None if someone else moved them first."""
    now = program.now()
    done = session.execute(update(Member).where(Member.id == member_id, Member.tier == from_code)
                           .values(tier=to.code).execution_options(synchronize_session=False))
    if not rowcount(done):
        return None
    cached = session.identity_map.get(session.identity_key(Member, member_id))
    if cached is not None:
        session.expire(cached, ["tier"])
    state = session.get(MemberTier, member_id)
    if state is None:
        state = MemberTier(member_id=member_id, spend=Decimal(0), points=0, visits=0)
        session.add(state)
    state.tier_since = now
    state.keeps_until = keeps_until or now + timedelta(days=to.retain_days)
    change = TierChange(member_id=member_id, from_code=from_code, to_code=to.code, reason=reason,
                        detail=detail[:240], actor=actor[:64], created_at=now)
    session.add(change)
    session.flush()
    events.emit(session, "tier.changed", member_id=member_id, channel=events.channel_of(channel, "job"),
                actor=actor[:64], occurred_at=now,
                data={"from": from_code or "", "to": to.code, "reason": reason, "change_id": change.id,
                      "rank": to.rank})
    return change
