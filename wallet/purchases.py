"""Purchases: the receipts the till recorded, with their basket items. The till (:mod:`wallet.till`) writes them."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, Points, id_column
from .errors import NotFound


class Purchase(Base):
    __tablename__ = "purchases"
    # BRIN on the time (PostgreSQL): segments' and influence's windows read the latest pages of a table written in
    # time order; a BRIN index is a few pages and costs a purchase next to nothing (migration 0008).
    # The refunded ones by the time of the refund (segments' activity summary: what was refunded since its cutoff);
    # partial, so a purchase's insert (refunded_at null) adds no entry to it (migration 0017).
    __table_args__ = (UniqueConstraint("store_id", "receipt_id"),
                      Index("ix_purchases_created_at_brin", "created_at", postgresql_using="brin"),
                      Index("ix_purchases_refunded_at", "refunded_at", postgresql_where=text("refunded_at IS NOT NULL"),
                            sqlite_where=text("refunded_at IS NOT NULL")))

    id: Mapped[str] = id_column("pur")
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    receipt_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    points_awarded: Mapped[int] = mapped_column(Points, default=0)
    # The answer's rewards as first given, so a retried receipt is answered the same way.
    rewards: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="completed")  # completed, refunded
    fingerprint: Mapped[str] = mapped_column(String(64))  # what was sent, to tell a retry from a clash
    cashier_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default="till")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_at: Mapped[datetime | None]
    # A store with its own currency: club-currency units per unit on the day of the purchase (None: the club's
    # currency). Kept so a return takes back through the rate the purchase earned at.
    rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    # What partial returns have taken back so far, in the purchase's currency (wallet.returns).
    returned_amount: Mapped[Decimal] = mapped_column(default=Decimal(0))


class PurchaseReturn(Base):
    """One partial return of a purchase, once per ``refund_id``: what came back and what it took back."""

    __tablename__ = "purchase_returns"
    __table_args__ = (UniqueConstraint("purchase_id", "refund_id"),)

    id: Mapped[str] = id_column("ret")
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id"), index=True)
    refund_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    items: Mapped[list] = mapped_column(default=list)  # [{barcode, quantity}] when returned by items
    points_reversed: Mapped[int] = mapped_column(default=0)
    points_debt: Mapped[int] = mapped_column(default=0)
    pending_cancelled: Mapped[int] = mapped_column(default=0)
    # What was taken back from each thing the purchase earned: {"<entry or hold id>": points}
    taken: Mapped[dict] = mapped_column(default=dict)
    rewards_taken_back: Mapped[list] = mapped_column(default=list)  # rule ids whose condition the kept part misses
    coupons_voided: Mapped[list] = mapped_column(default=list)
    last: Mapped[bool] = mapped_column(default=False)  # nothing of the purchase is left after it
    balance_after: Mapped[int] = mapped_column(default=0)  # the member's balance and debt after it (a replay's answer)
    debt_after: Mapped[int] = mapped_column(default=0)
    fingerprint: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(48))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PurchaseItem(Base):
    __tablename__ = "purchase_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id"), index=True)
    barcode: Mapped[str] = mapped_column(String(14), index=True)
    product_id: Mapped[str | None] = mapped_column(ForeignKey("products.id"), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]


def get_purchase(session: Session, purchase_id: str, store_id: str | None = None) -> Purchase:
    purchase = session.get(Purchase, purchase_id)
    # Another store's purchase does not exist for this till.
    if purchase is None or (store_id is not None and purchase.store_id != store_id):
        raise NotFound("No such purchase", code="purchase_not_found")
    return purchase
