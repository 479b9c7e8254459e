"""The demo club's contests: one open with entries, one drawn with its winners (and their prize coupons)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..coupons import Offer, create_offer
from ..program import Program
from .contests import _new_alias, create_contest, draw, enter
from .models import Contest, ContestEntry

OPEN_TITLE = "Win a year of coffee"
DRAWN_TITLE = "Autumn giveaway: a club mug"


PRIZE_TITLE = "Contest prize: the club mug"


def _prize_offer(session: Session, program: Program) -> str:
    """The demo contests' prize: an offer of its own, not claimable (winners get it; the shop's offers stay as they
    were, a member's one free coffee included)."""
    found = session.scalar(select(Offer.id).where(Offer.title == PRIZE_TITLE))
    if found is not None:
        return found
    return create_offer(session, program, {
        "title": PRIZE_TITLE, "terms": "For the winners of the club's contests.", "claimable": False,
        "benefit": {"kind": "free_item", "sku": "MUG-01"}, "coupon_valid_days": 60}, actor="demo").id


def load_demo(session: Session, program: Program, member_ids: list[str]) -> None:
    """Create the two demo contests if missing; ``member_ids`` enter both."""
    titles = set(session.scalars(select(Contest.title).where(Contest.title.in_((OPEN_TITLE, DRAWN_TITLE)))))
    now = program.now()
    prize = _prize_offer(session, program)
    if OPEN_TITLE not in titles:
        contest = create_contest(session, program, {
            "title": OPEN_TITLE, "terms": "One free entry per member, no purchase necessary; one more entry per "
            "purchase of 50.00 or more while the contest is open. Three winners, drawn verifiably.",
            "opens_at": now - timedelta(days=1), "closes_at": now + timedelta(days=13),
            "draw_at": now + timedelta(days=14), "winners": 3, "prize_offer_id": prize,
            "entries_per_purchase": {"min_amount": "50.00"}}, actor="demo")
        for member_id in member_ids:
            enter(session, program, contest.id, member_id)
    if DRAWN_TITLE not in titles:
        contest = create_contest(session, program, {
            "title": DRAWN_TITLE, "terms": "One free entry per member. Two winners.",
            "opens_at": now - timedelta(days=20), "closes_at": now - timedelta(days=6),
            "draw_at": now - timedelta(days=5), "winners": 2, "prize_offer_id": prize}, actor="demo")
        for member_id in member_ids:  # entered while it was open
            session.add(ContestEntry(contest_id=contest.id, member_id=member_id, alias=_new_alias(),
                                     created_at=now - timedelta(days=10)))
        session.flush()
        draw(session, program, contest.id, actor="demo", channel="job")
