"""The till: identify a scanned code, record purchases (earning through the rules), refund them."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, bindparam, exists, literal_column, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from . import (
    benefits,
    currencies,
    events,
    fraud,
    ledger,
    passes,
    referrals,
    returns,
    rules,
    scanner,
    statement,
    tiers,
    tokens,
)
from .barcodes import normalise_barcode
from .coupons import redemption, voiding
from .db import new_id, table_of
from .errors import Conflict, Invalid, Rejected
from .fast_sql import Batch, as_written, execute, own_transaction, write
from .members import Card, Member, find_card
from .program import Program
from .purchases import Purchase, PurchaseItem, PurchaseReturn, get_purchase
from .stores import Product, Store

_items = PurchaseItem.__table__
_events = table_of(events.Event)


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
    benefit_uses_returned: int = 0
    points_debt: int = 0  # what was already spent: the member's points debt now (later earning pays it first)


def _fingerprint(member_id: str, amount: Decimal, currency: str, items: list[dict[str, Any]]) -> str:
    canonical = json.dumps([member_id, str(amount), currency,
                            [[i["barcode"], i["quantity"], str(i["unit_price"])] for i in items]], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_purchase(session: Session, program: Program, *, store_id: str, card_code: str, amount: Decimal,
                    currency: str, receipt_id: str, items: list[dict[str, Any]] | None = None,
                    cashier_id: str | None = None, sign_in: tokens.Principal | None = None) -> PurchaseResult:
    """Record a purchase once per store and receipt, and grant what the purchase rules give.

    ``sign_in``: the cashier's token, whose sign-in this purchase's one read checks (the API defers its own
    per-request check to it, a round trip fewer on the till's path): an ended sign-in is refused before anything
    is written.

    The till's hot path: one read (card, store and any earlier purchase of this receipt together), the rules,
    then the writes, on PostgreSQL as one statement (the points credit, the grants, the purchase and its items:
    a ``fast_sql.Batch``), which is its own transaction when the rules wrote nothing else (``fast_sql.own_transaction``).
    The purchase row is written with what it earned, so it is never updated. Two tills
    sending one receipt at once both get past the read; the second meets the (store, receipt) unique
    constraint, its transaction is rolled back and rerun by the caller, and the rerun replays the first.
    """
    items = items or []
    _check_size(program, amount, items)
    for i, item in enumerate(items):
        item["barcode"] = normalise_barcode(item["barcode"], field=f"items.{i}.barcode")
    now = program.now()
    purchase_id = new_id("pur")
    source = f"purchase:{purchase_id}"
    scanned = scanner.read(program, card_code, want="card")
    at = _card_at_store(session, scanned, store_id, receipt_id, now=now, source=source,
                        day=now.astimezone(program.tz).date(), sign_in=sign_in)
    counts_in = at.store_currency or program.currency
    if currency != counts_in:
        raise Invalid(f"This store counts in {counts_in}", code="unsupported_currency",
                      errors={"currency": [f"Must be {counts_in}."]})
    if at.store_currency is not None and at.rate is None:
        raise Invalid(f"The club has no rate for {currency} yet", code="currency_without_rate",
                      errors={"currency": [f"No rate for {currency}: add it under /admin/currencies."]})
    fingerprint = _fingerprint(at.member_id, amount, currency, items)
    if at.earlier_purchase_id is not None:
        # This store already has this receipt: a retry replays it, anything else is a clash.
        existing = session.get_one(Purchase, at.earlier_purchase_id)  # just read: it exists
        if existing.fingerprint != fingerprint:
            raise Conflict("This receipt was already recorded with other details", code="receipt_conflict")
        balance = ledger.balance_of(session, existing.member_id).points
        return PurchaseResult(existing, balance, existing.rewards, replayed=True)
    if scanned.pass_code is not None:  # a wallet pass's code (not a card token or number: those add nothing here)
        passes.record_use(session, program, scanned, store_id=store_id, purpose="purchase")
    if at.welcome_waiting:  # once per member: the first purchase makes the welcome points spendable
        fraud.release_welcome(session, program, at.member_id)
    with own_transaction(session):  # a read
        basket = _basket(session, items)
    if at.debt:  # rare: begin the transaction now (the row lock) so that paying the debt is part of it
        session.execute(select(ledger.Balance.member_id).where(ledger.Balance.member_id == at.member_id)
                        .with_for_update())
    ladder = tiers.ladder(session, at.tiers_revision)
    if at.referred_by_id is not None and at.first_purchase_at is None:
        # A referred member's first purchase qualifies the referral: both sides' referral rewards pay now, the
        # friend's before this purchase's rules run (a multiplier they give applies to this purchase).
        given = referrals.qualify_on_first_purchase(session, program, member_id=at.member_id,
                                                    purchase_id=purchase_id, actor=events.till_actor(cashier_id))
        at.prefetched.has_benefits = at.prefetched.has_benefits or given
    pending_until = now + timedelta(days=program.pending_days) if program.pending_days else None
    event = rules.Event(trigger="purchase", member_id=at.member_id, source=source,
                        channel="till", store_id=store_id, amount=currencies.to_club(amount, at.rate),
                        currency=program.currency, items=_in_club_currency(basket, at.rate),
                        occurred_at=now, store_timezone=at.store_timezone, fresh=True, announced_by_caller=True)
    # The grants' audit rows and the purchase, written in one statement; on PostgreSQL with the points credit.
    batch = Batch()
    grants = rules.fire(session, program, event, pending_until=pending_until, prefetched=at.prefetched, batch=batch)
    rewards = [g.as_reward() for g in grants]  # JSON as they are (times already written as ISO strings)
    values = {"id": purchase_id, "store_id": store_id, "member_id": at.member_id, "receipt_id": receipt_id,
              "amount": amount, "currency": currency, "points_awarded": sum(g.points for g in grants),
              "rewards": rewards, "status": "completed", "fingerprint": fingerprint, "cashier_id": cashier_id,
              "channel": "till", "created_at": now, "refunded_at": None, "rate": at.rate,
              "returned_amount": Decimal(0)}
    batch.rows.append((Purchase.__table__, values))
    batch.rows.extend((_items, {"purchase_id": purchase_id, **row}) for row in basket)
    batch.rows.append((_events, events.event_row(
        "purchase.recorded", member_id=at.member_id, store_id=store_id, channel="till",
        actor=events.till_actor(cashier_id), occurred_at=now,
        data={"purchase_id": purchase_id, "receipt_id": receipt_id, "amount": str(amount), "currency": currency,
              "points_awarded": values["points_awarded"], "item_count": sum(i["quantity"] for i in basket),
              "points_credited": sum(g.points for g in grants if not g.pending),  # spendable now (not held)
              "rewards": [_announced(g) for g in grants]})))
    # The member's running totals join the statement; only a purchase that takes them to a threshold above the
    # member's tier costs more: the batch is written in a transaction and the exact values decide (tiers.settle).
    counted = tiers.Counted(spend=event.amount or Decimal(0), points=sum(g.points for g in grants if not g.pending),
                            visit=True, purchase_at=now)
    if tiers.count_in_batch(session, batch, ladder, member_id=at.member_id, tier=at.tier, totals=at.totals,
                            counted=counted, now=now):
        write(session, batch)
        tiers.settle(session, program, ladder, at.member_id, channel="till", cause=events.till_actor(cashier_id))
    else:
        # When the rules wrote nothing else, this one statement is the whole transaction: its own, no BEGIN/COMMIT.
        with own_transaction(session):
            write(session, batch)
    purchase = as_written(Purchase, values)  # for the answer; not kept in the session (nothing reads it again)
    earned = [g.entry for g in grants if isinstance(getattr(g, "entry", None), ledger.LedgerEntry)]
    if earned and any(e.debt_seen for e in earned):  # the credit's statement read the debt: pay it first
        ledger.pay_debt(session, program, at.member_id, key=earned[0].id, channel="till")
        return PurchaseResult(purchase, ledger.balance_of(session, at.member_id).points, rewards)
    balance = max(e.balance_after for e in earned) if earned else ledger.balance_of(session, at.member_id).points
    return PurchaseResult(purchase, balance, rewards)


def _announced(grant: rules.Grant) -> dict[str, Any]:
    """A grant as its purchase's event lists it (the purchase's one event row carries its credits and grants)."""
    return {"rule_id": grant.rule.id, "grant_id": grant.grant_id, "kind": grant.kind, "points": grant.points,
            "entry_id": getattr(grant.entry, "id", None), "pending": grant.pending,
            "coupon_id": (grant.coupon or {}).get("id"), "surprise": grant.surprise}


def _check_size(program: Program, amount: Decimal, items: list[dict[str, Any]]) -> None:
    """LOYALTY_MAX_PURCHASE_AMOUNT bounds the amount and each item's price (422 naming the field): a till's typo of
    a few zeros must not credit a fortune (the points it would earn are bounded again by the ledger)."""
    most = program.max_purchase_amount
    errors = {}
    if amount > most:
        errors["amount"] = [f"At most {most:.2f}."]
    for i, item in enumerate(items):
        if item["unit_price"] > most:
            errors[f"items.{i}.unit_price"] = [f"At most {most:.2f}."]
    if errors:
        raise Invalid(f"A purchase is at most {most:,.2f} {program.currency}", code="amount_out_of_range",
                      errors=errors)



@dataclass
class _CardAtStore:
    member_id: str
    store_timezone: str | None
    earlier_purchase_id: str | None
    prefetched: rules.Prefetched
    tier: str | None
    referred_by_id: str | None
    first_purchase_at: datetime | None
    totals: tiers.Totals
    tiers_revision: str | None
    welcome_waiting: bool = False  # the member still has points waiting for a first purchase
    store_currency: str | None = None
    rate: Decimal | None = None  # the store's currency's rate of the day
    debt: int = 0  # the member's points debt: later earning pays it first


def _in_club_currency(basket: list[dict[str, Any]], rate: Decimal | None) -> list[dict[str, Any]]:
    """The basket as the rules see it: prices in the club's currency."""
    if rate is None:
        return basket
    return [item | {"unit_price": currencies.to_club(Decimal(item["unit_price"]), rate)} for item in basket]


