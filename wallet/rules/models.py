"""Rules and their records: the rules, every grant they made, their caps' counters, their versions."""
from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import iso, utcnow
from ..db import Base, Points, bump_revision_token, id_column

# data_shared: the member first shared their social data; profile_completed: the profile fields the club asks for
# are all filled (each once per member ever, wallet.social)
TRIGGERS = ("purchase", "check_in", "scan", "enrolment", "birthday", "inactivity", "referral", "data_shared",
            "profile_completed")


SCHEDULED_TRIGGERS = ("birthday", "inactivity")  # fired by the `loyalty triggers run` job


REWARD_KINDS = ("points", "points_per_currency_unit", "multiplier", "offer_id")


REWARD_KEYS = {*REWARD_KINDS, "basis", "purchases", "days"}


CONDITION_KEYS = {
    "stores", "min_amount", "days_of_week", "hours", "categories", "first_scan", "nth", "tiers", "side",
    "inactive_days", "segment",
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
    points_budget: Mapped[int | None] = mapped_column(Points)
    points_expiry_days: Mapped[int | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def snapshot(self) -> dict[str, Any]:
        """The rule as it is now, JSON-safe: what a grant and a version record keep."""
        return jsonsafe({k: getattr(self, k) for k in (*SNAPSHOT_FIELDS, "version")})

    @property
    def surprise(self) -> bool:
        return self.probability < 1


class RuleGrant(Base):
    """One rule granting one reward for one event: the audit of every win."""

    __tablename__ = "rule_grants"
    # (event, rule) unique, event first: it also finds an event's grants (a replay, a refund). Rules' own look-ups
    # (caps, counts) go by (rule, member, time). Every purchase writes a grant: no index more than these.
    __table_args__ = (UniqueConstraint("event_source", "rule_id"),
                      Index("ix_rule_grants_rule_member", "rule_id", "member_id", "granted_at"))

    id: Mapped[str] = id_column("gnt")
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"))
    rule_version: Mapped[int]
    rule_snapshot: Mapped[dict]
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(24))
    event_source: Mapped[str] = mapped_column(String(80))
    event: Mapped[dict] = mapped_column(default=dict)
    draw: Mapped[float | None] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Points, default=0)
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
    points: Mapped[int] = mapped_column(Points, default=0)


class RuleLosingDraw(Base):
    """A surprise-and-delight draw that lost: with the wins (grants whose ``draw`` is set) the real win rate.

    One row per losing draw, written with the event's own rows (on the till, within its one statement)."""

    __tablename__ = "rule_losing_draws"
    __table_args__ = (Index("ix_rule_losing_draws_rule_day", "rule_id", "day"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"))
    day: Mapped[date]
    draw: Mapped[float] = mapped_column(Float)


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


def bump_revision(session: Session) -> None:
    bump_revision_token(session, RulesRevision)


def revision_column() -> Any:
    """The rules' revision token, to read within another query (None before any rule was written)."""
    return select(RulesRevision.token).where(RulesRevision.id == 1).scalar_subquery()


def jsonsafe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonsafe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonsafe(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (Decimal, date)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


SNAPSHOT_FIELDS = ("title", "description", "trigger", "conditions", "reward", "probability", "priority", "stackable",
                   "status", "starts_at", "ends_at", "per_member_limit", "per_member_period_days", "daily_limit",
                   "total_limit", "points_budget", "points_expiry_days")


RULE_FIELDS = SNAPSHOT_FIELDS
