"""The member's activity: one timeline read from the club's event log, across every channel.

Purchases and refunds, check-ins (refused ones too), scans, coupons issued and used, every point movement (a
purchase's own points are on its item, with what each rule gave: the purchase's one event carries them),
joining the club, referrals that qualified, profile changes, consents, contest entries and wins: each is an event (``wallet.events``), so a page is one indexed
query on the log (member, time) and one look-up per kind for what a person wants to read (a store's name, an
entry's description, whether a purchase was refunded since). The order is (time, kind's rank, event id), newest
first; at one instant the consequence sits above its cause (the points above the check-in that earned them). The
cursor is the last item's (time, kind, event id).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from .contests import Contest
from .coupons.models import Coupon, Offer, Redemption
from .errors import Invalid
from .events import Event
from .instore import CheckIn
from .ledger import LedgerEntry
from .purchases import Purchase
from .stores import Product, Store

# Each kind of item and the events it is read from, in the order of rank (a higher rank shows above a lower one
# at the same instant).
_TYPES: dict[str, tuple[str, ...]] = {
    "enrolment": ("member.enrolled",),
    "purchase": ("purchase.recorded",),
    "check_in": ("check_in.recorded", "check_in.refused"),
    "scan": ("scan.recorded",),
    "refund": ("purchase.refunded",),
    "coupon_redeemed": ("coupon.redeemed",),
    "coupon": ("coupon.issued",),
    "referral": ("referral.qualified",),
    "consent": ("consent.changed",),
    "profile": ("member.updated",),
    "contest": ("contest.entered", "contest.won"),
    "points": ("points.earned", "points.spent", "points.expired", "points.adjusted"),
}
KINDS = tuple(_TYPES)
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
_KIND_OF = {type_: kind for kind, types in _TYPES.items() for type_ in types}
_RANK_SQL = case({type_: _RANK[kind] for type_, kind in _KIND_OF.items()}, value=Event.type, else_=-1)

_REFUSALS = {"too_far_from_store": "too far from the store", "location_inaccurate": "the location was too vague",
             "check_in_cooldown": "already checked in recently", "store_inactive": "the store is closed"}
_CONSENTS = {"marketing_email": "marketing email", "marketing_sms": "marketing text messages",
             "marketing_push": "marketing notifications", "profiling": "personalised offers",
             "social_data": "sharing social profile data"}


@dataclass
class ActivityItem:
    id: str
    kind: str
    occurred_at: datetime
    channel: str | None
    summary: str
    event_id: str = ""
    points: int | None = None
    store_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] | None = None

    @property
    def cursor(self) -> list[str]:
        return [self.occurred_at.isoformat(), self.kind, self.event_id]


def timeline(session: Session, member_id: str, *, limit: int = 50, cursor: tuple[datetime, str, str] | None = None,
             kinds: list[str] | None = None, channel: str | None = None) -> list[ActivityItem]:
    """The member's activity newest first: up to ``limit`` items after ``cursor``, of ``kinds`` and ``channel``."""
    if cursor is not None and cursor[1] not in _RANK:
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor", errors={"cursor": ["Unknown cursor."]})
    types = [t for kind in (kinds or KINDS) for t in _TYPES[kind]]
    query = select(Event).where(Event.member_id == member_id, Event.type.in_(types))
    if channel is not None:
        query = query.where(Event.channel == channel)
    if cursor is not None:
        at, kind, event_id = cursor
        rank = _RANK[kind]
        query = query.where(or_(Event.occurred_at < at,
                                and_(Event.occurred_at == at, _RANK_SQL < rank),
                                and_(Event.occurred_at == at, _RANK_SQL == rank, Event.id < event_id)))
    found = session.scalars(query.order_by(Event.occurred_at.desc(), _RANK_SQL.desc(), Event.id.desc())
                            .limit(limit)).all()
    items = _read(session, list(found))
    _name_things(session, items)
    return items


def _ids(found: list[Event], kind: str, key: str) -> set[str]:
    return {e.data[key] for e in found if _KIND_OF[e.type] == kind and key in e.data}


