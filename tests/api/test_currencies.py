"""Currencies (issue 18): /admin/currencies[/{code}] with ISO 4217 codes; a store in its own currency earns through
the rate of the day of the purchase, kept on the purchase, which a return uses too."""
from __future__ import annotations

from decimal import Decimal

from api.extensions import db
from wallet.purchases import Purchase
from wallet.tokens import Principal

from ..conftest import assert_problem

API = "/api/v1"


def test_currencies_are_iso_codes_with_positive_rates(client, factory):
    marketer = factory.staff("marketer")
    h = marketer["headers"]
    r = client.post(f"{API}/admin/currencies", json={"code": "usd", "rate": "3.7"}, headers=h)
    assert r.status_code == 201, r.get_json()
    assert r.get_json() | {"created_at": None, "updated_at": None} == {"code": "USD", "rate": "3.70000000",
                                                                      "created_at": None, "updated_at": None}
    assert_problem(client.post(f"{API}/admin/currencies", json={"code": "USD", "rate": "3.8"}, headers=h), 409,
                   "currency_exists")
    for body, code in [({"code": "XYZ", "rate": "1"}, "unknown_currency"), ({"code": "ILS", "rate": "1"}, "club_currency"),
                       ({"code": "EUR", "rate": "0"}, "validation_error"), ({"code": "EUR", "rate": "-2"}, "validation_error"),
                       ({"code": "EUR", "rate": "abc"}, "validation_error"), ({"code": "EU", "rate": "1"}, "validation_error"),
                       ({"code": "EUR", "rate": "1e400"}, "validation_error"), ({"code": "EUR"}, "validation_error"),
                       ({"code": "EUR", "rate": "2000000"}, "validation_error"),
                       ({"code": "EUR", "rate": "1", "x": 1}, "validation_error")]:
        assert_problem(client.post(f"{API}/admin/currencies", json=body, headers=h), 422, code)
    listed = client.get(f"{API}/admin/currencies", headers=h).get_json()
    assert listed["club_currency"] == "ILS" and [c["code"] for c in listed["items"]] == ["USD"]
    r = client.patch(f"{API}/admin/currencies/usd", json={"rate": "3.65"}, headers=h)
    assert r.status_code == 200 and r.get_json()["rate"] == "3.65000000"
    assert_problem(client.patch(f"{API}/admin/currencies/EUR", json={"rate": "4"}, headers=h), 404,
                   "currency_not_found")
    assert_problem(client.get(f"{API}/admin/currencies/EUR", headers=h), 404, "currency_not_found")
    member = factory.member()
    assert_problem(client.get(f"{API}/admin/currencies", headers=member["headers"]), 403, "forbidden")
    admin = factory.staff("admin")
    audit = client.get(f"{API}/admin/audit?entity=currency", headers=admin["headers"]).get_json()["items"]
    assert sorted(a["action"] for a in audit) == ["create", "update"]


def test_a_store_in_its_own_currency_earns_through_the_rate_of_the_day(app, client, factory, clock):
    marketer = factory.staff("marketer")
    h = marketer["headers"]
    r = client.post(f"{API}/admin/stores", headers=h, json={"code": "NYC", "name": "New York", "lat": 40.7,
                                                             "lon": -74.0, "currency": "usd"})
    assert r.status_code == 201, r.get_json()
    store = r.get_json()
    assert store["currency"] == "USD"
    assert_problem(client.post(f"{API}/admin/stores", headers=h, json={"code": "BAD", "name": "x", "lat": 1, "lon": 1,
                                                                     "currency": "XYZ"}), 422, "validation_error")
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    bonus = factory.rule(title="20 points over 100 shekels", reward={"points": 20}, conditions={"min_amount": "100"})
    member = factory.member()

    def buy(amount, currency, receipt):
        return client.post(f"{API}/pos/purchases", headers=cashier["headers"], json={
            "card": member["card_number"], "amount": amount, "currency": currency, "receipt_id": receipt})

    assert_problem(buy("10.00", "USD", "R-0"), 422, "currency_without_rate")
    assert client.post(f"{API}/admin/currencies", json={"code": "USD", "rate": "3.7"}, headers=h).status_code == 201
    assert_problem(buy("10.00", "ILS", "R-0"), 422, "unsupported_currency")
    first = buy("30.00", "USD", "R-1").get_json()  # 111 shekels: 111 points and the bonus
    assert (first["amount"], first["currency"], first["points_awarded"]) == ("30.00", "USD", 131)
    clock.advance(days=1)
    h = marketer["headers"] = factory.headers(Principal(marketer["id"], "marketer"))  # yesterday's tokens expired
    cashier["headers"] = factory.headers(Principal(cashier["id"], "cashier", store["id"]))
    assert client.patch(f"{API}/admin/currencies/USD", json={"rate": "3"}, headers=h).status_code == 200
    second = buy("30.00", "USD", "R-2").get_json()  # 90 shekels: no bonus
    assert second["points_awarded"] == 90
    with app.app_context():
        rates = {p.receipt_id: p.rate for p in db.session.scalars(db.select(Purchase))}
        assert rates == {"R-1": Decimal("3.7"), "R-2": Decimal("3")}
        db.session.remove()
    # a return of the first purchase judges the kept part at its own rate: 27 dollars kept = 99.90 shekels < 100
    r = client.post(f"{API}/pos/purchases/{first['purchase_id']}/refunds", headers=cashier["headers"],
                    json={"refund_id": "ret-1", "amount": "3.00"})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["points_reversed"], r.get_json()["rewards_taken_back"]) == (11 + 20, [bonus])
    # a store back in the club's currency
    r = client.patch(f"{API}/admin/stores/{store['id']}", json={"currency": None}, headers=h)
    assert r.status_code == 200 and r.get_json()["currency"] is None
    assert buy("10.00", "ILS", "R-3").get_json()["points_awarded"] == 10


def test_the_demo_club_has_a_store_in_dollars_and_a_partial_return(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    assert runner.invoke(args=["demo"]).exit_code == 0  # twice: the purchase and the return replay
    with app.app_context():
        purchase = db.session.scalar(db.select(Purchase).where(Purchase.receipt_id == "DEMO-DFS-1"))
        assert (purchase.currency, purchase.rate, purchase.amount, purchase.returned_amount) == (
            "USD", Decimal("3.7"), Decimal("40.00"), Decimal("10.00"))
        assert purchase.points_awarded >= 148 and purchase.status == "completed"  # 148: $40 at 3.7 (doubled on Fridays)
        db.session.remove()
