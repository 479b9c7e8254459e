"""Partial returns at the till: part of a purchase brought back, by amount or by items, once per ``refund_id``.

What a purchase earned is taken back unit by unit (each ledger credit or held credit it made):

- points that scale with the amount (points per currency unit, multipliers, the member's benefits) in proportion
  to the amount returned, rounded down; the return that leaves nothing of the purchase takes what is left, so the
  returns of a purchase add up to exactly what it earned;
- a fixed reward (points or a coupon) stays while the kept part still meets its rule's amount and category
  conditions (``min_amount``, ``categories``), and is taken back whole once it does not;
- points still held for the return window come off the hold; points already spent become the member's
  ``points.debt`` (the balance never goes below zero), which later credits pay first (``ledger.pay_debt``).

A foreign-currency purchase is judged in the club's currency through the rate kept on the purchase.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import benefits, currencies, events, ledger, statement
from .barcodes import normalise_barcode
from .coupons import Coupon, voiding
from .errors import Conflict, Invalid
from .program import Program
from .purchases import Purchase, PurchaseItem, PurchaseReturn, get_purchase
from .rules import RuleGrant

WHOLE = "refund/whole"  # the refund_id of POST .../refund (what partial returns left): a "/" no client may send


@dataclass
class ReturnResult:
    record: PurchaseReturn
    purchase: Purchase
    balance: int
    debt: int
    remaining_amount: Decimal
    replayed: bool = False
    benefit_uses_returned: int = 0
    points_not_reversed: int = field(init=False)

    def __post_init__(self) -> None:
        self.points_not_reversed = self.record.points_debt

    @property
    def status(self) -> str:
        return "refunded" if self.record.last else "partly_returned"


@dataclass
class _Unit:
    """One thing the purchase earned: a ledger credit or a hold, with what returns took from it before."""

    id: str
    points: int
    rule_id: str | None
    hold: ledger.PendingPoints | None
    taken_before: int = 0

    @property
    def left(self) -> int:
        return self.points - self.taken_before


def _fingerprint(amount: Decimal | None, items: list[dict[str, Any]] | None) -> str:
    canonical = json.dumps([str(amount) if amount is not None else None,
                            sorted([i["barcode"], i["quantity"]] for i in items) if items is not None else None])
    return hashlib.sha256(canonical.encode()).hexdigest()


def return_part(session: Session, program: Program, purchase_id: str, *, refund_id: str, store_id: str | None,
                actor: str, amount: Decimal | None = None, items: list[dict[str, Any]] | None = None) -> ReturnResult:
    """Take back what the returned part of a purchase earned; the same ``refund_id`` again answers the same."""
    if (amount is None) == (items is None):
        raise Invalid("Send amount or items", code="validation_error", errors={"_schema": ["Send amount or items."]})
    if items is not None:
        items = [{"barcode": normalise_barcode(i["barcode"], field=f"items.{n}.barcode"), "quantity": i["quantity"]}
                 for n, i in enumerate(items)]
    get_purchase(session, purchase_id, store_id)  # 404 first, for another store's purchase
    purchase = session.execute(select(Purchase).where(Purchase.id == purchase_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one()
    fingerprint = _fingerprint(amount, items)
    earlier = list(session.scalars(select(PurchaseReturn).where(PurchaseReturn.purchase_id == purchase.id)
                                   .order_by(PurchaseReturn.created_at, PurchaseReturn.id)))
    for record in earlier:
        if record.refund_id == refund_id:
            if record.fingerprint != fingerprint:
                raise Conflict("This refund_id was already used for another return", code="refund_conflict")
            upto = earlier[:earlier.index(record) + 1]
            return _answer(record, purchase, sum((r.amount for r in upto), Decimal(0)), replayed=True)
    if purchase.status == "refunded":
        raise Conflict("This purchase was already refunded whole", code="purchase_refunded")
    left_amount = purchase.amount - purchase.returned_amount
    bought = _bought(session, purchase.id)
    returned_items = _returned_items(earlier)
    if items is not None:
        amount = _items_amount(items, bought, returned_items)
    assert amount is not None
    if amount <= 0 and items is None:
        raise Invalid("A return takes back a positive amount", code="validation_error",
                      errors={"amount": ["Must be above 0."]})
    if amount > left_amount:
        raise Invalid(f"Only {left_amount} of this purchase is left to return", code="return_exceeds_purchase",
                      errors={"amount" if items is None else "items": [f"At most {left_amount} is left."]})
    returned_after = purchase.returned_amount + amount
    last = returned_after >= purchase.amount
    units = _units(session, purchase, earlier)
    fixed = _fixed_rewards(session, purchase)
    kept_amount = currencies.to_club(purchase.amount - returned_after, purchase.rate)
    kept_items = _kept_items(bought, returned_items, items or [])
    record = PurchaseReturn(purchase_id=purchase.id, refund_id=refund_id, amount=amount,
                            items=items or [], fingerprint=fingerprint, actor=actor[:48], last=last,
                            created_at=program.now(), points_reversed=0, points_debt=0, pending_cancelled=0)
    # A fixed reward (points or a coupon) whose amount or category condition the kept part no longer meets.
    failed_rules = [] if last else [r for r, c in fixed.items() if not _kept_meets(c, kept_amount, kept_items)]
    takes: dict[str, int] = {}
    for unit in units:
        if unit.left <= 0:
            continue
        if last or unit.rule_id in failed_rules:
            take = unit.left
        elif unit.rule_id in fixed:
            take = 0
        elif purchase.amount > 0:
            take = min(unit.left, int((Decimal(unit.points) * amount / purchase.amount).to_integral_value(ROUND_FLOOR)))
        else:
            take = 0
        if take:
            takes[unit.id] = take
    source = f"purchase:{purchase.id}"
    for unit in units:
        if takes.get(unit.id):
            _take_back(session, program, purchase, record, unit, takes[unit.id], refund_id=refund_id)
    uses_returned = 0
    if last:
        voided = voiding.void_coupons_from(session, program, source, member_id=purchase.member_id, actor=actor,
                                           reason=f"Return of receipt {purchase.receipt_id}")
        uses_returned = benefits.give_back_uses(session, source, program.now())
    else:
        voided = _void_rule_coupons(session, program, purchase, failed_rules, actor)
    record.taken = takes
    record.rewards_taken_back = sorted(set(failed_rules))
    record.coupons_voided = voided
    purchase.returned_amount = returned_after
    if last:
        purchase.status, purchase.refunded_at = "refunded", program.now()
    balance = ledger.balance_of(session, purchase.member_id)
    session.refresh(balance)
    record.balance_after, record.debt_after = balance.points, balance.debt
    session.add(record)
    session.flush()
    events.emit(session, "purchase.refunded", member_id=purchase.member_id, store_id=purchase.store_id,
                channel="till", actor=actor[:64], occurred_at=record.created_at,
                data={"purchase_id": purchase.id, "refund_id": refund_id, "amount": str(amount), "partial": not last,
                      "points_reversed": record.points_reversed, "points_not_reversed": record.points_debt,
                      "points_debt": record.points_debt, "coupons_voided": voided,
                      "rewards_taken_back": record.rewards_taken_back, "benefit_uses_returned": uses_returned})
    return _answer(record, purchase, returned_after, uses_returned=uses_returned)


def _answer(record: PurchaseReturn, purchase: Purchase, returned: Decimal, *, replayed: bool = False,
            uses_returned: int = 0) -> ReturnResult:
    """The return's answer; a replay answers what the first did (the balance, debt and what was left, as then)."""
    return ReturnResult(record, purchase, record.balance_after, record.debt_after, purchase.amount - returned,
                        replayed, uses_returned)


