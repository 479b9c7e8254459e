"""Coupons under real concurrency on PostgreSQL: 24 requests at once, each its own connection and transaction.

The app under test gets a pool as wide as the crowd, so all 24 transactions really are open at the same time.
"""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet.coupons import Coupon, Offer, Redemption
from wallet.ledger import LedgerEntry

from ..conftest import assert_problem, run_together
from ..wallet.test_ledger import assert_consistent
from .test_offers import API, make_offer

pytestmark = pytest.mark.postgres
N = 24


@pytest.fixture
def wide(make_app):
    return make_app(SQLALCHEMY_ENGINE_OPTIONS={"pool_size": N + 2, "max_overflow": 0})


def scalar(app, query):
    with app.app_context():
        value = db.session.scalar(query)
        db.session.remove()
        return value


def test_24_tills_redeeming_one_coupon_give_one_success(app, wide, client, factory):
    marketer = factory.staff("marketer")
    member = factory.member()
    offer = make_offer(client, marketer)
    coupon = client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"]).get_json()
    tills = [factory.staff("cashier", store_id=factory.store()["id"]) for _ in range(N)]

    def redeem(i):
        return wide.test_client().post(f"{API}/pos/redemptions", json={"coupon": coupon["token"],
                                                                        "receipt_id": f"R-{i}"},
                                       headers=tills[i]["headers"])

    responses = run_together(N, redeem)
    assert Counter(r.status_code for r in responses) == {201: 1, 409: N - 1}
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "coupon_already_redeemed")
    winner = next(r.get_json() for r in responses if r.status_code == 201)
    assert scalar(app, select(func.count()).select_from(Redemption)) == 1
    assert scalar(app, select(Coupon.redemption_id).where(Coupon.id == coupon["id"])) == winner["id"]
    assert scalar(app, select(Coupon.status).where(Coupon.id == coupon["id"])) == "redeemed"


def test_24_claims_on_an_offer_with_5_left_issue_exactly_5(app, wide, client, factory):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, total_limit=8)
    early = [factory.member() for _ in range(3)]
    issued = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"member_ids": [m["id"] for m in early]},
                         headers=marketer["headers"]).get_json()
    assert issued["issued"] == 3  # 5 left
    crowd = [factory.member() for _ in range(N)]

    def claim(i):
        return wide.test_client().post(f"{API}/me/coupons", json={"offer_id": offer["id"]},
                                       headers=crowd[i]["headers"])

    responses = run_together(N, claim)
    assert Counter(r.status_code for r in responses) == {201: 5, 422: N - 5}
    for r in responses:
        if r.status_code == 422:
            assert_problem(r, 422, "offer_exhausted")
    assert scalar(app, select(func.count()).select_from(Coupon).where(Coupon.offer_id == offer["id"])) == 8
    assert scalar(app, select(Offer.issued_count).where(Offer.id == offer["id"])) == 8
    winners = {r.get_json()["id"] for r in responses if r.status_code == 201}
    assert len(winners) == 5


def test_24_points_claims_on_a_balance_that_pays_for_one_spend_it_once(app, wide, client, factory):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, points_cost=300)
    member = factory.member()
    factory.earn(member["id"], 500)

    def claim(i):
        return wide.test_client().post(f"{API}/me/coupons", json={"offer_id": offer["id"]},
                                       headers=member["headers"])

    responses = run_together(N, claim)
    assert Counter(r.status_code for r in responses) == {201: 1, 422: N - 1}
    for r in responses:
        if r.status_code == 422:
            assert_problem(r, 422, "insufficient_points")
    assert factory.balance(member["id"]) == 200
    spends = scalar(app, select(func.count()).select_from(LedgerEntry)
                    .where(LedgerEntry.member_id == member["id"], LedgerEntry.kind == "spend"))
    assert spends == 1
    assert scalar(app, select(func.count()).select_from(Coupon).where(Coupon.member_id == member["id"])) == 1
    assert scalar(app, select(Offer.issued_count).where(Offer.id == offer["id"])) == 1
    with app.app_context():
        assert_consistent(db.session, member["id"])
        db.session.remove()


def test_per_member_limit_holds_under_concurrent_claims(app, wide, client, factory):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, per_member_limit=2)
    member = factory.member()

    def claim(i):
        return wide.test_client().post(f"{API}/me/coupons", json={"offer_id": offer["id"]},
                                       headers=member["headers"])

    responses = run_together(N, claim)
    assert Counter(r.status_code for r in responses) == {201: 2, 422: N - 2}
    assert {r.get_json()["code"] for r in responses if r.status_code == 422} == {"limit_reached"}
    assert scalar(app, select(func.count()).select_from(Coupon).where(Coupon.member_id == member["id"])) == 2


def test_concurrent_void_and_redeem_of_one_coupon_never_both_win(app, wide, client, factory):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, points_cost=100)
    cashier = factory.staff("cashier", store_id=factory.store()["id"])
    member = factory.member()
    factory.earn(member["id"], 100 * N)
    held = [client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"]).get_json()
            for _ in range(N // 2)]

    def race(i):
        coupon = held[i // 2]
        c = wide.test_client()
        if i % 2:
            return "void", c.post(f"{API}/admin/coupons/{coupon['id']}/void", json={"reason": "race"},
                                  headers=marketer["headers"])
        return "redeem", c.post(f"{API}/pos/redemptions", json={"coupon": coupon["token"]},
                                headers=cashier["headers"])

    results = run_together(N, race)
    voided = 0
    for i in range(0, N, 2):
        (_, redeemed), (_, void) = results[i], results[i + 1]
        # Exactly one of the two won for each coupon.
        assert (redeemed.status_code == 201) != (void.status_code == 200 and void.get_json()["status"] == "void")
        voided += redeemed.status_code != 201
    assert scalar(app, select(func.count()).select_from(Redemption)) == N // 2 - voided
    assert factory.balance(member["id"]) == 100 * N - 100 * (N // 2) + 100 * voided
    with app.app_context():
        assert_consistent(db.session, member["id"])
        db.session.remove()
