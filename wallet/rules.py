"""The rules engine: earning rules, benefits and surprise-and-delight, one concept.

A rule listens to a trigger, checks its conditions against the event, draws against its probability, checks
its caps, and grants points, a coupon, or a benefit (a multiplier on the member's next purchases). Every grant
is recorded (``rule_grants``) with the rule as it was then, the event, the draw and the caps it counted
against, so a marketer can see why a member won. Every change of a rule is kept in ``rule_versions``.

Order of evaluation: the trigger's active rules by priority (highest first). Rules that give points, coupons
or benefits come first; then plain multipliers (``{"multiplier": 2}``) multiply what those granted; then, on
a purchase, the member's benefits add theirs. A rule that is not ``stackable`` takes the event alone: it only
grants if nothing granted before it, and nothing after it grants (a non-stackable multiplier likewise
excludes the other multipliers). The member's own benefits always apply: they were promised.

Caps and concurrency. Per-member caps (``per_member_limit`` in ``per_member_period_days``) are counted while
holding the member's balance row lock (``SELECT ... FOR UPDATE``): grants for one member serialise, grants
for different members don't. Caps shared by everyone (``daily_limit``, ``total_limit``, ``points_budget``)
live in ``rule_counters`` rows bumped with a conditional UPDATE (``... WHERE grants < limit``), which is
atomic on PostgreSQL and costs one statement instead of a COUNT that grows with the campaign. Locks are
always taken member first, then counters in rule order, so two events can't deadlock. Only rules with caps
pay for any of this; the hot path (a purchase with a plain earning rule) takes no extra lock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import benefits, ledger
from .db import Base, Batch, Rows, id_column, insert_rows, iso, new_id, utcnow
from .errors import Invalid, NotFound, Rejected
from .program import Program

TRIGGERS = ("purchase", "check_in", "scan", "enrolment", "birthday", "inactivity", "referral")
SCHEDULED_TRIGGERS = ("birthday", "inactivity")  # fired by the `loyalty triggers run` job
REWARD_KINDS = ("points", "points_per_currency_unit", "multiplier", "offer_id")
REWARD_KEYS = {*REWARD_KINDS, "basis", "purchases", "days"}
CONDITION_KEYS = {
    "stores", "min_amount", "days_of_week", "hours", "categories", "first_scan", "nth", "tiers", "side",
    "inactive_days",
}
NTH_PERIODS = ("day", "week", "month", "year", "ever")
STATUSES = ("active", "paused")
MEMBER_CAPS = ("per_member_limit",)
SHARED_CAPS = ("daily_limit", "total_limit", "points_budget")
TOTAL = "total"  # the counter row of a rule's whole campaign; daily rows are keyed by the ISO date


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
        """The rule as it is now, JSON-safe: what a grant and a version record keep."""
        return _jsonsafe({k: getattr(self, k) for k in (*SNAPSHOT_FIELDS, "version")})

    @property
    def surprise(self) -> bool:
        return self.probability < 1


class RuleGrant(Base):
    """One rule granting one reward for one event: the audit of every win."""

    __tablename__ = "rule_grants"
    __table_args__ = (UniqueConstraint("rule_id", "event_source"),
                      Index("ix_rule_grants_rule_member", "rule_id", "member_id", "granted_at"),
                      Index("ix_rule_grants_rule_day", "rule_id", "day"),
                      Index("ix_rule_grants_event_source", "event_source"))

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
    benefit_id: Mapped[str | None] = mapped_column(String(32))
    entry_id: Mapped[str | None] = mapped_column(String(32))
    caps: Mapped[dict] = mapped_column(default=dict)  # each cap counted against: {"daily_limit": {"used", "limit"}}
    day: Mapped[date]
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleCounter(Base):
    """How many grants and points a capped rule gave, in total and per day: the rows the shared caps lock."""

    __tablename__ = "rule_counters"

    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)  # "total" or "2026-11-22"
    grants: Mapped[int] = mapped_column(default=0)
    points: Mapped[int] = mapped_column(default=0)


class RuleVersion(Base):
    """A rule as it was after each change, who changed it and what changed: the rule's history."""

    __tablename__ = "rule_versions"

    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    change: Mapped[str] = mapped_column(String(16))  # created, updated, paused, resumed, archived
    changed_fields: Mapped[list] = mapped_column(default=list)
    snapshot: Mapped[dict]
    actor: Mapped[str] = mapped_column(String(48), default="system")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RulesRevision(Base):
    """One row whose token changes with every change to any rule (created, updated, paused, resumed, archived).

    A process keeps the active rules it loaded under a token and uses them for as long as the token it reads in
    an event's own transaction is that one: the till reads the token within its first query, so a purchase needs
    no query for its rules, yet never sees rules older than the transaction. Tokens are unique ids, not counters,
    so two databases (or a database emptied and filled again) can never present the same token for other rules.
    """

    __tablename__ = "rules_revision"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    token: Mapped[str] = mapped_column(String(32))


def _bump_revision(session: Session) -> None:
    token = new_id("rev")
    bumped = session.execute(update(RulesRevision).where(RulesRevision.id == 1).values(token=token),
                             execution_options={"synchronize_session": False}).rowcount
    if not bumped:
        session.add(RulesRevision(id=1, token=token))


def revision_column() -> Any:
    """The rules' revision token, to read within another query (None before any rule was written)."""
    return select(RulesRevision.token).where(RulesRevision.id == 1).scalar_subquery()


@dataclass
class Prefetched:
    """What an event's caller read in its own first query: the rules' revision token, and whether the member
    holds a usable benefit. With it, a fresh event's rules come from the process's cache (no query)."""

    revision: str | None
    has_benefits: bool


