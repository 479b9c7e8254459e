"""Where a member stands: their tier, what the next one needs, how long they keep theirs; status matches by hand."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Invalid, NotFound
from ..members import Member, get_member
from ..program import Program
from .catalogue import current
from .ladder import Ladder, Step, shown_value
from .models import MemberTier, TierChange
from .progress import move
from .qualifying import value_of

MAX_MATCH_DAYS = 3 * 366


_NEEDS = {"spend": "Spend {n} more", "points_earned": "Earn {n} more points", "visits": "Visit {n} more times",
          "referral_value": "Bring in {n} more in your friends' purchases"}


def standing(session: Session, program: Program, member_id: str, ladder: Ladder | None = None) -> dict[str, Any]:
    """``GET /me/tier``: the tier, the next one and what it still needs over its window, and how long the tier is
    kept; in plain words too (``summary``)."""
    ladder = ladder or current(session)
    member = get_member(session, member_id)
    now = program.now()
    tier = ladder.by_code(member.tier)
    state = session.get(MemberTier, member_id)
    nxt = ladder.next_after(tier.code)
    counted: Step = nxt or tier
    value = value_of(session, member_id, counted.metric, counted.since(now), second_degree=program.influence_second_degree)
    next_tier = None
    words = [f"You are {tier.name}."]
    if nxt is not None:
        remaining = max(Decimal(0), nxt.threshold - value)
        next_tier = {"code": nxt.code, "name": nxt.name, "remaining": nxt.value(remaining)}
        needs = _NEEDS[nxt.metric].format(n=shown_value(nxt.metric, remaining))
        words.append(f"{needs} within {nxt.window_days} days to reach {nxt.name}.")
    keeps_until = state.keeps_until if state is not None and tier.rank > 0 else None
    match = None
    if state is not None and state.match_code and state.match_until and state.match_until > now:
        matched = ladder.by_code(state.match_code)
        match = {"code": matched.code, "name": matched.name, "until": state.match_until, "reason": state.match_reason}
        words.append(f"A status match keeps you at least {matched.name} until {state.match_until.date().isoformat()}.")
        if keeps_until is None or state.match_until > keeps_until:
            keeps_until = state.match_until
    if keeps_until is not None and not match:
        words.append(f"You keep {tier.name} at least until {keeps_until.date().isoformat()}.")
    return {"tier": {"code": tier.code, "name": tier.name, "rank": tier.rank},
            "next_tier": next_tier,
            "qualifying": {"metric": counted.metric, "value": counted.value(value), "window_days": counted.window_days},
            "keeps_until": keeps_until, "status_match": match, "summary": " ".join(words)}


def history(session: Session, member_id: str, *, limit: int = 50, before: str | None = None) -> list[TierChange]:
    """The member's tier changes, newest first (``before``: a change id, the cursor)."""
    query = select(TierChange).where(TierChange.member_id == member_id)
    if before:
        query = query.where(TierChange.id < before)
    return list(session.scalars(query.order_by(TierChange.id.desc()).limit(limit)))


def status_match(session: Session, program: Program, member_id: str, *, code: str, until: datetime, reason: str,
                 actor: str) -> dict[str, Any]:
    """A tier by hand: the member has at least ``code`` until ``until`` (up now if it is above their tier; the
    review moves nobody below it before then). A new match replaces the old one."""
    ladder = current(session)
    member = session.scalar(select(Member).where(Member.id == member_id).with_for_update())
    if member is None:
        raise NotFound("No such member")
    step = next((s for s in ladder.steps if s.code == code.strip().lower()), None)
    if step is None:
        raise Invalid("No tier has this code", code="unknown_tier", errors={"code": ["Unknown tier."]})
    now = program.now()
    if until <= now:
        raise Invalid("A status match lasts until a time in the future", code="invalid_until",
                      errors={"until": ["Must be in the future."]})
    if until > now + timedelta(days=MAX_MATCH_DAYS):
        raise Invalid("A status match lasts at most three years", code="invalid_until",
                      errors={"until": ["At most three years from now."]})
    state = session.get(MemberTier, member_id)
    if state is None:
        state = MemberTier(member_id=member_id, spend=Decimal(0), points=0, visits=0)
        session.add(state)
    state.match_code, state.match_until, state.match_reason = step.code, until, reason[:200]
    session.flush()
    change = None
    held = ladder.by_code(member.tier)
    if step.rank > held.rank:
        change = move(session, program, member_id, from_code=member.tier, to=step, reason="status_match",
                      detail=f"Status match until {until.date().isoformat()}: {reason}", actor=actor,
                      channel="console", keeps_until=until)
    elif state.keeps_until is None or state.keeps_until < until:
        state.keeps_until = until if step.rank == held.rank else state.keeps_until
    session.flush()
    return {"member_id": member_id, "tier": {"code": ladder.by_code(member.tier if change is None else step.code).code},
            "status_match": {"code": step.code, "until": until, "reason": reason}, "changed": change is not None,
            "change_id": change.id if change else None}
