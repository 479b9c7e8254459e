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
from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

import psycopg
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from . import ledger, qr
from .db import Base, UTCDateTime, execute, id_column, iso, new_id, on_postgres, utcnow
from .errors import Conflict, Invalid, InvalidToken, NotFound, Rejected
from .ledger import Balance, LedgerEntry
from .members import Member
from .program import Program
from .stores import Product, Store

STATUSES = ("issued", "redeemed", "void")  # stored; "expired" is derived
SHOWN_STATUSES = ("issued", "redeemed", "expired", "void")
BENEFIT_KINDS = ("percent_off", "amount_off", "free_item")
_SYNC = {"synchronize_session": False}


# ---------------------------------------------------------------- errors

class OfferNotActive(Rejected):
    code = "offer_not_active"
    title = "This offer can't be claimed now"


class OfferExhausted(Rejected):
    code = "offer_exhausted"
    title = "This offer has run out"


class LimitReached(Rejected):
    code = "limit_reached"
    title = "You already have as many of these as the offer allows"


class CouponAlreadyRedeemed(Conflict):
    code = "coupon_already_redeemed"
    title = "This coupon was already redeemed"


class CouponExpired(Rejected):
    code = "coupon_expired"
    title = "This coupon has expired"


class CouponVoid(Rejected):
    code = "coupon_void"
    title = "This coupon was cancelled"


class CouponNotValidHere(Rejected):
    code = "coupon_not_valid_here"
    title = "This coupon can't be redeemed in this store"


class CouponOwnerMismatch(Rejected):
    code = "coupon_owner_mismatch"
    title = "This coupon belongs to another member"


class InvalidCoupon(Invalid):
    """What was scanned or typed is not a coupon this club issued (forged, tampered or mistyped)."""
    code = "invalid_coupon"
    title = "Not a valid coupon code"


# ---------------------------------------------------------------- models

class Offer(Base):
    """A coupon template: the benefit, its price in points (if any), its window and its limits."""

    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("issued_count >= 0", name="issued_count_not_negative"),
        CheckConstraint("total_limit IS NULL OR issued_count <= total_limit", name="within_total_limit"),
        CheckConstraint("points_cost IS NULL OR points_cost > 0", name="points_cost_positive"),
    )

    id: Mapped[str] = id_column("off")
    title: Mapped[str] = mapped_column(String(120))
    terms: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(500))
    benefit: Mapped[dict]
    points_cost: Mapped[int | None]
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    coupon_valid_days: Mapped[int | None]  # how long a claimed coupon stays valid; None: the programme's default
    coupon_expires_at: Mapped[datetime | None]  # a fixed last day for every coupon, whichever comes first
    per_member_limit: Mapped[int | None]
    total_limit: Mapped[int | None]
    # Coupons given and not voided: the counter the total limit is enforced on.
    issued_count: Mapped[int] = mapped_column(default=0)
    stores: Mapped[list] = mapped_column(default=list)  # store ids; empty: every store
    claimable: Mapped[bool] = mapped_column(default=True)  # False: only rules and bulk issue give it
    active: Mapped[bool] = mapped_column(default=True)
    archived_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(48), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def remaining(self) -> int | None:
        """Coupons left to give; None when there is no total limit."""
        return remaining_of(self)


class Coupon(Base):
    """One member's copy of an offer."""

    __tablename__ = "coupons"
    __table_args__ = (
        # Idempotent issue: one coupon per (offer, issue key, member); NULL keys (claims) never collide.
        UniqueConstraint("offer_id", "issue_key", "member_id"),
        CheckConstraint("status IN ('issued','redeemed','void')", name="status_known"),
        # Few indexes on purpose: every one is paid for by each of 100,000 rows a bulk issue writes. Lookups by
        # offer use the unique constraint above (offer_id leads it); a member's few coupons are found by member.
        Index("ix_coupons_member", "member_id"),
    )

    id: Mapped[str] = id_column("cpn")
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    code: Mapped[str] = mapped_column(String(12), unique=True)  # the human code, stored without dashes
    status: Mapped[str] = mapped_column(String(16), default="issued")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(80), default="claim")  # claim, an event ("purchase:pur_..."), bulk:<batch>
    issue_key: Mapped[str | None] = mapped_column(String(160))
    actor: Mapped[str] = mapped_column(String(48), default="system")
    channel: Mapped[str] = mapped_column(String(16), default="app")
    points_cost: Mapped[int] = mapped_column(default=0)  # what the member paid
    spend_entry_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_entries.id"))
    redeemed_at: Mapped[datetime | None]
    redeemed_store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"))
    redemption_id: Mapped[str | None] = mapped_column(String(32))
    voided_at: Mapped[datetime | None]
    voided_by: Mapped[str | None] = mapped_column(String(48))
    void_reason: Mapped[str | None] = mapped_column(String(200))

    offer: Mapped[Offer] = relationship(lazy="joined", innerjoin=True)


