"""One event's evaluation: the event, what it grants and skips, and the state of the run."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import benefits, ledger
from ..clock import iso
from ..fast_sql import Batch, Rows
from ..members import Member
from ..program import Program
from ..stores import Store
from .models import Rule, RuleGrant


@dataclass
class Prefetched:
    """What an event's caller read in its own first query: the rules' revision token, and whether the member
    holds a usable benefit. With it, a fresh event's rules come from the process's cache (no query)."""

    revision: str | None
    has_benefits: bool
    tier: str | None = None  # the member's tier code, read with them (conditions.tiers needs no query then)


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
    # The caller's own event row carries what this event earns (a purchase's ``purchase.recorded`` lists its points
    # and grants): the credits and grants then write no ``points.earned`` or ``reward.granted`` rows of their own.
    announced_by_caller: bool = False

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


class Run:
    """One event's evaluation: its clock, what it has looked up, what it has locked, what it decided."""

    def __init__(self, session: Session, program: Program, event: Event, *, live: bool,
                 pending_until: datetime | None = None, batch: Batch | None = None,
                 awaits: str | None = None) -> None:
        self.session, self.program, self.event, self.live = session, program, event, live
        self.pending_until = pending_until
        # "first_purchase": points are held until the member's first purchase (welcome points, LOYALTY_WELCOME_PENDING)
        self.awaits = awaits
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
                store = self.session.get(Store, self.event.store_id)  # the till has usually loaded it already
                if store is not None and store.timezone:
                    self._tz = ZoneInfo(store.timezone)
        return self._tz

    def tier(self) -> str | None:
        if self._tier is None:
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
