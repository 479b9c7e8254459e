"""The social profile's tables: one row per linked network, one per attribute; and the background imports."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column

NETWORKS = ("facebook", "instagram", "tiktok", "x", "youtube", "linkedin", "threads", "snapchat", "pinterest",
            "telegram", "whatsapp")
HANDLE_MAX = 64
ATTRIBUTES_MAX = 50  # maxProperties
ATTRIBUTE_KEY_MAX = 40
ATTRIBUTE_VALUE_MAX = 200


class SocialNetwork(Base):
    """A network the member linked, and their handle there (one per network)."""

    __tablename__ = "social_networks"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    network: Mapped[str] = mapped_column(String(16), primary_key=True)
    handle: Mapped[str] = mapped_column(String(HANDLE_MAX))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class SocialAttribute(Base):
    """One attribute of the member's social profile (a flat map of short texts): ``social.<key>`` in segments."""

    __tablename__ = "social_attributes"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(ATTRIBUTE_KEY_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(String(ATTRIBUTE_VALUE_MAX))


class SocialImport(Base):
    """A large import the worker runs in the background: the file waits here, then its report."""

    __tablename__ = "social_imports"

    id: Mapped[str] = id_column("simp")
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done, failed
    kind: Mapped[str] = mapped_column(String(8))  # csv, json
    body: Mapped[str | None] = mapped_column(Text)  # emptied once imported
    report: Mapped[dict | None]
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
