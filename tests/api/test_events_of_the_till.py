"""The till writes its events in the purchase's own transaction: a purchase records ``purchase.recorded``, the points
it earned (``points.earned``, with the balance the move left) and each rule's ``reward.granted``; a retried receipt
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


def test_a_purchase_records_its_event_its_points_and_its_reward(app, client, factory):
    store, cashier, rule_id, member = setup(factory)
    before = {e.type for e in member_events(app, member["id"])}
    body = {"card": member["card_number"], "amount": "120.50", "currency": "ILS", "receipt_id": "R-1",
            "items": [{"barcode": "4006381333931", "quantity": 2, "unit_price": "10.00"}]}
    r = client.post(PURCHASES, json=body, headers=cashier["headers"])
    assert r.status_code == 201, r.get_json()
    answer = r.get_json()
    new = [e for e in member_events(app, member["id"]) if e.type not in before or e.type == "points.earned"]
    by_type = {e.type: e for e in new if e.data.get("purchase_id", e.data.get("source", "")).endswith(
        answer["purchase_id"]) or e.type == "reward.granted"}
    assert set(by_type) == {"purchase.recorded", "points.earned", "reward.granted"}

    recorded = by_type["purchase.recorded"]
    assert recorded.data == {"purchase_id": answer["purchase_id"], "receipt_id": "R-1", "amount": "120.50",
                             "currency": "ILS", "points_awarded": 120, "item_count": 2}
    assert (recorded.channel, recorded.store_id, recorded.actor) == ("till", store["id"], f"staff:{cashier['id']}")

    earned = by_type["points.earned"]
    with app.app_context():
        entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.source == f"purchase:{answer['purchase_id']}"))
        assert earned.data["entry_id"] == entry.id
        assert earned.data["balance_after"] == entry.balance_after == answer["balance"]
        db.session.remove()
    assert earned.data["points"] == 120 and earned.data["reason"] == "purchase"
    assert earned.actor == f"rule:{rule_id}" and earned.channel == "till"

    granted = by_type["reward.granted"]
    assert granted.data["rule_id"] == rule_id and granted.data["points"] == 120
    assert granted.data["grant_id"] == answer["rewards"][0]["grant_id"]
    assert granted.data["surprise"] is False and granted.data["trigger"] == "purchase"

    for event in new:  # ids, amounts and codes only
        text = json.dumps(event.data)
        assert member["email"] not in text and "name" not in event.data


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
