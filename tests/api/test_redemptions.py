"""Redemption at the till over HTTP: scanned or typed, once ever, validate, rollback, the store and the owner."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.extensions import db
from wallet import qr
from wallet.coupons import Coupon, Redemption

from ..conftest import assert_problem
from .test_coupons import claim, refresh, rows
from .test_offers import API, TEN_OFF, make_offer


@pytest.fixture
def shop(factory, client, clock):
    """A store with a cashier, a marketer's offer, and a member holding a coupon of it."""
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    member = factory.member()
    offer = make_offer(client, marketer)
    coupon = claim(client, member, offer["id"]).get_json()
    return {"store": store, "cashier": cashier, "h": cashier["headers"], "marketer": marketer, "member": member,
            "offer": offer, "coupon": coupon}


def redeem(client, shop, coupon: str, **extra):
    return client.post(f"{API}/pos/redemptions", json={"coupon": coupon} | extra, headers=shop["h"])


def stored(app, coupon_id: str) -> Coupon:
    with app.app_context():
        coupon = db.session.get(Coupon, coupon_id)
        db.session.expunge_all()
        db.session.remove()
        return coupon


def test_redeem_a_scanned_coupon(app, client, shop, clock):
    r = redeem(client, shop, shop["coupon"]["token"], receipt_id="R-1")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["id"].startswith("rdm_") and body["status"] == "redeemed"
    assert body["benefit"] == TEN_OFF and body["store_id"] == shop["store"]["id"] and body["receipt_id"] == "R-1"
    assert body["coupon"]["id"] == shop["coupon"]["id"] and body["coupon"]["status"] == "redeemed"
    assert body["coupon"]["member_id"] == shop["member"]["id"]
    assert body["redeemed_at"] == "2026-11-22T10:00:00Z"
    assert body["rollback_until"] == "2026-11-22T10:30:00Z"
    coupon = stored(app, shop["coupon"]["id"])
    assert (coupon.status, coupon.redeemed_store_id, coupon.redemption_id) == ("redeemed", shop["store"]["id"],
                                                                               body["id"])
    with app.app_context():
        redemption = db.session.get(Redemption, body["id"])
        assert redemption.cashier_id == shop["cashier"]["id"] and redemption.member_id == shop["member"]["id"]
        db.session.remove()


def test_a_coupon_is_redeemed_once_ever(app, client, shop, factory):
    assert redeem(client, shop, shop["coupon"]["token"]).status_code == 201
    problem = assert_problem(redeem(client, shop, shop["coupon"]["token"]), 409, "coupon_already_redeemed")
    assert problem["redeemed_store_id"] == shop["store"]["id"] and problem["redeemed_at"]
    assert_problem(redeem(client, shop, shop["coupon"]["code"]), 409, "coupon_already_redeemed")
    other_store = factory.store()
    elsewhere = factory.staff("cashier", store_id=other_store["id"])
    r = client.post(f"{API}/pos/redemptions", json={"coupon": shop["coupon"]["token"]}, headers=elsewhere["headers"])
    assert_problem(r, 409, "coupon_already_redeemed")
    assert rows(app, Redemption) == 1


def test_redeem_by_typed_code_forgives_case_spaces_and_look_alikes(client, shop):
    typed = shop["coupon"]["code"].lower().replace("-", " ").replace("0", "o").replace("1", "l")
    r = redeem(client, shop, typed)
    assert r.status_code == 201 and r.get_json()["coupon"]["id"] == shop["coupon"]["id"]


def test_till_retry_with_the_same_receipt_gets_the_first_answer(app, client, shop):
    first = redeem(client, shop, shop["coupon"]["token"], receipt_id="R-9")
    again = redeem(client, shop, shop["coupon"]["token"], receipt_id="R-9")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert_problem(redeem(client, shop, shop["coupon"]["token"], receipt_id="R-10"), 409, "coupon_already_redeemed")
    headers = shop["h"] | {"Idempotency-Key": "till-7-retry"}
    # An Idempotency-Key replays too, whatever the body's receipt.
    fresh = claim(client, shop["member"], shop["offer"]["id"]).get_json()
    one = client.post(f"{API}/pos/redemptions", json={"coupon": fresh["code"]}, headers=headers)
    two = client.post(f"{API}/pos/redemptions", json={"coupon": fresh["code"]}, headers=headers)
    assert one.status_code == two.status_code == 201 and one.get_json() == two.get_json()
    assert two.headers["Idempotency-Replayed"] == "true"
    assert rows(app, Redemption) == 2


