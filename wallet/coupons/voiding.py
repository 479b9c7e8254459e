"""Voiding coupons: by a marketer, or when the purchase that earned them is refunded."""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from .. import events, ledger
from ..db import rowcount
from ..errors import (
    CouponAlreadyRedeemed,
    NotFound,
)
from ..ledger import LedgerEntry
from ..program import Program
from .listing import admin_view
from .models import SYNC, Coupon, Offer


def void_coupon(session: Session, program: Program, coupon_id: str, *, actor: str,
                reason: str = "") -> dict[str, Any]:
    """Cancel a coupon not yet redeemed; points it cost go back through a ledger reversal. Safe to repeat."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    now = program.now()
    won = rowcount(session.execute(update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "issued")
                                   .values(status="void", voided_at=now, voided_by=actor[:48],
                                           void_reason=reason[:200]),
                                   execution_options=SYNC))
    session.refresh(coupon)
    if not won:
        if coupon.status == "redeemed":
            raise CouponAlreadyRedeemed("A redeemed coupon can't be voided; roll the redemption back first")
        return admin_view(program, coupon, now) | {"points_refunded": 0}  # already void
    refunded = 0
    if coupon.spend_entry_id:
        entry = session.get_one(LedgerEntry, coupon.spend_entry_id)  # a foreign key: it exists
        reversal = ledger.reverse(session, program, entry, actor=actor, reason="coupon",
                                  description=f"Refund: {coupon.offer.title} cancelled"[:240])
        refunded = reversal.reversed
    # The coupon no longer counts against the offer's total: it can be claimed again.
    session.execute(update(Offer).where(Offer.id == coupon.offer_id, Offer.issued_count > 0)
                    .values(issued_count=Offer.issued_count - 1), execution_options=SYNC)
    session.expire(coupon.offer, ["issued_count"])
    events.emit(session, "coupon.voided", member_id=coupon.member_id, channel="console" if actor.startswith("staff:")
                else "api", actor=actor[:64], occurred_at=now,
                data={"coupon_id": coupon.id, "offer_id": coupon.offer_id, "points_refunded": refunded})
    session.flush()
    return admin_view(program, coupon, now) | {"points_refunded": refunded}


def void_coupons_from(session: Session, program: Program, source: str, *, member_id: str, actor: str,
                      reason: str) -> list[str]:
    """Void what one event gave that is still unused (a refunded purchase's reward coupons); returns their ids.

    Coupons already redeemed stay redeemed: what was given at the till can't be taken back here.
    """
    found = session.scalars(select(Coupon.id).where(Coupon.member_id == member_id, Coupon.source == source,
                                                    Coupon.status == "issued").order_by(Coupon.id)).all()
    for coupon_id in found:
        void_coupon(session, program, coupon_id, actor=actor, reason=reason)
    return list(found)
