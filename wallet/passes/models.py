"""The phone's wallet tables: the passes handed out, the Apple devices registered for their updates, and the
uses of pass codes at tills."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, id_column

KINDS = ("card", "coupon")


class WalletPass(Base):
    """A card or a coupon as a pass in a phone's wallet (Apple's serial number, Google's object id suffix).

    ``modified`` (whole seconds since 1970) is the pass's update tag and its Last-Modified: every change moves it
    on by at least a second, so two versions never share one. ``push_due`` and ``google_due`` say a change still
    has to reach the registered iPhones and the saved Google Wallet object (the worker does that)."""

    __tablename__ = "wallet_passes"
    __table_args__ = (
        # The worker's look-ups of what is due: a small part of the table at any time.
        Index("ix_wallet_passes_push_due", "push_due", postgresql_where=text("push_due"),
              sqlite_where=text("push_due")),
        Index("ix_wallet_passes_google_due", "google_due", postgresql_where=text("google_due"),
              sqlite_where=text("google_due")),
    )

    serial: Mapped[str] = mapped_column(String(32), primary_key=True)  # the card's or the coupon's id
    kind: Mapped[str] = mapped_column(String(8))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    apple: Mapped[bool] = mapped_column(default=False)  # an Apple Wallet pass was handed out
    google: Mapped[bool] = mapped_column(default=False)  # a Google Wallet save link was handed out
    modified: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))  # of the last pass.json served
    push_due: Mapped[bool] = mapped_column(default=False)
    google_due: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PassDevice(Base):
    """An Apple device that registered passes for updates: its push token for this pass type."""

    __tablename__ = "pass_devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Apple's deviceLibraryIdentifier
    push_token: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PassRegistration(Base):
    """A device asked to hear about one pass's updates. Keyed by device first: a device's passes are found by
    the primary key's prefix, however many devices there are."""

    __tablename__ = "pass_registrations"

    device_id: Mapped[str] = mapped_column(ForeignKey("pass_devices.id", ondelete="CASCADE"), primary_key=True)
    serial: Mapped[str] = mapped_column(ForeignKey("wallet_passes.serial", ondelete="CASCADE"), primary_key=True,
                                        index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RotatingCodeUse(Base):
    """What one Google Wallet code (a card's TOTP value of one time step) was used for, and at which store: one
    identify and one purchase, both at that store."""

    __tablename__ = "rotating_code_uses"

    card_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32))
    identified_at: Mapped[datetime | None]
    purchased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class PassScan(Base):
    """An Apple Wallet pass code (static) used at a till. ``flagged``: the same card's pass code was used at
    another store within a minute (a screenshot doing the rounds), kept for fraud review."""

    __tablename__ = "pass_scans"
    __table_args__ = (Index("ix_pass_scans_card_id_at", "card_id", "at"),)

    id: Mapped[str] = id_column("psc")
    card_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))  # identify | purchase
    at: Mapped[datetime]
    flagged: Mapped[bool] = mapped_column(default=False)
    other_store_id: Mapped[str | None] = mapped_column(String(32))