def _card_at_store_query(by: Any) -> Any:
    usable_benefit = exists().where(*benefits.usable_where(Card.member_id, bindparam("now"), bindparam("source")))
    # Welcome points waiting for this first purchase: a probe of a partial index that holds only such holds (its
    # predicate written as literals, so that a prepared, generic plan still matches the index's).
    awaiting = exists().where(ledger.PendingPoints.member_id == Card.member_id,
                              ledger.PendingPoints.awaits.is_not(None),
                              ledger.PendingPoints.status == literal_column("'pending'"))
    totals = tiers.MemberTier
    return (select(Card.member_id, Card.status, Store.active, Store.timezone, Purchase.id,
                   rules.revision_column(), usable_benefit, awaiting, Store.currency,
                   currencies.rate_on_column(Store.currency, bindparam("day")), ledger.Balance.debt,
                   Member.tier, Member.referred_by_id,
                   # no result processor (fast_sql has no cursor type to hand a numeric's): psycopg answers a Decimal
                   type_coerce(totals.spend, NullType()),
                   totals.points, totals.visits, totals.last_visit_on, totals.first_purchase_at,
                   tiers.revision_column(),
                   tokens.still_signed_in(bindparam("sid", type_=String()), bindparam("cashier", type_=String())))
            .select_from(Card).join(Store, Store.id == bindparam("store_id"))
            .join(ledger.Balance, ledger.Balance.member_id == Card.member_id)
            .join(Member, Member.id == Card.member_id)
            .outerjoin(totals, totals.member_id == Card.member_id)
            .outerjoin(Purchase, (Purchase.store_id == bindparam("store_id"))
                       & (Purchase.receipt_id == bindparam("receipt_id")))
            .where(by == bindparam("card")))


