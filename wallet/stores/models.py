"""Stores and products: the tables."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column


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
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]
    # The store's own currency (ISO 4217), earning through the club's rate of the day; None: the club's currency.
    currency: Mapped[str | None] = mapped_column(String(3))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


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
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]