# (revision token, {trigger: the active rules, highest priority first}): the last rules this process loaded.
_cached: tuple[str, dict[str, list[Rule]]] | None = None


def _cached_rules(session: Session, revision: str, trigger: str, now: datetime) -> list[Rule]:
    """The trigger's active rules in their window at ``now``, from the cache if it holds ``revision``.

    The cached rules are transient copies (never in a session), read-only to the engine."""
    global _cached
    cached = _cached
    if cached is None or cached[0] != revision:
        loaded: dict[str, list[Rule]] = {}
        query = (select(*Rule.__table__.columns).where(Rule.status == "active")
                 .order_by(Rule.priority.desc(), Rule.created_at, Rule.id))
        for row in session.execute(query).mappings():
            loaded.setdefault(row["trigger"], []).append(Rule(**row))
        cached = _cached = (revision, loaded)
    return [rule for rule in cached[1].get(trigger, ())
            if (rule.starts_at is None or rule.starts_at <= now) and (rule.ends_at is None or rule.ends_at > now)]


@dataclass
class Event:
    """Something a member did (or that happened to them) that rules listen to."""

    trigger: str
    member_id: str
    source: str  # what happened, unique per event: "purchase:pur_...", "check_in:chk_...", "birthday:mem_...:2026"
    channel: str = "app"
    store_id: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)  # {barcode, category, quantity, unit_price}
    attributes: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    store_timezone: str | None = None  # when the caller has read the store already (else it is looked up)
    # The event was recorded in this transaction under a unique key (or is recorded after its rules run), so
    # no rule can have granted for it yet: the look-up is skipped (the grants' unique key still guards).
    fresh: bool = False

    def describe(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "source": self.source, "channel": self.channel, "store_id": self.store_id,
                "amount": str(self.amount) if self.amount is not None else None, "currency": self.currency,
                "items": len(self.items),
                "categories": sorted({i["category"] for i in self.items if i.get("category")}),
                "occurred_at": iso(self.occurred_at),
                **{k: v for k, v in self.attributes.items() if _jsonable(v)}}


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


@dataclass
class Grant:
    """What one rule (or one of the member's benefits) gives for one event."""

    rule: Rule
    points: int = 0
    offer_id: str | None = None
    coupon: dict[str, Any] | None = None
    draw: float | None = None
    entry: Any = None
    pending: bool = False
    benefit: benefits.MemberBenefit | None = None  # the benefit this grant gave, or the one it used
    kind: str = "rule"  # "rule": the rule granted now; "benefit": a benefit the member held boosted this purchase
    caps: dict[str, Any] = field(default_factory=dict)
    grant_id: str | None = None  # the RuleGrant written for it

    @property
    def surprise(self) -> bool:
        return self.kind == "rule" and self.rule.surprise

    def as_reward(self) -> dict[str, Any]:
        """The member's view: which rule rewarded them and with what (``rewards`` in API.md)."""
        out = {"rule_id": self.rule.id, "title": self.rule.title, "points": self.points, "coupon": self.coupon,
               "pending": self.pending, "surprise": self.surprise, "grant_id": self.grant_id}
        if self.benefit is not None:
            out["benefit"] = benefit_summary(self.benefit) | {"applied": self.kind == "benefit"}
        return out


@dataclass
class Skip:
    """A rule that did not grant, and why: ``condition:stores``, ``draw``, ``cap:daily_limit``, ``not_stackable``..."""

    rule: Rule
    reason: str
    detail: Any = None


@dataclass
class Evaluation:
    grants: list[Grant]
    skipped: list[Skip]

    @property
    def points(self) -> int:
        return sum(g.points for g in self.grants)


def benefit_summary(benefit: benefits.MemberBenefit) -> dict[str, Any]:
    return {"id": benefit.id, "multiplier": str(benefit.multiplier.normalize()), "purchases": benefit.purchases,
            "uses_left": benefit.uses_left, "valid_until": iso(benefit.valid_until)}


# ---------------------------------------------------------------- validation (used by admin CRUD)

def validate_rule(data: dict[str, Any]) -> None:
    """Check the parts of a rule that a schema can't: the trigger, the reward's shape, conditions, caps."""
    errors: dict[str, list[str]] = {}
    trigger = data.get("trigger")
    if trigger not in TRIGGERS:
        errors["trigger"] = [f"Must be one of: {', '.join(TRIGGERS)}."]
    reward = data.get("reward") or {}
    if not isinstance(reward, dict):
        reward = {}
    problems = _check_reward(reward, trigger)
    if problems:
        errors["reward"] = problems
    conditions = data.get("conditions") or {}
    if not isinstance(conditions, dict):
        errors["conditions"] = ["conditions is an object."]
        conditions = {}
    unknown = set(conditions) - CONDITION_KEYS
    if unknown:
        errors["conditions"] = [f"Unknown conditions: {', '.join(sorted(unknown))}."]
    else:
        problems = _check_conditions(conditions, trigger)
        if problems:
            errors["conditions"] = problems
    probability = data.get("probability", 1.0)
    if probability is not None and (isinstance(probability, bool) or not isinstance(probability, (int, float))
                                    or not math.isfinite(probability) or not 0 < probability <= 1):
        errors["probability"] = ["Must be in (0, 1]."]
    if data.get("per_member_period_days") is not None and data.get("per_member_limit") is None:
        errors["per_member_period_days"] = ["Give per_member_limit too: how many grants per member in the period."]
    starts, ends = data.get("starts_at"), data.get("ends_at")
    if starts is not None and ends is not None and ends <= starts:
        errors["ends_at"] = ["ends_at must be after starts_at."]
    if data.get("status", "active") not in (*STATUSES, "archived"):
        errors["status"] = [f"Must be one of: {', '.join(STATUSES)}."]
    if errors:
        raise Invalid("The rule is not valid", errors=errors)


