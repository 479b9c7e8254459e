"""A member's data, all of it, as JSON (the right of access and portability): one query per kind of record, however
much the member has, and nothing of another member's (a referral names only the member's own side)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from . import consents, social
from .campaigns import Campaign, CampaignMessage
from .clock import iso
from .contests import ContestEntry
from .coupons import Coupon, Offer
from .instore import CheckIn, Scan
from .ledger import LedgerEntry, balance_of
from .members import Card, get_member
from .purchases import Purchase, PurchaseItem
from .referrals import Referral
from .rules import RuleGrant
from .tiers import TierChange

KEYS = ("profile", "consents", "consent_history", "ledger", "purchases", "coupons", "check_ins", "scans", "referrals",
        "grants", "messages", "social", "tiers", "contest_entries")
# Not the member's data, or not data at all: secrets and the club's internal keys.
_HIDDEN = {"password_hash", "fingerprint", "idempotency_key", "email_key", "phone_key", "issue_key"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: Any, *, hide: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {c.key: _plain(getattr(obj, c.key)) for c in obj.__table__.columns
            if c.key not in _HIDDEN and c.key not in hide}


def member_export(session: Session, member_id: str) -> dict[str, Any]:
    """Everything held about the member, keyed as API.md lists it."""
    member = get_member(session, member_id)
    cards = session.scalars(select(Card).where(Card.member_id == member.id).order_by(Card.issued_at, Card.id)).all()
    # who referred them is the other member's: the referrals list says only that they were referred
    profile = _row(member, hide=frozenset({"referred_by_id"})) | {
        "points": balance_of(session, member.id).points, "cards": [_row(c, hide=frozenset({"member_id"})) for c in cards]}
    history = consents.history_records(session, member.id)
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member.id)
                              .order_by(LedgerEntry.seq)).all()
    purchases = session.scalars(select(Purchase).where(Purchase.member_id == member.id)
                                .order_by(Purchase.created_at, Purchase.id)).all()
    items: dict[str, list[dict[str, Any]]] = {}
    if purchases:
        for item in session.scalars(select(PurchaseItem).join(Purchase, Purchase.id == PurchaseItem.purchase_id)
                                    .where(Purchase.member_id == member.id)):
            items.setdefault(item.purchase_id, []).append(_row(item, hide=frozenset({"purchase_id", "id"})))
    coupons = session.execute(select(Coupon, Offer.title).join(Offer, Offer.id == Coupon.offer_id)
                              .where(Coupon.member_id == member.id).order_by(Coupon.issued_at, Coupon.id)).all()
    referrals = session.scalars(select(Referral).where(or_(Referral.referrer_id == member.id,
                                                           Referral.referred_id == member.id))
                                .order_by(Referral.created_at, Referral.id)).all()
    return {
        "profile": profile,
        "consents": member.consents,
        "consent_history": history,
        "ledger": [_row(e, hide=frozenset({"member_id"})) for e in entries],
        "purchases": [_row(p, hide=frozenset({"member_id"})) | {"items": items.get(p.id, [])} for p in purchases],
        "coupons": [_row(c, hide=frozenset({"member_id"})) | {"title": title} for c, title in coupons],
        "check_ins": [_row(c, hide=frozenset({"member_id"})) for c in session.scalars(
            select(CheckIn).where(CheckIn.member_id == member.id).order_by(CheckIn.created_at, CheckIn.id))],
        "scans": [_row(s, hide=frozenset({"member_id"})) for s in session.scalars(
            select(Scan).where(Scan.member_id == member.id).order_by(Scan.created_at, Scan.id))],
        # Only the member's own side: who the other member is is theirs.
        "referrals": [{"id": r.id, "role": "referrer" if r.referrer_id == member.id else "referred",
                       "channel": r.channel, "created_at": iso(r.created_at)} for r in referrals],
        "grants": [_row(g, hide=frozenset({"member_id"})) for g in session.scalars(
            select(RuleGrant).where(RuleGrant.member_id == member.id).order_by(RuleGrant.granted_at, RuleGrant.id))],
        # Held-out rows are the campaign's measurement, not a message to the member: left out.
        "messages": [{"campaign_id": m.campaign_id, "campaign": name, "channel": channel, "status": m.status,
                      "reason": m.reason, "attempts": m.attempts, "sent_at": iso(m.sent_at), "coupon_id": m.coupon_id,
                      "tracked": m.tracked, "opened_at": iso(m.opened_at), "clicked_at": iso(m.clicked_at)}
                     for m, name, channel in session.execute(
                         select(CampaignMessage, Campaign.name, Campaign.channel)
                         .join(Campaign, Campaign.id == CampaignMessage.campaign_id)
                         # campaign by campaign through the primary key (campaign, member): few campaigns, many rows
                         .where(CampaignMessage.member_id == member.id, CampaignMessage.holdout.is_(False),
                                CampaignMessage.campaign_id.in_(select(Campaign.id).where(Campaign.launched_at.is_not(None))))
                         .order_by(CampaignMessage.campaign_id))],
        # Beyond API.md's keys, what else is held: the social profile (empty without the consent), the tier
        # history, the contests entered.
        "social": social.get_profile(session, member),
        "tiers": [_row(t, hide=frozenset({"member_id"})) for t in session.scalars(
            select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.created_at, TierChange.id))],
        "contest_entries": [_row(e, hide=frozenset({"member_id"})) for e in session.scalars(
            select(ContestEntry).where(ContestEntry.member_id == member.id).order_by(ContestEntry.id))],
    }

