"""POST /me/check-ins and /me/scans over HTTP: answers, refusals with their codes, malformed input writes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem
from wallet import tokens
from wallet.instore import CheckIn, Scan
from wallet.ledger import LedgerEntry
from wallet.rules import RuleGrant
from wallet.stores import Product

from ..wallet.test_instore_checkins import destination

CHECK_INS = "/api/v1/me/check-ins"
SCANS = "/api/v1/me/scans"


def count(app, model, **where) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model).filter_by(**where))
        db.session.remove()
        return value


def member_headers(factory, member) -> dict[str, str]:
    """A fresh access token: tests move the clock past the token's lifetime."""
    return factory.headers(tokens.Principal(member["id"], "member"))


def nothing_written(app) -> None:
    assert [count(app, m) for m in (CheckIn, Scan, LedgerEntry, RuleGrant)] == [0, 0, 0, 0]


@pytest.fixture
def shop(factory, client, clock):
    """A store, a member, a marketer, a check-in rule and two products."""
    store = factory.store(code="TLV", radius_m=200, check_in_cooldown_minutes=240)
    member = factory.member()
    marketer = factory.staff("marketer")
    factory.rule(title="Thanks for coming", trigger="check_in", reward={"points": 10})
    factory.rule(title="Discover something new", trigger="scan", conditions={"first_scan": True},
                 reward={"points": 5})
    mug = client.post("/api/v1/admin/products", json={"sku": "MUG", "barcode": "96385074", "name": "Club mug",
                                                      "category": "homeware", "price": "29.90"},
                      headers=marketer["headers"]).get_json()
    coffee = client.post("/api/v1/admin/products", json={
        "sku": "COF", "barcode": "036000291452", "name": "Coffee", "category": "coffee", "price": "24.90",
        "complementary": [mug["id"]]}, headers=marketer["headers"]).get_json()
    return {"store": store, "member": member, "headers": member["headers"], "marketer": marketer["headers"],
            "coffee": coffee, "mug": mug}


# ------------------------------------------------------------------ check-ins


def test_a_check_in_inside_the_radius(client, app, factory, shop):
    store = shop["store"]
    lat, lon = destination(store["lat"], store["lon"], 150, 45)
    r = client.post(CHECK_INS, json={"store_id": store["id"], "lat": lat, "lon": lon, "accuracy_m": 12.5},
                    headers=shop["headers"])
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    check_in = body.pop("check_in")
    assert body["points_awarded"] == 10
    assert [(g["title"], g["points"]) for g in body["rewards"]] == [("Thanks for coming", 10)]
    assert body["visits"] == {"day": 1, "week": 1, "month": 1, "year": 1, "ever": 1}
    assert check_in["status"] == "accepted" and check_in["reason"] is None
    assert check_in["store"] == {"id": store["id"], "code": "TLV", "name": store["name"]}
    assert check_in["distance_m"] == pytest.approx(150, abs=0.01)
    assert (check_in["visit_number"], check_in["accuracy_m"], check_in["points_awarded"]) == (1, 12.5, 10)
    assert check_in["created_at"] == "2026-11-22T10:00:00Z"
    assert check_in["next_check_in_at"] == "2026-11-22T14:00:00Z"
    assert factory.balance(shop["member"]["id"]) == 10


@pytest.mark.parametrize("distance, accuracy, code", [
    (200.02, None, "too_far_from_store"),
    (5_000_000, None, "too_far_from_store"),
    (10, 250, "location_inaccurate"),
])
def test_refused_check_ins_are_422_recorded_and_earn_nothing(client, app, factory, shop, distance, accuracy, code):
    store = shop["store"]
    lat, lon = destination(store["lat"], store["lon"], distance, 180)
    r = client.post(CHECK_INS, json={"store_id": store["id"], "lat": lat, "lon": lon, "accuracy_m": accuracy},
                    headers=shop["headers"])
    body = assert_problem(r, 422, code)
    assert body["check_in_id"].startswith("chk_")
    assert count(app, CheckIn, status="refused", reason=code) == 1
    assert count(app, CheckIn, status="accepted") == 0
    assert count(app, LedgerEntry) == 0 and count(app, RuleGrant) == 0
    assert factory.balance(shop["member"]["id"]) == 0
    review = client.get("/api/v1/admin/check-ins", query_string={"status": "refused"}, headers=shop["marketer"])
    [row] = review.get_json()["items"]
    assert (row["id"], row["member_id"], row["reason"]) == (body["check_in_id"], shop["member"]["id"], code)


