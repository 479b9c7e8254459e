"""What a member and a marketer see of coupons: lists, one coupon, its QR payload."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import qr
from ..codes import format_code
from ..errors import (
    NotFound,
)
from ..program import Program
from .models import Coupon, jsonable, shown_status, shown_status_sql
from .redemption import refuse_unusable


def _member_view(program: Program, coupon: Coupon, now: datetime) -> dict[str, Any]:
    """A coupon for its owner: the code and the QR token while it can be used."""
    offer, status = coupon.offer, shown_status(coupon, now)
    usable = status == "issued"
    return {"id": coupon.id, "offer_id": coupon.offer_id, "title": offer.title, "terms": offer.terms,
            "image_url": offer.image_url, "benefit": offer.benefit, "status": status,
            "code": format_code(coupon.code) if usable else None,
            "token": qr.coupon_token(program.secret, coupon.id) if usable else None,
            "stores": offer.stores or [], "points_cost": coupon.points_cost, "issued_at": coupon.issued_at,
            "expires_at": coupon.expires_at, "redeemed_at": coupon.redeemed_at, "voided_at": coupon.voided_at}


def wallet_coupons(session: Session, program: Program, member_id: str) -> list[dict[str, Any]]:
    """The coupons a member can use now, soonest to expire first (JSON-ready, for the wallet)."""
    now = program.now()
    found = session.scalars(select(Coupon).where(Coupon.member_id == member_id, Coupon.status == "issued",
                                                 Coupon.expires_at > now)
                            .order_by(Coupon.expires_at, Coupon.id).limit(200))
    return [jsonable(_member_view(program, c, now)) for c in found]


def member_coupons(session: Session, program: Program, member_id: str, *, status: str | None = None,
                   limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
    """A member's coupons, newest first, optionally of one shown status."""
    now = program.now()
    query = select(Coupon).where(Coupon.member_id == member_id)
    if status is not None:
        query = query.where(shown_status_sql(now) == status)
    if before:
        query = query.where(Coupon.id < before)
    return [_member_view(program, c, now) for c in session.scalars(query.order_by(Coupon.id.desc()).limit(limit))]


def own_coupon(session: Session, member_id: str, coupon_id: str) -> Coupon:
    """The member's own coupon, or NotFound."""
    coupon = session.get(Coupon, coupon_id)
    # Another member's coupon does not exist for this member: 404, never 403, so ids can't be probed.
    if coupon is None or coupon.member_id != member_id:
        raise NotFound("No such coupon", code="coupon_not_found")
    return coupon


def member_coupon(session: Session, program: Program, member_id: str, coupon_id: str) -> dict[str, Any]:
    return _member_view(program, own_coupon(session, member_id, coupon_id), program.now())


def coupon_qr_payload(session: Session, program: Program, member_id: str, coupon_id: str) -> str:
    """What the member's coupon QR code carries; only while the coupon can be used."""
    coupon = own_coupon(session, member_id, coupon_id)
    refuse_unusable(coupon, program.now())
    return qr.coupon_token(program.secret, coupon.id)


def admin_view(program: Program, coupon: Coupon, now: datetime) -> dict[str, Any]:
    view = _member_view(program, coupon, now)
    view.update(member_id=coupon.member_id, source=coupon.source, actor=coupon.actor, channel=coupon.channel,
                redeemed_store_id=coupon.redeemed_store_id, redemption_id=coupon.redemption_id,
                voided_by=coupon.voided_by, void_reason=coupon.void_reason, spend_entry_id=coupon.spend_entry_id)
    view["code"] = view["token"] = None  # staff look coupons up; they don't redeem them from here
    return view


def admin_coupons(session: Session, program: Program, *, offer_id: str | None = None, member_id: str | None = None,
                  status: str | None = None, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
    now = program.now()
    query = select(Coupon)
    if offer_id:
        query = query.where(Coupon.offer_id == offer_id)
    if member_id:
        query = query.where(Coupon.member_id == member_id)
    if status:
        query = query.where(shown_status_sql(now) == status)
    if before:
        query = query.where(Coupon.id < before)
    return [admin_view(program, c, now) for c in session.scalars(query.order_by(Coupon.id.desc()).limit(limit))]


def admin_coupon(session: Session, program: Program, coupon_id: str) -> dict[str, Any]:
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    return admin_view(program, coupon, program.now())
