"""Campaigns and their messages: the tables.

A campaign's audience is fixed at launch as one row per member in ``campaign_messages``: the holdout's rows say
so and are never sent; every treated member's row is that member's message, and the outbox the worker sends from
(status, attempts, when it is due next, which worker holds it)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column

CHANNELS = ("email", "sms", "push")
STATUSES = ("draft", "launched", "cancelled")
# A message: holdout (never sent), pending (due at next_attempt_at), sent (the relay or gateway took it), failed
# (refused for good, or retried too long), suppressed (a rule stopped it: consent, weekly cap, no address...),
# cancelled (the campaign was cancelled before it went).
MESSAGE_STATUSES = ("holdout", "pending", "sent", "failed", "suppressed", "cancelled")
MAX_HOLDOUT_PERCENT = 50


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("holdout_percent >= 0 AND holdout_percent <= 50", name="holdout_percent_range"),
        CheckConstraint("channel IN ('email','sms','push')", name="channel_known"),
    )

    id: Mapped[str] = id_column("cmp")
    name: Mapped[str] = mapped_column(String(120))
    segment_id: Mapped[str | None] = mapped_column(String(32))  # None: every member
    channel: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    offer_id: Mapped[str | None] = mapped_column(ForeignKey("offers.id"))
    send_at: Mapped[datetime | None]
    holdout_percent: Mapped[int] = mapped_column(default=0)
    response_days: Mapped[int] = mapped_column(default=14)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Hex; each member's holdout draw is md5(seed || member id): recomputable, and stored with the row at launch.
    seed: Mapped[str] = mapped_column(String(32))
    audience: Mapped[int | None]
    holdout: Mapped[int | None]
    launched_at: Mapped[datetime | None]
    launched_by: Mapped[str | None] = mapped_column(String(48))
    cancelled_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(48), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def message(self) -> dict[str, str | None]:
        return {"subject": self.subject, "body": self.body}


class CampaignMessage(Base):
    """One member of a launched campaign's audience: held out, or their message and how its sending goes."""

    __tablename__ = "campaign_messages"
    __table_args__ = (
        # What the worker claims: only pending rows are in it (a launch's holdout rows cost it nothing).
        Index("ix_campaign_messages_due", "next_attempt_at", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        # The weekly cap counts a member's messages sent in the last 7 days. Only sent messages are in it, so a
        # launch writes nothing to it (the export finds a member's rows campaign by campaign, by the primary key).
        Index("ix_campaign_messages_member_sent", "member_id", "sent_at", postgresql_where=text("sent_at IS NOT NULL"),
              sqlite_where=text("sent_at IS NOT NULL")),
    )

    # No foreign keys: a launch writes a million rows in one statement, and both ids come from rows read by it.
    campaign_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    holdout: Mapped[bool] = mapped_column(default=False)
    draw: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))  # why suppressed or failed, in a word
    attempts: Mapped[int] = mapped_column(default=0)  # times handed to the relay or gateway
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(240))
    coupon_id: Mapped[str | None] = mapped_column(String(32))  # the offer's coupon this message carried
    # Opens and clicks (wallet.campaigns.tracking): whether the message as last handed over carried tracking (the
    # member had given the profiling consent then; email: the pixel and redirected links, sms: redirected links,
    # push: the app's report counts), and the first open and first click. The server default covers rows written
    # without the column (the launch's INSERT ... SELECT, rows from before migration 0016).
    tracked: Mapped[bool] = mapped_column(default=False, server_default=false())
    opened_at: Mapped[datetime | None]  # a click is an open too
    clicked_at: Mapped[datetime | None]

    @property
    def key(self) -> str:
        return message_key(self.campaign_id, self.member_id)


def message_key(campaign_id: str, member_id: str) -> str:
    """A message's stable name: its Message-ID's local part, its gateways' idempotency key, its events' id."""
    return f"{campaign_id}.{member_id}"