def _check_reward(reward: dict[str, Any], trigger: str | None) -> list[str]:
    kinds = [k for k in REWARD_KINDS if k in reward]
    if len(kinds) != 1:
        return ["Give exactly one of points, points_per_currency_unit, multiplier or offer_id."]
    kind, value = kinds[0], reward[kinds[0]]
    problems = []
    if kind == "points" and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1_000_000):
        problems.append("points must be a whole number from 1 to 1000000.")
    elif kind in ("points_per_currency_unit", "multiplier"):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = Decimal(str(value))
            if not number.is_finite() or number <= 0 or number > 1000:
                raise ValueError
        except (ValueError, ArithmeticError):
            return [f"{kind} must be a positive number up to 1000."]
    elif kind == "offer_id" and not (isinstance(value, str) and value):
        problems.append("offer_id must be an offer's id.")
    unknown = set(reward) - REWARD_KEYS
    if unknown:
        problems.append(f"Unknown keys: {', '.join(sorted(unknown))}.")
    if kind == "points_per_currency_unit" and trigger not in (None, "purchase"):
        problems.append("points_per_currency_unit needs an amount: it is for purchase rules.")
    if "basis" in reward and (kind != "points_per_currency_unit" or reward["basis"] not in ("amount", "matching_items")):
        problems.append('basis goes with points_per_currency_unit: "amount" or "matching_items".')
    if ("purchases" in reward or "days" in reward) and kind != "multiplier":
        problems.append("purchases and days describe a multiplier benefit: give multiplier too.")
    elif kind == "multiplier":
        problems += benefits.check_spec(reward)
    return problems


def _check_conditions(c: dict[str, Any], trigger: str | None) -> list[str]:
    problems = []
    if "days_of_week" in c and not (isinstance(c["days_of_week"], list) and c["days_of_week"]
                                    and all(isinstance(d, int) and 0 <= d <= 6 for d in c["days_of_week"])):
        problems.append("days_of_week is a list of 0 (Monday) to 6 (Sunday).")
    if "hours" in c:
        try:
            start, end = _parse_hours(c["hours"])
            if start == end:
                raise ValueError
        except (TypeError, ValueError, KeyError):
            problems.append('hours is {"from": "HH:MM", "to": "HH:MM"} (to may be past midnight).')
    if "min_amount" in c:
        try:
            if isinstance(c["min_amount"], (bool, float)) or Decimal(str(c["min_amount"])) < 0:
                raise ValueError
        except (ValueError, ArithmeticError):
            problems.append('min_amount is a non-negative decimal string, e.g. "50.00".')
        if trigger not in (None, "purchase"):
            problems.append("min_amount is for purchase rules.")
    for key in ("stores", "categories", "tiers"):
        if key in c and not (isinstance(c[key], list) and all(isinstance(s, str) for s in c[key])):
            problems.append(f"{key} is a list of strings.")
    if "nth" in c:
        nth = c["nth"]
        if not (isinstance(nth, dict) and set(nth) <= {"n", "period"} and isinstance(nth.get("n"), int)
                and not isinstance(nth.get("n"), bool) and nth["n"] >= 1
                and nth.get("period", "month") in NTH_PERIODS):
            problems.append('nth is {"n": 5, "period": "month"} (period: day, week, month, year or ever).')
    if "side" in c and (c["side"] not in ("referrer", "referred") or trigger not in (None, "referral")):
        problems.append('side is "referrer" or "referred", for referral rules.')
    if "first_scan" in c and not isinstance(c["first_scan"], bool):
        problems.append("first_scan is true or false.")
    if trigger == "inactivity" and "inactive_days" not in c:
        problems.append("An inactivity rule says after how many quiet days it fires: inactive_days.")
    if "inactive_days" in c:
        days = c["inactive_days"]
        if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
            problems.append("inactive_days is a whole number of days from 1 to 3650.")
        if trigger not in (None, "inactivity"):
            problems.append("inactive_days is for inactivity rules.")
    return problems


def _parse_hours(hours: dict[str, str]) -> tuple[time, time]:
    return time.fromisoformat(hours["from"]), time.fromisoformat(hours["to"])


def _check_references(session: Session, data: dict[str, Any]) -> None:
    offer_id = (data.get("reward") or {}).get("offer_id")
    if offer_id:
        from .coupons import Offer
        offer = session.get(Offer, offer_id)
        if offer is None or offer.archived_at is not None:
            raise Invalid("The rule's reward names an offer that doesn't exist", code="unknown_offer",
                          errors={"reward": [f"Unknown offer: {offer_id}."]})
    stores = (data.get("conditions") or {}).get("stores")
    if stores:
        from .stores import Store
        known = set(session.scalars(select(Store.id).where(Store.id.in_(stores))))
        missing = [s for s in stores if s not in known]
        if missing:
            raise Invalid("The rule names stores that don't exist", code="unknown_store",
                          errors={"conditions": [f"Unknown stores: {', '.join(missing)}."]})


# ---------------------------------------------------------------- evaluation

