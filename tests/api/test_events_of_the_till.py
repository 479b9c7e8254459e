"""The till writes its event in the purchase's own transaction: a purchase records one row, ``purchase.recorded``,
which carries the points it earned and each rule's grant (no ``points.earned`` or ``reward.granted`` of its own); a retried receipt
or an Idempotency-Key replay writes none; a refund records its reversal; nothing personal is in any of them."""
from __future__ import annotations

import json

from sqlalchemy import select

from api.extensions import db
from tests.outbox import member_events
from wallet.ledger import LedgerEntry

PURCHASES = "/api/v1/pos/purchases"



def setup(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    rule_id = factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    member = factory.member()
    return store, cashier, rule_id, member


def test_a_purchase_records_one_event_carrying_its_points_and_its_rewards(app, client, factory):
    store, cashier, rule_id, member = setup(factory)
    before = len(member_events(app, member["id"]))
    body = {"card": member["card_number"], "amount": "120.50", "currency": "ILS", "receipt_id": "R-1",
            "items": [{"barcode": "4006381333931", "quantity": 2, "unit_price": "10.00"}]}
    r = client.post(PURCHASES, json=body, headers=cashier["headers"])
    assert r.status_code == 201, r.get_json()
    answer = r.get_json()
    new = member_events(app, member["id"])[before:]
    assert [e.type for e in new] == ["purchase.recorded"]  # one row: no points.earned, no reward.granted

    recorded = new[0]
    with app.app_context():
        entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.source == f"purchase:{answer['purchase_id']}"))
        assert entry.balance_after == answer["balance"] and entry.delta == 120
        db.session.remove()
    assert recorded.data == {
        "purchase_id": answer["purchase_id"], "receipt_id": "R-1", "amount": "120.50", "currency": "ILS",
        "points_awarded": 120, "points_credited": 120, "item_count": 2,
        "rewards": [{"rule_id": rule_id, "grant_id": answer["rewards"][0]["grant_id"], "kind": "rule", "points": 120,
                     "entry_id": entry.id, "pending": False, "coupon_id": None, "surprise": False}]}
    assert (recorded.channel, recorded.store_id, recorded.actor) == ("till", store["id"], f"staff:{cashier['id']}")

    text = json.dumps(recorded.data)  # ids, amounts and codes only
    assert member["email"] not in text and "name" not in recorded.data


def test_points_credited_outside_a_purchase_still_write_points_earned(app, client, factory):
    """Only a purchase folds its credit into its own event: a check-in's reward still writes points.earned and
    reward.granted."""
    store = factory.store()
    rule_id = factory.rule(title="Visit bonus", trigger="check_in", reward={"points": 15})
    member = factory.member()
    before = len(member_events(app, member["id"]))
    r = client.post("/api/v1/me/check-ins", json={"store_id": store["id"], "lat": store["lat"], "lon": store["lon"]},
                    headers=member["headers"])
    assert r.status_code == 201, r.get_json()
    types = sorted(e.type for e in member_events(app, member["id"])[before:])
    assert types == ["check_in.recorded", "points.earned", "reward.granted"]
    granted = next(e for e in member_events(app, member["id"]) if e.type == "reward.granted")
    assert granted.data["rule_id"] == rule_id and granted.data["points"] == 15


def test_a_retried_receipt_and_a_replayed_request_write_no_event(app, client, factory):
    _, cashier, _, member = setup(factory)
    body = {"card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-2"}
    headers = cashier["headers"] | {"Idempotency-Key": "till-1-r2"}
    first = client.post(PURCHASES, json=body, headers=headers)
    assert first.status_code == 201
    count = len(member_events(app, member["id"]))
    assert client.post(PURCHASES, json=body, headers=headers).get_json() == first.get_json()
    assert client.post(PURCHASES, json=body, headers=cashier["headers"]).status_code == 201  # the receipt, retried
    assert len(member_events(app, member["id"])) == count


def test_a_refused_purchase_leaves_no_event(app, client, factory):
    _, cashier, _, member = setup(factory)
    count = len(member_events(app, member["id"]))
    body = {"card": member["card_number"], "amount": "10.00", "currency": "USD", "receipt_id": "R-3"}
    assert client.post(PURCHASES, json=body, headers=cashier["headers"]).status_code == 422
    assert len(member_events(app, member["id"])) == count


def test_a_refund_records_the_reversal_and_the_refund(app, client, factory):
    _, cashier, _, member = setup(factory)
    body = {"card": member["card_number"], "amount": "30.00", "currency": "ILS", "receipt_id": "R-4"}
    purchase = client.post(PURCHASES, json=body, headers=cashier["headers"]).get_json()
    before = len(member_events(app, member["id"]))
    r = client.post(f"{PURCHASES}/{purchase['purchase_id']}/refund", headers=cashier["headers"])
    assert r.status_code == 200, r.get_json()
    new = member_events(app, member["id"])[before:]
    assert [e.type for e in new] == ["points.adjusted", "purchase.refunded"]
    reversal, refunded = new
    assert reversal.data["kind"] == "reverse" and reversal.data["points"] == -30
    assert reversal.data["balance_after"] == r.get_json()["balance"]
    assert refunded.data["purchase_id"] == purchase["purchase_id"] and refunded.data["points_reversed"] == 30
    assert client.post(f"{PURCHASES}/{purchase['purchase_id']}/refund", headers=cashier["headers"]).status_code == 200
    assert len(member_events(app, member["id"])) == before + 2  # refunding again changes nothing, and says nothing
