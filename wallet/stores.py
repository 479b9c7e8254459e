"""Stores and products: where members shop and what they scan."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, id_column, utcnow
from .errors import NotFound


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[str] = id_column("sto")
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(240), default="")
    lat: Mapped[float]
    lon: Mapped[float]
    radius_m: Mapped[int] = mapped_column(default=150)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    check_in_cooldown_minutes: Mapped[int] = mapped_column(default=240)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = id_column("prd")
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    # Stored as GTIN-13: a UPC-A code and its EAN-13 form are one product.
    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="", index=True)
    price: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3), default="ILS")
    image_url: Mapped[str | None] = mapped_column(String(500))
    complementary: Mapped[list] = mapped_column(default=list)  # product ids, the marketer's order
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def get_store(session: Session, store_id: str) -> Store:
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound("No such store", code="store_not_found")
    return store


def store_by_code(session: Session, code: str) -> Store | None:
    return session.scalar(select(Store).where(Store.code == code))