class _Run:
    """One event's evaluation: its clock, what it has looked up, what it has locked, what it decided."""

    def __init__(self, session: Session, program: Program, event: Event, *, live: bool,
                 pending_until: datetime | None = None, batch: Batch | None = None) -> None:
        self.session, self.program, self.event, self.live = session, program, event, live
        self.pending_until = pending_until
        self.now = event.occurred_at or program.now()
        self.day = self.now.astimezone(program.tz).date()
        self.grants: list[Grant] = []
        self.skipped: list[Skip] = []
        self._tz: ZoneInfo | None = None
        self._tier: str | None = None
        self._locked = False
        self._granted_before: set[str] | None = None
        self.has_benefits: bool | None = None  # None: not asked yet
        self.rows: Rows = []  # the grants' audit rows, written together when the evaluation is done
        self.batch = batch  # the caller's, when it writes the rows (and maybe a credit) itself

    def skip(self, rule: Rule, reason: str, detail: Any = None) -> None:
        self.skipped.append(Skip(rule, reason, detail))

    def store_tz(self) -> ZoneInfo:
        if self._tz is None:
            self._tz = self.program.tz
            if self.event.store_timezone:
                self._tz = ZoneInfo(self.event.store_timezone)
            elif self.event.store_id:
                from .stores import Store
                store = self.session.get(Store, self.event.store_id)  # the till has usually loaded it already
                if store is not None and store.timezone:
                    self._tz = ZoneInfo(store.timezone)
        return self._tz

    def tier(self) -> str | None:
        if self._tier is None:
            from .members import Member
            member = self.session.get(Member, self.event.member_id)
            self._tier = member.tier if member else ""
        return self._tier

    def lock_member(self) -> None:
        """Hold the member's balance row: grants counted per member serialise here (a no-op on SQLite)."""
        if self.live and not self._locked:
            self.session.execute(select(ledger.Balance.member_id)
                                 .where(ledger.Balance.member_id == self.event.member_id).with_for_update())
            self._locked = True

    def granted_before(self) -> set[str]:
        """Rules that already granted for this event's source (a replayed event earns nothing twice)."""
        if self._granted_before is None:
            self._granted_before = set(self.session.scalars(
                select(RuleGrant.rule_id).where(RuleGrant.event_source == self.event.source)))
        return self._granted_before


def _rules_query(query: Any, trigger: str, now: datetime, rule_ids: list[str] | None = None) -> Any:
    query = query.where(Rule.trigger == trigger)
    if rule_ids is None:
        query = query.where(Rule.status == "active", or_(Rule.starts_at.is_(None), Rule.starts_at <= now),
                            or_(Rule.ends_at.is_(None), Rule.ends_at > now))
    else:  # a marketer's dry run of chosen rules, paused or outside their window included
        query = query.where(Rule.id.in_(rule_ids), Rule.status != "archived")
    return query.order_by(Rule.priority.desc(), Rule.created_at, Rule.id)


def active_rules(session: Session, trigger: str, now: datetime, rule_ids: list[str] | None = None) -> list[Rule]:
    """The trigger's rules to evaluate, highest priority first."""
    return list(session.scalars(_rules_query(select(Rule), trigger, now, rule_ids)))


def _load_query(with_benefits: bool, with_granted: bool = True, rule_ids: list[str] | None = None) -> Any:
    source, now = bindparam("source"), bindparam("now")
    columns: list[Any] = [Rule]
    if with_granted:
        columns.append(exists().where(RuleGrant.rule_id == Rule.id, RuleGrant.event_source == source))
    if with_benefits:
        columns.append(exists().where(*benefits.usable_where(bindparam("member_id"), now, source)))
    return _rules_query(select(*columns), bindparam("trigger"), now, rule_ids)


# Built once: the hot path (every purchase) binds its values instead of building the expression again.
_LOAD = {(b, g): _load_query(b, g) for b in (True, False) for g in (True, False)}


def _load(run: _Run, rule_ids: list[str] | None = None) -> list[Rule]:
    """The event's rules in one round trip, each with whether it already granted for this event's source (unless
    the event is fresh) and, for a purchase, whether the member holds a usable benefit (the usual answer, no,
    costs no second query)."""
    event = run.event
    purchase = event.trigger == "purchase"
    granted = not event.fresh
    query = _LOAD[purchase, granted] if rule_ids is None else _load_query(purchase, granted, rule_ids)
    params = {"trigger": event.trigger, "now": run.now, "source": event.source}
    if purchase:
        params["member_id"] = event.member_id
    rows = run.session.execute(query, params).all()
    run._granted_before = {row[0].id for row in rows if row[1]} if granted else set()
    run.has_benefits = bool(rows and purchase and rows[0][-1])
    return [row[0] for row in rows]


def _unmet(run: _Run, rule: Rule) -> str | None:
    """The first condition of the rule that the event does not meet (cheap ones first), or None."""
    c = rule.conditions or {}
    event = run.event
    if c.get("stores") and event.store_id not in c["stores"]:
        return "stores"
    if "min_amount" in c and (event.amount is None or event.amount < Decimal(str(c["min_amount"]))):
        return "min_amount"
    if "side" in c and event.attributes.get("side") != c["side"]:
        return "side"
    if "inactive_days" in c and event.attributes.get("inactive_days") != c["inactive_days"]:
        return "inactive_days"
    if c.get("first_scan") and not event.attributes.get("first_scan"):
        return "first_scan"
    if c.get("categories"):
        category = event.attributes.get("category")
        if category is not None:
            if category not in c["categories"]:
                return "categories"
        elif not any(item.get("category") in c["categories"] for item in event.items):
            return "categories"
    if "days_of_week" in c or "hours" in c:
        local = run.now.astimezone(run.store_tz())
        if "days_of_week" in c and local.weekday() not in c["days_of_week"]:
            return "days_of_week"
        if "hours" in c:
            start, end = _parse_hours(c["hours"])
            t = local.time()
            inside = start <= t < end if start < end else (t >= start or t < end)  # a window past midnight
            if not inside:
                return "hours"
    if c.get("tiers") and run.tier() not in c["tiers"]:
        return "tiers"
    if "nth" in c:
        period = c["nth"].get("period", "month")
        if _nth_count(run, period) != c["nth"]["n"]:
            return "nth"
    return None