def _read(session: Session, found: list[Event]) -> list[ActivityItem]:
    """Each event as an item a person reads, with what its rows say now (one query per kind on the page)."""
    def rows(model: Any, ids: set[str]) -> dict[str, Any]:
        return {r.id: r for r in session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}

    purchases = rows(Purchase, _ids(found, "purchase", "purchase_id") | _ids(found, "refund", "purchase_id"))
    check_ins = rows(CheckIn, _ids(found, "check_in", "check_in_id"))
    earned_by_purchases = {r["entry_id"] for e in found if e.type == "purchase.recorded"
                           for r in e.data.get("rewards", ()) if r.get("entry_id")}
    entries = rows(LedgerEntry, _ids(found, "points", "entry_id") | earned_by_purchases)
    coupons = rows(Coupon, _ids(found, "coupon", "coupon_id"))
    offer_ids = {c.offer_id for c in coupons.values()}
    titles = dict(session.execute(select(Offer.id, Offer.title).where(Offer.id.in_(offer_ids))).all()) if offer_ids \
        else {}
    redemptions = rows(Redemption, _ids(found, "coupon_redeemed", "redemption_id"))
    contests = rows(Contest, _ids(found, "contest", "contest_id"))
    items = []
    for event in found:
        kind, data = _KIND_OF[event.type], event.data
        item = ActivityItem(event.id, kind, event.occurred_at, event.channel, "", event.id, store_id=event.store_id)
        if kind in ("purchase", "refund"):
            purchase = purchases.get(data["purchase_id"])
            item.id = data["purchase_id"]
            amount = f"{purchase.amount} {purchase.currency}" if purchase else "a purchase"
            item.summary = f"Purchase of {amount}{{at}}" if kind == "purchase" else \
                f"Refund of the purchase of {amount}{{at}}"
            item.points = data.get("points_awarded") if kind == "purchase" else None
            item.details = {"purchase_id": item.id}
            if purchase is not None:
                item.details |= {"receipt_id": purchase.receipt_id, "amount": str(purchase.amount),
                                 "currency": purchase.currency}
                if kind == "purchase":
                    item.details["status"] = purchase.status
            if kind == "purchase" and "rewards" in data:  # not on events backfilled from before the log (0004)
                item.details["rewards"] = [_reward(r, entries.get(r.get("entry_id") or "")) for r in data.get("rewards", ())]
        elif kind == "check_in":
            check_in = check_ins.get(data["check_in_id"])
            item.id = data["check_in_id"]
            refused = event.type == "check_in.refused"
            reason = data.get("reason")
            item.summary = f"Check-in{{at}} not accepted: {_REFUSALS.get(reason or '', reason)}" if refused \
                else "Checked in{at}"
            item.points = 0 if refused else data.get("points_awarded", 0)
            item.details = {"check_in_id": item.id, "status": "refused" if refused else "accepted", "reason": reason,
                            "visit_number": check_in.visit_number if check_in else None,
                            "distance_m": check_in.distance_m if check_in else None}
        elif kind == "scan":
            item.id = data["scan_id"]
            item.summary = "Scanned {product} for the first time{at}" if data.get("first_scan") \
                else "Scanned {product}{at}"
            item.points = data.get("points_awarded")
            item.details = {"scan_id": item.id, "product_id": data["product_id"], "barcode": data.get("barcode"),
                            "first_scan": data.get("first_scan")}
        elif kind == "points":
            entry = entries.get(data["entry_id"])
            item.id = data["entry_id"]
            item.points = entry.delta if entry is not None else data.get("points")
            text = (entry.description if entry is not None else "") or f"{item.points:+d} points"
            item.summary = text.replace("{", "{{").replace("}", "}}")
            item.details = {"entry_id": item.id, "balance_after": data.get("balance_after")}
            if entry is not None:
                item.details |= {"kind": entry.kind, "reason": entry.reason, "source": entry.source}
        elif kind == "coupon":
            coupon = coupons.get(data["coupon_id"])
            item.id = data["coupon_id"]
            title = titles.get(coupon.offer_id, "a coupon") if coupon is not None else "a coupon"
            item.summary = f"Coupon: {title}".replace("{", "{{").replace("}", "}}")
            item.details = {"coupon_id": item.id, "offer_id": data["offer_id"], "source": data.get("source"),
                            "points_cost": data.get("points_cost"), "expires_at": data.get("expires_at"),
                            "status": coupon.status if coupon is not None else None}
        elif kind == "coupon_redeemed":
            redemption = redemptions.get(data.get("redemption_id", ""))
            undone = redemption is not None and redemption.rolled_back_at is not None
            item.id = data.get("redemption_id", event.id)
            item.summary = "Coupon used{at} (rolled back)" if undone else "Coupon used{at}"
            item.details = {"coupon_id": data["coupon_id"], "offer_id": data["offer_id"],
                            "receipt_id": data.get("receipt_id"), "rolled_back": undone}
        elif kind == "enrolment":
            item.id = event.member_id or event.id
            item.summary = "Joined the club"
            item.details = {"card_id": data.get("card_id")}
        elif kind == "referral":
            item.id = data["referral_id"]
            brought = data.get("referrer_id") == event.member_id
            item.summary = "A friend you brought made their first purchase" if brought \
                else "Your first purchase as a referred friend"
            item.points = data.get("points")
            item.details = {"referral_id": item.id, "side": "referrer" if brought else "referred"}
        elif kind == "consent":
            what = _CONSENTS.get(data["consent"], data["consent"])
            item.summary = f"Agreed to {what}" if data["granted"] else f"Withdrew consent to {what}"
            item.details = {"consent": data["consent"], "granted": data["granted"], "source": data.get("source")}
        elif kind == "contest":
            contest = contests.get(data["contest_id"])
            title = (contest.title if contest is not None else "a contest").replace("{", "{{").replace("}", "}}")
            won = event.type == "contest.won"
            item.id = data.get("entry_id") or event.id
            item.summary = f"You won {title}" if won else f"Entered {title}"
            item.details = {"contest_id": data["contest_id"], "won": won, "coupon_id": data.get("coupon_id")}
        else:  # profile
            item.summary = "Changed " + ", ".join(data["fields"])
            item.details = {"fields": data["fields"]}
        items.append(item)
    return items


def _reward(reward: dict[str, Any], entry: LedgerEntry | None) -> dict[str, Any]:
    """One rule's (or benefit's) part of a purchase's points, as the member reads it."""
    return {"rule_id": reward["rule_id"], "points": reward["points"], "pending": reward["pending"],
            "description": entry.description if entry is not None else None, "coupon_id": reward.get("coupon_id"),
            "entry_id": reward.get("entry_id"), "balance_after": entry.balance_after if entry is not None else None}


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

