"""Every model, imported in one place so the metadata (and Alembic) sees the whole schema."""
from . import audit, events, webhooks, worker  # noqa: F401  (the event log, webhooks, scheduled jobs, audit log)
from .benefits import BenefitUse, MemberBenefit  # noqa: F401
from .contests import Contest, ContestEntry  # noqa: F401
from .coupons import Coupon, Offer, Redemption  # noqa: F401
from .db import Base  # noqa: F401
from .idempotency import IdempotencyKey  # noqa: F401
from .instore import CheckIn, Scan  # noqa: F401
from .ledger import Balance, LedgerEntry, Lot, LotUse, PendingPoints  # noqa: F401
from .members import Card, Member, Staff  # noqa: F401
from .passes import PassDevice, PassRegistration, PassScan, RotatingCodeUse, WalletPass  # noqa: F401
from .purchases import Purchase, PurchaseItem  # noqa: F401
from .referrals import Referral  # noqa: F401
from .rules import Rule, RuleCounter, RuleGrant, RulesRevision, RuleVersion  # noqa: F401
from .social import SocialAttribute, SocialImport, SocialNetwork  # noqa: F401
from .stores import Product, Store  # noqa: F401
from .tokens import RefreshToken  # noqa: F401
from .triggers import LifeEvent  # noqa: F401
