"""Giving a member a coupon of an offer: stock and per-member limits held by the database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from .. import events
from ..clock import iso
from ..codes import new_code
from ..db import new_id, rowcount
from ..errors import (
    NotFound,
    OfferNotActive,
)
from ..ledger import Balance
from ..program import Program
from .models import SYNC, Coupon, Offer
from .offers import check_open, coupon_expiry, held_by


def lock_member(session: Session, member_id: str) -> None:
    """Serialise this member's claims (PostgreSQL row lock on the balance, the lock the ledger takes too)."""
    found = session.execute(select(Balance.member_id).where(Balance.member_id == member_id)
                            .with_for_update()).first()
    if found is None:
        raise NotFound("No such member")


def take_stock(session: Session, offer: Offer, n: int = 1) -> bool:
    """Count ``n`` more coupons against the offer; False if that would pass its total limit."""
    won = rowcount(session.execute(
        update(Offer).where(Offer.id == offer.id,
                            or_(Offer.total_limit.is_(None), Offer.issued_count + n <= Offer.total_limit))
        .values(issued_count=Offer.issued_count + n), execution_options=SYNC))
    session.expire(offer, ["issued_count"])
    return bool(won)


def new_coupon(program: Program, offer: Offer, member_id: str, *, now: datetime, source: str, actor: str,
                channel: str, issue_key: str | None, coupon_id: str | None = None, points_cost: int = 0,
                spend_entry_id: str | None = None) -> Coupon:
    return Coupon(id=coupon_id or new_id("cpn"), offer_id=offer.id, member_id=member_id, code=new_code(),
                  status="issued", issued_at=now, expires_at=coupon_expiry(program, offer, now), source=source,
                  issue_key=issue_key, actor=actor, channel=channel, points_cost=points_cost,
                  spend_entry_id=spend_entry_id)


def record_issue(session: Session, coupon: Coupon, *, channel: str, batch: str | None = None) -> None:
    """The coupon's ``coupon.issued`` event, in the transaction that issued it."""
    data = {"coupon_id": coupon.id, "offer_id": coupon.offer_id, "source": coupon.source[:64],
            "points_cost": coupon.points_cost or 0, "expires_at": iso(coupon.expires_at)}
    if batch is not None:
        data["batch"] = batch[:64]
    events.emit(session, "coupon.issued", member_id=coupon.member_id, channel=events.channel_of(channel, "api"),
                actor=coupon.actor[:64], data=data, occurred_at=coupon.issued_at)


def issue_coupon(session: Session, program: Program, *, offer_id: str, member_id: str, idempotency_key: str,
                 source: str | None, actor: str, channel: str = "api") -> Coupon | None:
    """Give a member a coupon of an offer (a rule's reward); None when the offer can't give one now."""
    existing = session.scalar(select(Coupon).where(Coupon.offer_id == offer_id, Coupon.issue_key == idempotency_key,
                                                   Coupon.member_id == member_id))
    if existing is not None:
        return existing
    offer = session.get(Offer, offer_id)
    now = program.now()
    if offer is None:
        return None
    try:
        check_open(offer, now)
    except OfferNotActive:
        return None
    lock_member(session, member_id)
    if offer.per_member_limit is not None and held_by(session, offer.id, member_id) >= offer.per_member_limit:
        return None
    if not take_stock(session, offer):
        return None
    coupon = new_coupon(program, offer, member_id, now=now, source=(source or "rule")[:80], actor=actor[:48],
                         channel="rule", issue_key=idempotency_key)
    session.add(coupon)
    record_issue(session, coupon, channel=channel)
    session.flush()
    return coupon
