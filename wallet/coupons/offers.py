"""Offers: the coupon templates marketers define, and the ones a member can see and claim."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from .. import ledger, segments
from ..clock import iso
from ..errors import (
    Conflict,
    Invalid,
    NotFound,
    OfferNotActive,
)
from ..program import Program
from ..segments import Segment
from ..stores import Product, Store
from .models import BENEFIT_KINDS, Coupon, Offer, Redemption, remaining_of, shown_status_sql

OFFER_FIELDS = ("title", "terms", "image_url", "benefit", "points_cost", "valid_from", "valid_until",
                "coupon_valid_days", "coupon_expires_at", "per_member_limit", "total_limit", "stores",
                "claimable", "active", "segment_id")


def validate_benefit(session: Session, program: Program, benefit: Any) -> dict[str, Any]:
    """The benefit in its stored form, or Invalid naming what is wrong with it."""
    def bad(message: str) -> Invalid:
        return Invalid("The benefit is not valid", code="invalid_benefit", errors={"benefit": [message]})

    if not isinstance(benefit, dict) or benefit.get("kind") not in BENEFIT_KINDS:
        raise bad(f"kind is one of {', '.join(BENEFIT_KINDS)}.")
    kind = benefit["kind"]
    allowed = {"percent_off": {"kind", "value"}, "amount_off": {"kind", "value", "currency"},
               "free_item": {"kind", "sku"}}[kind]
    unknown = set(benefit) - allowed
    if unknown:
        raise bad(f"Unknown keys for {kind}: {', '.join(sorted(unknown))}.")
    if kind == "free_item":
        sku = benefit.get("sku")
        if not isinstance(sku, str) or not sku:
            raise bad("free_item names the product's sku.")
        if session.scalar(select(Product.id).where(Product.sku == sku)) is None:
            raise bad(f"No product has the sku {sku!r}.")
        return {"kind": kind, "sku": sku}
    raw = benefit.get("value")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise bad('value is a decimal string, e.g. "10".')
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise bad("value is not a decimal number.") from None
    exponent = value.as_tuple().exponent  # an int when finite
    if not value.is_finite() or value <= 0 or not isinstance(exponent, int) or exponent < -2:
        raise bad("value is a positive number with at most two decimal places.")
    if kind == "percent_off":
        if value > 100:
            raise bad("A percentage is at most 100.")
        return {"kind": kind, "value": f"{value.normalize():f}"}
    currency = benefit.get("currency", program.currency)
    if currency != program.currency:
        raise bad(f"This club counts in {program.currency}.")
    if value > Decimal("100000"):
        raise bad("An amount off is at most 100000.")
    return {"kind": kind, "value": str(value.quantize(Decimal("0.01"))), "currency": currency}


def _validate_offer(session: Session, program: Program, data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    # Times are kept in UTC, so the answer to a create says what a later read will.
    out = {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in data.items()}
    if "benefit" in data:
        try:
            out["benefit"] = validate_benefit(session, program, data["benefit"])
        except Invalid as error:
            errors.update(error.errors or {})
    if data.get("stores"):
        stores = list(dict.fromkeys(data["stores"]))
        known = set(session.scalars(select(Store.id).where(Store.id.in_(stores))))
        missing = [s for s in stores if s not in known]
        if missing:
            errors["stores"] = [f"Unknown store: {', '.join(missing)}."]
        out["stores"] = stores
    if data.get("valid_from") and data.get("valid_until") and data["valid_until"] <= data["valid_from"]:
        errors["valid_until"] = ["Must be after valid_from."]
    if data.get("segment_id") is not None and session.get(Segment, data["segment_id"]) is None:
        errors["segment_id"] = [f"Unknown segment: {data['segment_id']}."]
    if errors:
        raise Invalid("The offer is not valid", code="unknown_segment" if list(errors) == ["segment_id"]
                      else "validation_error", errors=errors)
    return out


def create_offer(session: Session, program: Program, data: dict[str, Any], *, actor: str = "system") -> Offer:
    """A new offer, validated."""
    data = _validate_offer(session, program, {k: v for k, v in data.items() if k in OFFER_FIELDS})
    now = program.now()
    offer = Offer(**data, created_by=actor, created_at=now, updated_at=now)
    offer.stores = data.get("stores") or []
    session.add(offer)
    session.flush()
    return offer


def get_offer(session: Session, offer_id: str, *, include_archived: bool = False) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None or (offer.archived_at is not None and not include_archived):
        raise NotFound("No such offer", code="offer_not_found")
    return offer


def update_offer(session: Session, program: Program, offer_id: str, changes: dict[str, Any]) -> Offer:
    """Change an offer. What a coupon gives is fixed once coupons exist: make a new offer instead."""
    offer = get_offer(session, offer_id)
    changes = {k: v for k, v in changes.items() if k in OFFER_FIELDS}
    merged = {k: getattr(offer, k) for k in OFFER_FIELDS} | changes
    _validate_offer(session, program, {"valid_from": merged["valid_from"], "valid_until": merged["valid_until"]})
    changes = _validate_offer(session, program, changes) if changes else changes
    if "benefit" in changes and changes["benefit"] != offer.benefit and _has_coupons(session, offer.id):
        raise Conflict("Members hold coupons of this offer: what it gives can't change. Create a new offer.",
                       code="offer_has_coupons")
    if changes.get("total_limit") is not None:
        issued = session.scalar(select(Offer.issued_count).where(Offer.id == offer.id).with_for_update())
        if changes["total_limit"] < issued:
            raise Invalid(f"{issued} coupons are already out", code="total_limit_below_issued",
                          errors={"total_limit": [f"At least {issued}, the coupons already issued."]})
    for key, value in changes.items():
        setattr(offer, key, value)
    offer.updated_at = program.now()
    session.flush()
    return offer


def archive_offer(session: Session, program: Program, offer_id: str) -> None:
    """Retire an offer: no new coupons; coupons already held stay valid (void them to take them back)."""
    offer = get_offer(session, offer_id)
    offer.active = False
    offer.archived_at = offer.updated_at = program.now()
    session.flush()


def list_offers(session: Session, *, limit: int = 50, after: str | None = None,
                include_archived: bool = False) -> list[Offer]:
    query = select(Offer)
    if not include_archived:
        query = query.where(Offer.archived_at.is_(None))
    if after:
        query = query.where(Offer.id > after)
    return list(session.scalars(query.order_by(Offer.id).limit(limit)))


def offer_stats(session: Session, program: Program, offer_id: str) -> dict[str, Any]:
    """How an offer is doing: coupons by status, the redemption rate, points taken, redemptions rolled back."""
    offer = get_offer(session, offer_id, include_archived=True)
    now = program.now()
    shown = shown_status_sql(now)
    counts = Counter({status: count for status, count in session.execute(
        select(shown, func.count()).where(Coupon.offer_id == offer.id).group_by(shown))})
    points = session.execute(select(func.coalesce(func.sum(Coupon.points_cost), 0))
                             .where(Coupon.offer_id == offer.id, Coupon.status != "void")).scalar_one()
    rolled_back = session.scalar(select(func.count()).select_from(Redemption)
                                 .where(Redemption.offer_id == offer.id, Redemption.rolled_back_at.is_not(None)))
    given = sum(counts[s] for s in ("issued", "redeemed", "expired"))
    return {"offer_id": offer.id, "issued": given, "redeemed": counts["redeemed"], "open": counts["issued"],
            "expired": counts["expired"], "void": counts["void"],
            "redemption_rate": round(counts["redeemed"] / given, 4) if given else None,
            "points_spent": int(points), "rollbacks": rolled_back, "remaining": remaining_of(offer)}


def _has_coupons(session: Session, offer_id: str) -> bool:
    return session.scalar(select(Coupon.id).where(Coupon.offer_id == offer_id).limit(1)) is not None


def _open_now(now: datetime):
    """The offers that can give coupons now (SQL)."""
    return and_(Offer.active.is_(True), Offer.archived_at.is_(None),
                or_(Offer.valid_from.is_(None), Offer.valid_from <= now),
                or_(Offer.valid_until.is_(None), Offer.valid_until > now),
                or_(Offer.coupon_expires_at.is_(None), Offer.coupon_expires_at > now))


def check_open(offer: Offer, now: datetime) -> None:
    if not offer.active or offer.archived_at is not None:
        raise OfferNotActive("This offer is not running")
    if offer.valid_from is not None and now < offer.valid_from:
        raise OfferNotActive("This offer has not started yet", starts_at=iso(offer.valid_from))
    if (offer.valid_until is not None and now >= offer.valid_until) or \
            (offer.coupon_expires_at is not None and now >= offer.coupon_expires_at):
        raise OfferNotActive("This offer has ended")


def coupon_expiry(program: Program, offer: Offer, issued_at: datetime) -> datetime:
    days = offer.coupon_valid_days or program.coupon_validity_days
    expires = issued_at + timedelta(days=days)
    if offer.coupon_expires_at is not None:
        expires = min(expires, offer.coupon_expires_at)
    return expires


def visible_offers(session: Session, program: Program, member_id: str, *, limit: int = 50,
                   after: str | None = None, catalogue: bool | None = None) -> list[dict[str, Any]]:
    """The offers this member can claim now, with what is left of each and whether the balance pays for it."""
    now = program.now()
    held = (select(func.count()).select_from(Coupon)
            .where(Coupon.offer_id == Offer.id, Coupon.member_id == member_id, Coupon.status != "void")
            .correlate(Offer).scalar_subquery())
    query = (select(Offer, held).where(_open_now(now), Offer.claimable.is_(True),
                                       or_(Offer.total_limit.is_(None), Offer.issued_count < Offer.total_limit),
                                       or_(Offer.per_member_limit.is_(None), held < Offer.per_member_limit)))
    if catalogue is not None:
        query = query.where(Offer.points_cost.is_not(None) if catalogue else Offer.points_cost.is_(None))
    if after:
        query = query.where(Offer.id > after)
    query = query.where(or_(Offer.segment_id.is_(None), Offer.segment_id.in_(member_segments(
        session, program, member_id, offers=query.with_only_columns(Offer.segment_id).distinct()))))
    balance = ledger.balance_of(session, member_id).points
    return [_offer_view(offer, held_count, balance)
            for offer, held_count in session.execute(query.order_by(Offer.id).limit(limit))]


def member_offer(session: Session, program: Program, member_id: str, offer_id: str) -> dict[str, Any]:
    """One offer as the member sees it; 404 unless the member could claim it now."""
    offer = session.get(Offer, offer_id)
    if offer is None or not offer.claimable:
        raise NotFound("No such offer", code="offer_not_found")
    try:
        check_open(offer, program.now())
    except OfferNotActive:
        raise NotFound("No such offer", code="offer_not_found") from None
    if not in_offer_segment(session, program, offer, member_id):
        raise NotFound("No such offer", code="offer_not_found")
    held = held_by(session, offer.id, member_id)
    return _offer_view(offer, held, ledger.balance_of(session, member_id).points)


def _offer_view(offer: Offer, held: int, balance: int) -> dict[str, Any]:
    left_for_member = None if offer.per_member_limit is None else max(offer.per_member_limit - held, 0)
    return {"id": offer.id, "title": offer.title, "terms": offer.terms, "image_url": offer.image_url,
            "benefit": offer.benefit, "points_cost": offer.points_cost, "valid_from": offer.valid_from,
            "valid_until": offer.valid_until, "coupon_valid_days": offer.coupon_valid_days,
            "coupon_expires_at": offer.coupon_expires_at, "stores": offer.stores or [],
            "remaining": remaining_of(offer), "per_member_limit": offer.per_member_limit,
            "claimed": held, "member_remaining": left_for_member,
            "affordable": offer.points_cost is None or balance >= offer.points_cost,
            "can_claim": (left_for_member is None or left_for_member > 0)
                         and (offer.total_limit is None or offer.issued_count < offer.total_limit)}


def member_segments(session: Session, program: Program, member_id: str, *, offers: Any) -> list[str]:
    """Of the segments that ``offers`` (a select of segment ids) name, those the member is in now: one query per
    segment, each the segment's own with ``AND members.id = :id``."""
    named = [s for s in session.scalars(offers) if s is not None]
    return [s for s in named if segments.contains(session, s, member_id, program=program)]


