"""The ladder as the hot paths see it: the tiers by rank, cached per process under the ladder's revision token."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ENTRY_CODE, ENTRY_RANK, METRICS, MONEY_METRICS, Tier


@dataclass(frozen=True)
class Step:
    """A tier as plain values (never a session's object): what the till compares against."""

    id: str
    code: str
    name: str
    rank: int
    metric: str
    threshold: Decimal
    window_days: int
    retain_days: int
    description: str = ""

    def since(self, now: datetime) -> datetime:
        return now - timedelta(days=self.window_days)

    def value(self, raw: Decimal | int | None) -> Decimal | int:
        """A qualifying value of this tier's metric as the API shows it (:func:`shown_value`)."""
        return shown_value(self.metric, raw)


def shown_value(metric: str, raw: Decimal | int | None) -> Decimal | int:
    """A qualifying value as the API shows it: an integer for points and visits, money for the others."""
    raw = raw or 0
    if metric in MONEY_METRICS:
        return Decimal(raw).quantize(Decimal("0.01"))
    return int(raw)


ENTRY = Step(id="", code=ENTRY_CODE, name="Basic", rank=ENTRY_RANK, metric="spend", threshold=Decimal(0),
             window_days=365, retain_days=0)


@dataclass(frozen=True)
class Ladder:
    """The club's tiers, lowest rank first; an empty club has the implicit entry tier ``basic``."""

    steps: tuple[Step, ...]

    @property
    def entry(self) -> Step:
        return self.steps[0] if self.steps and self.steps[0].rank == ENTRY_RANK else ENTRY

    def by_code(self, code: str | None) -> Step:
        """The tier with this code; an unknown code (a tier deleted meanwhile) counts as the entry tier."""
        for step in self.steps:
            if step.code == code:
                return step
        return self.entry

    def by_rank(self, rank: int) -> Step:
        found = self.entry
        for step in self.steps:
            if step.rank <= rank:
                found = step
        return found

    def above(self, code: str | None) -> list[Step]:
        rank = self.by_code(code).rank
        return [s for s in self.steps if s.rank > rank]

    def next_after(self, code: str | None) -> Step | None:
        above = self.above(code)
        return above[0] if above else None

    def windows(self, metric: str) -> int | None:
        """The longest window a tier above the entry counts ``metric`` over (None: no tier uses it)."""
        days = [s.window_days for s in self.steps if s.metric == metric and s.rank > ENTRY_RANK]
        return max(days) if days else None

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if self.windows(m) is not None]


@dataclass(frozen=True)
class Totals:
    """A member's running totals (``member_tiers``): at least the exact value over any window."""

    spend: Decimal = Decimal(0)
    points: int = 0
    visits: int = 0
    last_visit_on: date | None = None

    def get(self, metric: str) -> Decimal:
        if metric == "spend":
            return Decimal(self.spend)
        if metric == "points_earned":
            return Decimal(self.points)
        return Decimal(self.visits) if metric == "visits" else Decimal(0)


def may_cross(ladder: Ladder, code: str | None, totals: Totals) -> bool:
    """Whether the totals reach a threshold above the member's tier: only then is the exact value asked for.
    Referral value moves with other members' purchases: it is counted at review."""
    return any(step.metric != "referral_value" and totals.get(step.metric) >= step.threshold
               for step in ladder.above(code))


def _load(session: Session) -> Ladder:
    rows = session.execute(select(Tier).order_by(Tier.rank)).scalars().all()
    return Ladder(tuple(Step(t.id, t.code, t.name, t.rank, t.metric, Decimal(t.threshold), t.window_days,
                             t.retain_days, t.description) for t in rows))


_cached: tuple[str | None, Ladder] | None = None


def ladder(session: Session, revision: str | None = None, *, fresh: bool = False) -> Ladder:
    """The ladder, from this process's cache when ``revision`` (read in the caller's own query) is the cached one.
    No token (a database whose ladder was never written: every edit writes one, and so does the migration that
    makes the entry tier) is cached like a token: such a ladder is empty."""
    global _cached
    cached = _cached
    if not fresh and cached is not None and cached[0] == revision:
        return cached[1]
    loaded = _load(session)
    _cached = (revision, loaded)
    return loaded
