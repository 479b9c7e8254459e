"""The segments table: a marketer's named group of members, kept as its criteria (never as a list of members); and
the windowed activity summary the segments' compiler reads (``wallet.segments.activity``)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[str] = id_column("seg")
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    criteria: Mapped[dict]  # the validated criteria tree (wallet.segments.criteria)
    created_by: Mapped[str] = mapped_column(String(48), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentActivity(Base):
    """Every member's windowed segment fields exactly as of ``as_of`` (the same in every row), written whole by
    :func:`wallet.segments.activity.refresh` (the worker, hourly). Members with nothing in the last 365 days have no
    row (all zero)."""

    __tablename__ = "segment_activity"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    spend_30d: Mapped[Decimal]
    spend_90d: Mapped[Decimal]
    spend_365d: Mapped[Decimal]
    purchases_90d: Mapped[int]
    purchases_365d: Mapped[int]
    visits_90d: Mapped[int]
    as_of: Mapped[datetime]
