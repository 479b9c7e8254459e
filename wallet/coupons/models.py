"""Offers, coupons and redemptions: the tables, and what a coupon's status is."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import iso, utcnow
from ..db import Base, Points, id_column

STATUSES = ("issued", "redeemed", "void")  # stored; "expired" is derived


SHOWN_STATUSES = ("issued", "redeemed", "expired", "void")


BENEFIT_KINDS = ("percent_off", "amount_off", "free_item")


class Offer(Base):
    """A coupon template: the benefit, its price in points (if any), its window and its limits."""

    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("issued_count >= 0", name="issued_count_not_negative"),
        CheckConstraint("total_limit IS NULL OR issued_count <= total_limit", name="within_total_limit"),
        CheckConstraint("points_cost IS NULL OR points_cost > 0", name="points_cost_positive"),
    )

    id: Mapped[str] = id_column("off")
    title: Mapped[str] = mapped_column(String(120))
    terms: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(500))
    benefit: Mapped[dict]
    points_cost: Mapped[int | None] = mapped_column(Points)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    coupon_valid_days: Mapped[int | None]  # how long a claimed coupon stays valid; None: the programme's default
    coupon_expires_at: Mapped[datetime | None]  # a fixed last day for every coupon, whichever comes first
    per_member_limit: Mapped[int | None]
    total_limit: Mapped[int | None]
    # Coupons given and not voided: the counter the total limit is enforced on.
    issued_count: Mapped[int] = mapped_column(default=0)
    stores: Mapped[list] = mapped_column(default=list)  # store ids; empty: every store
    claimable: Mapped[bool] = mapped_column(default=True)  # False: only rules and bulk issue give it
    # Only the segment's members see and claim it (wallet.segments); None: every member.
    segment_id: Mapped[str | None] = mapped_column(ForeignKey("segments.id"))
    active: Mapped[bool] = mapped_column(default=True)
    archived_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(48), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def remaining(self) -> int | None:
        """Coupons left to give; None when there is no total limit."""
        return remaining_of(self)


class Coupon(Base):
    """One member's copy of an offer."""

    __tablename__ = "coupons"
    __table_args__ = (
        # Idempotent issue: one coupon per (offer, issue key, member); NULL keys (claims) never collide.
        UniqueConstraint("offer_id", "issue_key", "member_id"),
        CheckConstraint("status IN ('issued','redeemed','void')", name="status_known"),
        # Few indexes on purpose: every one is paid for by each of 100,000 rows a bulk issue writes. Lookups by
        # offer use the unique constraint above (offer_id leads it); a member's few coupons are found by member.
        Index("ix_coupons_member", "member_id"),
    )

    id: Mapped[str] = id_column("cpn")
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    code: Mapped[str] = mapped_column(String(12), unique=True)  # the human code, stored without dashes
    status: Mapped[str] = mapped_column(String(16), default="issued")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(80), default="claim")  # claim, an event ("purchase:pur_..."), bulk:<batch>
    issue_key: Mapped[str | None] = mapped_column(String(160))
    actor: Mapped[str] = mapped_column(String(48), default="system")
    channel: Mapped[str] = mapped_column(String(16), default="app")
    points_cost: Mapped[int] = mapped_column(default=0)  # what the member paid
    spend_entry_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_entries.id"))
    redeemed_at: Mapped[datetime | None]
    redeemed_store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"))
    redemption_id: Mapped[str | None] = mapped_column(String(32))
    voided_at: Mapped[datetime | None]
    voided_by: Mapped[str | None] = mapped_column(String(48))
    void_reason: Mapped[str | None] = mapped_column(String(200))

    offer: Mapped[Offer] = relationship(lazy="joined", innerjoin=True)


class Redemption(Base):
    """A coupon used at a till. Rolled back (the purchase was cancelled) it stays, marked, for the record."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        # One live redemption per coupon, whatever the code above does.
        Index("uq_coupon_redemptions_live", "coupon_id", unique=True,
              postgresql_where=text("rolled_back_at IS NULL"), sqlite_where=text("rolled_back_at IS NULL")),
        Index("ix_coupon_redemptions_store_time", "store_id", "redeemed_at"),
    )

    id: Mapped[str] = id_column("rdm")
    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"))
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    cashier_id: Mapped[str | None] = mapped_column(String(32))
    receipt_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16), default="till")
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow)
    rolled_back_at: Mapped[datetime | None]
    rolled_back_by: Mapped[str | None] = mapped_column(String(48))


def remaining_of(offer: Offer) -> int | None:
    return None if offer.total_limit is None else max(offer.total_limit - offer.issued_count, 0)


def shown_status(coupon: Coupon, now: datetime) -> str:
    if coupon.status == "issued" and coupon.expires_at <= now:
        return "expired"
    return coupon.status


def coupon_summary(coupon: Coupon) -> dict[str, Any]:
    """A coupon as other answers show it (a rule's reward): no code or token, which are the member's alone."""
    offer = coupon.offer
    return {"id": coupon.id, "offer_id": coupon.offer_id, "title": offer.title, "benefit": offer.benefit,
            "status": coupon.status, "issued_at": iso(coupon.issued_at), "expires_at": iso(coupon.expires_at)}


def jsonable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in view.items()}
def shown_status_sql(now: datetime):
    return case((and_(Coupon.status == "issued", Coupon.expires_at <= now), "expired"), else_=Coupon.status)
SYNC = {"synchronize_session": False}