class Redemption(Base):
    """A coupon used at a till. Rolled back (the purchase was cancelled) it stays, marked, for the record."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        # One live redemption per coupon, whatever the code above does.
        Index("uq_coupon_redemptions_live", "coupon_id", unique=True,
              postgresql_where=text("rolled_back_at IS NULL"), sqlite_where=text("rolled_back_at IS NULL")),
        Index("ix_coupon_redemptions_store_time", "store_id", "redeemed_at"),
    )

    id: Mapped[str] = id_column("rdm")
    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"))
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    cashier_id: Mapped[str | None] = mapped_column(String(32))
    receipt_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16), default="till")
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow)
    rolled_back_at: Mapped[datetime | None]
    rolled_back_by: Mapped[str | None] = mapped_column(String(48))


# ---------------------------------------------------------------- human codes

# Crockford's base32: no I, L, O or U, so what is read aloud or typed can't be two things.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LETTERS = "ABCDEFGHJKMNPQRSTVWXYZ"
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})
CODE_LENGTH = 12  # a letter, 10 random symbols (about 54 bits in all) and a check symbol


def _check_symbol(body: str) -> str:
    """Luhn mod 32: catches every single wrong symbol and most swapped neighbours before the database is asked."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * CODE_ALPHABET.index(ch)
        factor = 3 - factor
        total += addend // 32 + addend % 32
    return CODE_ALPHABET[(32 - total % 32) % 32]


def new_code() -> str:
    """A fresh human code. It starts with a letter so a till never mistakes it for a card number."""
    return new_codes(1)[0]


