"""The club's settings, its clock and its source of randomness, passed into every domain call."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cryptography import x509

from .clock import utcnow


@dataclass(frozen=True)
class AppleWallet:
    """Apple Wallet passes: the Pass Type ID and team, and the signing material, parsed and checked once at
    start-up (``wallet.passes.signing.load_apple``)."""

    pass_type_id: str  # pass.com.example.club; also the APNs topic
    team_id: str
    certificate: x509.Certificate  # the Pass Type ID certificate
    key: Any  # its private key (cryptography's RSA or EC private key)
    wwdr: x509.Certificate  # Apple's WWDR intermediate that issued it


@dataclass(frozen=True)
class GoogleWallet:
    """Google Wallet: the issuer and the service account that signs save links and calls the Wallet API."""

    issuer_id: str
    service_account_email: str
    key: Any  # the service account's RSA private key
    key_id: str  # the key's id (the JWT's kid)
    token_uri: str = "https://oauth2.googleapis.com/token"


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
    # What a point is worth in the club's currency (LOYALTY_POINT_VALUE): the KPIs' points liability.
    point_value: Decimal = Decimal("0.01")
    # Influence (wallet.influence): the window of own and referred spend, and the weight of a friend's friend.
    influence_window_days: int = 365
    influence_second_degree: Decimal = Decimal("0.5")
    clock: Callable[[], datetime] = utcnow
    # One injectable source for every draw (surprise and delight); tests seed it.
    random: random.Random = field(default_factory=random.SystemRandom)
    # What phones reach (LOYALTY_PUBLIC_URL): the PassKit web service and images are under it.
    public_url: str = "http://127.0.0.1:5000"
    apple_wallet: AppleWallet | None = None  # None: Apple Wallet passes are off (404 wallet_pass_unavailable)
    google_wallet: GoogleWallet | None = None  # None: Google Wallet is off
    # Defences against farming points (wallet.fraud): limits of size, welcome points held, bursts, travel.
    max_purchase_amount: Decimal = Decimal("1000000.00")  # LOYALTY_MAX_PURCHASE_AMOUNT
    welcome_pending: bool = True  # LOYALTY_WELCOME_PENDING: welcome points wait for the member's first purchase
    enrolment_burst: int = 10  # LOYALTY_ENROLMENT_BURST: enrolments per minute per device or address
    claim_burst: int = 30  # LOYALTY_CLAIM_BURST: coupon claims per minute per member
    max_travel_kmh: float = 300.0  # LOYALTY_MAX_TRAVEL_KMH: check-ins faster apart than this are refused

    @property
    def qr_keys(self) -> tuple[bytes, ...]:
        return (self.secret, *self.old_secrets)

    def now(self) -> datetime:
        return self.clock()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
