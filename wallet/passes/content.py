"""What a pass shows, read from the club once and shared by Apple's and Google's formats: the card (name, tier,
balance, whether it still works) and a coupon (benefit, terms, expiry, whether it can still be used), with the
words in English and Hebrew."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import ledger, qr
from ..codes import format_code
from ..coupons import Coupon, shown_status
from ..errors import NotFound
from ..members import Card, Member
from ..program import Program
from ..stores import Store

LANGUAGES = ("en", "he")
MAX_LOCATIONS = 10  # Apple Wallet shows a pass on the lock screen near at most ten places


@dataclass(frozen=True)
class CardView:
    serial: str  # the card's id
    member_id: str
    usable: bool  # the card works at the till: active card of an active member
    erased: bool  # the member's personal data is gone: nothing personal on the pass
    name: str | None
    tier: str
    balance: int
    number: str | None  # the printed card number (the till's typed fallback)
    code: str | None  # the pass's QR payload (P1-...), only while usable


@dataclass(frozen=True)
class CouponView:
    serial: str  # the coupon's id
    member_id: str
    offer_id: str
    title: str
    terms: str
    benefit: dict[str, Any]
    status: str  # issued, redeemed, expired or void
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    code: str | None  # the typed code, while usable
    token: str | None  # the QR payload (K1-...), while usable

    @property
    def usable(self) -> bool:
        return self.status == "issued"


def is_erased(member: Member) -> bool:
    """Erasure (another feature) marks the member; until it lands, no member is erased."""
    return member.status == "erased" or getattr(member, "erased_at", None) is not None


def card_view(session: Session, program: Program, card: Card) -> CardView:
    member = session.get_one(Member, card.member_id)  # a foreign key: it exists
    erased = is_erased(member)
    usable = card.status == "active" and member.status == "active" and not erased
    balance = session.get(ledger.Balance, member.id)
    return CardView(serial=card.id, member_id=member.id, usable=usable, erased=erased,
                    name=None if erased else member.name, tier=member.tier,
                    balance=0 if balance is None or erased else balance.points,
                    number=None if erased else card.number,
                    code=qr.pass_code(program.secret, card.id) if usable else None)


def card_view_by_serial(session: Session, program: Program, serial: str) -> CardView:
    card = session.get(Card, serial)
    if card is None:
        raise NotFound("No such card", code="card_not_found")
    return card_view(session, program, card)


def coupon_view(program: Program, coupon: Coupon) -> CouponView:
    status = shown_status(coupon, program.now())
    usable = status == "issued"
    offer = coupon.offer
    return CouponView(serial=coupon.id, member_id=coupon.member_id, offer_id=coupon.offer_id, title=offer.title,
                      terms=offer.terms, benefit=dict(offer.benefit), status=status, issued_at=coupon.issued_at,
                      expires_at=coupon.expires_at, redeemed_at=coupon.redeemed_at,
                      code=format_code(coupon.code) if usable else None,
                      token=qr.coupon_token(program.secret, coupon.id) if usable else None)


def coupon_view_by_serial(session: Session, program: Program, serial: str) -> CouponView:
    coupon = session.get(Coupon, serial)
    if coupon is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    return coupon_view(program, coupon)


def store_locations(session: Session) -> list[dict[str, float]]:
    """Where the card is relevant: up to ten open stores (the club's places, nothing about the member)."""
    rows = session.execute(select(Store.lat, Store.lon).where(Store.active.is_(True), Store.archived_at.is_(None))
                           .order_by(Store.code).limit(MAX_LOCATIONS))
    return [{"latitude": float(lat), "longitude": float(lon)} for lat, lon in rows]


# ------------------------------------------------------------------ words

WORDS: dict[str, dict[str, str]] = {
    "POINTS": {"en": "Points", "he": "נקודות"},
    "MEMBER": {"en": "Member", "he": "חבר/ת מועדון"},
    "TIER": {"en": "Tier", "he": "דרגה"},
    "CARD_NUMBER": {"en": "Card number", "he": "מספר כרטיס"},
    "CARD_DESCRIPTION": {"en": "Loyalty card", "he": "כרטיס מועדון"},
    "CARD_HOW": {"en": "Show this code at the till to earn points and use your benefits.",
                 "he": "הציגו את הקוד בקופה כדי לצבור נקודות ולממש הטבות."},
    "CARD_VOID": {"en": "This card no longer works. Open the club's app for your current card.",
                  "he": "הכרטיס הזה אינו בתוקף. פתחו את האפליקציה של המועדון לכרטיס הנוכחי."},
    "CARD_STATUS": {"en": "Card", "he": "כרטיס"},
    "NOT_VALID": {"en": "Not valid", "he": "לא בתוקף"},
    "BALANCE_CHANGED": {"en": "You now have %@ points", "he": "יש לך עכשיו %@ נקודות"},
    "TIER_CHANGED": {"en": "Your tier is now %@", "he": "הדרגה שלך עכשיו %@"},
    "RELEVANT": {"en": "Show your club card at the till", "he": "הציגו את כרטיס המועדון בקופה"},
    "COUPON_DESCRIPTION": {"en": "Coupon", "he": "קופון"},
    "OFFER": {"en": "Offer", "he": "הטבה"},
    "EXPIRES": {"en": "Valid until", "he": "בתוקף עד"},
    "TERMS": {"en": "Terms", "he": "תנאים"},
    "CODE": {"en": "Code", "he": "קוד"},
    "STATUS": {"en": "Status", "he": "מצב"},
    "COUPON_ISSUED": {"en": "Ready to use", "he": "מוכן לשימוש"},
    "COUPON_REDEEMED": {"en": "Used", "he": "מומש"},
    "COUPON_EXPIRED": {"en": "Expired", "he": "פג תוקף"},
    "COUPON_VOID": {"en": "Cancelled", "he": "בוטל"},
    "COUPON_HOW": {"en": "Show this code at the till; it can be used once.",
                   "he": "הציגו את הקוד בקופה; אפשר להשתמש בו פעם אחת."},
}

TIERS = {"basic": {"en": "Basic", "he": "בסיסי"}, "silver": {"en": "Silver", "he": "כסף"},
         "gold": {"en": "Gold", "he": "זהב"}, "platinum": {"en": "Platinum", "he": "פלטינום"}}

_SYMBOLS = {"ILS": "₪", "USD": "$", "EUR": "€", "GBP": "£"}


def tier_words(code: str) -> dict[str, str]:
    known = TIERS.get(code)
    return dict(known) if known else {lang: code.replace("_", " ").title() for lang in LANGUAGES}


def _amount(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{number.normalize():f}" if number == number.to_integral() else f"{number:.2f}"


def benefit_words(benefit: dict[str, Any], currency: str) -> dict[str, str]:
    """The benefit in a sentence per language: "10% off", "₪5 off", "A free item"."""
    kind, value = benefit.get("kind"), benefit.get("value")
    if kind == "percent_off":
        return {"en": f"{_amount(value)}% off", "he": f"{_amount(value)}% הנחה"}
    if kind == "amount_off":
        code = benefit.get("currency") or currency
        symbol = _SYMBOLS.get(code)
        shown = f"{symbol}{_amount(value)}" if symbol else f"{_amount(value)} {code}"
        return {"en": f"{shown} off", "he": f"{shown} הנחה"}
    if kind == "free_item":
        return {"en": "A free item", "he": "מוצר במתנה"}
    return {"en": "A club offer", "he": "הטבת מועדון"}


def status_words(status: str) -> str:
    return f"COUPON_{status.upper()}"
