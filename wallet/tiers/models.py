"""Tiers and their records: the marketer's ladder, each member's tier state and running totals, the history."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import utcnow
from ..db import Base, bump_revision_token, id_column

METRICS = ("points_earned", "spend", "visits", "referral_value")
MONEY_METRICS = frozenset({"spend", "referral_value"})  # thresholds and values are decimal strings
ENTRY_RANK = 0
ENTRY_CODE = "basic"  # migration 0009 makes the club's old single tier the rank-0 tier under this code


class Tier(Base):
    """One step of the ladder: reached when ``metric`` over the last ``window_days`` reaches ``threshold``."""

    __tablename__ = "tiers"

    id: Mapped[str] = id_column("tie")
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(unique=True)
    metric: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[Decimal]
    window_days: Mapped[int]
    retain_days: Mapped[int]
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def qualify(self) -> dict[str, Any]:
        threshold: Any = self.threshold
        if self.metric not in MONEY_METRICS:
            threshold = int(self.threshold)
        return {"metric": self.metric, "threshold": threshold, "window_days": self.window_days}


class TiersRevision(Base):
    """One row whose token changes with every edit of the ladder: processes cache the ladder under it (the till
    reads the token within its first query, as it does the rules')."""

    __tablename__ = "tiers_revision"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    token: Mapped[str] = mapped_column(String(32))


class MemberTier(Base):
    """A member's tier state beside ``members.tier``, and running totals that bound their qualifying values.

    ``spend``, ``points`` and ``visits`` are the exact values at the last review (over the longest window a tier
    uses) plus everything counted since: never below the exact value over any window, so a purchase that leaves
    them under the next threshold certainly did not cross it, and only one that reaches it asks the database for
    the exact value. ``keeps_until``: the member keeps their tier at least until then (the review moves nobody
    down before). ``match_code``/``match_until``: a status match, the floor until that time."""

    __tablename__ = "member_tiers"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    spend: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    visits: Mapped[int] = mapped_column(default=0)
    last_visit_on: Mapped[date | None]
    first_purchase_at: Mapped[datetime | None]
    tier_since: Mapped[datetime | None]
    keeps_until: Mapped[datetime | None]
    match_code: Mapped[str | None] = mapped_column(String(32))
    match_until: Mapped[datetime | None]
    match_reason: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None]


class TierChange(Base):
    """The member's tier history: from what to what, why (``reason`` code and words), when, by whom or what."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_member_at", "member_id", "created_at"),)

    id: Mapped[str] = id_column("tch")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    from_code: Mapped[str | None] = mapped_column(String(32))
    to_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))  # qualified, review, status_match, status_match_ended, ...
    detail: Mapped[str] = mapped_column(String(240), default="")
    actor: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TierValues(Base):
    """The review's working table: each member's exact qualifying values as the last review computed them, and the
    running totals it saw in the same snapshot (so totals counted meanwhile are kept when it resets them)."""

    __tablename__ = "tier_review_values"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    qualified_rank: Mapped[int] = mapped_column(default=0)
    spend: Mapped[Decimal | None]
    points: Mapped[int | None] = mapped_column(BigInteger)
    visits: Mapped[int | None]
    seen_spend: Mapped[Decimal | None]
    seen_points: Mapped[int | None] = mapped_column(BigInteger)
    seen_visits: Mapped[int | None]


def bump_revision(session: Session) -> None:
    bump_revision_token(session, TiersRevision)


def revision_column() -> Any:
    """The ladder's revision token, to read within another query (None before the first edit)."""
    return select(TiersRevision.token).where(TiersRevision.id == 1).scalar_subquery()
