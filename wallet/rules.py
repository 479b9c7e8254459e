"""The rules engine: earning rules, benefits and surprise-and-delight, one concept.

A rule listens to a trigger, checks its conditions against the event, draws against its probability,
checks its caps, and grants points or a coupon. Every grant is recorded with the rule as it was then, the
event, and the draw, so a marketer can see why a member won.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import ledger
from .db import Base, id_column, utcnow
from .errors import Invalid, NotFound
from .program import Program

TRIGGERS = ("purchase", "check_in", "scan", "enrolment", "birthday", "inactivity", "referral")
CONDITION_KEYS = {
    "stores", "min_amount", "days_of_week", "hours", "categories", "first_scan", "nth", "tiers", "side",
}


class Rule(Base):
    __tablename__ = "rules"

    id: Mapped[str] = id_column("rul")
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(500), default="")
    trigger: Mapped[str] = mapped_column(String(24), index=True)
    conditions: Mapped[dict] = mapped_column(default=dict)
    reward: Mapped[dict] = mapped_column(default=dict)
    probability: Mapped[float] = mapped_column(Float, default=1.0)
    priority: Mapped[int] = mapped_column(default=0)
    stackable: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, paused, archived
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    per_member_limit: Mapped[int | None]
    per_member_period_days: Mapped[int | None]
    daily_limit: Mapped[int | None]
    total_limit: Mapped[int | None]
    points_budget: Mapped[int | None]
    points_expiry_days: Mapped[int | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def snapshot(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "title", "trigger", "conditions", "reward", "probability", "priority", "stackable",
            "per_member_limit", "per_member_period_days", "daily_limit", "total_limit", "points_budget",
            "version")}


class RuleGrant(Base):
    """One rule granting one reward for one event: the audit of every win."""

    __tablename__ = "rule_grants"
    __table_args__ = (UniqueConstraint("rule_id", "event_source"),
                      Index("ix_rule_grants_rule_member", "rule_id", "member_id", "granted_at"),
                      Index("ix_rule_grants_rule_day", "rule_id", "day"))

    id: Mapped[str] = id_column("gnt")
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"))
    rule_version: Mapped[int]
    rule_snapshot: Mapped[dict]
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(24))
    event_source: Mapped[str] = mapped_column(String(80))
    event: Mapped[dict] = mapped_column(default=dict)
    draw: Mapped[float | None] = mapped_column(Float)
    points: Mapped[int] = mapped_column(default=0)
    coupon_id: Mapped[str | None] = mapped_column(String(32))
    entry_id: Mapped[str | None] = mapped_column(String(32))
    day: Mapped[date]
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass
class Event:
    """Something a member did that rules listen to."""

    trigger: str
    member_id: str
    source: str  # what happened, unique per event: "purchase:pur_...", "check_in:chk_..."
    channel: str = "app"
    store_id: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)  # {barcode, category, quantity, unit_price}
    attributes: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None

    def describe(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "source": self.source, "channel": self.channel, "store_id": self.store_id,
                "amount": str(self.amount) if self.amount is not None else None, "currency": self.currency,
                "items": len(self.items), **{k: v for k, v in self.attributes.items() if _jsonable(v)}}


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


@dataclass
class Grant:
    rule: Rule
    points: int = 0
    coupon: Any = None
    draw: float | None = None
    entry: Any = None
    pending: bool = False

    def as_reward(self) -> dict[str, Any]:
        return {"rule_id": self.rule.id, "title": self.rule.title, "points": self.points,
                "coupon": self.coupon, "pending": self.pending}


# ---------------------------------------------------------------- validation (used by admin CRUD)

def validate_rule(data: dict[str, Any]) -> None:
    """Check the parts of a rule that a schema can't: the trigger, the reward's shape, conditions."""
    errors: dict[str, list[str]] = {}
    if data.get("trigger") not in TRIGGERS:
        errors["trigger"] = [f"Must be one of: {', '.join(TRIGGERS)}."]
    reward = data.get("reward") or {}
    kinds = [k for k in ("points", "points_per_currency_unit", "multiplier", "offer_id") if k in reward]
    if len(kinds) != 1:
        errors["reward"] = ["Give exactly one of points, points_per_currency_unit, multiplier or offer_id."]
    else:
        value = reward[kinds[0]]
        if kinds[0] == "points" and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1_000_000):
            errors["reward"] = ["points must be a whole number from 1 to 1000000."]
        elif kinds[0] in ("points_per_currency_unit", "multiplier"):
            try:
                number = Decimal(str(value))
                if not number.is_finite() or number <= 0 or number > 1000:
                    raise ValueError
            except (ValueError, ArithmeticError):
                errors["reward"] = [f"{kinds[0]} must be a positive number up to 1000."]
        elif kinds[0] == "offer_id" and not isinstance(value, str):
            errors["reward"] = ["offer_id must be an offer's id."]
    unknown = set(reward) - {"points", "points_per_currency_unit", "multiplier", "offer_id", "basis"}
    if unknown:
        errors.setdefault("reward", []).append(f"Unknown keys: {', '.join(sorted(unknown))}.")
    conditions = data.get("conditions") or {}
    unknown = set(conditions) - CONDITION_KEYS
    if unknown:
        errors["conditions"] = [f"Unknown conditions: {', '.join(sorted(unknown))}."]
    else:
        _check_conditions(conditions, errors)
    probability = data.get("probability", 1.0)
    if probability is not None and not (0 < float(probability) <= 1):
        errors["probability"] = ["Must be in (0, 1]."]
    if errors:
        raise Invalid("The rule is not valid", errors=errors)


def _check_conditions(c: dict[str, Any], errors: dict[str, list[str]]) -> None:
    problems = []
    if "days_of_week" in c and not (isinstance(c["days_of_week"], list)
                                    and all(isinstance(d, int) and 0 <= d <= 6 for d in c["days_of_week"])):
        problems.append("days_of_week is a list of 0 (Monday) to 6 (Sunday).")
    if "hours" in c:
        try:
            _parse_hours(c["hours"])
        except (TypeError, ValueError, KeyError):
            problems.append('hours is {"from": "HH:MM", "to": "HH:MM"}.')
    if "min_amount" in c:
        try:
            if Decimal(str(c["min_amount"])) < 0:
                raise ValueError
        except (ValueError, ArithmeticError):
            problems.append("min_amount is a non-negative decimal string.")
    for key in ("stores", "categories", "tiers"):
        if key in c and not (isinstance(c[key], list) and all(isinstance(s, str) for s in c[key])):
            problems.append(f"{key} is a list of strings.")
    if "nth" in c:
        nth = c["nth"]
        if not (isinstance(nth, dict) and isinstance(nth.get("n"), int) and nth["n"] >= 1
                and nth.get("period", "month") in ("day", "week", "month", "year", "ever")):
            problems.append('nth is {"n": 5, "period": "month"}.')
    if problems:
        errors["conditions"] = problems


def _parse_hours(hours: dict[str, str]) -> tuple[time, time]:
    return time.fromisoformat(hours["from"]), time.fromisoformat(hours["to"])


# ---------------------------------------------------------------- evaluation

def _active_rules(session: Session, trigger: str, now: datetime) -> list[Rule]:
    query = (select(Rule).where(Rule.trigger == trigger, Rule.status == "active")
             .order_by(Rule.priority.desc(), Rule.created_at, Rule.id))
    return [r for r in session.scalars(query)
            if (r.starts_at is None or r.starts_at <= now) and (r.ends_at is None or now < r.ends_at)]


def _store_tz(session: Session, store_id: str | None, program: Program) -> ZoneInfo:
    if store_id:
        from .stores import Store
        tz = session.scalar(select(Store.timezone).where(Store.id == store_id))
        if tz:
            return ZoneInfo(tz)
    return program.tz


def _matches(session: Session, program: Program, rule: Rule, event: Event, now: datetime) -> bool:
    c = rule.conditions or {}
    if c.get("stores") and event.store_id not in c["stores"]:
        return False
    if "min_amount" in c and (event.amount is None or event.amount < Decimal(str(c["min_amount"]))):
        return False
    if "days_of_week" in c or "hours" in c:
        local = now.astimezone(_store_tz(session, event.store_id, program))
        if "days_of_week" in c and local.weekday() not in c["days_of_week"]:
            return False
        if "hours" in c:
            start, end = _parse_hours(c["hours"])
            t = local.time()
            inside = start <= t < end if start <= end else (t >= start or t < end)  # a window past midnight
            if not inside:
                return False
    if c.get("categories"):
        category = event.attributes.get("category")
        if category is not None:
            if category not in c["categories"]:
                return False
        elif not any(item.get("category") in c["categories"] for item in event.items):
            return False
    if c.get("tiers"):
        from .members import Member
        if session.scalar(select(Member.tier).where(Member.id == event.member_id)) not in c["tiers"]:
            return False
    if c.get("first_scan") and not event.attributes.get("first_scan"):
        return False
    if "side" in c and event.attributes.get("side") != c["side"]:
        return False
    if "nth" in c:
        count = event.attributes.get("nth_counts", {}).get(c["nth"].get("period", "month"))
        if count is None or count != c["nth"]["n"]:
            return False
    return True


def _cap_reached(session: Session, program: Program, rule: Rule, member_id: str, now: datetime,
                 points: int) -> str | None:
    """Which cap this grant would break, if any. The caller holds the rule's row lock when caps exist."""
    base = select(func.count()).select_from(RuleGrant).where(RuleGrant.rule_id == rule.id)
    if rule.per_member_limit is not None:
        q = base.where(RuleGrant.member_id == member_id)
        if rule.per_member_period_days:
            q = q.where(RuleGrant.granted_at > now - timedelta(days=rule.per_member_period_days))
        if session.scalar(q) >= rule.per_member_limit:
            return "per_member_limit"
    if rule.daily_limit is not None:
        if session.scalar(base.where(RuleGrant.day == now.astimezone(program.tz).date())) >= rule.daily_limit:
            return "daily_limit"
    if rule.total_limit is not None and session.scalar(base) >= rule.total_limit:
        return "total_limit"
    if rule.points_budget is not None:
        spent = session.scalar(select(func.coalesce(func.sum(RuleGrant.points), 0)).where(RuleGrant.rule_id == rule.id))
        if spent + points > rule.points_budget:
            return "points_budget"
    return None