def test_a_repeat_inside_the_cool_down(client, app, factory, shop, clock):
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    assert client.post(CHECK_INS, json=body, headers=shop["headers"]).status_code == 201
    clock.advance(hours=3, minutes=59)
    shop["headers"] = member_headers(factory, shop["member"])
    problem = assert_problem(client.post(CHECK_INS, json=body, headers=shop["headers"]), 422, "check_in_cooldown")
    assert problem["next_check_in_at"] == "2026-11-22T14:00:00Z"
    assert problem["next_check_in_local"] == "2026-11-22T16:00:00+02:00"
    clock.advance(minutes=1)
    r = client.post(CHECK_INS, json=body, headers=shop["headers"])
    assert r.status_code == 201 and r.get_json()["check_in"]["visit_number"] == 2
    assert count(app, CheckIn, status="accepted") == 2 and count(app, CheckIn, status="refused") == 1
    assert count(app, LedgerEntry) == 2


def test_an_inactive_store(client, app, factory, shop):
    marketer = shop["marketer"]
    client.patch(f"/api/v1/admin/stores/{shop['store']['id']}", json={"active": False}, headers=marketer)
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    assert_problem(client.post(CHECK_INS, json=body, headers=shop["headers"]), 422, "store_inactive")
    assert count(app, CheckIn, reason="store_inactive") == 1 and count(app, LedgerEntry) == 0


@pytest.mark.parametrize("change", [
    {"lat": 91}, {"lat": -90.5}, {"lon": 180.01}, {"lon": -999}, {"lat": "32.07"}, {"lon": None}, {"lat": True},
    {"lat": [32]}, {"lat": {"deg": 32}}, {"accuracy_m": -1}, {"accuracy_m": "10"}, {"accuracy_m": 1e9},
    {"store_id": 123}, {"store_id": ""}, {"store_id": "x" * 33}, {"store_id": None}, {"altitude": 10},
])
def test_malformed_check_ins_are_422_and_write_nothing(client, app, shop, change):
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]} | change
    problem = assert_problem(client.post(CHECK_INS, json=body, headers=shop["headers"]), 422, "validation_error")
    assert set(problem["errors"]) == set(change)
    nothing_written(app)


@pytest.mark.parametrize("raw", [
    '{"store_id": "S", "lat": NaN, "lon": 0}', '{"store_id": "S", "lat": 0, "lon": Infinity}',
    '{"store_id": "S", "lat": 0, "lon": -Infinity}', '{"store_id": "S", "lat": 1e400, "lon": 0}',
    '{"store_id": "S", "lat": ' + "9" * 400 + ', "lon": 0}', '{"store_id": "S", "lat": 0', "[]", '"lat"', "",
])
def test_non_numbers_and_broken_json_are_4xx_problems_and_write_nothing(client, app, shop, raw):
    r = client.post(CHECK_INS, data=raw, content_type="application/json", headers=shop["headers"])
    assert r.status_code in (400, 422), r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    nothing_written(app)


def test_missing_fields_and_wrong_media_type(client, app, shop):
    problem = assert_problem(client.post(CHECK_INS, json={}, headers=shop["headers"]), 422, "validation_error")
    assert set(problem["errors"]) == {"store_id", "lat", "lon"}
    r = client.post(CHECK_INS, data="store_id=x&lat=1&lon=2", content_type="application/x-www-form-urlencoded",
                    headers=shop["headers"])
    assert_problem(r, 415, "unsupported_media_type")
    nothing_written(app)


def test_an_unknown_store_is_404_and_writes_nothing(client, app, shop):
    for store_id in ("sto_01J00000000000000000000000", "not-an-id"):
        r = client.post(CHECK_INS, json={"store_id": store_id, "lat": 0, "lon": 0}, headers=shop["headers"])
        assert_problem(r, 404, "store_not_found")
    client.delete(f"/api/v1/admin/stores/{shop['store']['id']}", headers=shop["marketer"])
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    assert_problem(client.post(CHECK_INS, json=body, headers=shop["headers"]), 404, "store_not_found")
    nothing_written(app)


def test_only_members_check_in(client, app, factory, shop):
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    assert_problem(client.post(CHECK_INS, json=body), 401, "unauthorized")
    assert_problem(client.post(CHECK_INS, json=body, headers={"Authorization": "Bearer nope"}), 401, "invalid_token")
    assert_problem(client.post(CHECK_INS, json=body, headers=shop["marketer"]), 403, "forbidden")
    nothing_written(app)