def _bought(session: Session, purchase_id: str) -> dict[str, tuple[int, Decimal, str | None]]:
    """The basket by barcode: (quantity, unit price, category)."""
    basket: dict[str, tuple[int, Decimal, str | None]] = {}
    for item in session.scalars(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)):
        quantity, _, _ = basket.get(item.barcode, (0, item.unit_price, item.category))
        basket[item.barcode] = (quantity + item.quantity, item.unit_price, item.category)
    return basket


def _returned_items(earlier: list[PurchaseReturn]) -> dict[str, int]:
    returned: dict[str, int] = {}
    for record in earlier:
        for item in record.items or []:
            returned[item["barcode"]] = returned.get(item["barcode"], 0) + int(item["quantity"])
    return returned


def _items_amount(items: list[dict[str, Any]], bought: dict[str, tuple[int, Decimal, str | None]],
                  returned: dict[str, int]) -> Decimal:
    total = Decimal(0)
    asked: dict[str, int] = {}
    for n, item in enumerate(items):
        if item["barcode"] not in bought:
            raise Invalid(f"{item['barcode']} was not bought in this purchase", code="item_not_bought",
                          errors={f"items.{n}.barcode": ["Not in this purchase."]})
        asked[item["barcode"]] = asked.get(item["barcode"], 0) + item["quantity"]
    for n, item in enumerate(items):
        quantity, price, _ = bought[item["barcode"]]
        if asked[item["barcode"]] > quantity - returned.get(item["barcode"], 0):
            raise Invalid(f"Only {quantity - returned.get(item['barcode'], 0)} of {item['barcode']} are left to return",
                          code="return_exceeds_purchase", errors={f"items.{n}.quantity": ["More than is left."]})
        total += price * item["quantity"]
    return total


