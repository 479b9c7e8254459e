"""Every model, imported in one place so the metadata (and Alembic) sees the whole schema."""
from . import audit, events, webhooks, worker  # noqa: F401  (the event log, webhooks, scheduled jobs, audit log)
from .adjustments import AdjustmentBatch, AdjustmentTarget  # noqa: F401
from .benefits import BenefitUse, MemberBenefit  # noqa: F401
from .campaigns import Campaign, CampaignMessage  # noqa: F401
from .consents import ConsentChange  # noqa: F401
from .contact import Device  # noqa: F401
from .contests import Contest, ContestEntry  # noqa: F401
from .coupons import Coupon, Offer, Redemption  # noqa: F401
from .currencies import Currency, CurrencyRate  # noqa: F401
from .db import Base  # noqa: F401
from .fraud import BurstCounter, Flag  # noqa: F401
from .idempotency import IdempotencyKey  # noqa: F401
from .influence import InfluenceScore  # noqa: F401
from .instore import CheckIn, Scan  # noqa: F401
from .kpis import KpiActiveChange, KpiDay, KpiMemberDay  # noqa: F401
from .ledger import Balance, LedgerEntry, Lot, LotUse, PendingPoints  # noqa: F401
from .members import Card, Member, Staff  # noqa: F401
from .passes import PassDevice, PassRegistration, PassScan, RotatingCodeUse, WalletPass  # noqa: F401
from .purchases import Purchase, PurchaseItem, PurchaseReturn  # noqa: F401
from .referrals import MemberDevice, Referral  # noqa: F401
from .rules import Rule, RuleCounter, RuleGrant, RuleLosingDraw, RulesRevision, RuleVersion  # noqa: F401
from .segments import Segment  # noqa: F401
from .social import SocialAttribute, SocialImport, SocialNetwork  # noqa: F401
from .stores import Product, Store  # noqa: F401
from .tiers import MemberTier, Tier, TierChange, TiersRevision, TierValues  # noqa: F401
from .tokens import RefreshToken, SignIn  # noqa: F401
from .triggers import LifeEvent  # noqa: F401