def _has_caps(rule: Rule) -> bool:
    return any(v is not None for v in (rule.per_member_limit, rule.daily_limit, rule.total_limit, rule.points_budget))


def _base_points(rule: Rule, event: Event) -> int:
    reward = rule.reward
    if "points" in reward:
        return int(reward["points"])
    if "points_per_currency_unit" in reward:
        amount = event.amount or Decimal(0)
        if reward.get("basis") == "matching_items" and rule.conditions.get("categories"):
            amount = sum((Decimal(str(i.get("unit_price", 0))) * int(i.get("quantity", 1)) for i in event.items
                          if i.get("category") in rule.conditions["categories"]), Decimal(0))
        return int((amount * Decimal(str(reward["points_per_currency_unit"]))).to_integral_value(ROUND_FLOOR))
    return 0


def evaluate(session: Session, program: Program, event: Event, *, dry_run: bool = False) -> list[Grant]:
    """The grants an event earns. With ``dry_run`` nothing is drawn or written: a chance shows as its probability."""
    now = event.occurred_at or program.now()
    grants: list[Grant] = []
    base_total = 0
    multipliers: list[Rule] = []
    exclusive_taken = False
    for rule in _active_rules(session, event.trigger, now):
        if exclusive_taken or (not rule.stackable and grants):
            continue
        if not _matches(session, program, rule, event, now):
            continue
        if "multiplier" in rule.reward:
            multipliers.append(rule)
            continue
        grant = Grant(rule=rule, points=_base_points(rule, event), coupon=rule.reward.get("offer_id"))
        if not grant.points and not grant.coupon:
            continue
        if not _draw(program, rule, grant, dry_run):
            continue
        grants.append(grant)
        base_total += grant.points
        exclusive_taken = not rule.stackable
    for rule in multipliers:
        if exclusive_taken:
            break
        extra = int((Decimal(base_total) * (Decimal(str(rule.reward["multiplier"])) - 1)).to_integral_value(ROUND_FLOOR))
        grant = Grant(rule=rule, points=max(extra, 0))
        if grant.points and _draw(program, rule, grant, dry_run):
            grants.append(grant)
    return grants


