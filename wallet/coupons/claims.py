"""A member claims a coupon, paying its points cost through the ledger in the same transaction."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import fraud, ledger
from ..db import new_id
from ..errors import (
    LimitReached,
    NotFound,
    OfferExhausted,
    Rejected,
)
from ..members import Member
from ..program import Program
from .issuing import lock_member, new_coupon, record_issue, take_stock
from .models import Coupon, Offer
from .offers import check_open, held_by, in_offer_segment


def claim_coupon(session: Session, program: Program, *, member_id: str, offer_id: str, actor: str | None = None,
                 channel: str = "app") -> Coupon:
    """A member takes a coupon of an offer, paying its points cost through the ledger in the same transaction.

    Past LOYALTY_CLAIM_BURST claims a minute by one member, refused (429) and flagged."""
    now = program.now()
    fraud.check_burst(session, kind=fraud.CLAIM_BURST, subjects=[f"member:{member_id}"], limit=program.claim_burst,
                      now=now, member_id=member_id, code="too_many_claims",
                      detail="Too many coupon claims in a minute; try again shortly")
    offer = session.get(Offer, offer_id)
    if offer is None or offer.archived_at is not None or not offer.claimable:
        raise NotFound("No such offer", code="offer_not_found")
    check_open(offer, now)
    if not in_offer_segment(session, program, offer, member_id):
        raise NotFound("No such offer", code="offer_not_found")  # invisible to members outside its segment
    member = session.get(Member, member_id)
    if member is None or member.status != "active":
        raise Rejected("This membership is not active", code="member_inactive")
    lock_member(session, member_id)
    if offer.per_member_limit is not None and held_by(session, offer.id, member_id) >= offer.per_member_limit:
        raise LimitReached(f"This offer allows {offer.per_member_limit} per member", limit=offer.per_member_limit)
    if offer.total_limit is not None and offer.issued_count >= offer.total_limit:
        raise OfferExhausted("Every coupon of this offer has been claimed")  # the cheap early answer
    coupon_id = new_id("cpn")
    entry = None
    if offer.points_cost:
        entry = ledger.spend(session, program, member_id=member_id, points=offer.points_cost, reason="coupon",
                             idempotency_key=f"coupon:{coupon_id}", source=f"coupon:{coupon_id}",
                             description=f"Reward: {offer.title}"[:240], actor=actor or f"member:{member_id}",
                             channel=channel)
    # Last, so the offer's row lock (a hot row for a popular offer) is held for the shortest time.
    if not take_stock(session, offer):
        raise OfferExhausted("Every coupon of this offer has been claimed")
    coupon = new_coupon(program, offer, member_id, now=now, source="claim", actor=actor or f"member:{member_id}",
                         channel=channel, issue_key=None, coupon_id=coupon_id,
                         points_cost=offer.points_cost or 0, spend_entry_id=entry.id if entry else None)
    session.add(coupon)
    record_issue(session, coupon, channel=channel)
    session.flush()
    return coupon
