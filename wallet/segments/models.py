"""The segments table: a marketer's named group of members, kept as its criteria (never as a list of members)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
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