def test_expired_coupon_is_422_and_stays_unredeemed(app, client, factory, shop, clock):
    clock.advance(days=30)
    shop["h"] = refresh(factory, shop["cashier"], "cashier")["headers"]
    problem = assert_problem(redeem(client, shop, shop["coupon"]["token"]), 422, "coupon_expired")
    assert problem["expired_at"] == "2026-12-22T10:00:00Z"
    assert stored(app, shop["coupon"]["id"]).status == "issued" and rows(app, Redemption) == 0
    member = refresh(factory, shop["member"])
    mine = client.get(f"{API}/me/coupons/{shop['coupon']['id']}", headers=member["headers"]).get_json()
    assert mine["status"] == "expired"


def test_coupon_for_other_stores_is_refused_here(app, client, factory, shop):
    there = factory.store()
    offer = make_offer(client, shop["marketer"], stores=[there["id"]])
    coupon = claim(client, shop["member"], offer["id"]).get_json()
    assert_problem(redeem(client, shop, coupon["token"]), 422, "coupon_not_valid_here")
    assert stored(app, coupon["id"]).status == "issued"
    cashier_there = factory.staff("cashier", store_id=there["id"])
    r = client.post(f"{API}/pos/redemptions", json={"coupon": coupon["token"]}, headers=cashier_there["headers"])
    assert r.status_code == 201


def test_forged_and_tampered_tokens_are_refused(app, client, factory, shop):
    token = shop["coupon"]["token"]
    head, bare, mac = token.split("-")
    other_member = factory.member()
    theirs = claim(client, other_member, shop["offer"]["id"]).get_json()
    attempts = [
        f"{head}-{bare}-{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # one symbol of the signature changed
        f"{head}-{theirs['id'].split('_')[1]}-{mac}",                # another member's coupon with my signature
        qr.coupon_token(b"x" * 32, shop["coupon"]["id"]),            # signed with a key the club does not use
        f"K1-{bare}",
        "K1-" + "Z" * 26 + "-" + "Z" * 16,
    ]
    for attempt in attempts:
        assert_problem(redeem(client, shop, attempt), 422, "invalid_coupon_token")
        validated = client.post(f"{API}/pos/redemptions/validate", json={"coupon": attempt}, headers=shop["h"])
        assert_problem(validated, 422, "invalid_coupon_token")
    assert_problem(redeem(client, shop, "NOT-A-CODE"), 422, "invalid_coupon_code")
    assert_problem(redeem(client, shop, shop["member"]["card_number"]), 422, "invalid_coupon_code")
    assert rows(app, Redemption) == 0
    with app.app_context():
        assert set(db.session.scalars(select(Coupon.status))) == {"issued"}
        db.session.remove()


def test_card_presented_must_own_the_coupon(app, client, factory, shop):
    stranger = factory.member()
    r = redeem(client, shop, shop["coupon"]["token"], card=stranger["card_number"])
    assert_problem(r, 422, "coupon_owner_mismatch")
    assert stored(app, shop["coupon"]["id"]).status == "issued"
    card_token = client.get(f"{API}/me/card/token", headers=shop["member"]["headers"]).get_json()["token"]
    assert redeem(client, shop, shop["coupon"]["token"], card=card_token).status_code == 201