# Built once: the till's hot path binds its values instead of building the expression again.
_CARD_AT_STORE = {"id": _card_at_store_query(Card.id), "number": _card_at_store_query(Card.number)}


def _card_at_store(session: Session, card: scanner.Scanned, store_id: str, receipt_id: str, *,
                   now: datetime, source: str, day: date, sign_in: tokens.Principal | None) -> _CardAtStore:
    """The scanned card, the till's store and this receipt's earlier purchase, if any, in one query; with them,
    what the rules engine would otherwise look up (the rules' revision, whether the member holds a benefit, the
    member's tier), and for tiers and referrals the member's running totals, first purchase and referrer."""
    with own_transaction(session):  # a read: no transaction needed around it
        row = execute(session, _CARD_AT_STORE[card.by], {"card": card.key, "store_id": store_id,
                                                        "receipt_id": receipt_id, "now": now, "source": source,
                                                        "day": day, "sid": sign_in and sign_in.session_id,
                                                        "cashier": sign_in and sign_in.id}).first()
    if row is None:
        if sign_in is not None:
            tokens.check_signed_in(session, sign_in)  # an ended sign-in learns nothing about cards
        find_card(session, card)  # raises card_not_found
        raise Rejected("This store does not take purchases", code="store_inactive")
    (member_id, status, store_active, timezone, earlier, revision, has_benefits, awaiting, store_currency, rate, debt,
     tier, referred_by, spend, points, visits, last_visit_on, first_purchase_at, tiers_revision, signed_in) = row
    if not signed_in or (sign_in is not None and not sign_in.session_id):
        raise tokens.signed_out()
    if status != "active":
        raise Rejected("This card is blocked", code="card_inactive")
    if not store_active:
        raise Rejected("This store does not take purchases", code="store_inactive")
    totals = tiers.Totals(Decimal(str(spend or 0)), points or 0, visits or 0, _day(last_visit_on))
    return _CardAtStore(member_id, timezone, earlier, rules.Prefetched(revision, bool(has_benefits), tier), tier,
                        referred_by, first_purchase_at, totals, tiers_revision, bool(awaiting), store_currency,
                        currencies.rate_of(rate), debt or 0)