def test_an_idempotency_key_replays_the_check_in(client, app, shop):
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    headers = shop["headers"] | {"Idempotency-Key": "check-in-1"}
    first = client.post(CHECK_INS, json=body, headers=headers)
    again = client.post(CHECK_INS, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotency-Replayed"] == "true"
    assert_problem(client.post(CHECK_INS, json=body | {"lat": 0}, headers=headers), 409, "idempotency_conflict")
    assert count(app, CheckIn) == 1 and count(app, LedgerEntry) == 1


def test_the_members_check_in_history(client, shop, factory, clock):
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    for _ in range(3):
        client.post(CHECK_INS, json=body, headers=member_headers(factory, shop["member"]))
        clock.advance(hours=2)
    shop["headers"] = member_headers(factory, shop["member"])
    other = factory.member()
    client.post(CHECK_INS, json=body, headers=other["headers"])
    r = client.get(CHECK_INS, query_string={"limit": 2}, headers=shop["headers"])
    page1 = r.get_json()
    r = client.get(CHECK_INS, query_string={"limit": 2, "cursor": page1["next_cursor"]}, headers=shop["headers"])
    page2 = r.get_json()
    assert [c["status"] for c in page1["items"] + page2["items"]] == ["accepted", "refused", "accepted"]
    assert page2["next_cursor"] is None
    accepted = client.get(CHECK_INS, query_string={"status": "accepted"}, headers=shop["headers"]).get_json()
    assert [c["visit_number"] for c in accepted["items"]] == [2, 1]
    assert_problem(client.get(CHECK_INS, query_string={"cursor": "eyJ4IjogMX0"}, headers=shop["headers"]),
                   422, "invalid_cursor")


def test_the_nth_visit_rule_over_http(client, factory, shop, clock):
    factory.rule(title="Every 2nd visit this week", trigger="check_in", conditions={"nth": {"n": 2, "period": "week"}},
                 reward={"points": 25})
    body = {"store_id": shop["store"]["id"], "lat": shop["store"]["lat"], "lon": shop["store"]["lon"]}
    earned = []
    for _ in range(3):
        r = client.post(CHECK_INS, json=body, headers=member_headers(factory, shop["member"]))
        earned.append(r.get_json()["points_awarded"])
        clock.advance(hours=5)
    assert earned == [10, 35, 10]
    assert factory.balance(shop["member"]["id"]) == 55


# ------------------------------------------------------------------ scans


def test_a_scan_returns_the_product_and_what_goes_with_it(client, app, factory, shop):
    r = client.post(SCANS, json={"barcode": "0036000291452", "store_id": shop["store"]["id"]}, headers=shop["headers"])
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["product"] == {k: shop["coffee"][k] for k in ("id", "sku", "barcode", "name", "description",
                                                              "category", "price", "currency", "image_url")}
    assert [(c["sku"], c["source"]) for c in body["complementary"]] == [("MUG", "marketer")]
    assert body["complementary"][0]["price"] == "29.90"
    assert body["scan"]["first_scan"] is True and body["scan"]["store_id"] == shop["store"]["id"]
    assert (body["points_awarded"], [g["title"] for g in body["rewards"]]) == (5, ["Discover something new"])
    again = client.post(SCANS, json={"barcode": "036000291452"}, headers=shop["headers"]).get_json()
    assert (again["scan"]["first_scan"], again["points_awarded"], again["rewards"]) == (False, 0, [])
    assert again["product"]["id"] == shop["coffee"]["id"]
    assert count(app, Scan) == 2 and factory.balance(shop["member"]["id"]) == 5
    mine = client.get(SCANS, headers=shop["headers"]).get_json()["items"]
    assert [s["first_scan"] for s in mine] == [False, True]
    review = client.get("/api/v1/admin/scans", query_string={"first_scan": "true"}, headers=shop["marketer"])
    assert [s["member_id"] for s in review.get_json()["items"]] == [shop["member"]["id"]]


@pytest.mark.parametrize("barcode", ["036000291453", "4006381333932", "96385075", "12345", "1234567890123456",
                                     "03600029145X", " ", "٠٣٦٠٠٠٢٩١٤٥٢"])
def test_malformed_barcodes_are_422_and_write_nothing(client, app, shop, barcode):
    problem = assert_problem(client.post(SCANS, json={"barcode": barcode}, headers=shop["headers"]),
                             422, "invalid_barcode")
    assert list(problem["errors"]) == ["barcode"]
    nothing_written(app)


@pytest.mark.parametrize("body", [{"barcode": 36000291452}, {"barcode": None}, {}, {"barcode": "x" * 33},
                                  {"barcode": "036000291452", "store_id": 5}, {"barcode": "036000291452", "qty": 1}])
def test_malformed_scans_are_422_and_write_nothing(client, app, shop, body):
    assert_problem(client.post(SCANS, json=body, headers=shop["headers"]), 422, "validation_error")
    nothing_written(app)


def test_unknown_products_and_stores_are_404_and_write_nothing(client, app, shop):
    assert_problem(client.post(SCANS, json={"barcode": "4006381333931"}, headers=shop["headers"]),
                   404, "product_not_found")
    assert_problem(client.post(SCANS, json={"barcode": "96385074", "store_id": "sto_nope"}, headers=shop["headers"]),
                   404, "store_not_found")
    nothing_written(app)
    assert count(app, Product) == 2
