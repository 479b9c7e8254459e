"""Caps: per member, per day, in total and a points budget, holding under concurrency (see the package's docstring)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..program import Program
from .evaluation import Grant, Run
from .models import MEMBER_CAPS, SHARED_CAPS, TOTAL, Rule, RuleCounter, RuleGrant


def has_caps(rule: Rule) -> bool:
    return any(getattr(rule, cap) is not None for cap in (*MEMBER_CAPS, *SHARED_CAPS))


def has_shared_caps(rule: Rule) -> bool:
    return any(getattr(rule, cap) is not None for cap in SHARED_CAPS)


def admit(run: Run, grant: Grant) -> str | None:
    """Which cap refuses this grant, if any; when none does (live), the shared counters now include it."""
    rule = grant.rule
    if not has_caps(rule):
        return None
    run.lock_member()  # member first, then counters: the one lock order
    caps: dict[str, Any] = {}
    if rule.per_member_limit is not None:
        query = select(func.count()).select_from(RuleGrant).where(RuleGrant.rule_id == rule.id,
                                                                 RuleGrant.member_id == run.event.member_id)
        if rule.per_member_period_days:
            query = query.where(RuleGrant.granted_at > run.now - timedelta(days=rule.per_member_period_days))
        used = run.session.execute(query).scalar_one()
        if used >= rule.per_member_limit:
            return "per_member_limit"
        caps["per_member_limit"] = {"used": used + 1, "limit": rule.per_member_limit,
                                    "period_days": rule.per_member_period_days}
    total = None
    if rule.total_limit is not None or rule.points_budget is not None:
        total = _count(run, rule, TOTAL, rule.total_limit, rule.points_budget, grant.points)
        if total is None:
            return _which_total_cap(run.session, rule, grant.points)
        if rule.total_limit is not None:
            caps["total_limit"] = {"used": total[0], "limit": rule.total_limit}
        if rule.points_budget is not None:
            caps["points_budget"] = {"used": total[1], "limit": rule.points_budget}
    if rule.daily_limit is not None:
        day = _count(run, rule, run.day.isoformat(), rule.daily_limit, None, grant.points)
        if day is None:
            if total is not None and run.live:
                uncount(run.session, rule.id, TOTAL, grant.points)
            return "daily_limit"
        caps["daily_limit"] = {"used": day[0], "limit": rule.daily_limit, "day": run.day.isoformat()}
    grant.caps = caps
    return None


def _count(run: Run, rule: Rule, period: str, limit: int | None, budget: int | None,
           points: int) -> tuple[int, int] | None:
    """Count one more grant in a counter row unless that breaks its limit; (grants, points) after, or None."""
    if not run.live:
        row = run.session.execute(select(RuleCounter.grants, RuleCounter.points)
                                  .where(RuleCounter.rule_id == rule.id, RuleCounter.period == period)).first()
        grants, spent = row if row is not None else (0, 0)
        if (limit is not None and grants >= limit) or (budget is not None and spent + points > budget):
            return None
        return grants + 1, spent + points
    conditions = [RuleCounter.rule_id == rule.id, RuleCounter.period == period]
    if limit is not None:
        conditions.append(RuleCounter.grants < limit)
    if budget is not None:
        conditions.append(RuleCounter.points + points <= budget)
    bump = (update(RuleCounter).where(*conditions)
            .values(grants=RuleCounter.grants + 1, points=RuleCounter.points + points)
            .returning(RuleCounter.grants, RuleCounter.points))
    options = {"synchronize_session": False}
    row = run.session.execute(bump, execution_options=options).first()
    if row is None:
        # No row yet (a new day), or the cap is reached: make sure the row exists, then try once more. If
        # another transaction creates it first, PostgreSQL waits for it, so the second try sees its count.
        _ensure_counter(run.session, rule.id, period)
        row = run.session.execute(bump, execution_options=options).first()
    return None if row is None else (row[0], row[1])


def uncount(session: Session, rule_id: str, period: str, points: int) -> None:
    """Give back a counted grant that was not made after all (we still hold the row's lock)."""
    session.execute(update(RuleCounter).where(RuleCounter.rule_id == rule_id, RuleCounter.period == period)
                    .values(grants=RuleCounter.grants - 1, points=RuleCounter.points - points),
                    execution_options={"synchronize_session": False})


def _ensure_counter(session: Session, rule_id: str, period: str, grants: int = 0, points: int = 0) -> None:
    values = {"rule_id": rule_id, "period": period, "grants": grants, "points": points}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(RuleCounter).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(RuleCounter).values(values).on_conflict_do_nothing())
    elif session.get(RuleCounter, (rule_id, period)) is None:
        with session.begin_nested():
            session.execute(insert(RuleCounter).values(values))


def _which_total_cap(session: Session, rule: Rule, points: int) -> str:
    row = session.execute(select(RuleCounter.grants, RuleCounter.points)
                          .where(RuleCounter.rule_id == rule.id, RuleCounter.period == TOTAL)).first()
    if rule.total_limit is not None and row is not None and row[0] >= rule.total_limit:
        return "total_limit"
    return "points_budget"


def sync_counters(session: Session, program: Program, rule: Rule) -> None:
    """Start (or restart) a rule's shared counters from its recorded grants, e.g. when a cap is added."""
    if not has_shared_caps(rule):
        return
    today = program.now().astimezone(program.tz).date()
    periods = []
    if rule.total_limit is not None or rule.points_budget is not None:
        periods.append((TOTAL, RuleGrant.rule_id == rule.id))
    if rule.daily_limit is not None:
        periods.append((today.isoformat(), (RuleGrant.rule_id == rule.id) & (RuleGrant.day == today)))
    for period, where in periods:
        grants, points = session.execute(select(func.count(), func.coalesce(func.sum(RuleGrant.points), 0))
                                         .where(where)).one()
        _ensure_counter(session, rule.id, period)
        session.execute(update(RuleCounter).where(RuleCounter.rule_id == rule.id, RuleCounter.period == period)
                        .values(grants=grants, points=points), execution_options={"synchronize_session": False})