def _nth_count(run: _Run, period: str) -> int | None:
    """Which of the member's events of this kind in the period this one is (1 for the first)."""
    counts = run.event.attributes.get("nth_counts")
    if counts is not None:
        return counts.get(period)
    if run.event.trigger != "purchase":
        return None
    from .till import Purchase
    run.lock_member()  # two purchases at once must not both be "the 5th"
    query = select(func.count()).select_from(Purchase).where(Purchase.member_id == run.event.member_id)
    start = period_start(run.now, run.program.tz, period)
    if start is not None:
        query = query.where(Purchase.created_at >= start)
    # The till writes a purchase after its rules have run (and a dry run's purchase is never written).
    return run.session.scalar(query) + 1


def period_start(now: datetime, tz: ZoneInfo, period: str) -> datetime | None:
    """The start of the calendar day, week (Monday), month or year containing ``now`` in ``tz``, in UTC."""
    local = now.astimezone(tz).date()
    if period == "ever":
        return None
    if period == "week":
        local -= timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1)
    elif period == "year":
        local = local.replace(month=1, day=1)
    return datetime.combine(local, time(), tz).astimezone(UTC)


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


def _multiplied(base: int, multiplier: Any) -> int:
    return max(int((Decimal(base) * (Decimal(str(multiplier)) - 1)).to_integral_value(ROUND_FLOOR)), 0)


def _evaluate(run: _Run, rules: list[Rule]) -> None:
    base = 0
    exclusive = False
    multipliers: list[Rule] = []
    for rule in rules:
        unmet = _unmet(run, rule)
        if unmet:
            run.skip(rule, f"condition:{unmet}")
            continue
        if "multiplier" in rule.reward and not benefits.is_benefit(rule.reward):
            multipliers.append(rule)
            continue
        if exclusive or (not rule.stackable and run.grants):
            run.skip(rule, "not_stackable")
            continue
        grant = Grant(rule=rule, points=_base_points(rule, run.event), offer_id=rule.reward.get("offer_id"))
        if not (grant.points or grant.offer_id or benefits.is_benefit(rule.reward)):
            run.skip(rule, "nothing_to_grant")
            continue
        if _give(run, grant):
            base += grant.points
            exclusive = not rule.stackable
    multiplied = False
    for rule in multipliers:
        if exclusive or (not rule.stackable and multiplied):
            run.skip(rule, "not_stackable")
            continue
        grant = Grant(rule=rule, points=_multiplied(base, rule.reward["multiplier"]))
        if not grant.points:
            run.skip(rule, "nothing_to_grant")
            continue
        if _give(run, grant):
            multiplied = True
            exclusive = not rule.stackable
    if run.event.trigger == "purchase" and base > 0:
        _apply_benefits(run, base)


def _give(run: _Run, grant: Grant) -> bool:
    """Draw, check caps, and (live) write one rule's grant. False, with the reason recorded, if it doesn't."""
    rule = grant.rule
    if run.live and rule.id in run.granted_before():
        run.skip(rule, "already_granted")
        return False
    if not _draw(run, grant):
        run.skip(rule, "draw", grant.draw)
        return False
    cap = _admit(run, grant)
    if cap:
        run.skip(rule, f"cap:{cap}")
        return False
    if run.live and not _write(run, grant):
        return False
    run.grants.append(grant)
    return True


def _draw(run: _Run, grant: Grant) -> bool:
    """Surprise and delight: one draw from the programme's random source, kept with the grant."""
    if grant.rule.probability >= 1:
        return True
    if not run.live:
        return True  # a dry run shows the chance; it doesn't draw
    grant.draw = run.program.random.random()
    return grant.draw < grant.rule.probability


# ---------------------------------------------------------------- caps

def _has_caps(rule: Rule) -> bool:
    return any(getattr(rule, cap) is not None for cap in (*MEMBER_CAPS, *SHARED_CAPS))


def _has_shared_caps(rule: Rule) -> bool:
    return any(getattr(rule, cap) is not None for cap in SHARED_CAPS)


def _admit(run: _Run, grant: Grant) -> str | None:
    """Which cap refuses this grant, if any; when none does (live), the shared counters now include it."""
    rule = grant.rule
    if not _has_caps(rule):
        return None
    run.lock_member()  # member first, then counters: the one lock order
    caps: dict[str, Any] = {}
    if rule.per_member_limit is not None:
        query = select(func.count()).select_from(RuleGrant).where(RuleGrant.rule_id == rule.id,
                                                                 RuleGrant.member_id == run.event.member_id)
        if rule.per_member_period_days:
            query = query.where(RuleGrant.granted_at > run.now - timedelta(days=rule.per_member_period_days))
        used = run.session.scalar(query)
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
                _uncount(run.session, rule.id, TOTAL, grant.points)
            return "daily_limit"
        caps["daily_limit"] = {"used": day[0], "limit": rule.daily_limit, "day": run.day.isoformat()}
    grant.caps = caps
    return None


