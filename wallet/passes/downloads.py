"""What a member takes into the phone's wallet: the card and coupons as Apple Wallet passes, and the "save to
Google Wallet" links for them."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..coupons import own_coupon
from ..errors import Rejected
from ..members import Card, Member, get_member
from ..program import Program
from . import apple, google, registry, signing
from .content import card_view, coupon_view, is_erased, store_locations


@dataclass(frozen=True)
class Pkpass:
    data: bytes
    serial: str
    modified: int  # the pass's update tag (seconds since 1970): its Last-Modified
    filename: str


def _active_card(session: Session, member_id: str) -> tuple[Member, Card]:
    member = get_member(session, member_id)
    if member.status != "active" or is_erased(member):
        raise Rejected("This membership is closed", code="account_disabled")
    card = member.card
    if card is None or card.status != "active":
        raise Rejected("This card is blocked: a pass for it would not work at the till", code="card_inactive")
    return member, card


def card_pass(session: Session, program: Program, member_id: str) -> Pkpass:
    """The member's card as a signed Apple Wallet ``storeCard`` pass; refused for a blocked card or closed
    membership (its code would not work at the till)."""
    settings = signing.apple(program)
    member, card = _active_card(session, member_id)
    content = apple.card_content(program, settings, card_view(session, program, card), store_locations(session))
    registry.ensure(session, program, serial=card.id, kind="card", member_id=member.id, apple=True)
    modified = registry.refresh(session, program, card.id, content.digest)
    return Pkpass(apple.package(settings, content), card.id, modified, "loyalty-card.pkpass")


def coupon_pass(session: Session, program: Program, member_id: str, coupon_id: str) -> Pkpass:
    """One of the member's coupons as a ``coupon`` pass; a used, cancelled or expired one comes voided."""
    settings = signing.apple(program)
    coupon = own_coupon(session, member_id, coupon_id)
    content = apple.coupon_content(program, settings, coupon_view(program, coupon))
    registry.ensure(session, program, serial=coupon.id, kind="coupon", member_id=member_id, apple=True)
    modified = registry.refresh(session, program, coupon.id, content.digest)
    return Pkpass(apple.package(settings, content), coupon.id, modified, "coupon.pkpass")


def card_google_link(session: Session, program: Program, member_id: str) -> dict[str, str]:
    """``{save_url, jwt}`` that saves the card to Google Wallet, with its rotating barcode."""
    settings = signing.google(program)
    member, card = _active_card(session, member_id)
    registry.ensure(session, program, serial=card.id, kind="card", member_id=member.id, google=True)
    return google.card_link(program, settings, card_view(session, program, card))


def coupon_google_link(session: Session, program: Program, member_id: str, coupon_id: str) -> dict[str, str]:
    """``{save_url, jwt}`` that saves a coupon to Google Wallet as an offer object."""
    settings = signing.google(program)
    coupon = own_coupon(session, member_id, coupon_id)
    registry.ensure(session, program, serial=coupon.id, kind="coupon", member_id=member_id, google=True)
    return google.coupon_link(program, settings, coupon_view(program, coupon))
