"""A contest and its free entries (extra entries per purchase are counted from the purchases at the close)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column


class Contest(Base):
    __tablename__ = "contests"
    __table_args__ = (Index("ix_contests_due", "drawn_at", "draw_at"),)

    id: Mapped[str] = id_column("cts")
    title: Mapped[str] = mapped_column(String(120))
    terms: Mapped[str] = mapped_column(Text)
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    draw_at: Mapped[datetime]
    winner_count: Mapped[int]
    prize_offer_id: Mapped[str | None] = mapped_column(ForeignKey("offers.id"))
    min_amount: Mapped[Decimal | None]  # entries_per_purchase: one more entry per purchase of at least this
    seed: Mapped[str] = mapped_column(String(64))  # secret until the draw (hex of 32 random bytes)
    commitment: Mapped[str] = mapped_column(String(64))  # sha256(seed), public from creation
    entry_list: Mapped[list | None]  # the aliases, frozen at the close
    entry_list_sha256: Mapped[str | None] = mapped_column(String(64))
    drawn_at: Mapped[datetime | None]
    winner_aliases: Mapped[list | None]
    winner_member_ids: Mapped[list | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class ContestEntry(Base):
    """A member's free entry; ``alias`` is how the public lists name them."""

    __tablename__ = "contest_entries"
    __table_args__ = (UniqueConstraint("contest_id", "member_id"), UniqueConstraint("contest_id", "alias"))

    id: Mapped[str] = id_column("cen")
    contest_id: Mapped[str] = mapped_column(ForeignKey("contests.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    alias: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