def _draw(program: Program, rule: Rule, grant: Grant, dry_run: bool) -> bool:
    if rule.probability >= 1:
        return True
    if dry_run:
        grant.draw = None
        return True
    grant.draw = program.random.random()
    return grant.draw < rule.probability


def fire(session: Session, program: Program, event: Event, *, pending_until: datetime | None = None) -> list[Grant]:
    """Evaluate an event and grant what it earns, inside the caller's transaction; returns the grants made."""
    now = event.occurred_at or program.now()
    made: list[Grant] = []
    for grant in evaluate(session, program, event):
        rule = grant.rule
        if _has_caps(rule):
            # Serialise grants of one capped rule so a cap holds under concurrency (PostgreSQL row lock).
            session.execute(select(Rule.id).where(Rule.id == rule.id).with_for_update())
            if _cap_reached(session, program, rule, event.member_id, now, grant.points):
                continue
        if session.scalar(select(RuleGrant.id).where(RuleGrant.rule_id == rule.id,
                                                     RuleGrant.event_source == event.source)):
            continue  # this event already earned this rule's reward
        key = f"{event.source}:{rule.id}"
        description = _describe(rule, event)
        if grant.points:
            if pending_until is not None:
                grant.entry = ledger.hold(session, program, member_id=event.member_id, points=grant.points,
                                          reason=event.trigger, source=event.source, idempotency_key=key,
                                          description=description, available_at=pending_until,
                                          expiry_days=rule.points_expiry_days, rule_id=rule.id,
                                          channel=event.channel)
                grant.pending = True
            else:
                grant.entry = ledger.earn(session, program, member_id=event.member_id, points=grant.points,
                                          reason=_reason(rule, event), idempotency_key=key, description=description,
                                          source=event.source, expiry_days=rule.points_expiry_days,
                                          rule_id=rule.id, channel=event.channel, actor=f"rule:{rule.id}")
        if grant.coupon:
            from . import coupons
            coupon = coupons.issue_coupon(session, program, offer_id=grant.coupon, member_id=event.member_id,
                                          idempotency_key=key, source=event.source, actor=f"rule:{rule.id}")
            grant.coupon = coupons.coupon_summary(coupon) if coupon is not None else None
            if coupon is None and not grant.points:
                continue
        session.add(RuleGrant(rule_id=rule.id, rule_version=rule.version, rule_snapshot=_jsonsafe(rule.snapshot()),
                              member_id=event.member_id, trigger=event.trigger, event_source=event.source,
                              event=event.describe(), draw=grant.draw, points=grant.points,
                              coupon_id=(grant.coupon or {}).get("id") if isinstance(grant.coupon, dict) else None,
                              entry_id=getattr(grant.entry, "id", None), day=now.astimezone(program.tz).date(),
                              granted_at=now))
        made.append(grant)
    session.flush()
    return made