# Each symbol's share of the check sum, by its distance from the end: Luhn mod 32 without a loop per symbol.
_CHECK_SHARE = [{ch: (f * v) // 32 + (f * v) % 32 for v, ch in enumerate(CODE_ALPHABET)}
                for f in (2, 1) * (CODE_LENGTH // 2)]


# A random byte's low 5 bits as a symbol (256 is a multiple of 32, so every symbol is equally likely).
_SYMBOL_OF_BYTE = bytes(ord(CODE_ALPHABET[b % 32]) for b in range(256))


def _random_symbols(n: int) -> str:
    """``n`` random Crockford symbols (5 bits each) from the OS's random source, in one C-level pass."""
    return os.urandom(n).translate(_SYMBOL_OF_BYTE).decode("ascii")


# The same sums by pairs of symbols (a symbol at an odd distance from the end, then one at an even distance), and
# the check symbol that completes a total: a code's check is 6 lookups.
_PAIR_SHARE = {a + b: _CHECK_SHARE[1][a] + _CHECK_SHARE[0][b] for a in CODE_ALPHABET for b in CODE_ALPHABET}
_FIRST_SHARE = [(ch, _CHECK_SHARE[0][ch]) for ch in _LETTERS]
_COMPLETES = [CODE_ALPHABET[(32 - total) % 32] for total in range(32)]


def new_codes(n: int) -> list[str]:
    """``n`` fresh human codes at once (bulk issue): the same shape as :func:`new_code`, about a µs each."""
    body_len = CODE_LENGTH - 2  # after the letter, before the check symbol
    symbols = _random_symbols(n * body_len)
    pair, first, completes = _PAIR_SHARE, _FIRST_SHARE, _COMPLETES
    codes = []
    for i, r in enumerate(memoryview(os.urandom(2 * n)).cast("H")):
        s = symbols[i * body_len:(i + 1) * body_len]
        letter, share = first[r % len(first)]
        total = share + pair[s[0:2]] + pair[s[2:4]] + pair[s[4:6]] + pair[s[6:8]] + pair[s[8:10]]
        codes.append(letter + s + completes[total % 32])
    return codes


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids in :func:`wallet.db.new_id`'s layout (this millisecond, then 80 random bits each)."""
    head = new_id(prefix)[:len(prefix) + 11]  # "cpn_" and the 10 symbols of the clock
    symbols = _random_symbols(n * 16)
    return [head + symbols[i * 16:(i + 1) * 16] for i in range(n)]


def format_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalise_code(typed: str) -> str:
    """The stored form of a typed code: upper case, no spaces or dashes, O read as 0 and I/L as 1."""
    code = "".join(typed.split()).replace("-", "").upper().translate(_TYPOS)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code) \
            or _check_symbol(code[:-1]) != code[-1]:
        raise InvalidCoupon("This is not a coupon code: check it and type it again", code="invalid_coupon_code",
                            errors={"coupon": ["Not a valid coupon code."]})
    return code


# ---------------------------------------------------------------- offers (marketers)

OFFER_FIELDS = ("title", "terms", "image_url", "benefit", "points_cost", "valid_from", "valid_until",
                "coupon_valid_days", "coupon_expires_at", "per_member_limit", "total_limit", "stores",
                "claimable", "active")


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
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:
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
    if errors:
        raise Invalid("The offer is not valid", errors=errors)
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


def remaining_of(offer: Offer) -> int | None:
    return None if offer.total_limit is None else max(offer.total_limit - offer.issued_count, 0)


def offer_stats(session: Session, program: Program, offer_id: str) -> dict[str, Any]:
    """How an offer is doing: coupons by status, the redemption rate, points taken, redemptions rolled back."""
    offer = get_offer(session, offer_id, include_archived=True)
    now = program.now()
    shown = _shown_status_sql(now)
    counts = Counter({status: count for status, count in session.execute(
        select(shown, func.count()).where(Coupon.offer_id == offer.id).group_by(shown))})
    points = session.scalar(select(func.coalesce(func.sum(Coupon.points_cost), 0))
                            .where(Coupon.offer_id == offer.id, Coupon.status != "void"))
    rolled_back = session.scalar(select(func.count()).select_from(Redemption)
                                 .where(Redemption.offer_id == offer.id, Redemption.rolled_back_at.is_not(None)))
    given = sum(counts[s] for s in ("issued", "redeemed", "expired"))
    return {"offer_id": offer.id, "issued": given, "redeemed": counts["redeemed"], "open": counts["issued"],
            "expired": counts["expired"], "void": counts["void"],
            "redemption_rate": round(counts["redeemed"] / given, 4) if given else None,
            "points_spent": int(points), "rollbacks": rolled_back, "remaining": remaining_of(offer)}


def _has_coupons(session: Session, offer_id: str) -> bool:
    return session.scalar(select(Coupon.id).where(Coupon.offer_id == offer_id).limit(1)) is not None


def _shown_status_sql(now: datetime):
    return case((and_(Coupon.status == "issued", Coupon.expires_at <= now), "expired"), else_=Coupon.status)


def _open_now(now: datetime):
    """The offers that can give coupons now (SQL)."""
    return and_(Offer.active.is_(True), Offer.archived_at.is_(None),
                or_(Offer.valid_from.is_(None), Offer.valid_from <= now),
                or_(Offer.valid_until.is_(None), Offer.valid_until > now),
                or_(Offer.coupon_expires_at.is_(None), Offer.coupon_expires_at > now))


def _check_open(offer: Offer, now: datetime) -> None:
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


# ---------------------------------------------------------------- what a member sees

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
    balance = ledger.balance_of(session, member_id).points
    return [_offer_view(offer, held_count, balance)
            for offer, held_count in session.execute(query.order_by(Offer.id).limit(limit))]


def member_offer(session: Session, program: Program, member_id: str, offer_id: str) -> dict[str, Any]:
    """One offer as the member sees it; 404 unless the member could claim it now."""
    offer = session.get(Offer, offer_id)
    if offer is None or not offer.claimable:
        raise NotFound("No such offer", code="offer_not_found")
    try:
        _check_open(offer, program.now())
    except OfferNotActive:
        raise NotFound("No such offer", code="offer_not_found") from None
    held = _held(session, offer.id, member_id)
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


def _held(session: Session, offer_id: str, member_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.offer_id == offer_id, Coupon.member_id == member_id, Coupon.status != "void"))


# ---------------------------------------------------------------- giving coupons

def _lock_member(session: Session, member_id: str) -> None:
    """Serialise this member's claims (PostgreSQL row lock on the balance, the lock the ledger takes too)."""
    found = session.execute(select(Balance.member_id).where(Balance.member_id == member_id)
                            .with_for_update()).first()
    if found is None:
        raise NotFound("No such member")


def _take_stock(session: Session, offer: Offer, n: int = 1) -> bool:
    """Count ``n`` more coupons against the offer; False if that would pass its total limit."""
    won = session.execute(
        update(Offer).where(Offer.id == offer.id,
                            or_(Offer.total_limit.is_(None), Offer.issued_count + n <= Offer.total_limit))
        .values(issued_count=Offer.issued_count + n), execution_options=_SYNC).rowcount
    session.expire(offer, ["issued_count"])
    return bool(won)


def _new_coupon(program: Program, offer: Offer, member_id: str, *, now: datetime, source: str, actor: str,
                channel: str, issue_key: str | None, coupon_id: str | None = None, points_cost: int = 0,
                spend_entry_id: str | None = None) -> Coupon:
    return Coupon(id=coupon_id or new_id("cpn"), offer_id=offer.id, member_id=member_id, code=new_code(),
                  status="issued", issued_at=now, expires_at=coupon_expiry(program, offer, now), source=source,
                  issue_key=issue_key, actor=actor, channel=channel, points_cost=points_cost,
                  spend_entry_id=spend_entry_id)


def claim_coupon(session: Session, program: Program, *, member_id: str, offer_id: str, actor: str | None = None,
                 channel: str = "app") -> Coupon:
    """A member takes a coupon of an offer, paying its points cost through the ledger in the same transaction."""
    now = program.now()
    offer = session.get(Offer, offer_id)
    if offer is None or offer.archived_at is not None or not offer.claimable:
        raise NotFound("No such offer", code="offer_not_found")
    _check_open(offer, now)
    member = session.get(Member, member_id)
    if member is None or member.status != "active":
        raise Rejected("This membership is not active", code="member_inactive")
    _lock_member(session, member_id)
    if offer.per_member_limit is not None and _held(session, offer.id, member_id) >= offer.per_member_limit:
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
    if not _take_stock(session, offer):
        raise OfferExhausted("Every coupon of this offer has been claimed")
    coupon = _new_coupon(program, offer, member_id, now=now, source="claim", actor=actor or f"member:{member_id}",
                         channel=channel, issue_key=None, coupon_id=coupon_id,
                         points_cost=offer.points_cost or 0, spend_entry_id=entry.id if entry else None)
    session.add(coupon)
    session.flush()
    return coupon


def issue_coupon(session: Session, program: Program, *, offer_id: str, member_id: str, idempotency_key: str,
                 source: str | None, actor: str) -> Coupon | None:
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
        _check_open(offer, now)
    except OfferNotActive:
        return None
    _lock_member(session, member_id)
    if offer.per_member_limit is not None and _held(session, offer.id, member_id) >= offer.per_member_limit:
        return None
    if not _take_stock(session, offer):
        return None
    coupon = _new_coupon(program, offer, member_id, now=now, source=(source or "rule")[:80], actor=actor[:48],
                         channel="rule", issue_key=idempotency_key)
    session.add(coupon)
    session.flush()
    return coupon


def bulk_issue(session: Session, program: Program, offer_id: str, *, member_ids: list[str] | None = None,
               all_members: bool = False, batch: str | None = None, actor: str = "system") -> dict[str, Any]:
    """Give many members a coupon at once, in batched inserts; idempotent per ``batch``. Reports what was skipped.

    Without a ``batch`` name the batch is the offer itself, so running it twice gives nobody a second coupon;
    name a new batch to give another round.
    """
    if bool(member_ids) == bool(all_members):
        raise Invalid("Name the members or choose all members", code="validation_error",
                      errors={"member_ids": ["Send member_ids or all_members, not both."]})
    # The offer's row lock makes concurrent runs of one offer take turns, so the total limit and counts hold.
    offer = session.execute(select(Offer).where(Offer.id == offer_id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if offer is None or offer.archived_at is not None:
        raise NotFound("No such offer", code="offer_not_found")
    now = program.now()
    _check_open(offer, now)
    batch = batch or "default"
    key = f"bulk:{batch}"
    skipped: Counter[str] = Counter()

    if all_members:
        # Core, not ORM: 100,000 ids need no objects (the ORM query above has flushed what was pending).
        members = Member.__table__
        candidates = session.execute(select(members.c.id).where(members.c.status == "active")
                                     .order_by(members.c.id)).scalars().all()
    else:
        wanted = list(dict.fromkeys(member_ids))
        skipped["duplicate"] = len(member_ids) - len(wanted)
        status_of = {}
        for chunk in _chunks(wanted, 5000):
            status_of.update(session.execute(select(Member.id, Member.status).where(Member.id.in_(chunk))).all())
        candidates = []
        for member_id in wanted:
            status = status_of.get(member_id)
            if status is None:
                skipped["unknown_member"] += 1
            elif status != "active":
                skipped["member_inactive"] += 1
            else:
                candidates.append(member_id)

    already = set(session.scalars(select(Coupon.member_id).where(Coupon.offer_id == offer.id,
                                                                 Coupon.issue_key == key)))
    held: dict[str, int] = {}
    if offer.per_member_limit is not None:
        held = dict(session.execute(select(Coupon.member_id, func.count())
                                    .where(Coupon.offer_id == offer.id, Coupon.status != "void")
                                    .group_by(Coupon.member_id)).all())
    limit = offer.per_member_limit
    if not already and limit is None:
        eligible = list(candidates)  # the first round of an offer without a per-member limit: everyone
    else:
        eligible = []
        for member_id in candidates:
            if member_id in already:
                skipped["already_issued"] += 1
            elif limit is not None and held.get(member_id, 0) >= limit:
                skipped["limit_reached"] += 1
            else:
                eligible.append(member_id)
    left = remaining_of(offer)
    if left is not None and len(eligible) > left:
        skipped["offer_exhausted"] += len(eligible) - left
        eligible = eligible[:left]

    issued = _insert_coupons(session, program, offer, eligible, now=now, key=key, actor=actor[:48])
    if issued:
        session.execute(update(Offer).where(Offer.id == offer.id)
                        .values(issued_count=Offer.issued_count + issued, updated_at=now), execution_options=_SYNC)
        session.expire(offer)
    session.flush()
    return {"offer_id": offer.id, "batch": batch, "issued": issued,
            "skipped": {reason: n for reason, n in sorted(skipped.items()) if n}}


def _insert_coupons(session: Session, program: Program, offer: Offer, member_ids: list[str], *, now: datetime,
                    key: str, actor: str) -> int:
    """Insert one coupon per member: on PostgreSQL one COPY, elsewhere batched executemany.

    Members, ids and codes are each sorted before they are paired (ids and codes are random, so which member
    gets which is still random): every index of the table (id, code, offer and key and member, member) then
    takes its new entries in ascending order, leaf page after leaf page, instead of all over the tree.
    """
    n = len(member_ids)
    if not n:
        return 0
    expires = coupon_expiry(program, offer, now)
    member_ids = sorted(member_ids)
    ids = sorted(new_ids("cpn", n))
    codes = new_codes(n)
    while len(set(codes)) < n:  # two equal codes in one batch (about 1 in 10^10 for 100,000): draw again
        codes = new_codes(n)
    codes.sort()
    constant = {"offer_id": offer.id, "status": "issued", "issued_at": now, "expires_at": expires,
                "source": key[:80], "issue_key": key, "actor": actor, "channel": "bulk", "points_cost": 0}
    if on_postgres(session):
        _copy_coupons(session, ids, member_ids, codes, constant)
    else:
        for start in range(0, n, 5_000):
            session.execute(_COUPON_INSERT, [
                {"id": i, "member_id": m, "code": c} | constant
                for i, m, c in zip(ids[start:start + 5_000], member_ids[start:start + 5_000],
                                   codes[start:start + 5_000], strict=True)])
    return n


_COUPON_INSERT = insert(Coupon.__table__)
_COPY_COLUMNS = ("offer_id", "status", "issued_at", "expires_at", "source", "issue_key", "actor", "channel",
                 "points_cost")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One field in COPY's text format (no NULLs here)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")  # the columns hold naive UTC
    return str(value).translate(_COPY_ESCAPES)


def _copy_coupons(session: Session, ids: list[str], member_ids: list[str], codes: list[str],
                  constant: dict[str, Any]) -> None:
    """PostgreSQL: the rows as one COPY in the session's transaction, sent in slices so the server writes one
    slice while the next is formatted. COPY writes rows in batches; an INSERT writes them one at a time."""
    tail = "\t" + "\t".join(_copy_text(constant[c]) for c in _COPY_COLUMNS) + "\n"
    if any(ch in "".join(member_ids) for ch in "\\\t\n\r"):
        member_ids = [_copy_text(m) for m in member_ids]  # ids this club makes never need it; others might
    raw = session.connection().connection.driver_connection
    statement = f"COPY coupons ({', '.join(('id', 'member_id', 'code') + _COPY_COLUMNS)}) FROM STDIN"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for start in range(0, len(ids), 10_000):
                stop = start + 10_000
                copy.write("".join([f"{i}\t{m}\t{c}{tail}" for i, m, c in
                                    zip(ids[start:stop], member_ids[start:stop], codes[start:stop], strict=True)]))
    except psycopg.Error as error:
        # As SQLAlchemy would have raised it: a unique violation (a code already taken) is an IntegrityError,
        # which the request's retry answers by drawing new codes.
        raise DBAPIError.instance(statement, None, error, psycopg.Error) from error


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ---------------------------------------------------------------- views of a coupon

def shown_status(coupon: Coupon, now: datetime) -> str:
    if coupon.status == "issued" and coupon.expires_at <= now:
        return "expired"
    return coupon.status


def coupon_summary(coupon: Coupon) -> dict[str, Any]:
    """A coupon as other answers show it (a rule's reward): no code or token, which are the member's alone."""
    offer = coupon.offer
    return {"id": coupon.id, "offer_id": coupon.offer_id, "title": offer.title, "benefit": offer.benefit,
            "status": coupon.status, "issued_at": iso(coupon.issued_at), "expires_at": iso(coupon.expires_at)}


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


def _jsonable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in view.items()}


def wallet_coupons(session: Session, program: Program, member_id: str) -> list[dict[str, Any]]:
    """The coupons a member can use now, soonest to expire first (JSON-ready, for the wallet)."""
    now = program.now()
    found = session.scalars(select(Coupon).where(Coupon.member_id == member_id, Coupon.status == "issued",
                                                 Coupon.expires_at > now)
                            .order_by(Coupon.expires_at, Coupon.id).limit(200))
    return [_jsonable(_member_view(program, c, now)) for c in found]


def member_coupons(session: Session, program: Program, member_id: str, *, status: str | None = None,
                   limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
    """A member's coupons, newest first, optionally of one shown status."""
    now = program.now()
    query = select(Coupon).where(Coupon.member_id == member_id)
    if status is not None:
        query = query.where(_shown_status_sql(now) == status)
    if before:
        query = query.where(Coupon.id < before)
    return [_member_view(program, c, now) for c in session.scalars(query.order_by(Coupon.id.desc()).limit(limit))]


def _own_coupon(session: Session, member_id: str, coupon_id: str) -> Coupon:
    coupon = session.get(Coupon, coupon_id)
    # Another member's coupon does not exist for this member: 404, never 403, so ids can't be probed.
    if coupon is None or coupon.member_id != member_id:
        raise NotFound("No such coupon", code="coupon_not_found")
    return coupon


def member_coupon(session: Session, program: Program, member_id: str, coupon_id: str) -> dict[str, Any]:
    return _member_view(program, _own_coupon(session, member_id, coupon_id), program.now())


def coupon_qr_payload(session: Session, program: Program, member_id: str, coupon_id: str) -> str:
    """What the member's coupon QR code carries; only while the coupon can be used."""
    coupon = _own_coupon(session, member_id, coupon_id)
    _refuse_unusable(coupon, program.now())
    return qr.coupon_token(program.secret, coupon.id)


def _admin_view(program: Program, coupon: Coupon, now: datetime) -> dict[str, Any]:
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
        query = query.where(_shown_status_sql(now) == status)
    if before:
        query = query.where(Coupon.id < before)
    return [_admin_view(program, c, now) for c in session.scalars(query.order_by(Coupon.id.desc()).limit(limit))]


def admin_coupon(session: Session, program: Program, coupon_id: str) -> dict[str, Any]:
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    return _admin_view(program, coupon, program.now())


# ---------------------------------------------------------------- the till

# The till reads a coupon with its offer as one row (Core, no ORM objects): what the answer shows and what the
# checks need. Statements are built once; each request only binds its values.
_C, _O, _R = Coupon.__table__, Offer.__table__, Redemption.__table__
_TILL_COLUMNS = (_C.c.id, _C.c.offer_id, _C.c.member_id, _C.c.status, _C.c.issued_at, _C.c.expires_at,
                 _C.c.redeemed_at, _C.c.redeemed_store_id, _C.c.redemption_id, _O.c.title, _O.c.terms,
                 _O.c.benefit, _O.c.stores)
_TILL_ROW = {by: select(*_TILL_COLUMNS).join_from(_C, _O, _O.c.id == _C.c.offer_id)
             .where(_C.c[by] == bindparam("key")) for by in ("id", "code")}
_REDEEM_UPDATE = (update(_C).where(_C.c.id == bindparam("p_id"), _C.c.status == "issued",
                                   _C.c.expires_at > bindparam("p_now"))
                  .values(status="redeemed", redeemed_at=bindparam("p_now"), redeemed_store_id=bindparam("p_store"),
                          redemption_id=bindparam("p_redemption")))
_REDEMPTION_INSERT = insert(_R)


def _redeem_cte(by: str):
    """PostgreSQL: the whole redemption in one statement and one round trip. The coupon's conditional UPDATE
    (still issued, not expired, valid in this store) decides; the redemption row is written from what it
    returns, so both happen or neither does. No row back: refused, and :func:`_refusal` says why."""
    return text(f"""
        WITH won AS (
            UPDATE coupons SET status = 'redeemed', redeemed_at = :now, redeemed_store_id = :store_id,
                               redemption_id = :redemption_id
            FROM offers
            WHERE coupons.{by} = :key AND offers.id = coupons.offer_id
              AND coupons.status = 'issued' AND coupons.expires_at > :now
              AND (offers.stores IN (CAST('[]' AS jsonb), CAST('null' AS jsonb))
                   OR offers.stores @> jsonb_build_array(CAST(:store_id AS text)))
            RETURNING coupons.id, coupons.offer_id, coupons.member_id, coupons.status, coupons.issued_at,
                      coupons.expires_at, coupons.redeemed_at, coupons.redeemed_store_id, coupons.redemption_id,
                      offers.title, offers.terms, offers.benefit, offers.stores
        ), made AS (
            INSERT INTO coupon_redemptions (id, coupon_id, offer_id, member_id, store_id, cashier_id, receipt_id,
                                            channel, redeemed_at)
            SELECT :redemption_id, won.id, won.offer_id, won.member_id, :store_id, :cashier_id, :receipt_id,
                   'till', :now
            FROM won
        )
        SELECT * FROM won
    """).bindparams(bindparam("now", type_=UTCDateTime())).columns(*_TILL_COLUMNS)


_REDEEM_CTE = {by: _redeem_cte(by) for by in ("id", "code")}


def _scanned(program: Program, scanned: str) -> tuple[str, str]:
    """What a scanned QR token or a typed human code names: ("id", coupon id) or ("code", stored code)."""
    kind = qr.token_kind(scanned)
    if kind == "coupon":
        try:
            return "id", qr.verify_coupon_token(program.qr_keys, scanned)
        except InvalidToken:
            # 422, not 401: the cashier's own credentials are fine; the paper in front of them is not.
            raise InvalidCoupon("This coupon's QR code is not genuine", code="invalid_coupon_token",
                                errors={"coupon": ["The signature does not match."]}) from None
    if kind == "card":
        raise InvalidCoupon("That is a loyalty card, not a coupon", code="not_a_coupon",
                            errors={"coupon": ["A loyalty card code."]})
    return "code", normalise_code(scanned)


def _till_row(session: Session, by: str, key: str):
    """The coupon and its offer as one row; 404 if there is no such coupon."""
    row = execute(session, _TILL_ROW[by], {"key": key}).first()
    if row is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    return row


def _refuse_unusable(coupon, now: datetime) -> None:
    if coupon.status == "redeemed":
        raise CouponAlreadyRedeemed("This coupon was already redeemed", redeemed_at=iso(coupon.redeemed_at),
                                    redeemed_store_id=coupon.redeemed_store_id)
    if coupon.status == "void":
        raise CouponVoid("This coupon was cancelled")
    if coupon.expires_at <= now:
        raise CouponExpired(f"This coupon expired on {coupon.expires_at:%Y-%m-%d}",
                            expired_at=iso(coupon.expires_at))


def _refuse_elsewhere(session: Session, program: Program, row, store_id: str | None, card: str | None) -> None:
    """``row`` is a till row (a coupon with its offer's ``stores``)."""
    stores = row.stores or []
    if store_id is not None and stores and store_id not in stores:
        raise CouponNotValidHere("This coupon can't be redeemed in this store")
    if card is not None:
        from .till import card_from_scan  # late: the till imports this module
        if card_from_scan(session, program, card).member_id != row.member_id:
            raise CouponOwnerMismatch("This coupon belongs to another member")


def _till_view(coupon, now: datetime) -> dict[str, Any]:
    """``coupon`` is a till row, or anything with the same attributes."""
    return {"id": coupon.id, "offer_id": coupon.offer_id, "member_id": coupon.member_id, "title": coupon.title,
            "terms": coupon.terms, "benefit": coupon.benefit, "status": shown_status(coupon, now),
            "issued_at": coupon.issued_at, "expires_at": coupon.expires_at, "redeemed_at": coupon.redeemed_at,
            "stores": coupon.stores or []}


def _till_fields(coupon: Coupon) -> SimpleNamespace:
    """An ORM coupon in the till row's shape."""
    offer = coupon.offer
    return SimpleNamespace(id=coupon.id, offer_id=coupon.offer_id, member_id=coupon.member_id, status=coupon.status,
                           issued_at=coupon.issued_at, expires_at=coupon.expires_at, redeemed_at=coupon.redeemed_at,
                           redeemed_store_id=coupon.redeemed_store_id, redemption_id=coupon.redemption_id,
                           title=offer.title, terms=offer.terms, benefit=offer.benefit, stores=offer.stores)


def check_redemption(session: Session, program: Program, scanned: str, *, store_id: str,
                     card: str | None = None) -> dict[str, Any]:
    """Whether redeeming now would succeed, and why not; changes nothing."""
    row = _till_row(session, *_scanned(program, scanned))
    now = program.now()
    result = {"redeemable": True, "code": None, "detail": None, "coupon": _till_view(row, now),
              "benefit": row.benefit}
    try:
        _refuse_elsewhere(session, program, row, store_id, card)
        _refuse_unusable(row, now)
    except (Rejected, Conflict) as refusal:
        result.update(redeemable=False, code=refusal.code, detail=refusal.detail)
    return result


def coupon_for_till(session: Session, program: Program, code: str, store_id: str | None = None) -> dict[str, Any]:
    """A scanned or typed coupon for the till's screen (JSON-ready), with whether it can be redeemed here now."""
    checked = check_redemption(session, program, code, store_id=store_id)
    return _jsonable(checked["coupon"]) | {"redeemable": checked["redeemable"], "reason": checked["code"]}


def _redemption_view(program: Program, redemption, coupon, now: datetime, replayed: bool = False) -> dict[str, Any]:
    """``redemption`` a Redemption (or the same attributes); ``coupon`` a till row."""
    return {"id": redemption.id, "coupon": _till_view(coupon, now), "benefit": coupon.benefit,
            "store_id": redemption.store_id, "receipt_id": redemption.receipt_id,
            "redeemed_at": redemption.redeemed_at, "rolled_back_at": redemption.rolled_back_at,
            "rollback_until": redemption.redeemed_at + program.redemption_rollback_window,
            "status": "rolled_back" if redemption.rolled_back_at else "redeemed", "replayed": replayed}


def redeem(session: Session, program: Program, scanned: str, *, store_id: str, cashier_id: str | None = None,
           receipt_id: str | None = None, card: str | None = None) -> dict[str, Any]:
    """Redeem a coupon once, ever: the conditional update below is the only thing that decides.

    On PostgreSQL without a card to check this is one statement (:data:`_REDEEM_CTE`); otherwise the coupon is
    read and checked first, then the same conditional update (and the redemption row) is written.
    """
    by, key = _scanned(program, scanned)
    now = program.now()
    redemption_id = new_id("rdm")
    session.flush()  # Core statements don't autoflush: what this session changed must be in the database first
    postgres = on_postgres(session)
    row = None
    if card is not None or not postgres:
        row = _till_row(session, by, key)
        _refuse_elsewhere(session, program, row, store_id, card)
        by, key = "id", row.id
    if postgres:
        won = session.execute(_REDEEM_CTE[by], {"key": key, "now": now, "store_id": store_id,
                                                "redemption_id": redemption_id, "cashier_id": cashier_id,
                                                "receipt_id": receipt_id}).first()
    else:
        won = row if session.execute(_REDEEM_UPDATE, {"p_id": row.id, "p_now": now, "p_store": store_id,
                                                      "p_redemption": redemption_id}).rowcount else None
        if won is not None:
            session.execute(_REDEMPTION_INSERT, {
                "id": redemption_id, "coupon_id": row.id, "offer_id": row.offer_id, "member_id": row.member_id,
                "store_id": store_id, "cashier_id": cashier_id, "receipt_id": receipt_id, "channel": "till",
                "redeemed_at": now})
    if won is None:
        return _refusal(session, program, by, key, store_id=store_id, receipt_id=receipt_id, now=now)
    coupon = SimpleNamespace(**won._asdict())
    coupon.status, coupon.redeemed_at, coupon.redeemed_store_id, coupon.redemption_id = \
        "redeemed", now, store_id, redemption_id
    held = session.identity_map.get(identity_key(Coupon, coupon.id))
    if held is not None:  # a Coupon this session already holds shows what the UPDATE wrote, without a read
        for name in ("status", "redeemed_at", "redeemed_store_id", "redemption_id"):
            set_committed_value(held, name, getattr(coupon, name))
    redemption = SimpleNamespace(id=redemption_id, store_id=store_id, receipt_id=receipt_id, redeemed_at=now,
                                 rolled_back_at=None)
    return _redemption_view(program, redemption, coupon, now)


def _refusal(session: Session, program: Program, by: str, key: str, *, store_id: str, receipt_id: str | None,
             now: datetime) -> dict[str, Any]:
    """The conditional update changed nothing: read the coupon as it is now and say why (or replay a retry)."""
    row = _till_row(session, by, key)
    _refuse_elsewhere(session, program, row, store_id, None)
    if row.status == "redeemed" and receipt_id is not None:
        # The same till sending the same receipt again (a retry after a timeout) gets the same answer.
        live = session.get(Redemption, row.redemption_id)
        if live is not None and live.store_id == store_id and live.receipt_id == receipt_id:
            return _redemption_view(program, live, row, now, replayed=True)
    _refuse_unusable(row, now)
    raise CouponAlreadyRedeemed("This coupon was already redeemed")  # the state moved under us; say so


def rollback_redemption(session: Session, program: Program, redemption_id: str, *, store_id: str,
                        actor: str) -> dict[str, Any]:
    """Undo a redemption (the purchase was cancelled) at the same store within the window; safe to repeat."""
    redemption = session.get(Redemption, redemption_id)
    if redemption is None or redemption.store_id != store_id:
        raise NotFound("No such redemption", code="redemption_not_found")
    coupon = session.get(Coupon, redemption.coupon_id)
    now = program.now()
    if redemption.rolled_back_at is not None:
        return _redemption_view(program, redemption, _till_fields(coupon), now)
    until = redemption.redeemed_at + program.redemption_rollback_window
    if now > until:
        raise Rejected("This redemption can no longer be rolled back", code="rollback_window_passed",
                       rollback_until=iso(until))
    won = session.execute(update(Redemption).where(Redemption.id == redemption.id,
                                                   Redemption.rolled_back_at.is_(None))
                          .values(rolled_back_at=now, rolled_back_by=actor[:48]), execution_options=_SYNC).rowcount
    if won:
        session.execute(update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "redeemed",
                                             Coupon.redemption_id == redemption.id)
                        .values(status="issued", redeemed_at=None, redeemed_store_id=None, redemption_id=None),
                        execution_options=_SYNC)
    session.refresh(redemption)
    session.refresh(coupon)
    return _redemption_view(program, redemption, _till_fields(coupon), now)


# ---------------------------------------------------------------- void and refund

def void_coupon(session: Session, program: Program, coupon_id: str, *, actor: str,
                reason: str = "") -> dict[str, Any]:
    """Cancel a coupon not yet redeemed; points it cost go back through a ledger reversal. Safe to repeat."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    now = program.now()
    won = session.execute(update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "issued")
                          .values(status="void", voided_at=now, voided_by=actor[:48], void_reason=reason[:200]),
                          execution_options=_SYNC).rowcount
    session.refresh(coupon)
    if not won:
        if coupon.status == "redeemed":
            raise CouponAlreadyRedeemed("A redeemed coupon can't be voided; roll the redemption back first")
        return _admin_view(program, coupon, now) | {"points_refunded": 0}  # already void
    refunded = 0
    if coupon.spend_entry_id:
        entry = session.get(LedgerEntry, coupon.spend_entry_id)
        reversal = ledger.reverse(session, program, entry, actor=actor, reason="coupon",
                                  description=f"Refund: {coupon.offer.title} cancelled"[:240])
        refunded = reversal.reversed
    # The coupon no longer counts against the offer's total: it can be claimed again.
    session.execute(update(Offer).where(Offer.id == coupon.offer_id, Offer.issued_count > 0)
                    .values(issued_count=Offer.issued_count - 1), execution_options=_SYNC)
    session.expire(coupon.offer, ["issued_count"])
    session.flush()
    return _admin_view(program, coupon, now) | {"points_refunded": refunded}


# ---------------------------------------------------------------- the demo club

DEMO_OFFERS = [
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
