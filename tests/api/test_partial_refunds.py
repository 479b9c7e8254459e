"""Partial returns (issue 18): POST /pos/purchases/{id}/refunds by amount or items, once per refund_id; points back
in proportion rounded down, the last return taking the rest; a reward whose condition the kept part misses taken
back; points already spent owed as points.debt, which later earning pays first; the balance never below zero."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.extensions import db
from wallet import ledger, returns, till
from wallet.ledger import LedgerEntry

from ..conftest import assert_problem
from ..wallet.test_ledger import assert_consistent

API = "/api/v1"


@pytest.fixture
def shop(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    rule = factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    return {"store": store, "cashier": cashier, "h": cashier["headers"], "rule": rule}


def buy(client, shop, member, amount, receipt="R-1", items=None):
    body = {"card": member["card_number"], "amount": amount, "currency": "ILS", "receipt_id": receipt}
    if items:
        body["items"] = items
    r = client.post(f"{API}/pos/purchases", json=body, headers=shop["h"])
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def give_back(client, shop, purchase_id, refund_id, **body):
    return client.post(f"{API}/pos/purchases/{purchase_id}/refunds", json={"refund_id": refund_id} | body,
                       headers=shop["h"])


def test_returns_by_amount_round_down_and_the_last_takes_the_rest(client, factory, shop):
    member = factory.member()
    purchase = buy(client, shop, member, "100.00")
    assert purchase["points_awarded"] == 100
    first = give_back(client, shop, purchase["purchase_id"], "ret-1", amount="33.33")
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["points_reversed"], body["points_debt"], body["balance"], body["debt"]) == (33, 0, 67, 0)
    assert (body["remaining_amount"], body["status"], body["replayed"]) == ("66.67", "partly_returned", False)
    # a retry answers the same, and takes nothing more
    again = give_back(client, shop, purchase["purchase_id"], "ret-1", amount="33.33")
    assert again.status_code == 201 and again.get_json() == body | {"replayed": True}
    assert factory.balance(member["id"]) == 67
    # the same refund_id with another body is a conflict
    assert_problem(give_back(client, shop, purchase["purchase_id"], "ret-1", amount="10"), 409, "refund_conflict")
    second = give_back(client, shop, purchase["purchase_id"], "ret-2", amount="33.33").get_json()
    assert second["points_reversed"] == 33
    assert_problem(give_back(client, shop, purchase["purchase_id"], "ret-3", amount="33.35"), 422,
                   "return_exceeds_purchase")
    last = give_back(client, shop, purchase["purchase_id"], "ret-3", amount="33.34").get_json()
    assert (last["points_reversed"], last["status"], last["remaining_amount"]) == (34, "refunded", "0.00")
    assert 33 + 33 + 34 == 100 and factory.balance(member["id"]) == 0
    assert_problem(give_back(client, shop, purchase["purchase_id"], "ret-4", amount="1"), 409, "purchase_refunded")
    # the whole refund after the returns changes nothing more
    whole = client.post(f"{API}/pos/purchases/{purchase['purchase_id']}/refund", headers=shop["h"]).get_json()
    assert (whole["status"], whole["points_reversed"], whole["balance"]) == ("refunded", 100, 0)


def test_bad_returns_change_nothing(client, factory, shop):
    member = factory.member()
    purchase = buy(client, shop, member, "50.00")
    pid = purchase["purchase_id"]
    for body, code in [({"amount": "0"}, "validation_error"), ({"amount": "-1"}, "validation_error"),
                       ({"amount": 12.5}, "validation_error"), ({}, "validation_error"),
                       ({"amount": "1", "items": [{"barcode": "96385074"}]}, "validation_error"),
                       ({"amount": "50.01"}, "return_exceeds_purchase"),
                       ({"items": [{"barcode": "96385074", "quantity": 1}]}, "item_not_bought"),
                       ({"amount": "1", "refund_id": "a b"}, "validation_error"),
                       ({"amount": "1", "refund_id": "x" * 65}, "validation_error")]:
        r = client.post(f"{API}/pos/purchases/{pid}/refunds", json={"refund_id": "r"} | body, headers=shop["h"])
        assert_problem(r, 422, code)
    assert_problem(give_back(client, shop, "pur_NOPE", "r", amount="1"), 404, "purchase_not_found")
    other = factory.staff("cashier")
    r = client.post(f"{API}/pos/purchases/{pid}/refunds", json={"refund_id": "r", "amount": "1"},
                    headers=other["headers"])
    assert_problem(r, 404, "purchase_not_found")
    assert_problem(client.post(f"{API}/pos/purchases/{pid}/refunds", json={"refund_id": "r", "amount": "1"},
                               headers=member["headers"]), 403, "forbidden")
    assert factory.balance(member["id"]) == 50


def test_returns_by_items_and_a_reward_whose_condition_the_kept_part_misses(client, factory, shop):
    marketer = factory.staff("marketer")
    for sku, barcode, category in (("MUG", "96385074", "homeware"), ("TEA", "4006381333931", "tea")):
        r = client.post(f"{API}/admin/products", headers=marketer["headers"],
                        json={"sku": sku, "barcode": barcode, "name": sku, "category": category, "price": "10.00"})
        assert r.status_code == 201, r.get_json()
    bonus = factory.rule(title="50 points over 100", reward={"points": 50}, conditions={"min_amount": "100"})
    member = factory.member()
    items = [{"barcode": "96385074", "quantity": 2, "unit_price": "40.00"},
             {"barcode": "4006381333931", "quantity": 1, "unit_price": "40.00"}]
    purchase = buy(client, shop, member, "120.00", items=items)
    assert purchase["points_awarded"] == 170
    # one tea back: 40 of 120 in proportion (40), and the kept 80 no longer earns the bonus (50)
    r = give_back(client, shop, purchase["purchase_id"], "ret-1", items=[{"barcode": "4006381333931", "quantity": 1}])
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["amount"], body["points_reversed"], body["rewards_taken_back"]) == ("40.00", 90, [bonus])
    assert factory.balance(member["id"]) == 80
    assert_problem(give_back(client, shop, purchase["purchase_id"], "ret-2",
                             items=[{"barcode": "4006381333931", "quantity": 1}]), 422, "return_exceeds_purchase")
    assert_problem(give_back(client, shop, purchase["purchase_id"], "ret-2",
                             items=[{"barcode": "96385074", "quantity": 3}]), 422, "return_exceeds_purchase")
    last = give_back(client, shop, purchase["purchase_id"], "ret-2",
                     items=[{"barcode": "96385074", "quantity": 2}]).get_json()
    assert (last["points_reversed"], last["status"]) == (80, "refunded")
    assert factory.balance(member["id"]) == 0


def test_spent_points_become_a_debt_that_later_earning_pays_first(app, client, factory, shop):
    member = factory.member()
    purchase = buy(client, shop, member, "100.00")
    factory.spend(member["id"], 90, key="spend-1")
    body = give_back(client, shop, purchase["purchase_id"], "ret-1", amount="50.00").get_json()
    assert (body["points_reversed"], body["points_debt"], body["balance"], body["debt"]) == (10, 40, 0, 40)
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()
    assert (wallet["points"]["balance"], wallet["points"]["debt"]) == (0, 40)
    assert client.get(f"{API}/me/ledger", headers=member["headers"]).get_json()["debt"] == 40
    # the next purchase earns 60: 40 of it pays the debt, by an entry that says so
    second = buy(client, shop, member, "60.00", receipt="R-2")
    assert (second["points_awarded"], second["balance"]) == (60, 20)
    statement = client.get(f"{API}/me/ledger", headers=member["headers"]).get_json()
    assert statement["debt"] == 0
    top = statement["items"][0]
    assert (top["kind"], top["reason"], top["delta"], top["balance_after"]) == ("spend", "debt", -40, 20)
    assert "debt" in top["cause"] and "paid off" in top["description"]
    with app.app_context():
        assert_consistent(db.session, member["id"])
        db.session.remove()


def test_a_debt_is_paid_by_any_credit_and_in_part(app, client, factory, shop, program):
    member = factory.member()
    with app.app_context():
        ledger.owe(db.session, member["id"], 25)
        db.session.commit()
    factory.earn(member["id"], 10)
    with app.app_context():
        balance = ledger.balance_of(db.session, member["id"])
        assert (balance.points, balance.debt) == (0, 15)
        assert_consistent(db.session, member["id"])
        db.session.remove()
    factory.earn(member["id"], 100)
    assert factory.balance(member["id"]) == 85


def test_the_whole_refund_of_spent_points_owes_them(client, factory, shop):
    member = factory.member()
    purchase = buy(client, shop, member, "100.00")
    factory.spend(member["id"], 70, key="spend-1")
    r = client.post(f"{API}/pos/purchases/{purchase['purchase_id']}/refund", headers=shop["h"]).get_json()
    assert (r["points_reversed"], r["points_not_reversed"], r["points_debt"], r["balance"]) == (30, 70, 70, 0)
    again = client.post(f"{API}/pos/purchases/{purchase['purchase_id']}/refund", headers=shop["h"]).get_json()
    assert again["points_debt"] == 70
    assert client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()["points"]["debt"] == 70  # once


def test_held_points_come_off_the_hold(app, client, factory, shop, program):
    program.pending_days = 14
    member = factory.member()
    purchase = buy(client, shop, member, "80.00")
    body = give_back(client, shop, purchase["purchase_id"], "ret-1", amount="20.00").get_json()
    assert (body["pending_cancelled"], body["points_reversed"], body["points_debt"]) == (20, 0, 0)
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()
    assert wallet["points"]["pending_total"] == 60
    last = give_back(client, shop, purchase["purchase_id"], "ret-2", amount="60.00").get_json()
    assert last["pending_cancelled"] == 60
    assert client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()["points"]["pending_total"] == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(total_cents=st.integers(1, 50_000), cuts=st.lists(st.integers(1, 10_000), min_size=0, max_size=5),
       spends=st.lists(st.integers(0, 400), min_size=6, max_size=6))
def test_partial_returns_add_up_to_the_whole_and_the_balance_never_goes_below_zero(app, factory, total_cents, cuts,
                                                                                     spends):
    program = app.extensions["loyalty.program"]
    with app.app_context():
        session = db.session
        store = factory.store()
        if factory.n <= 1:  # once per test: the database is emptied only after the whole test, not per example
            factory.rule(title="2 points per shekel", reward={"points_per_currency_unit": 2})
        member = factory.member()
        total = Decimal(total_cents) / 100
        bought = till.record_purchase(session, program, store_id=store["id"], card_code=member["card_number"],
                                      amount=total, currency="ILS", receipt_id="R")
        session.commit()
        earned = bought.purchase.points_awarded
        factory.earn(member["id"], 50)  # points from elsewhere, some of which a return may take
        amounts, left = [], total
        for cut in cuts:
            part = min(left, Decimal(cut) / 100)
            if part <= 0 or part == left:
                break
            amounts.append(part)
            left -= part
        amounts.append(left)  # the last return takes what is left
        taken = 0
        for n, amount in enumerate(amounts):
            spend = min(spends[n % len(spends)], ledger.balance_of(session, member["id"]).points)
            if spend:
                ledger.spend(session, program, member_id=member["id"], points=spend, reason="coupon",
                             idempotency_key=f"s{n}:{member['id']}", description="spend")
            done = returns.return_part(session, program, bought.purchase.id, refund_id=f"r{n}", store_id=store["id"],
                                       actor="staff:test", amount=amount)
            session.commit()
            taken += done.record.points_reversed + done.record.points_debt
            assert done.balance >= 0 and done.debt >= 0
            assert_consistent(session, member["id"])
            if n < len(amounts) - 1:  # rounded down: never more than its share
                share = Decimal(earned) * amount / total
                assert done.record.points_reversed + done.record.points_debt <= share
        assert taken == earned
        rows = session.scalars(db.select(LedgerEntry).where(LedgerEntry.member_id == member["id"])).all()
        assert all(e.balance_after >= 0 for e in rows)
        db.session.remove()


@pytest.mark.postgres
def test_concurrent_returns_count_once_and_never_exceed_the_purchase(app, client, factory, shop):
    from ..conftest import run_together
    member = factory.member()
    purchase = buy(client, shop, member, "100.00")

    def same(_):
        with app.test_client() as c:
            r = c.post(f"{API}/pos/purchases/{purchase['purchase_id']}/refunds", headers=shop["h"],
                       json={"refund_id": "same", "amount": "10.00"})
            return r.status_code, {k: v for k, v in r.get_json().items() if k != "replayed"}
    answers = run_together(4, same)
    assert {a[0] for a in answers} == {201} and len({str(a[1]) for a in answers}) == 1
    assert factory.balance(member["id"]) == 90

    def racing(i):
        with app.test_client() as c:
            return c.post(f"{API}/pos/purchases/{purchase['purchase_id']}/refunds", headers=shop["h"],
                          json={"refund_id": f"race-{i}", "amount": "60.00"}).status_code
    assert sorted(run_together(2, racing)) == [201, 422]
    assert factory.balance(member["id"]) == 30
    with app.app_context():
        assert_consistent(db.session, member["id"])
        db.session.remove()