def _kept_items(bought: dict[str, tuple[int, Decimal, str | None]], returned: dict[str, int],
                now_returned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gone = dict(returned)
    for item in now_returned:
        gone[item["barcode"]] = gone.get(item["barcode"], 0) + item["quantity"]
    return [{"barcode": b, "quantity": q - gone.get(b, 0), "unit_price": p, "category": c}
            for b, (q, p, c) in bought.items() if q - gone.get(b, 0) > 0]


def _units(session: Session, purchase: Purchase, earlier: list[PurchaseReturn]) -> list[_Unit]:
    """What the purchase earned: its credits (a released hold counts as its hold) and its holds, oldest first."""
    source = f"purchase:{purchase.id}"
    units = [_Unit(e.id, e.delta, e.rule_id, None) for e in statement.entries_from(session, source)
             if e.kind == "earn" and e.delta > 0 and not e.idempotency_key.startswith("release:")]
    units += [_Unit(h.id, h.points + _taken(earlier, h.id), h.rule_id, h)
              for h in session.scalars(select(ledger.PendingPoints).where(ledger.PendingPoints.source == source)
                                       .order_by(ledger.PendingPoints.created_at, ledger.PendingPoints.id))
              if h.status != "canceled" or _taken(earlier, h.id)]
    for unit in units:
        unit.taken_before = _taken(earlier, unit.id)
    return units


def _taken(earlier: list[PurchaseReturn], unit_id: str) -> int:
    return sum(int((r.taken or {}).get(unit_id, 0)) for r in earlier)


def _fixed_rewards(session: Session, purchase: Purchase) -> dict[str, dict[str, Any]]:
    """The purchase's grants of fixed rewards (points or a coupon), by rule: their conditions as granted."""
    found = {}
    for grant in session.scalars(select(RuleGrant).where(RuleGrant.event_source == f"purchase:{purchase.id}")):
        reward = (grant.rule_snapshot or {}).get("reward") or {}
        if "points" in reward or ("offer_id" in reward and "points_per_currency_unit" not in reward):
            found[grant.rule_id] = (grant.rule_snapshot or {}).get("conditions") or {}
    return found


def _kept_meets(conditions: dict[str, Any], kept_amount: Decimal, kept_items: list[dict[str, Any]]) -> bool:
    """Whether what the member keeps still meets a rule's amount and category conditions."""
    if "min_amount" in conditions and kept_amount < Decimal(str(conditions["min_amount"])):
        return False
    if conditions.get("categories") and kept_items is not None:
        if not any(i.get("category") in conditions["categories"] for i in kept_items):
            return False
    return True


def _take_back(session: Session, program: Program, purchase: Purchase, record: PurchaseReturn, unit: _Unit,
               take: int, *, refund_id: str) -> None:
    """Take ``take`` points back from one unit: off its hold while held, else off the balance, the rest as debt."""
    hold = unit.hold
    if hold is not None and hold.status == "pending":
        session.execute(update(ledger.PendingPoints).where(ledger.PendingPoints.id == hold.id)
                        .values(points=ledger.PendingPoints.points - take,
                                status="canceled" if take >= hold.points else "pending"),
                        execution_options={"synchronize_session": False})
        session.execute(update(ledger.Balance).where(ledger.Balance.member_id == purchase.member_id)
                        .values(pending=ledger.Balance.pending - take), execution_options={"synchronize_session": False})
        session.expire(hold)
        record.pending_cancelled += take
        return
    balance = session.execute(select(ledger.Balance).where(ledger.Balance.member_id == purchase.member_id)
                              .with_for_update().execution_options(populate_existing=True)).scalar_one()
    from_balance = min(take, balance.points)
    if from_balance:
        own = list(session.scalars(select(ledger.Lot.id).where(ledger.Lot.entry_id == unit.id)))
        ledger.spend(session, program, member_id=purchase.member_id, points=from_balance, reason="refund",
                     kind="reverse", idempotency_key=f"return:{purchase.id}:{refund_id}:{unit.id}"[:160],
                     source=f"purchase:{purchase.id}", actor=record.actor, channel="till", first_lots=own,
                     description=f"Return of part of receipt {purchase.receipt_id}: points taken back"[:240])
        record.points_reversed += from_balance
    if take > from_balance:
        ledger.owe(session, purchase.member_id, take - from_balance)
        record.points_debt += take - from_balance


def _void_rule_coupons(session: Session, program: Program, purchase: Purchase, rule_ids: list[str],
                       actor: str) -> list[str]:
    if not rule_ids:
        return []
    granted = select(RuleGrant.coupon_id).where(RuleGrant.event_source == f"purchase:{purchase.id}",
                                                RuleGrant.rule_id.in_(rule_ids))
    unused = list(session.scalars(select(Coupon.id).where(Coupon.id.in_(granted), Coupon.status == "issued")
                                  .order_by(Coupon.id)))
    for coupon_id in unused:  # a coupon already redeemed stays redeemed: what the till gave is not taken back here
        voiding.void_coupon(session, program, coupon_id, actor=actor,
                            reason=f"Return of part of receipt {purchase.receipt_id}")
    return unused
