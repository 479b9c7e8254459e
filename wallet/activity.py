"""The member's activity: one timeline of purchases, refunds, check-ins, scans, coupons and point movements.

Each kind of event stays in its own table; the timeline reads the newest of each (after the cursor) and merges
them, so a page costs one indexed query per kind. The order is (time, kind's rank, id), newest first; the
cursor is the last item's (time, kind, id). Coupons come from wallet.coupons when that module has its models.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from . import coupons as coupons_module
from .clock import iso
from .errors import Invalid
from .instore import CheckIn, Scan
from .ledger import LedgerEntry
from .purchases import Purchase
from .stores import Product, Store

KINDS = ("purchase", "refund", "check_in", "scan", "coupon", "coupon_redeemed", "points")
# At one instant the consequence sits above its cause (newest first): the points above the check-in that earned them.
_RANK = {"purchase": 0, "check_in": 1, "scan": 2, "refund": 3, "coupon_redeemed": 4, "coupon": 5, "points": 6}
CHANNELS = ("app", "till", "web", "wallet", "email", "sms", "push", "system")

_REFUSALS = {"too_far_from_store": "too far from the store", "location_inaccurate": "the location was too vague",
             "check_in_cooldown": "already checked in recently", "store_inactive": "the store is closed"}


@dataclass
class ActivityItem:
    id: str
    kind: str
    occurred_at: datetime
    channel: str | None
    summary: str
    points: int | None = None
    store_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] | None = None

    @property
    def cursor(self) -> list[str]:
        return [self.occurred_at.isoformat(), self.kind, self.id]


@dataclass
class _Source:
    kind: str
    model: Any
    at: Any  # the column that dates the event
    member: Any
    channel: Any | None
    to_item: Callable[[Any], ActivityItem]
    where: list = field(default_factory=list)


def _sources() -> list[_Source]:
    sources = [
        _Source("purchase", Purchase, Purchase.created_at, Purchase.member_id, Purchase.channel, lambda p: ActivityItem(
            p.id, "purchase", p.created_at, p.channel, f"Purchase of {p.amount} {p.currency}{{at}}", p.points_awarded,
            p.store_id, {"purchase_id": p.id, "receipt_id": p.receipt_id, "amount": str(p.amount),
                         "currency": p.currency, "status": p.status})),
        _Source("refund", Purchase, Purchase.refunded_at, Purchase.member_id, Purchase.channel, lambda p: ActivityItem(
            p.id, "refund", p.refunded_at, p.channel, f"Refund of the purchase of {p.amount} {p.currency}{{at}}", None,
            p.store_id, {"purchase_id": p.id, "receipt_id": p.receipt_id, "amount": str(p.amount),
                         "currency": p.currency}), [Purchase.refunded_at.is_not(None)]),
        _Source("check_in", CheckIn, CheckIn.created_at, CheckIn.member_id, CheckIn.channel, lambda c: ActivityItem(
            c.id, "check_in", c.created_at, c.channel,
            "Checked in{at}" if c.status == "accepted"
            else f"Check-in{{at}} not accepted: {_REFUSALS.get(c.reason or '', c.reason)}",
            c.points_awarded, c.store_id, {"check_in_id": c.id, "status": c.status, "reason": c.reason,
                                           "visit_number": c.visit_number, "distance_m": c.distance_m})),
        _Source("scan", Scan, Scan.created_at, Scan.member_id, Scan.channel, lambda s: ActivityItem(
            s.id, "scan", s.created_at, s.channel, "Scanned {product} for the first time{at}" if s.first_scan
            else "Scanned {product}{at}", s.points_awarded, s.store_id,
            {"scan_id": s.id, "product_id": s.product_id, "barcode": s.barcode, "first_scan": s.first_scan})),
        _Source("points", LedgerEntry, LedgerEntry.created_at, LedgerEntry.member_id, LedgerEntry.channel,
                lambda e: ActivityItem(
                    e.id, "points", e.created_at, e.channel, (e.description or f"{e.delta:+d} points ({e.reason})").replace("{", "{{").replace("}", "}}"),
                    e.delta, None, {"entry_id": e.id, "kind": e.kind, "reason": e.reason,
                                    "balance_after": e.balance_after, "source": e.source})),
    ]
    return sources + _coupon_sources()


def _coupon_sources() -> list[_Source]:
    """Coupons issued and redeemed, if the offers feature has its models (it is built separately)."""
    out = []
    coupon = getattr(coupons_module, "Coupon", None)
    if coupon is not None and all(hasattr(coupon, a) for a in ("id", "member_id", "issued_at", "offer_id")):
        channel = getattr(coupon, "channel", None)

        def coupon_item(c) -> ActivityItem:
            offer = getattr(c, "offer", None)
            title = getattr(offer, "title", None) or "a coupon"
            return ActivityItem(c.id, "coupon", c.issued_at, getattr(c, "channel", None), f"Coupon: {title}".replace("{", "{{").replace("}", "}}"), None, None,
                                {"coupon_id": c.id, "offer_id": c.offer_id, "status": getattr(c, "status", None),
                                 "expires_at": iso(getattr(c, "expires_at", None)),
                                 "points_cost": getattr(c, "points_cost", None), "source": getattr(c, "source", None)})

        out.append(_Source("coupon", coupon, coupon.issued_at, coupon.member_id, channel, coupon_item))
    redemption = getattr(coupons_module, "Redemption", None)
    if redemption is not None and all(hasattr(redemption, a) for a in ("id", "member_id", "redeemed_at",
                                                                       "coupon_id", "store_id")):
        def redemption_item(r) -> ActivityItem:
            undone = getattr(r, "rolled_back_at", None) is not None
            return ActivityItem(r.id, "coupon_redeemed", r.redeemed_at, getattr(r, "channel", None),
                                "Coupon used{at} (rolled back)" if undone else "Coupon used{at}", None, r.store_id,
                                {"coupon_id": r.coupon_id, "offer_id": getattr(r, "offer_id", None),
                                 "receipt_id": getattr(r, "receipt_id", None), "rolled_back": undone})

        out.append(_Source("coupon_redeemed", redemption, redemption.redeemed_at, redemption.member_id,
                           getattr(redemption, "channel", None), redemption_item))
    return out


def _after(source: _Source, cursor: tuple[datetime, str, str] | None) -> list:
    """The rows of ``source`` strictly after the cursor in (time desc, rank desc, id desc) order."""
    if cursor is None:
        return []
    at, kind, key = cursor
    if _RANK[source.kind] < _RANK[kind]:
        return [source.at <= at]
    if _RANK[source.kind] > _RANK[kind]:
        return [source.at < at]
    return [or_(source.at < at, and_(source.at == at, source.model.id < key))]


def timeline(session: Session, member_id: str, *, limit: int = 50, cursor: tuple[datetime, str, str] | None = None,
             kinds: list[str] | None = None, channel: str | None = None) -> list[ActivityItem]:
    """The member's activity newest first: up to ``limit`` items after ``cursor``, of ``kinds`` and ``channel``."""
    if cursor is not None and cursor[1] not in _RANK:
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor", errors={"cursor": ["Unknown cursor."]})
    items: list[ActivityItem] = []
    for source in _sources():
        if kinds and source.kind not in kinds:
            continue
        if channel is not None and source.channel is None:
            continue
        query = select(source.model).where(source.member == member_id, *source.where, *_after(source, cursor))
        if channel is not None and source.channel is not None:  # (a source without channels was skipped)
            query = query.where(source.channel == channel)
        query = query.order_by(source.at.desc(), source.model.id.desc()).limit(limit)
        items += [source.to_item(row) for row in session.scalars(query).unique()]
    items.sort(key=lambda i: (i.occurred_at, _RANK[i.kind], i.id), reverse=True)
    items = items[:limit]
    _name_things(session, items)
    return items


def _name_things(session: Session, items: list[ActivityItem]) -> None:
    """Fill in store and product names with one query each."""
    store_ids = {i.store_id for i in items if i.store_id}
    stores = {s.id: s for s in session.scalars(select(Store).where(Store.id.in_(store_ids)))} if store_ids else {}
    product_ids = {i.details["product_id"] for i in items if i.kind == "scan"}
    products = ({p.id: p for p in session.scalars(select(Product).where(Product.id.in_(product_ids)))}
                if product_ids else {})
    for item in items:
        store = stores.get(item.store_id) if item.store_id is not None else None
        if store is not None:
            item.store = {"id": store.id, "code": store.code, "name": store.name}
        product = products.get(item.details["product_id"]) if item.kind == "scan" else None
        if product is not None:
            item.details["product_name"] = product.name
        # Summaries are templates: {at} is " at <store>", {product} the product's name.
        item.summary = item.summary.format(at=f" at {store.name}" if store is not None else "",
                                           product=product.name if product is not None else "a product")
