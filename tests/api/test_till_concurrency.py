"""Real concurrent transactions on PostgreSQL: row locks and unique constraints, not Python, keep points right."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import ledger
from wallet.errors import InsufficientPoints
from wallet.ledger import LedgerEntry
from wallet.purchases import Purchase

from ..conftest import run_together
from ..wallet.test_ledger import assert_consistent

pytestmark = pytest.mark.postgres


def test_32_concurrent_spends_never_overdraw(app, factory, program):
    member = factory.member()
    factory.earn(member["id"], 100)

    def spend(i):
        with app.app_context():
            try:
                ledger.spend(db.session, program, member_id=member["id"], points=10, reason="coupon",
                             idempotency_key=f"spend-{i}", description="spend")
                db.session.commit()
                return "spent"
            except InsufficientPoints:
                db.session.rollback()
                return "insufficient"
            finally:
                db.session.remove()

    results = run_together(32, spend)
    assert results.count("spent") == 10
    assert results.count("insufficient") == 22
    with app.app_context():
        assert ledger.balance_of(db.session, member["id"]).points == 0
        assert_consistent(db.session, member["id"])


def test_16_concurrent_sends_of_one_idempotency_key_make_one_purchase(app, factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    member = factory.member()
    body = {"card": member["card_number"], "amount": "75.00", "currency": "ILS", "receipt_id": "R-77"}
    headers = cashier["headers"] | {"Idempotency-Key": "once-only-1"}

    def send(_):
        r = app.test_client().post("/api/v1/pos/purchases", json=body, headers=headers)
        return r.status_code, r.get_json()

    results = run_together(16, send)
    assert {status for status, _ in results} == {201}
    assert len({str(body) for _, body in results}) == 1  # every answer is the first one
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)
                                 .where(LedgerEntry.member_id == member["id"])) == 1
        assert ledger.balance_of(db.session, member["id"]).points == 75


def test_16_concurrent_sends_of_one_receipt_without_a_key_count_once(app, factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    member = factory.member()
    body = {"card": member["card_number"], "amount": "30.00", "currency": "ILS", "receipt_id": "R-5"}

    def send(_):
        r = app.test_client().post("/api/v1/pos/purchases", json=body, headers=cashier["headers"])
        return r.status_code, r.get_json()["purchase_id"]

    results = run_together(16, send)
    assert {status for status, _ in results} == {201}
    assert len({pid for _, pid in results}) == 1
    assert factory.balance(member["id"]) == 30


def test_8_tills_earning_for_one_member_at_once_lose_nothing(app, factory):
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    cashiers = [factory.staff("cashier") for _ in range(8)]
    member = factory.member()

    def till(i):
        client = app.test_client()
        codes = []
        for n in range(10):
            r = client.post("/api/v1/pos/purchases", headers=cashiers[i]["headers"],
                            json={"card": member["card_number"], "amount": f"{i + 1}.00", "currency": "ILS",
                                  "receipt_id": f"T{i}-{n}"})
            codes.append(r.status_code)
        return codes

    results = run_together(8, till)
    assert all(code == 201 for codes in results for code in codes)
    expected = sum((i + 1) * 10 for i in range(8))
    with app.app_context():
        assert ledger.balance_of(db.session, member["id"]).points == expected
        assert_consistent(db.session, member["id"])
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 80


def test_concurrent_expiry_runs_expire_each_lot_once(app, factory, program, clock):
    from datetime import timedelta
    members = [factory.member() for _ in range(20)]
    for m in members:
        factory.earn(m["id"], 10, expires_at=clock.now + timedelta(days=1))
    clock.advance(days=2)

    def expire(_):
        with app.app_context():
            total = 0
            while True:
                expired = ledger.expire_due(db.session, program, batch_size=5)
                db.session.commit()
                if not expired:
                    break
                total += expired
            db.session.remove()
            return total

    results = run_together(4, expire)
    assert sum(results) == 200
    with app.app_context():
        for m in members:
            assert ledger.balance_of(db.session, m["id"]).points == 0
            assert_consistent(db.session, m["id"])


def test_8_concurrent_refunds_give_a_benefit_its_use_back_once(app, factory, program):
    from wallet import rules
    from wallet.benefits import MemberBenefit

    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    factory.rule(title="Double your next 3", trigger="check_in", reward={"multiplier": 2, "purchases": 3})
    member = factory.member()
    with app.app_context():
        [granted] = rules.fire(db.session, program, rules.Event(trigger="check_in", member_id=member["id"],
                                                                source="check_in:refund-race"))
        benefit_id = granted.benefit.id
        db.session.commit()
    body = {"card": member["card_number"], "amount": "40.00", "currency": "ILS", "receipt_id": "R-race"}
    bought = app.test_client().post("/api/v1/pos/purchases", json=body, headers=cashier["headers"]).get_json()
    assert bought["points_awarded"] == 80

    def refund(_):
        r = app.test_client().post(f"/api/v1/pos/purchases/{bought['purchase_id']}/refund", headers=cashier["headers"])
        return r.status_code, r.get_json()

    results = run_together(8, refund)
    assert {status for status, _ in results} == {200}, results
    assert sum(answer["benefit_uses_returned"] for _, answer in results) == 1
    with app.app_context():
        assert db.session.get(MemberBenefit, benefit_id).uses_left == 3
        assert ledger.balance_of(db.session, member["id"]).points == 0
        assert_consistent(db.session, member["id"])
