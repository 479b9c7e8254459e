"""Purchases: the receipts the till recorded, with their basket items. The till (:mod:`wallet.till`) writes them."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, Points, id_column
from .errors import NotFound


class Purchase(Base):
    __tablename__ = "purchases"
    # BRIN on the time (PostgreSQL): segments' and influence's windows read the latest pages of a table written in
    # time order; a BRIN index is a few pages and costs a purchase next to nothing (migration 0008).
    __table_args__ = (UniqueConstraint("store_id", "receipt_id"),
                      Index("ix_purchases_created_at_brin", "created_at", postgresql_using="brin"))

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
