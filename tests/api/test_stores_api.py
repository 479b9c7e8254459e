"""The marketers' stores and products over HTTP, and the shoppers' store finder."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem
from wallet.stores import Product, Store

STORES = "/api/v1/admin/stores"
PRODUCTS = "/api/v1/admin/products"
STORE = {"code": "tlv-diz", "name": "Dizengoff Center", "address": "Dizengoff St 50, Tel Aviv", "lat": 32.0753,
         "lon": 34.7754, "radius_m": 200, "timezone": "Asia/Jerusalem", "check_in_cooldown_minutes": 240}


def count(app, model) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
        return value


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")["headers"]


def test_only_marketers_and_admins_manage_stores_and_products(client, factory):
    member = factory.member()["headers"]
    cashier = factory.staff("cashier")["headers"]
    for path in (STORES, PRODUCTS):
        assert_problem(client.get(path), 401, "unauthorized")
        assert_problem(client.get(path, headers=member), 403, "forbidden")
        assert_problem(client.post(path, json={}, headers=cashier), 403, "forbidden")
    assert client.get(STORES, headers=factory.staff("admin")["headers"]).status_code == 200


def test_store_lifecycle(client, app, marketer, clock):
    r = client.post(STORES, json=STORE, headers=marketer)
    assert r.status_code == 201, r.get_json()
    store = r.get_json()
    assert store == STORE | {"id": store["id"], "code": "TLV-DIZ", "active": True,
                             "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z",
                             "currency": None}
    assert client.get(f"{STORES}/{store['id']}", headers=marketer).get_json() == store
    clock.advance(hours=1)
    r = client.patch(f"{STORES}/{store['id']}", json={"radius_m": 300, "active": False}, headers=marketer)
    assert r.status_code == 200
    assert (r.get_json()["radius_m"], r.get_json()["active"], r.get_json()["updated_at"]) == \
        (300, False, "2026-11-22T11:00:00Z")
    assert_problem(client.post(STORES, json=STORE, headers=marketer), 409, "store_code_taken")
    assert client.delete(f"{STORES}/{store['id']}", headers=marketer).status_code == 204
    assert_problem(client.get(f"{STORES}/{store['id']}", headers=marketer), 404, "store_not_found")
    assert_problem(client.delete(f"{STORES}/{store['id']}", headers=marketer), 404, "store_not_found")
    assert client.get(STORES, headers=marketer).get_json() == {"items": [], "next_cursor": None}
    assert count(app, Store) == 1  # archived, not deleted


@pytest.mark.parametrize("change, field", [
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"), ({"timezone": "localtime"}, "timezone"),
    ({"lat": 91}, "lat"), ({"lon": -180.5}, "lon"), ({"lat": "32.07"}, "lat"), ({"lat": None}, "lat"),
    ({"lat": True}, "lat"), ({"radius_m": 5}, "radius_m"), ({"radius_m": 150.5}, "radius_m"),
    ({"check_in_cooldown_minutes": 0}, "check_in_cooldown_minutes"), ({"code": "a b"}, "code"),
    ({"name": ""}, "name"), ({"owner": "me"}, "owner"),
])
def test_malformed_stores_are_422_and_write_nothing(client, app, marketer, change, field):
    r = client.post(STORES, json=STORE | change, headers=marketer)
    body = assert_problem(r, 422, "validation_error")
    assert field in body["errors"]
    assert count(app, Store) == 0


def test_nan_in_a_raw_body_is_refused(client, app, marketer):
    raw = '{"code": "X", "name": "X", "lat": NaN, "lon": 0}'
    r = client.post(STORES, data=raw, content_type="application/json", headers=marketer)
    assert r.status_code in (400, 422) and r.mimetype == "application/problem+json"
    assert count(app, Store) == 0


def test_store_patch_is_validated(client, marketer, factory):
    store = factory.store()
    assert_problem(client.patch(f"{STORES}/{store['id']}", json={"timezone": "Nowhere"}, headers=marketer),
                   422, "validation_error")
    assert_problem(client.patch(f"{STORES}/{store['id']}", json={"radius_m": None}, headers=marketer),
                   422, "validation_error")
    assert_problem(client.patch(f"{STORES}/sto_missing", json={"name": "x"}, headers=marketer), 404, "store_not_found")


def test_store_list_search_and_cursor(client, marketer):
    for i in range(5):
        assert client.post(STORES, json=STORE | {"code": f"S{i}", "name": f"Store {i}",
                                                 "active": i != 4}, headers=marketer).status_code == 201
    seen, cursor = [], None
    while True:
        r = client.get(STORES, query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=marketer)
        seen += [s["code"] for s in r.get_json()["items"]]
        cursor = r.get_json()["next_cursor"]
        if not cursor:
            break
    assert seen == ["S0", "S1", "S2", "S3", "S4"]
    assert [s["code"] for s in client.get(STORES, query_string={"active": "false"},
                                          headers=marketer).get_json()["items"]] == ["S4"]
    assert [s["code"] for s in client.get(STORES, query_string={"q": "store 3"},
                                          headers=marketer).get_json()["items"]] == ["S3"]
    assert_problem(client.get(STORES, query_string={"cursor": "garbage!"}, headers=marketer), 422, "invalid_cursor")
    assert_problem(client.get(STORES, query_string={"limit": 500}, headers=marketer), 422, "validation_error")


# ------------------------------------------------------------------ products

PRODUCT = {"sku": "COF-250", "barcode": "036000291452", "name": "House blend coffee 250 g",
           "description": "Medium roast", "category": "coffee", "price": "24.90", "currency": "ILS",
           "image_url": "https://img.example/cof.png"}


def test_product_lifecycle(client, app, marketer):
    r = client.post(PRODUCTS, json=PRODUCT, headers=marketer)
    assert r.status_code == 201, r.get_json()
    coffee = r.get_json()
    assert coffee["barcode"] == "0036000291452"  # UPC-A stored as its GTIN-13
    assert {k: coffee[k] for k in ("sku", "name", "price", "currency", "complementary", "active")} == {
        "sku": "COF-250", "name": "House blend coffee 250 g", "price": "24.90", "currency": "ILS",
        "complementary": [], "active": True}
    mug = client.post(PRODUCTS, json={"sku": "MUG", "barcode": "96385074", "name": "Mug",
                                      "complementary": [coffee["id"]]}, headers=marketer).get_json()
    assert mug["currency"] == "ILS" and mug["price"] is None and mug["complementary"] == [coffee["id"]]
    r = client.patch(f"{PRODUCTS}/{coffee['id']}", json={"complementary": [mug["id"]], "price": "26.00"},
                     headers=marketer)
    assert (r.status_code, r.get_json()["complementary"], r.get_json()["price"]) == (200, [mug["id"]], "26.00")
    assert client.delete(f"{PRODUCTS}/{mug['id']}", headers=marketer).status_code == 204
    assert_problem(client.get(f"{PRODUCTS}/{mug['id']}", headers=marketer), 404, "product_not_found")
    assert count(app, Product) == 2


def test_the_same_product_in_another_barcode_family_conflicts(client, app, marketer):
    assert client.post(PRODUCTS, json=PRODUCT, headers=marketer).status_code == 201
    body = assert_problem(client.post(PRODUCTS, json=PRODUCT | {"sku": "OTHER", "barcode": "0036000291452"},
                                      headers=marketer), 409, "barcode_taken")
    assert "barcode" in body["errors"]
    assert_problem(client.post(PRODUCTS, json=PRODUCT | {"barcode": "96385074"}, headers=marketer), 409, "sku_taken")
    assert count(app, Product) == 1


@pytest.mark.parametrize("barcode", ["036000291453", "4006381333932", "96385075", "1234", "12345678901234",
                                     "03600029145X", "٠٣٦٠٠٠٢٩١٤٥٢"])
def test_bad_barcodes_are_422_and_write_nothing(client, app, marketer, barcode):
    body = assert_problem(client.post(PRODUCTS, json=PRODUCT | {"barcode": barcode}, headers=marketer),
                          422, "invalid_barcode")
    assert list(body["errors"]) == ["barcode"]
    assert count(app, Product) == 0


@pytest.mark.parametrize("change, field", [
    ({"price": 24.9}, "price"), ({"price": "1.234"}, "price"), ({"price": "-1"}, "price"),
    ({"currency": "ils"}, "currency"), ({"image_url": "javascript:alert(1)"}, "image_url"),
    ({"sku": "has space"}, "sku"), ({"complementary": "prd_x"}, "complementary"),
    ({"barcode": 36000291452}, "barcode"), ({"name": ""}, "name"), ({"color": "red"}, "color"),
])
def test_malformed_products_are_422_and_write_nothing(client, app, marketer, change, field):
    body = assert_problem(client.post(PRODUCTS, json=PRODUCT | change, headers=marketer), 422, "validation_error")
    assert field in body["errors"]
    assert count(app, Product) == 0


def test_unknown_complementary_products_are_422(client, app, marketer):
    body = assert_problem(client.post(PRODUCTS, json=PRODUCT | {"complementary": ["prd_nope"]}, headers=marketer),
                          422, "invalid_complementary")
    assert "complementary" in body["errors"]
    assert count(app, Product) == 0


def test_product_search_and_pagination(client, marketer):
    from wallet.barcodes import gtin_check_digit
    for i in range(7):
        body = f"72900099900{i}"
        client.post(PRODUCTS, json={"sku": f"TEA-{i}", "barcode": body + gtin_check_digit(body), "name": f"Tea {i}",
                                    "category": "tea" if i % 2 else "herbal"}, headers=marketer)
    client.post(PRODUCTS, json=PRODUCT, headers=marketer)
    found, cursor = [], None
    while True:
        r = client.get(PRODUCTS, query_string={"q": "tea", "limit": 3, **({"cursor": cursor} if cursor else {})},
                       headers=marketer)
        assert r.status_code == 200
        found += [p["sku"] for p in r.get_json()["items"]]
        cursor = r.get_json()["next_cursor"]
        if not cursor:
            break
    assert sorted(found) == [f"TEA-{i}" for i in range(7)] and len(found) == 7
    r = client.get(PRODUCTS, query_string={"q": "036000291452"}, headers=marketer)
    assert [p["sku"] for p in r.get_json()["items"]] == ["COF-250"]
    r = client.get(PRODUCTS, query_string={"category": "tea"}, headers=marketer)
    assert sorted(p["sku"] for p in r.get_json()["items"]) == ["TEA-1", "TEA-3", "TEA-5"]


# ------------------------------------------------------------------ the shoppers' store finder


def test_the_store_finder_lists_open_stores_nearest_first(client, factory):
    member = factory.member()["headers"]
    tlv = factory.store(code="TLV", lat=32.0753, lon=34.7754)
    jlm = factory.store(code="JLM", lat=31.7776, lon=35.2245)
    factory.store(code="HFA", lat=32.7893, lon=35.0076, active=False)
    r = client.get("/api/v1/stores", query_string={"lat": 32.08, "lon": 34.78, "within_m": 100_000}, headers=member)
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert [s["code"] for s in items] == ["TLV", "JLM"]
    assert items[0]["id"] == tlv["id"] and items[0]["distance_m"] < 1000 < items[1]["distance_m"]
    r = client.get("/api/v1/stores", query_string={"lat": 32.08, "lon": 34.78, "within_m": 10_000, "limit": 1},
                   headers=member)
    assert [s["code"] for s in r.get_json()["items"]] == ["TLV"] and r.get_json()["next_cursor"] is None
    r = client.get("/api/v1/stores", query_string={"lat": 32.08, "lon": 34.78, "within_m": 100_000, "limit": 1},
                   headers=member)
    r2 = client.get("/api/v1/stores", query_string={"lat": 32.08, "lon": 34.78, "within_m": 100_000, "limit": 1,
                                                    "cursor": r.get_json()["next_cursor"]}, headers=member)
    assert [s["id"] for s in r2.get_json()["items"]] == [jlm["id"]]
    everything = client.get("/api/v1/stores", headers=member).get_json()["items"]
    assert sorted(s["code"] for s in everything) == ["JLM", "TLV"] and everything[0]["distance_m"] is None
    assert_problem(client.get("/api/v1/stores", query_string={"lat": 32}, headers=member), 422, "validation_error")
    assert_problem(client.get("/api/v1/stores", query_string={"lat": 95, "lon": 0}, headers=member),
                   422, "validation_error")


def test_the_store_finder_across_the_antimeridian(client, factory):
    member = factory.member()["headers"]
    factory.store(code="SUVA", lat=-18.1416, lon=178.4419, timezone="Pacific/Fiji")
    factory.store(code="TAVEUNI", lat=-16.8, lon=-179.97, timezone="Pacific/Fiji")
    r = client.get("/api/v1/stores", query_string={"lat": -16.8, "lon": 179.99, "within_m": 50_000}, headers=member)
    assert [s["code"] for s in r.get_json()["items"]] == ["TAVEUNI"]