def _count(run: _Run, rule: Rule, period: str, limit: int | None, budget: int | None,
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


def _uncount(session: Session, rule_id: str, period: str, points: int) -> None:
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


def _sync_counters(session: Session, program: Program, rule: Rule) -> None:
    """Start (or restart) a rule's shared counters from its recorded grants, e.g. when a cap is added."""
    if not _has_shared_caps(rule):
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


# ---------------------------------------------------------------- writing grants

def _write(run: _Run, grant: Grant) -> bool:
    session, event, rule = run.session, run.event, grant.rule
    grant_id = new_id("gnt")
    key = f"{event.source}:{rule.id}"
    description = _describe(rule, event)
    if grant.points:
        grant.entry = _credit(run, grant.points, key=key, reason=_reason(rule, event), description=description,
                              rule=rule)
        grant.pending = run.pending_until is not None
    if grant.offer_id:
        from . import coupons
        coupon = coupons.issue_coupon(session, run.program, offer_id=grant.offer_id, member_id=event.member_id,
                                      idempotency_key=key, source=event.source, actor=f"rule:{rule.id}")
        grant.coupon = coupons.coupon_summary(coupon) if coupon is not None else None
        if coupon is None and not grant.points and not benefits.is_benefit(rule.reward):
            if "total_limit" in grant.caps or "points_budget" in grant.caps:
                _uncount(session, rule.id, TOTAL, 0)
            if "daily_limit" in grant.caps:
                _uncount(session, rule.id, run.day.isoformat(), 0)
            run.skip(rule, "offer_unavailable")
            return False
    if benefits.is_benefit(rule.reward):
        grant.benefit = benefits.grant(session, member_id=event.member_id, rule_id=rule.id, grant_id=grant_id,
                                       reward=rule.reward, source=event.source, now=run.now)
    run.rows.append((_grants, {
        "id": grant_id, "rule_id": rule.id, "rule_version": rule.version, "rule_snapshot": _snapshot(rule),
        "member_id": event.member_id, "trigger": event.trigger, "event_source": event.source,
        "event": _event_record(run), "draw": grant.draw, "points": grant.points,
        "coupon_id": (grant.coupon or {}).get("id"), "benefit_id": grant.benefit.id if grant.benefit is not None else None,
        "entry_id": getattr(grant.entry, "id", None), "caps": grant.caps, "day": run.day, "granted_at": run.now}))
    grant.grant_id = grant_id
    return True


_grants = RuleGrant.__table__
_SNAPSHOTS: dict[tuple[str, int], dict[str, Any]] = {}


def _snapshot(rule: Rule) -> dict[str, Any]:
    """``rule.snapshot()``, kept per rule and version (a version is never changed; an edit makes a new one)."""
    key = (rule.id, rule.version)
    snapshot = _SNAPSHOTS.get(key)
    if snapshot is None:
        if len(_SNAPSHOTS) > 1000:
            _SNAPSHOTS.clear()
        snapshot = _SNAPSHOTS[key] = rule.snapshot()
    return snapshot


def _event_record(run: _Run) -> dict[str, Any]:
    record = run.event.describe()
    if record["occurred_at"] is None:
        record["occurred_at"] = iso(run.now)
    if run._tz is not None:  # a day or hour condition was read in this timezone: keep what it saw
        record["local_time"] = run.now.astimezone(run._tz).strftime("%a %Y-%m-%d %H:%M")
        record["timezone"] = str(run._tz)
    return record


def _credit(run: _Run, points: int, *, key: str, reason: str, description: str, rule: Rule) -> Any:
    event = run.event
    if run.pending_until is not None:
        return ledger.hold(run.session, run.program, member_id=event.member_id, points=points, reason=reason,
                           source=event.source, idempotency_key=key, description=description,
                           available_at=run.pending_until, expiry_days=rule.points_expiry_days, rule_id=rule.id,
                           actor=f"rule:{rule.id}", channel=event.channel)
    # fresh: _load found no grant of this rule for this event, and a grant and its entry are written together,
    # so the key can't exist; a concurrent duplicate still meets the key's unique index.
    return ledger.earn(run.session, run.program, member_id=event.member_id, points=points, reason=reason,
                       idempotency_key=key, description=description, source=event.source,
                       expiry_days=rule.points_expiry_days, rule_id=rule.id, channel=event.channel,
                       actor=f"rule:{rule.id}", fresh=True, batch=run.batch)


def _apply_benefits(run: _Run, base: int) -> None:
    """The member's multiplier benefits boost what this purchase earned; each use is taken atomically."""
    session, event = run.session, run.event
    if run.has_benefits is False:
        return
    for benefit in benefits.usable(session, event.member_id, run.now, source=event.source):
        rule = session.get(Rule, benefit.rule_id)
        grant = Grant(rule=rule, points=benefit.extra_points(base), kind="benefit", benefit=benefit)
        if not grant.points:
            continue
        if run.live:
            if not benefits.consume(session, benefit):
                run.skip(rule, "benefit_used_up", benefit.id)
                continue
            grant.entry = _credit(run, grant.points, key=f"{event.source}:{benefit.id}", reason=event.trigger,
                                  description=f"{rule.title}: points ×{benefit.multiplier.normalize()}", rule=rule)
            grant.pending = run.pending_until is not None
            benefits.record_use(session, benefit, source=event.source, base_points=base, points=grant.points,
                                entry_id=getattr(grant.entry, "id", None), now=run.now)
        run.grants.append(grant)


def _reason(rule: Rule, event: Event) -> str:
    if rule.surprise:
        return "surprise"
    return {"enrolment": "welcome"}.get(event.trigger, event.trigger)


def _describe(rule: Rule, event: Event) -> str:
    if rule.surprise:
        return f"Surprise! {rule.title}"
    if event.trigger == "birthday":
        return f"Happy birthday! {rule.title}"
    return rule.title


def _jsonsafe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonsafe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonsafe(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (Decimal, date)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- the engine's entry points

def fire(session: Session, program: Program, event: Event, *, pending_until: datetime | None = None,
         prefetched: Prefetched | None = None, batch: Batch | None = None) -> list[Grant]:
    """Evaluate an event and grant what it earns, inside the caller's transaction; returns the grants made.

    ``batch``: the caller writes the grants' audit rows itself, with its own, in one go (``db.write``) before
    its transaction ends: they are added to the batch instead of written here, and so may be a points credit
    (the ledger puts one off to lead the batch). Until then, what the grants' entries say of the balance is None.
    """
    run = _Run(session, program, event, live=True, pending_until=pending_until, batch=batch)
    if prefetched is not None and prefetched.revision is not None and event.fresh:
        rules = _cached_rules(session, prefetched.revision, event.trigger, run.now)
        run._granted_before, run.has_benefits = set(), prefetched.has_benefits
    else:
        rules = _load(run)
    if not rules:
        return []
    _evaluate(run, rules)
    if batch is not None:
        batch.rows.extend(run.rows)
    else:
        insert_rows(session, run.rows)
    if run.grants:
        session.flush()
    return run.grants


def simulate(session: Session, program: Program, event: Event, *, rule_ids: list[str] | None = None) -> Evaluation:
    """What an event would earn, and why each other rule would not; draws nothing and writes nothing.

    A chance shows as a grant with its probability; caps are checked against the counts so far.
    ``rule_ids`` evaluates just those rules, even paused ones or outside their window (testing a draft).
    """
    run = _Run(session, program, event, live=False)
    _evaluate(run, _load(run, rule_ids))
    return Evaluation(run.grants, run.skipped)


def with_categories(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Basket items with each product's category filled in where none was given (a dry run's basket)."""
    from .barcodes import normalise_barcode
    from .stores import Product
    items = [dict(i, barcode=normalise_barcode(i["barcode"], field=f"items.{n}.barcode")) for n, i in enumerate(items)]
    missing = {i["barcode"] for i in items if not i.get("category")}
    if missing:
        known = dict(session.execute(select(Product.barcode, Product.category).where(Product.barcode.in_(missing))).all())
        for item in items:
            item["category"] = item.get("category") or known.get(item["barcode"])
    return items


def evaluate(session: Session, program: Program, event: Event) -> list[Grant]:
    """The grants an event would earn (a dry run: nothing drawn or written)."""
    return simulate(session, program, event).grants


# ---------------------------------------------------------------- demo

DEMO_RULES = [
    {"title": "A coffee on us", "description": "Now and then, a check-in earns a surprise.", "trigger": "check_in",
     "reward": {"points": 25}, "probability": 0.1, "per_member_limit": 1, "per_member_period_days": 7,
     "daily_limit": 50},
    {"title": "Happy birthday from the club", "trigger": "birthday", "reward": {"points": 100}},
]


def load_demo(session: Session, program: Program) -> None:
    """The demo club's surprise and birthday rules, created once."""
    existing = set(session.scalars(select(Rule.title)))
    for data in DEMO_RULES:
        if data["title"] not in existing:
            create_rule(session, program, dict(data), actor="demo")


# ---------------------------------------------------------------- marketer CRUD and the audit

SNAPSHOT_FIELDS = ("title", "description", "trigger", "conditions", "reward", "probability", "priority", "stackable",
                   "status", "starts_at", "ends_at", "per_member_limit", "per_member_period_days", "daily_limit",
                   "total_limit", "points_budget", "points_expiry_days")
RULE_FIELDS = SNAPSHOT_FIELDS


def create_rule(session: Session, program: Program, data: dict[str, Any], *, actor: str = "system") -> Rule:
    """A new rule, validated, with its first version recorded."""
    validate_rule(data)
    _check_references(session, data)
    rule = Rule(**{k: v for k, v in data.items() if k in RULE_FIELDS})
    rule.created_at = rule.updated_at = program.now()
    session.add(rule)
    session.flush()
    _record_version(session, rule, "created", sorted(k for k in data if k in RULE_FIELDS), actor, rule.created_at)
    _sync_counters(session, program, rule)
    session.flush()
    return rule


def update_rule(session: Session, program: Program, rule_id: str, changes: dict[str, Any], *,
                actor: str = "system") -> Rule:
    """Change a rule; its version goes up and is kept, so past grants still say what the rule was."""
    rule = get_rule(session, rule_id)
    changed = {k: v for k, v in changes.items() if k in RULE_FIELDS and getattr(rule, k) != v}
    if not changed:
        return rule
    merged = {k: getattr(rule, k) for k in RULE_FIELDS} | changed
    validate_rule(merged)
    _check_references(session, merged)
    if "trigger" in changed and session.scalar(select(RuleGrant.id).where(RuleGrant.rule_id == rule.id).limit(1)):
        raise Rejected("This rule has granted rewards; create a new rule for another trigger",
                       code="rule_has_grants", errors={"trigger": ["Can't change once the rule has granted."]})
    caps_before = {cap: getattr(rule, cap) for cap in SHARED_CAPS}
    for key, value in changed.items():
        setattr(rule, key, value)
    rule.version += 1
    rule.updated_at = program.now()
    if set(changed) == {"status"}:
        change = "paused" if rule.status == "paused" else "resumed"
    else:
        change = "updated"
    _record_version(session, rule, change, sorted(changed), actor, rule.updated_at)
    if any(caps_before[cap] is None and getattr(rule, cap) is not None for cap in SHARED_CAPS):
        _sync_counters(session, program, rule)  # a cap added now counts what the rule gave before
    session.flush()
    return rule


def pause_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> Rule:
    """Stop a rule granting until it is resumed."""
    return update_rule(session, program, rule_id, {"status": "paused"}, actor=actor)


def resume_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> Rule:
    """Let a paused rule grant again."""
    return update_rule(session, program, rule_id, {"status": "active"}, actor=actor)


def _record_version(session: Session, rule: Rule, change: str, fields: list[str], actor: str,
                    at: datetime) -> None:
    _bump_revision(session)
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, change=change, changed_fields=fields,
                            snapshot=rule.snapshot(), actor=actor[:48], changed_at=at))


