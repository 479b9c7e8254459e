"""The club's settings, its clock and its source of randomness, passed into every domain call."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .clock import utcnow


@dataclass
class Program:
    """Configuration of one loyalty programme. Built by api/ from the environment; tests build their own."""

    secret: bytes
    # Retired QR keys: codes they signed keep working after a key rotation (coupons live for weeks).
    old_secrets: tuple[bytes, ...] = ()
    name: str = "Demo Club"
    currency: str = "ILS"
    timezone: str = "UTC"
    points_expiry_days: int | None = 365
    pending_days: int = 0
    card_token_ttl: timedelta = timedelta(minutes=5)
    redemption_rollback_window: timedelta = timedelta(minutes=30)
    coupon_validity_days: int = 30
    clock: Callable[[], datetime] = utcnow
    # One injectable source for every draw (surprise and delight); tests seed it.
    random: random.Random = field(default_factory=random.SystemRandom)

    @property
    def qr_keys(self) -> tuple[bytes, ...]:
        return (self.secret, *self.old_secrets)

    def now(self) -> datetime:
        return self.clock()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
