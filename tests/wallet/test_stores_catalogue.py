"""Stores and products in the domain: validation, archive instead of delete, search, and the CSV import."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from wallet import stores
from wallet.barcodes import gtin_check_digit
from wallet.errors import Conflict, Invalid, NotFound
from wallet.stores import Product, Store

STORE = {"code": "tlv-diz", "name": " Dizengoff Center ", "lat": 32.0753, "lon": 34.7754, "radius_m": 200,
         "timezone": "Asia/Jerusalem", "check_in_cooldown_minutes": 240}


def gtin(body: str) -> str:
    return body + gtin_check_digit(body)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# ------------------------------------------------------------------ stores


def test_a_store_is_created_with_a_canonical_code(session, program, clock):
    store = stores.create_store(session, program, STORE)
    assert (store.code, store.name, store.timezone, store.active) == ("TLV-DIZ", "Dizengoff Center",
                                                                     "Asia/Jerusalem", True)
    assert store.created_at == clock.now
    with pytest.raises(Conflict) as caught:
        stores.create_store(session, program, STORE | {"code": "TLV-DIZ"})
    assert caught.value.code == "store_code_taken"


@pytest.mark.parametrize("field, value", [
    ("timezone", "Mars/Olympus_Mons"), ("timezone", "localtime"), ("timezone", ""), ("timezone", "../etc/passwd"),
    ("timezone", "asia/jerusalem"), ("lat", 90.5), ("lon", -180.01), ("lat", float("nan")), ("lat", "32"),
    ("radius_m", 0), ("radius_m", 10_001), ("radius_m", 12.5), ("check_in_cooldown_minutes", 0),
    ("check_in_cooldown_minutes", True), ("code", "has space"), ("code", ""), ("name", "  "),
])
def test_invalid_stores_are_refused_and_not_written(session, program, field, value):
    with pytest.raises(Invalid) as caught:
        stores.create_store(session, program, STORE | {field: value})
    assert field in caught.value.errors
    assert count(session, Store) == 0


def test_update_and_archive(session, program, clock):
    store = stores.create_store(session, program, STORE)
    clock.advance(minutes=5)
    stores.update_store(session, program, store.id, {"timezone": "Europe/London", "active": False})
    assert (store.timezone, store.active, store.updated_at) == ("Europe/London", False, clock.now)
    with pytest.raises(Invalid):
        stores.update_store(session, program, store.id, {"timezone": "Nowhere/City"})
    with pytest.raises(Invalid):
        stores.update_store(session, program, store.id, {"lat": None})
    assert store.timezone == "Europe/London"
    other = stores.create_store(session, program, STORE | {"code": "JLM"})
    with pytest.raises(Conflict):
        stores.update_store(session, program, other.id, {"code": "tlv-diz"})
    stores.archive_store(session, program, store.id)
    with pytest.raises(NotFound):
        stores.get_store(session, store.id)
    assert [s.code for s in stores.list_stores(session)] == ["JLM"]
    assert session.get(Store, store.id).archived_at == clock.now  # kept for the history


def test_store_search(session, program):
    for code, name, address in [("TLV", "Dizengoff", "Tel Aviv"), ("JLM", "Mamilla", "Jerusalem"),
                                ("HFA", "Grand Canyon", "Haifa"), ("X_1", "100% Fresh", "")]:
        stores.create_store(session, program, STORE | {"code": code, "name": name, "address": address})
    assert [s.code for s in stores.list_stores(session, q="mamil")] == ["JLM"]
    assert [s.code for s in stores.list_stores(session, q="haifa")] == ["HFA"]
    assert [s.code for s in stores.list_stores(session, q="%")] == ["X_1"]  # a wildcard is a character
    assert [s.code for s in stores.list_stores(session, q="_")] == ["X_1"]
    first = stores.list_stores(session, limit=2)
    rest = stores.list_stores(session, limit=10, after=first[-1].id)
    assert len(first) == 2 and len(rest) == 2 and {s.id for s in first}.isdisjoint({s.id for s in rest})


# ------------------------------------------------------------------ products


def make(session, program, sku, body, **data):
    return stores.create_product(session, program, {"sku": sku, "barcode": gtin(body), "name": sku} | data)


def test_product_fields_are_validated(session, program):
    with pytest.raises(Invalid) as caught:
        stores.create_product(session, program, {"sku": "A", "barcode": "4006381333932", "name": "A"})
    assert caught.value.code == "invalid_barcode"
    with pytest.raises(Invalid) as caught:
        stores.create_product(session, program, {"sku": "a b", "barcode": "4006381333931", "name": "",
                                                 "price": Decimal("1.234"), "currency": "shekel",
                                                 "image_url": "javascript:alert(1)"})
    assert set(caught.value.errors) == {"sku", "name", "price", "currency", "image_url"}
    assert count(session, Product) == 0


def test_product_defaults_and_uniqueness(session, program):
    coffee = stores.create_product(session, program, {"sku": "COF", "barcode": "036000291452", "name": "Coffee",
                                                      "price": Decimal("24.90")})
    assert (coffee.barcode, coffee.currency, coffee.active, coffee.complementary) == ("0036000291452", "ILS", True, [])
    with pytest.raises(Conflict) as caught:
        stores.create_product(session, program, {"sku": "COF", "barcode": "96385074", "name": "Other"})
    assert caught.value.code == "sku_taken"
    with pytest.raises(Conflict) as caught:
        stores.create_product(session, program, {"sku": "COF2", "barcode": "0036000291452", "name": "Other"})
    assert caught.value.code == "barcode_taken"
    assert count(session, Product) == 1


def test_complementary_products_must_exist_and_not_be_the_product(session, program):
    a = make(session, program, "A", "400638133393")
    b = make(session, program, "B", "729000123451")
    with pytest.raises(Invalid) as caught:
        stores.update_product(session, program, a.id, {"complementary": [b.id, "prd_nope"]})
    assert caught.value.code == "invalid_complementary"
    with pytest.raises(Invalid):
        stores.update_product(session, program, a.id, {"complementary": [a.id]})
    stores.update_product(session, program, a.id, {"complementary": [b.id, b.id]})
    assert a.complementary == [b.id]
    stores.archive_product(session, program, b.id)
    with pytest.raises(Invalid):
        make(session, program, "C", "729000123452", complementary=[b.id])


def test_product_update_and_archive(session, program):
    a = make(session, program, "A", "400638133393", price=Decimal("5"))
    b = make(session, program, "B", "729000123451")
    with pytest.raises(Conflict):
        stores.update_product(session, program, a.id, {"barcode": b.barcode})
    stores.update_product(session, program, a.id, {"barcode": "96385074", "price": None, "name": " Renamed "})
    assert (a.barcode, a.price, a.name) == ("0000096385074", None, "Renamed")
    stores.archive_product(session, program, a.id)
    with pytest.raises(NotFound):
        stores.get_product(session, a.id)
    with pytest.raises(NotFound):
        stores.product_by_barcode(session, "96385074")
    with pytest.raises(Conflict):  # an archived product's barcode stays reserved
        make(session, program, "C", "9638507")


def test_product_search(session, program):
    make(session, program, "COF-250", "729000123451", name="House blend coffee", category="coffee")
    make(session, program, "COF-500", "729000123452", name="Espresso beans", category="coffee",
         description="Dark roast coffee")
    make(session, program, "MUG-01", "03600029145", name="Club mug", category="homeware")
    make(session, program, "OFF", "9638507", name="Old coffee", active=False)

    def skus(**kwargs):
        return [p.sku for p in stores.list_products(session, **kwargs)]

    assert skus(q="COFFEE") == ["COF-250", "COF-500", "OFF"]
    assert skus(q="coffee", active=True) == ["COF-250", "COF-500"]
    assert skus(category="homeware") == ["MUG-01"]
    assert skus(q="036000291452") == ["MUG-01"]  # the UPC-A finds its GTIN-13
    assert skus(q="0036000291452") == ["MUG-01"]
    assert skus(q="29000123") == ["COF-250", "COF-500"]  # part of a barcode
    assert skus(q="mug-0") == ["MUG-01"]
    page1 = stores.list_products(session, limit=3)
    page2 = stores.list_products(session, limit=3, after=page1[-1].id)
    assert len(page1) == 3 and len(page2) == 1
    assert [p.id for p in page1 + page2] == sorted(p.id for p in page1 + page2)


# ------------------------------------------------------------------ the CSV import


HEADER = "sku,barcode,name,description,category,price,currency,image_url,complementary,active\n"


def run_import(session, program, text: str, **kwargs):
    return stores.import_products(session, program, io.StringIO(text), **kwargs)


def test_good_rows_are_imported_and_bad_rows_reported(session, program):
    text = HEADER + "\n".join([
        f"COF,{gtin('729000123451')},Coffee,\"Strong, dark\",coffee,24.90,,https://img.example/cof.png,MUG|MLK,",
        f"MUG,{gtin('729000123452')},Mug,,homeware,29.9,ILS,,COF,true",
        f"BAD1,{gtin('729000123453')[:-1]}0,Wrong check digit,,,,,,,",
        "BAD2,,No barcode,,,,,,,",
        f"BAD3,{gtin('729000123454')},,,,-1,EURO,ftp://x,,maybe",
        "MLK,96385074,Milk,,dairy,6.90,,,,0",
        f"COF,{gtin('729000123455')},Coffee again,,,,,,,",
        f"TEA,{gtin('729000123452')},Tea with the mug's barcode,,,,,,,",
        "",  # a blank line is not a row
        "UPC,036000291452,A UPC-A,,,,,,NOPE|COF,yes",
        f"EXTRA,{gtin('729000123456')},Too many cells,,,,,,,,surplus",
    ]) + "\n"
    report = run_import(session, program, text)
    assert (report.rows, report.created, report.updated, report.unchanged) == (10, 4, 0, 0)
    refused = {(p.line, p.sku): sorted(p.errors) for p in report.refused}
    assert refused == {
        (4, "BAD1"): ["barcode"], (5, "BAD2"): ["barcode"], (6, "BAD3"): ["active", "currency", "image_url", "name",
                                                                          "price"],
        (8, "COF"): ["sku"], (9, "TEA"): ["barcode"], (12, "EXTRA"): ["_row"],
    }
    assert [(w.line, w.sku, w.errors) for w in report.warnings] == [
        (11, "UPC", {"complementary": ["No product with the SKU NOPE; left out."]})]
    by_sku = {p.sku: p for p in session.scalars(select(Product))}
    assert set(by_sku) == {"COF", "MUG", "MLK", "UPC"}
    cof = by_sku["COF"]
    assert (cof.description, cof.price, cof.currency, cof.image_url) == ("Strong, dark", Decimal("24.90"), "ILS",
                                                                         "https://img.example/cof.png")
    assert cof.complementary == [by_sku["MUG"].id, by_sku["MLK"].id]  # MLK is further down the file
    assert by_sku["MLK"].active is False and by_sku["MLK"].barcode == "0000096385074"
    assert by_sku["UPC"].barcode == "0036000291452" and by_sku["UPC"].complementary == [cof.id]


def test_a_second_import_updates_by_sku_and_revives_archived_products(session, program, clock):
    run_import(session, program, HEADER + f"A,{gtin('729000123451')},Alpha,,,1.00,,,,\n"
                                          f"B,{gtin('729000123452')},Beta,,,2.00,,,,\n")
    a = session.scalar(select(Product).where(Product.sku == "A"))
    stores.archive_product(session, program, a.id)
    clock.advance(days=1)
    report = run_import(session, program, HEADER + f"A,{gtin('729000123451')},Alpha,,,1.50,,,,\n"
                                                   f"B,{gtin('729000123452')},Beta,,,2.00,,,,\n")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert (a.price, a.archived_at, a.active, a.updated_at) == (Decimal("1.50"), None, True, clock.now)
    assert count(session, Product) == 2


def test_products_may_swap_barcodes_in_file_order(session, program):
    run_import(session, program, HEADER + f"A,{gtin('729000123451')},A,,,,,,,\nB,{gtin('729000123452')},B,,,,,,,\n")
    report = run_import(session, program, HEADER + f"A,{gtin('729000123453')},A,,,,,,,\n"
                                                   f"B,{gtin('729000123451')},B,,,,,,,\n")
    assert report.refused == [] and report.updated == 2
    assert session.scalar(select(Product.barcode).where(Product.sku == "B")) == gtin("729000123451")


@pytest.mark.parametrize("text, problem", [
    ("", "The file is empty."),
    ("sku,barcode\nA,96385074\n", "Missing columns: name."),
    ("sku,barcode,name,prise\nA,96385074,A,1\n", "Unknown columns: 'prise'."),
    ("sku,barcode,name,sku\nA,96385074,A,A\n", "A column appears twice."),
])
def test_a_wrong_header_refuses_the_whole_file(session, program, text, problem):
    with pytest.raises(Invalid) as caught:
        run_import(session, program, text)
    assert caught.value.code == "invalid_csv_header"
    assert problem in caught.value.errors["header"]
    assert count(session, Product) == 0


def test_header_names_are_case_and_space_insensitive_and_columns_may_be_few(session, program):
    report = run_import(session, program, " SKU , Barcode ,NAME\nA,96385074,Alpha\n")
    assert report.created == 1 and report.refused == []


def test_columns_a_file_leaves_out_are_left_alone(session, program):
    a = make(session, program, "A", "729000123451", description="Kept", category="coffee", price=Decimal("3.00"),
             image_url="https://img.example/a.png", active=False)
    b = make(session, program, "B", "729000123452", complementary=[a.id])
    report = run_import(session, program, f"sku,barcode,name\nA,{a.barcode},Renamed\nB,{b.barcode},B\n"
                                          f"C,{gtin('729000123453')},New\n")
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
    assert (a.name, a.description, a.category, a.price, a.image_url, a.active) == (
        "Renamed", "Kept", "coffee", Decimal("3.00"), "https://img.example/a.png", False)
    assert b.complementary == [a.id]
    new = session.scalar(select(Product).where(Product.sku == "C"))
    assert (new.currency, new.active, new.price, new.complementary) == ("ILS", True, None, [])
    # A column that is there but blank does clear the value.
    run_import(session, program, f"sku,barcode,name,description,complementary\nB,{b.barcode},B,,\n")
    assert (b.description, b.complementary) == ("", [])