def get_rule(session: Session, rule_id: str, *, include_archived: bool = False) -> Rule:
    rule = session.get(Rule, rule_id)
    if rule is None or (rule.status == "archived" and not include_archived):
        raise NotFound("No such rule", code="rule_not_found")
    return rule


def archive_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> None:
    """Rules that granted are kept for the audit; deleting one archives it."""
    rule = get_rule(session, rule_id)
    rule.status = "archived"
    rule.version += 1
    rule.updated_at = program.now()
    _record_version(session, rule, "archived", ["status"], actor, rule.updated_at)
    session.flush()


def list_rules(session: Session, *, trigger: str | None = None, status: str | None = None, limit: int = 50,
               after: str | None = None) -> list[Rule]:
    query = select(Rule).where(Rule.status != "archived")
    if trigger:
        query = query.where(Rule.trigger == trigger)
    if status:
        query = query.where(Rule.status == status)
    if after:
        query = query.where(Rule.id > after)
    return list(session.scalars(query.order_by(Rule.id).limit(limit)))


def versions_of(session: Session, rule_id: str) -> list[RuleVersion]:
    """Every version of a rule, newest first."""
    return list(session.scalars(select(RuleVersion).where(RuleVersion.rule_id == rule_id)
                                .order_by(RuleVersion.version.desc())))