def _day(value: Any) -> date | None:
    """A date column read without the ORM (SQLite answers its text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _basket(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The basket's items, each with its product and category where the barcode is a known product."""
    if not items:
        return []
    products = dict(session.execute(select(Product.barcode, Product).where(
        Product.barcode.in_({i["barcode"] for i in items}))).all())
    basket = []
    for item in items:
        product = products.get(item["barcode"])
        basket.append({"barcode": item["barcode"], "quantity": item["quantity"], "unit_price": item["unit_price"],
                       "category": product.category if product else None,
                       "product_id": product.id if product else None})
    return basket


def refund_purchase(session: Session, program: Program, purchase_id: str, *, store_id: str | None,
                    actor: str) -> RefundResult:
    """Take back what a purchase earned with reversal entries; what was already spent becomes the member's points
    debt (never a negative balance). After partial returns, it takes back what they left. Safe to repeat."""
    purchase = get_purchase(session, purchase_id, store_id)
    if session.scalar(select(exists().where(PurchaseReturn.purchase_id == purchase.id))):
        return _whole_after_returns(session, program, purchase, store_id=store_id, actor=actor)
    source = f"purchase:{purchase.id}"
    requested = reversed_ = 0
    for entry in statement.entries_from(session, source):
        if entry.kind != "earn" or entry.delta <= 0:
            continue
        result = ledger.reverse(session, program, entry, actor=actor, reason="refund", channel="till",
                                description=f"Refund of receipt {purchase.receipt_id}: points taken back")
        requested += result.requested
        reversed_ += result.reversed
    cancelled = ledger.cancel_pending(session, source)
    uses_returned = benefits.give_back_uses(session, source, program.now())
    voided = voiding.void_coupons_from(session, program, source, member_id=purchase.member_id, actor=actor,
                                       reason=f"Refund of receipt {purchase.receipt_id}")
    if purchase.status != "refunded":
        _uncount(session, program, purchase, reversed_, actor)
        purchase.status = "refunded"
        purchase.refunded_at = program.now()
        purchase.returned_amount = purchase.amount
        if requested > reversed_:  # already spent: owed, paid by later earning
            ledger.owe(session, purchase.member_id, requested - reversed_)
        events.emit(session, "purchase.refunded", member_id=purchase.member_id, store_id=purchase.store_id,
                    channel="till", actor=actor[:64], occurred_at=purchase.refunded_at,
                    data={"purchase_id": purchase.id, "points_reversed": reversed_,
                          "points_not_reversed": requested - reversed_, "points_debt": requested - reversed_,
                          "coupons_voided": voided, "benefit_uses_returned": uses_returned})
    session.flush()
    balance = ledger.balance_of(session, purchase.member_id).points
    return RefundResult(purchase, reversed_, requested - reversed_, cancelled, balance, uses_returned,
                        requested - reversed_)


