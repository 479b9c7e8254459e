"""The till: identify a scanned code, record purchases (earning through the rules), refund them."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import ledger, qr, rules
from .barcodes import normalise_barcode
from .db import Base, id_column, utcnow
from .errors import Conflict, Invalid, NotFound, Rejected
from .members import Card, Member, card_by_number
from .program import Program
from .stores import Product, Store


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (UniqueConstraint("store_id", "receipt_id"),)

    id: Mapped[str] = id_column("pur")
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    receipt_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    points_awarded: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="completed")  # completed, refunded
    fingerprint: Mapped[str] = mapped_column(String(64))  # what was sent, to tell a retry from a clash
    cashier_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default="till")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_at: Mapped[datetime | None]


class PurchaseItem(Base):
    __tablename__ = "purchase_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id"), index=True)
    barcode: Mapped[str] = mapped_column(String(14), index=True)
    product_id: Mapped[str | None] = mapped_column(ForeignKey("products.id"), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]


@dataclass
class PurchaseResult:
    purchase: Purchase
    balance: int
    rewards: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


@dataclass
class RefundResult:
    purchase: Purchase
    points_reversed: int
    points_not_reversed: int
    pending_cancelled: int
    balance: int


def card_from_scan(session: Session, program: Program, code: str) -> Card:
    """The card a scanned QR token or a typed card number names; it must be active."""
    if qr.token_kind(code) == "card":
        card_id = qr.verify_card_token(program.secret, code, program.now(), program.card_token_ttl)
        card = session.get(Card, card_id)
        if card is None:
            raise NotFound("No such card", code="card_not_found")
    elif qr.token_kind(code) == "coupon":
        raise Invalid("That is a coupon, not a loyalty card", code="not_a_card", errors={"card": ["A coupon code."]})
    else:
        card = card_by_number(session, code)
    if card.status != "active":
        raise Rejected("This card is blocked", code="card_inactive")
    return card


def _fingerprint(member_id: str, amount: Decimal, currency: str, items: list[dict[str, Any]]) -> str:
    canonical = json.dumps([member_id, str(amount), currency,
                            [[i["barcode"], i["quantity"], str(i["unit_price"])] for i in items]], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rewards_of(session: Session, purchase: Purchase) -> list[dict[str, Any]]:
    grants = session.execute(select(rules.RuleGrant, rules.Rule.title).join(rules.Rule)
                             .where(rules.RuleGrant.event_source == f"purchase:{purchase.id}")
                             .order_by(rules.RuleGrant.id)).all()
    return [{"rule_id": g.rule_id, "title": title, "points": g.points, "coupon": None,
             "pending": False} for g, title in grants]


def record_purchase(session: Session, program: Program, *, store_id: str, card_code: str, amount: Decimal,
                    currency: str, receipt_id: str, items: list[dict[str, Any]] | None = None,
                    cashier_id: str | None = None) -> PurchaseResult:
    """Record a purchase once per store and receipt, and grant what the purchase rules give."""
    items = items or []
    if currency != program.currency:
        raise Invalid(f"This club counts in {program.currency}", code="unsupported_currency",
                      errors={"currency": [f"Must be {program.currency}."]})
    for i, item in enumerate(items):
        item["barcode"] = normalise_barcode(item["barcode"], field=f"items.{i}.barcode")
    card = card_from_scan(session, program, card_code)
    fingerprint = _fingerprint(card.member_id, amount, currency, items)
    existing = session.scalar(select(Purchase).where(Purchase.store_id == store_id, Purchase.receipt_id == receipt_id))
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise Conflict("This receipt was already recorded with other details", code="receipt_conflict")
        balance = ledger.balance_of(session, existing.member_id).points
        return PurchaseResult(existing, balance, _rewards_of(session, existing), replayed=True)
    store = session.get(Store, store_id)
    if store is None or not store.active:
        raise Rejected("This store does not take purchases", code="store_inactive")
    now = program.now()
    purchase = Purchase(store_id=store_id, member_id=card.member_id, receipt_id=receipt_id, amount=amount,
                        currency=currency, fingerprint=fingerprint, cashier_id=cashier_id, created_at=now)
    session.add(purchase)
    session.flush()  # the (store, receipt) unique constraint speaks here, before any points move
    basket = _basket(session, purchase.id, items)
    pending_until = now + timedelta(days=program.pending_days) if program.pending_days else None
    event = rules.Event(trigger="purchase", member_id=card.member_id, source=f"purchase:{purchase.id}",
                        channel="till", store_id=store_id, amount=amount, currency=currency, items=basket,
                        occurred_at=now)
    grants = rules.fire(session, program, event, pending_until=pending_until)
    purchase.points_awarded = sum(g.points for g in grants)
    session.flush()
    balance = ledger.balance_of(session, card.member_id).points
    return PurchaseResult(purchase, balance, [g.as_reward() for g in grants])


def _basket(session: Session, purchase_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not items:
        return []
    products = {p.barcode: p for p in session.scalars(
        select(Product).where(Product.barcode.in_({i["barcode"] for i in items})))}
    basket = []
    for item in items:
        product = products.get(item["barcode"])
        row = {"barcode": item["barcode"], "quantity": item["quantity"], "unit_price": item["unit_price"],
               "category": product.category if product else None, "product_id": product.id if product else None}
        session.add(PurchaseItem(purchase_id=purchase_id, **row))
        basket.append(row)
    return basket


def get_purchase(session: Session, purchase_id: str, store_id: str | None = None) -> Purchase:
    purchase = session.get(Purchase, purchase_id)
    # Another store's purchase does not exist for this till.
    if purchase is None or (store_id is not None and purchase.store_id != store_id):
        raise NotFound("No such purchase", code="purchase_not_found")
    return purchase


def refund_purchase(session: Session, program: Program, purchase_id: str, *, store_id: str | None,
                    actor: str) -> RefundResult:
    """Take back what a purchase earned with reversal entries; never below a zero balance. Safe to repeat."""
    purchase = get_purchase(session, purchase_id, store_id)
    source = f"purchase:{purchase.id}"
    requested = reversed_ = 0
    for entry in ledger.entries_from(session, source):
        if entry.kind != "earn" or entry.delta <= 0:
            continue
        result = ledger.reverse(session, program, entry, actor=actor, reason="refund",
                                description=f"Refund of receipt {purchase.receipt_id}: points taken back")
        requested += result.requested
        reversed_ += result.reversed
    cancelled = ledger.cancel_pending(session, source)
    if purchase.status != "refunded":
        purchase.status = "refunded"
        purchase.refunded_at = program.now()
    session.flush()
    balance = ledger.balance_of(session, purchase.member_id).points
    return RefundResult(purchase, reversed_, requested - reversed_, cancelled, balance)


def identify(session: Session, program: Program, code: str, store_id: str | None = None) -> dict[str, Any]:
    """What a scanner read or a cashier typed: a member's card (token or number), or a coupon (token or code)."""
    kind = qr.token_kind(code)
    if kind == "coupon" or (kind is None and not code.replace(" ", "").replace("-", "").isdigit()):
        from . import coupons
        return {"kind": "coupon", "coupon": coupons.coupon_for_till(session, program, code, store_id=store_id)}
    card = card_from_scan(session, program, code)
    member = session.get(Member, card.member_id)
    balance = ledger.balance_of(session, member.id)
    return {"kind": "card", "member": {"id": member.id, "name": member.name, "tier": member.tier,
                                       "balance": balance.points}, "card": {"number": card.number}}