def in_offer_segment(session: Session, program: Program, offer: Offer, member_id: str) -> bool:
    """Whether the member may see and claim the offer: it names no segment, or the member is in it."""
    if offer.segment_id is None:
        return True
    try:
        return segments.contains(session, offer.segment_id, member_id, program=program)
    except NotFound:
        return False


def held_by(session: Session, offer_id: str, member_id: str) -> int:
    return session.execute(select(func.count()).select_from(Coupon).where(
        Coupon.offer_id == offer_id, Coupon.member_id == member_id, Coupon.status != "void")).scalar_one()


DEMO_OFFERS: list[dict[str, Any]] = [
    {"title": "A free coffee on us", "terms": "One 250 g bag of the house blend. One per member.",
     "benefit": {"kind": "free_item", "sku": "COF-250"}, "per_member_limit": 1, "coupon_valid_days": 14},
    {"title": "10% off your basket", "terms": "On one purchase. Not with other offers.",
     "benefit": {"kind": "percent_off", "value": "10"}, "per_member_limit": 1, "total_limit": 1000},
    {"title": "The club mug", "terms": "Swap 500 points for our club mug, while stock lasts.",
     "benefit": {"kind": "free_item", "sku": "MUG-01"}, "points_cost": 500, "total_limit": 200,
     "coupon_valid_days": 60},
    {"title": "5 shekels off a croissant", "terms": "At Dizengoff Center only.",
     "benefit": {"kind": "amount_off", "value": "5.00"}, "points_cost": 50, "stores": ["TLV-DIZ"]},
]


def load_demo(session: Session, program: Program, stores: dict[str, Store]) -> list[Offer]:
    """Add the demo offers that are missing (by title): a free coffee, 10% off, catalogue items. Safe to repeat."""
    existing = set(session.scalars(select(Offer.title)))
    made = []
    for data in DEMO_OFFERS:
        if data["title"] in existing:
            continue
        data = dict(data)
        data["stores"] = [stores[code].id for code in data.get("stores", []) if code in stores]
        made.append(create_offer(session, program, data, actor="demo"))
    return made