def grants_of(session: Session, rule_id: str | None = None, *, member_id: str | None = None, limit: int = 50,
              after: str | None = None) -> list[RuleGrant]:
    """Grants newest first, of one rule and/or one member; ``after`` is the last id of the previous page."""
    query = select(RuleGrant)
    if rule_id:
        query = query.where(RuleGrant.rule_id == rule_id)
    if member_id:
        query = query.where(RuleGrant.member_id == member_id)
    if after:
        query = query.where(RuleGrant.id < after)
    return list(session.scalars(query.order_by(RuleGrant.id.desc()).limit(limit)))


def get_grant(session: Session, grant_id: str) -> RuleGrant:
    grant = session.get(RuleGrant, grant_id)
    if grant is None:
        raise NotFound("No such grant", code="grant_not_found")
    return grant


def explain(grant: RuleGrant) -> str:
    """Why this member won, in a marketer's words: the rule as it was, the event, the draw, the caps."""
    rule, event = grant.rule_snapshot, grant.event
    what = []
    if grant.points:
        what.append(f"{grant.points} points")
    if grant.coupon_id:
        what.append(f"coupon {grant.coupon_id}")
    if grant.benefit_id:
        reward = rule.get("reward", {})
        spell = " and ".join(p for p in (f"next {reward['purchases']} purchases" if reward.get("purchases") else "",
                                         f"{reward['days']} days" if reward.get("days") else "") if p)
        what.append(f"points ×{reward.get('multiplier')} for {spell} (benefit {grant.benefit_id})")
    where = f" at store {event['store_id']}" if event.get("store_id") else ""
    amount = f" of {event['amount']} {event.get('currency') or ''}".rstrip() if event.get("amount") else ""
    text = (f"Rule \"{rule.get('title')}\" (version {grant.rule_version}) granted {' and '.join(what) or 'nothing'} "
            f"to member {grant.member_id} for {grant.trigger} {grant.event_source}{amount}{where} "
            f"at {iso(grant.granted_at)}")
    local = f" ({event['local_time']} local time)" if event.get("local_time") else ""
    conditions = _conditions_text(rule.get("conditions") or {})
    text += f": it met the conditions ({conditions}){local}" if conditions else ": the rule has no conditions"
    if grant.draw is not None:
        text += f"; the draw {grant.draw:.4f} was below the probability {rule.get('probability')}"
    caps = grant.caps or {}
    if caps:
        parts = []
        for name in (*MEMBER_CAPS, *SHARED_CAPS):
            if name not in caps:
                continue
            used = caps[name]
            label = {"per_member_limit": "for this member" + (f" in {used.get('period_days')} days"
                                                              if used.get("period_days") else ""),
                     "daily_limit": f"on {used.get('day')}", "total_limit": "in total",
                     "points_budget": "points of the budget"}.get(name, name)
            parts.append(f"{used['used']} of {used['limit']} {label}")
        text += "; within its caps (" + ", ".join(parts) + ")"
    return text + "."


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _conditions_text(c: dict[str, Any]) -> str:
    parts = []
    if c.get("stores"):
        parts.append(f"at {'store' if len(c['stores']) == 1 else 'one of the stores'} {', '.join(c['stores'])}")
    if "min_amount" in c:
        parts.append(f"amount at least {c['min_amount']}")
    if "days_of_week" in c:
        parts.append("on " + "/".join(_DAYS[d] for d in sorted(c["days_of_week"])))
    if "hours" in c:
        parts.append(f"between {c['hours']['from']} and {c['hours']['to']} in the store's timezone")
    if c.get("categories"):
        parts.append(f"{' or '.join(c['categories'])} in the basket")
    if c.get("tiers"):
        parts.append(f"tier {' or '.join(c['tiers'])}")
    if "nth" in c:
        parts.append(f"event number {c['nth']['n']} of the {c['nth'].get('period', 'month')}")
    if c.get("first_scan"):
        parts.append("first scan of the product")
    if "side" in c:
        parts.append(f"the {c['side']} side of a referral")
    if "inactive_days" in c:
        parts.append(f"{c['inactive_days']} days without activity")
    return "; ".join(parts)