def _reason(rule: Rule, event: Event) -> str:
    if rule.probability < 1:
        return "surprise"
    return {"enrolment": "welcome"}.get(event.trigger, event.trigger)


def _describe(rule: Rule, event: Event) -> str:
    if rule.probability < 1:
        return f"Surprise! {rule.title}"
    return rule.title


def _jsonsafe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonsafe(v) for v in value]
    if isinstance(value, (Decimal, datetime, date)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- marketer CRUD

RULE_FIELDS = ("title", "description", "trigger", "conditions", "reward", "probability", "priority", "stackable",
               "status", "starts_at", "ends_at", "per_member_limit", "per_member_period_days", "daily_limit",
               "total_limit", "points_budget", "points_expiry_days")


def create_rule(session: Session, program: Program, data: dict[str, Any]) -> Rule:
    """A new rule, validated."""
    validate_rule(data)
    rule = Rule(**{k: v for k, v in data.items() if k in RULE_FIELDS})
    rule.created_at = rule.updated_at = program.now()
    session.add(rule)
    session.flush()
    return rule


def update_rule(session: Session, program: Program, rule_id: str, changes: dict[str, Any]) -> Rule:
    """Change a rule; its version goes up so past grants still say what the rule was when they were made."""
    rule = get_rule(session, rule_id)
    merged = {k: getattr(rule, k) for k in RULE_FIELDS} | changes
    validate_rule(merged)
    for key, value in changes.items():
        if key in RULE_FIELDS:
            setattr(rule, key, value)
    rule.version += 1
    rule.updated_at = program.now()
    session.flush()
    return rule


def get_rule(session: Session, rule_id: str) -> Rule:
    rule = session.get(Rule, rule_id)
    if rule is None or rule.status == "archived":
        raise NotFound("No such rule")
    return rule


def archive_rule(session: Session, program: Program, rule_id: str) -> None:
    """Rules that granted are kept for the audit; deleting one archives it."""
    rule = get_rule(session, rule_id)
    rule.status = "archived"
    rule.updated_at = program.now()
    session.flush()


def list_rules(session: Session, *, trigger: str | None = None, limit: int = 50, after: str | None = None) -> list[Rule]:
    query = select(Rule).where(Rule.status != "archived")
    if trigger:
        query = query.where(Rule.trigger == trigger)
    if after:
        query = query.where(Rule.id > after)
    return list(session.scalars(query.order_by(Rule.id).limit(limit)))


def grants_of(session: Session, rule_id: str, *, limit: int = 50, after: str | None = None) -> list[RuleGrant]:
    query = select(RuleGrant).where(RuleGrant.rule_id == rule_id)
    if after:
        query = query.where(RuleGrant.id < after)
    return list(session.scalars(query.order_by(RuleGrant.id.desc()).limit(limit)))
