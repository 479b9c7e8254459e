"""Offers, coupons and the rewards catalogue.

An offer is a coupon template a marketer defines: what it gives (``benefit``), what it costs in points (a
rewards-catalogue item when ``points_cost`` is set), when it can be claimed, how long a claimed coupon stays
valid, and how many there are per member and in total. A coupon is one member's copy of an offer; its QR code
carries a signed token naming it (``K1-...``) and it also has a short human code for the cashier to type.

Invariants, each held by the database rather than by a read-then-write here:
- a coupon is redeemed once: ``UPDATE coupons SET status='redeemed' ... WHERE status='issued'`` wins at most
  once, and a partial unique index allows one live redemption per coupon;
- an offer never issues more than ``total_limit``: ``UPDATE offers SET issued_count = issued_count + n WHERE
  issued_count + n <= total_limit`` (and a check constraint);
- a member's claims of one offer are serialised on the member's balance row, so ``per_member_limit`` holds;
- points move only through the ledger, in the same transaction as the coupon they pay for.

``expired`` is not stored: a coupon still ``issued`` past its ``expires_at`` shows as expired and the
redemption's conditional update refuses it, so no job has to run for expiry to hold.
"""
from .bulk import bulk_issue
from .claims import claim_coupon
from .issuing import issue_coupon
from .listing import (
    admin_coupon,
    admin_coupons,
    coupon_qr_payload,
    member_coupon,
    member_coupons,
    own_coupon,
    wallet_coupons,
)
from .models import BENEFIT_KINDS, SHOWN_STATUSES, STATUSES, Coupon, Offer, Redemption, coupon_summary, shown_status
from .offers import (
    DEMO_OFFERS,
    OFFER_FIELDS,
    archive_offer,
    coupon_expiry,
    create_offer,
    get_offer,
    list_offers,
    load_demo,
    member_offer,
    offer_stats,
    update_offer,
    validate_benefit,
    visible_offers,
)
from .redemption import check_redemption, coupon_for_till, redeem, rollback_redemption
from .voiding import void_coupon, void_coupons_from

__all__ = [
    "BENEFIT_KINDS", "DEMO_OFFERS", "OFFER_FIELDS", "SHOWN_STATUSES", "STATUSES", "Coupon", "Offer", "Redemption", "admin_coupon",
    "admin_coupons", "archive_offer", "bulk_issue", "check_redemption", "claim_coupon", "coupon_expiry",
    "coupon_for_till", "coupon_qr_payload", "coupon_summary", "create_offer", "get_offer", "issue_coupon",
    "list_offers", "load_demo", "member_coupon", "member_coupons", "member_offer", "offer_stats", "own_coupon", "redeem",
    "rollback_redemption", "shown_status", "update_offer", "validate_benefit", "visible_offers", "void_coupon",
    "void_coupons_from", "wallet_coupons",
]