def _whole_after_returns(session: Session, program: Program, purchase: Purchase, *, store_id: str | None,
                         actor: str) -> RefundResult:
    """The whole refund of a purchase partly returned already: a last return of what is left (or, if nothing is,
    the answer of the returns as they stand)."""
    if purchase.status != "refunded":
        returns.return_part(session, program, purchase.id, refund_id=returns.WHOLE, store_id=store_id, actor=actor,
                            amount=purchase.amount - purchase.returned_amount)
    done = list(session.scalars(select(PurchaseReturn).where(PurchaseReturn.purchase_id == purchase.id)))
    balance = ledger.balance_of(session, purchase.member_id).points
    debt = sum(r.points_debt for r in done)
    return RefundResult(purchase, sum(r.points_reversed for r in done), debt, sum(r.pending_cancelled for r in done),
                        balance, 0, debt)


def _uncount(session: Session, program: Program, purchase: Purchase, points: int, actor: str) -> None:
    """A refund takes its part back from the member's running totals (the visit stays: they came). Only a purchase
    still inside the longest window: an older one is no longer in the totals the last review reset."""
    ladder = tiers.current(session)
    days = max(ladder.windows("spend") or 0, ladder.windows("points_earned") or 0)
    if days and purchase.created_at >= program.now() - timedelta(days=days):
        tiers.count(session, program, ladder, purchase.member_id, tiers.Counted(spend=-purchase.amount, points=-points),
                    channel="till", cause=actor)


def identify(session: Session, program: Program, code: str, store_id: str | None = None) -> dict[str, Any]:
    """What a scanner read or a cashier typed: a member's card (token or number), or a coupon (token or code)."""
    scanned = scanner.read(program, code)
    if scanned.kind == "coupon":
        return {"kind": "coupon", "coupon": redemption.coupon_for_till(session, program, scanned, store_id=store_id)}
    card = find_card(session, scanned)
    if scanned.pass_code is not None:  # a Google Wallet code identifies once per store; an Apple one is recorded
        passes.record_use(session, program, scanned, store_id=store_id, purpose="identify")
    member = session.get_one(Member, card.member_id)  # a foreign key: it exists
    balance = ledger.balance_of(session, member.id)
    return {"kind": "card", "member": {"id": member.id, "name": member.name, "tier": member.tier,
                                       "balance": balance.points}, "card": {"number": card.number}}
