"""The till over HTTP: identify, purchases (idempotent twice over), refunds, the statement."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import qr
from wallet.ledger import LedgerEntry
from wallet.purchases import Purchase
from wallet.tokens import Principal

from ..conftest import assert_problem


@pytest.fixture
def till(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    return {"store": store, "cashier": cashier, "h": cashier["headers"]}


def member_principal(member) -> Principal:
    return Principal(member["id"], "member")


def card_qr(client, member) -> str:
    return client.get("/api/v1/me/card/token", headers=member["headers"]).get_json()["token"]


def buy(client, till, card, amount="120.50", receipt="R-1", **extra):
    body = {"card": card, "amount": amount, "currency": "ILS", "receipt_id": receipt} | extra
    return client.post("/api/v1/pos/purchases", json=body, headers=till["h"])


def count(app, model, **where):
    with app.app_context():
        query = select(func.count()).select_from(model)
        for k, v in where.items():
            query = query.where(getattr(model, k) == v)
        n = db.session.scalar(query)
        db.session.remove()
        return n


def test_purchase_by_scanned_qr_earns_points(client, factory, till):
    member = factory.member()
    r = buy(client, till, card_qr(client, member))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["points_awarded"] == 120 and body["balance"] == 120
    assert body["amount"] == "120.50" and body["currency"] == "ILS"
    assert [(x["title"], x["points"]) for x in body["rewards"]] == [("1 point per shekel", 120)]
    statement = client.get("/api/v1/me/ledger", headers=member["headers"]).get_json()["items"]
    assert [(e["delta"], e["kind"], e["reason"], e["balance_after"]) for e in statement] == \
        [(120, "earn", "purchase", 120)]
    assert statement[0]["description"] == "1 point per shekel"


def test_purchase_by_typed_card_number(client, factory, till):
    member = factory.member()
    r = buy(client, till, member["card_number"][:4] + " " + member["card_number"][4:], amount="10")
    assert r.status_code == 201 and r.get_json()["balance"] == 10


def test_same_receipt_twice_counts_once_and_replays(client, factory, till, app):
    member = factory.member()
    first = buy(client, till, member["card_number"])
    second = buy(client, till, member["card_number"])
    assert second.status_code == 201
    assert second.get_json() == first.get_json()
    assert count(app, Purchase) == 1
    assert count(app, LedgerEntry, member_id=member["id"]) == 1
    assert factory.balance(member["id"]) == 120


def test_same_receipt_with_other_details_is_a_conflict(client, factory, till, app):
    member = factory.member()
    buy(client, till, member["card_number"])
    r = buy(client, till, member["card_number"], amount="99.00")
    assert_problem(r, 409, "receipt_conflict")
    assert factory.balance(member["id"]) == 120


def test_same_receipt_in_another_store_is_another_purchase(client, factory, till):
    member = factory.member()
    other = factory.staff("cashier")
    buy(client, till, member["card_number"])
    r = client.post("/api/v1/pos/purchases", headers=other["headers"],
                    json={"card": member["card_number"], "amount": "10", "currency": "ILS", "receipt_id": "R-1"})
    assert r.status_code == 201
    assert factory.balance(member["id"]) == 130


def test_idempotency_key_replays_and_refuses_another_body(client, factory, till, app):
    member = factory.member()
    h = till["h"] | {"Idempotency-Key": "till-7-0001"}
    body = {"card": member["card_number"], "amount": "50", "currency": "ILS", "receipt_id": "R-9"}
    first = client.post("/api/v1/pos/purchases", json=body, headers=h)
    again = client.post("/api/v1/pos/purchases", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    other = client.post("/api/v1/pos/purchases", json=body | {"receipt_id": "R-10"}, headers=h)
    assert_problem(other, 409, "idempotency_conflict")
    assert count(app, Purchase) == 1
    assert factory.balance(member["id"]) == 50


def test_expired_and_forged_card_codes_are_refused(clock, client, factory, till, program):
    member = factory.member()
    token = qr.card_token(program.secret, member["card_id"], clock.now, program.card_token_ttl).token
    clock.advance(minutes=6)
    assert_problem(buy(client, till, token), 422, "token_expired")
    forged = qr.card_token(b"not-the-key" * 3, member["card_id"], clock.now, program.card_token_ttl).token
    assert_problem(buy(client, till, forged), 422, "invalid_token")
    assert factory.balance(member["id"]) == 0


@pytest.mark.parametrize("card, status, code", [
    ("1234567812345678", 422, "invalid_card_number"),      # Luhn fails
    ("8000000000000003", 404, "card_not_found"),            # valid check digit, no such card
    ("K1-ABCDEF-GHJKMNPQRSTV", 422, "not_a_card"),
])
def test_bad_card_codes(client, factory, till, card, status, code):
    assert_problem(buy(client, till, card), status, code)


@pytest.mark.parametrize("field, value", [
    ("amount", "-1.00"), ("amount", "1.005"), ("amount", 12.5), ("amount", "NaN"), ("amount", "1e999"),
    ("currency", "ils"), ("receipt_id", ""), ("receipt_id", "x" * 65), ("receipt_id", "שלום"),
    ("items", [{"barcode": "7290001234567", "quantity": 0, "unit_price": "1.00"}]),
    ("items", [{"barcode": "123", "unit_price": "1.00"}]),
])
def test_malformed_purchases_are_422_and_write_nothing(client, factory, till, app, field, value):
    member = factory.member()
    body = {"card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-1", field: value}
    r = client.post("/api/v1/pos/purchases", json=body, headers=till["h"])
    problem = assert_problem(r, 422, r.get_json()["code"])
    assert problem["code"] in ("validation_error", "invalid_barcode")
    assert any(k.startswith(field) for k in problem["errors"]), problem
    assert count(app, Purchase) == 0


def test_other_currency_is_refused(client, factory, till):
    member = factory.member()
    r = buy(client, till, member["card_number"], **{"currency": "USD"})
    assert_problem(r, 422, "unsupported_currency")


def test_identify_a_card_by_qr_and_by_number(client, factory, till):
    member = factory.member(name="Noa Levi")
    by_qr = client.post("/api/v1/pos/identify", json={"qr": card_qr(client, member)}, headers=till["h"])
    assert by_qr.status_code == 200
    assert by_qr.get_json()["kind"] == "card"
    assert by_qr.get_json()["member"] == {"id": member["id"], "name": "Noa Levi", "tier": "basic", "balance": 0}
    by_number = client.post("/api/v1/pos/identify", json={"card_number": member["card_number"]}, headers=till["h"])
    assert by_number.get_json()["member"]["id"] == member["id"]
    assert_problem(client.post("/api/v1/pos/identify", json={}, headers=till["h"]), 422, "validation_error")


def test_refund_takes_back_points_and_reports_what_was_spent(client, factory, till):
    member = factory.member()
    purchase = buy(client, till, member["card_number"], amount="100").get_json()
    factory.spend(member["id"], 70, key="spend-1")
    r = client.post(f"/api/v1/pos/purchases/{purchase['purchase_id']}/refund", headers=till["h"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json() | {} == {"purchase_id": purchase["purchase_id"], "status": "refunded", "points_reversed": 30,
                                 "points_not_reversed": 70, "pending_cancelled": 0, "balance": 0,
                                 "benefit_uses_returned": 0, "points_debt": 70}
    again = client.post(f"/api/v1/pos/purchases/{purchase['purchase_id']}/refund", headers=till["h"])
    assert again.get_json()["points_reversed"] == 30 and again.get_json()["balance"] == 0
    kinds = [e["kind"] for e in client.get("/api/v1/me/ledger", headers=member["headers"]).get_json()["items"]]
    assert kinds == ["reverse", "spend", "earn"]


def test_refund_in_another_store_is_not_found(client, factory, till):
    member = factory.member()
    purchase = buy(client, till, member["card_number"]).get_json()
    other = factory.staff("cashier")
    r = client.post(f"/api/v1/pos/purchases/{purchase['purchase_id']}/refund", headers=other["headers"])
    assert_problem(r, 404, "purchase_not_found")
    assert factory.balance(member["id"]) == 120


def test_pending_points_wait_for_the_return_window(clock, client, factory, till, app, program):
    program.pending_days = 14
    member = factory.member()
    body = buy(client, till, member["card_number"], amount="80").get_json()
    assert body["points_awarded"] == 80 and body["balance"] == 0 and body["rewards"][0]["pending"] is True
    wallet = client.get("/api/v1/me/wallet", headers=member["headers"]).get_json()
    assert wallet["points"]["balance"] == 0 and wallet["points"]["pending_total"] == 80
    clock.advance(days=15)
    runner = app.test_cli_runner()
    assert "released 1" in runner.invoke(args=["points", "release"]).output
    assert factory.balance(member["id"]) == 80


def test_refund_inside_the_window_cancels_pending_points(clock, client, factory, till, app, program):
    program.pending_days = 14
    member = factory.member()
    purchase = buy(client, till, member["card_number"], amount="80").get_json()
    r = client.post(f"/api/v1/pos/purchases/{purchase['purchase_id']}/refund", headers=till["h"]).get_json()
    assert (r["pending_cancelled"], r["points_reversed"], r["balance"]) == (80, 0, 0)
    clock.advance(days=15)
    app.test_cli_runner().invoke(args=["points", "release"])
    assert factory.balance(member["id"]) == 0


def test_expire_command_is_safe_to_run_twice(clock, client, factory, till, app, program):
    member = factory.member()
    buy(client, till, member["card_number"], amount="40")
    clock.advance(days=program.points_expiry_days + 1)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["points", "expire"]).output.strip() == "expired 40 points"
    assert runner.invoke(args=["points", "expire"]).output.strip() == "expired 0 points"
    assert factory.balance(member["id"]) == 0
    kinds = [(e["kind"], e["delta"]) for e in
             client.get("/api/v1/me/ledger", headers=factory.headers(member_principal(member))).get_json()["items"]]
    assert kinds == [("expire", -40), ("earn", 40)]


def test_wallet_shows_what_expires_soon(clock, client, factory, till, program):
    program.points_expiry_days = 30
    member = factory.member()
    buy(client, till, member["card_number"], amount="25")
    wallet = client.get("/api/v1/me/wallet", headers=member["headers"]).get_json()
    [soon] = wallet["points"]["expiring"]
    assert soon["points"] == 25
    assert datetime.fromisoformat(soon["expires_at"]) == clock.now + timedelta(days=30)


def test_statement_pages_with_a_cursor(client, factory, till):
    member = factory.member()
    for i in range(5):
        buy(client, till, member["card_number"], amount=str(i + 1), receipt=f"R-{i}")
    h = member["headers"]
    first = client.get("/api/v1/me/ledger?limit=2", headers=h).get_json()
    assert [e["delta"] for e in first["items"]] == [5, 4] and first["next_cursor"]
    second = client.get(f"/api/v1/me/ledger?limit=2&cursor={first['next_cursor']}", headers=h).get_json()
    assert [e["delta"] for e in second["items"]] == [3, 2]
    last = client.get(f"/api/v1/me/ledger?limit=2&cursor={second['next_cursor']}", headers=h).get_json()
    assert [e["delta"] for e in last["items"]] == [1] and last["next_cursor"] is None
    assert_problem(client.get("/api/v1/me/ledger?cursor=!!", headers=h), 422, "invalid_cursor")
    assert_problem(client.get("/api/v1/me/ledger?limit=201", headers=h), 422, "validation_error")


def test_members_and_marketers_cannot_use_the_till(client, factory, till):
    member = factory.member()
    marketer = factory.staff("marketer")
    for headers in (member["headers"], marketer["headers"]):
        r = client.post("/api/v1/pos/purchases", headers=headers,
                        json={"card": member["card_number"], "amount": "1", "currency": "ILS", "receipt_id": "x"})
        assert_problem(r, 403, "forbidden")


def test_adjustment_is_audited(client, factory):
    member = factory.member()
    marketer = factory.staff("marketer")
    r = client.post(f"/api/v1/admin/members/{member['id']}/adjustments", headers=marketer["headers"],
                    json={"points": 30, "reason": "Goodwill for a late delivery"})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["kind"], r.get_json()["delta"]) == ("adjust", 30)
    r = client.post(f"/api/v1/admin/members/{member['id']}/adjustments", headers=marketer["headers"],
                    json={"points": -31, "reason": "Too much"})
    assert_problem(r, 422, "insufficient_points")
    detail = client.get(f"/api/v1/admin/members/{member['id']}", headers=marketer["headers"]).get_json()
    assert detail["member"]["balance"] == 30
    assert detail["recent_ledger"][0]["description"] == "Goodwill for a late delivery"


def test_a_card_code_made_before_a_key_rotation_still_scans(clock, client, factory, till, program):
    member = factory.member()
    old_key = b"r" * 32
    token = qr.card_token(old_key, member["card_id"], clock.now, program.card_token_ttl).token
    assert_problem(buy(client, till, token), 422, "invalid_token")
    program.old_secrets = (old_key,)
    assert buy(client, till, token, receipt="R-2").status_code == 201


def test_maintenance_purge_forgets_old_answers(clock, client, factory, till, app):
    member = factory.member()
    h = till["h"] | {"Idempotency-Key": "old-key"}
    body = {"card": member["card_number"], "amount": "5", "currency": "ILS", "receipt_id": "R-old"}
    assert client.post("/api/v1/pos/purchases", json=body, headers=h).status_code == 201
    clock.advance(hours=25)
    out = app.test_cli_runner().invoke(args=["maintenance", "purge"]).output
    assert out.strip() == "purged 1 idempotency keys and 0 refresh tokens"
    # The key is free again; the receipt still counts once.
    h = factory.headers(Principal(till["cashier"]["id"], "cashier", till["store"]["id"])) | {"Idempotency-Key": "old-key"}
    again = client.post("/api/v1/pos/purchases", json=body, headers=h)
    assert again.status_code == 201 and "Idempotency-Replayed" not in again.headers
    assert factory.balance(member["id"]) == 5



def test_a_cashier_is_bound_to_an_open_store_found_by_code_in_any_case(session, factory, program):
    from wallet import members
    from wallet.errors import Invalid
    from wallet.stores import Store
    store = factory.store(code="TLV-1")
    staff = members.create_staff(session, email="c@example.com", password="staff password", role="cashier",
                                 store_code="tlv-1")
    assert staff.store_id == store["id"]
    session.get(Store, store["id"]).archived_at = program.now()
    with pytest.raises(Invalid) as caught:
        members.create_staff(session, email="d@example.com", password="staff password", role="cashier",
                             store_code="TLV-1")
    assert caught.value.code == "unknown_store"


def test_refund_voids_the_unused_reward_coupons_the_purchase_gave(client, factory, till, app, program):
    from wallet import coupons
    with app.app_context():
        offer = coupons.create_offer(db.session, program, {"title": "Free croissant",
                                                           "benefit": {"kind": "percent_off", "value": "100"}})
        offer_id = offer.id
        db.session.commit()
    factory.rule(title="Croissant with a big basket", reward={"offer_id": offer_id}, conditions={"min_amount": "50"})
    member = factory.member()
    purchase = buy(client, till, member["card_number"], amount="60").get_json()
    [coupon] = [r["coupon"] for r in purchase["rewards"] if r["coupon"]]
    listed = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["items"]
    assert [(c["id"], c["status"]) for c in listed] == [(coupon["id"], "issued")]
    client.post(f"/api/v1/pos/purchases/{purchase['purchase_id']}/refund", headers=till["h"])
    listed = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["items"]
    assert [(c["id"], c["status"]) for c in listed] == [(coupon["id"], "void")]
    assert factory.balance(member["id"]) == 0