def test_validate_says_whether_it_would_succeed_and_redeems_nothing(app, client, factory, shop):
    url = f"{API}/pos/redemptions/validate"
    r = client.post(url, json={"coupon": shop["coupon"]["token"]}, headers=shop["h"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["redeemable"], body["code"], body["benefit"]) == (True, None, TEN_OFF)
    assert body["coupon"]["status"] == "issued"
    assert stored(app, shop["coupon"]["id"]).status == "issued" and rows(app, Redemption) == 0
    stranger = factory.member()
    mismatch = client.post(url, json={"coupon": shop["coupon"]["token"], "card": stranger["card_number"]},
                           headers=shop["h"]).get_json()
    assert (mismatch["redeemable"], mismatch["code"]) == (False, "coupon_owner_mismatch")
    redeem(client, shop, shop["coupon"]["token"])
    after = client.post(url, json={"coupon": shop["coupon"]["code"]}, headers=shop["h"]).get_json()
    assert (after["redeemable"], after["code"]) == (False, "coupon_already_redeemed")
    assert_problem(client.post(url, json={"coupon": "ABCD-EFGH-JKMN"}, headers=shop["h"]), 422,
                   "invalid_coupon_code")


def test_identify_a_scanned_coupon(client, shop):
    r = client.post(f"{API}/pos/identify", json={"qr": shop["coupon"]["token"]}, headers=shop["h"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["kind"] == "coupon" and body["coupon"]["id"] == shop["coupon"]["id"]
    assert body["coupon"]["redeemable"] is True and body["coupon"]["benefit"] == TEN_OFF
    assert "code" not in body["coupon"] and "token" not in body["coupon"]
    typed = client.post(f"{API}/pos/identify", json={"qr": shop["coupon"]["code"]}, headers=shop["h"]).get_json()
    assert typed["coupon"]["id"] == shop["coupon"]["id"]


def test_rollback_within_the_window_makes_the_coupon_usable_again(app, client, factory, shop, clock):
    done = redeem(client, shop, shop["coupon"]["token"], receipt_id="R-1").get_json()
    clock.advance(minutes=20)
    shop["h"] = refresh(factory, shop["cashier"], "cashier")["headers"]
    r = client.post(f"{API}/pos/redemptions/{done['id']}/rollback", headers=shop["h"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "rolled_back" and body["rolled_back_at"] == "2026-11-22T10:20:00Z"
    assert body["coupon"]["status"] == "issued"
    coupon = stored(app, shop["coupon"]["id"])
    assert (coupon.status, coupon.redeemed_at, coupon.redemption_id) == ("issued", None, None)
    again = client.post(f"{API}/pos/redemptions/{done['id']}/rollback", headers=shop["h"])
    assert again.status_code == 200 and again.get_json()["rolled_back_at"] == body["rolled_back_at"]
    second = redeem(client, shop, shop["coupon"]["token"], receipt_id="R-2")
    assert second.status_code == 201 and second.get_json()["id"] != done["id"]
    assert rows(app, Redemption) == 2 and rows(app, Redemption, Redemption.rolled_back_at.is_(None)) == 1


def test_rollback_only_by_the_same_store_and_within_the_window(app, client, factory, shop, clock):
    done = redeem(client, shop, shop["coupon"]["token"]).get_json()
    elsewhere = factory.staff("cashier", store_id=factory.store()["id"])
    assert_problem(client.post(f"{API}/pos/redemptions/{done['id']}/rollback", headers=elsewhere["headers"]), 404,
                   "redemption_not_found")
    clock.advance(minutes=31)
    shop["h"] = refresh(factory, shop["cashier"], "cashier")["headers"]
    problem = assert_problem(client.post(f"{API}/pos/redemptions/{done['id']}/rollback", headers=shop["h"]), 422,
                             "rollback_window_passed")
    assert problem["rollback_until"] == "2026-11-22T10:30:00Z"
    assert stored(app, shop["coupon"]["id"]).status == "redeemed"
    assert_problem(client.post(f"{API}/pos/redemptions/rdm_NOPE/rollback", headers=shop["h"]), 404,
                   "redemption_not_found")


def test_rollback_window_is_configurable(client, factory, shop, clock, program):
    from datetime import timedelta
    program.redemption_rollback_window = timedelta(minutes=5)
    done = redeem(client, shop, shop["coupon"]["token"]).get_json()
    assert done["rollback_until"] == "2026-11-22T10:05:00Z"
    clock.advance(minutes=6)
    assert_problem(client.post(f"{API}/pos/redemptions/{done['id']}/rollback", headers=shop["h"]), 422,
                   "rollback_window_passed")


def test_the_till_is_for_cashiers(client, shop):
    body = {"coupon": shop["coupon"]["token"]}
    assert_problem(client.post(f"{API}/pos/redemptions", json=body), 401, "unauthorized")
    for who in (shop["member"], shop["marketer"]):
        assert_problem(client.post(f"{API}/pos/redemptions", json=body, headers=who["headers"]), 403, "forbidden")
        assert_problem(client.post(f"{API}/pos/redemptions/validate", json=body, headers=who["headers"]), 403,
                       "forbidden")
    assert_problem(client.post(f"{API}/pos/redemptions", json={}, headers=shop["h"]), 422, "validation_error")
    assert_problem(client.post(f"{API}/pos/redemptions", json=body | {"discount": 5}, headers=shop["h"]), 422,
                   "validation_error")
