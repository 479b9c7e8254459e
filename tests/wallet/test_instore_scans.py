"""Scans in the domain: each barcode family, the first scan of a product, scan rules, complementary products."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from wallet import instore, ledger, members, rules, stores, till
from wallet.barcodes import gtin_check_digit, normalise_barcode
from wallet.errors import Invalid, NotFound, Rejected
from wallet.instore import Scan

from .test_instore_checkins import make_member, make_store


def product(session, program, sku, barcode, **data):
    return stores.create_product(session, program, {"sku": sku, "barcode": barcode, "name": f"Product {sku}"} | data)


def scan(session, program, member_id, barcode, **kwargs):
    return instore.scan(session, program, member_id=member_id, barcode=barcode, **kwargs)


def scan_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Scan))


@pytest.fixture
def member(session, program, clock):
    return make_member(session, program)


# ------------------------------------------------------------------ barcode families

def with_check_digit(body: str) -> str:
    return body + gtin_check_digit(body)


@pytest.mark.parametrize("code, gtin", [
    ("4006381333931", "4006381333931"),  # EAN-13
    ("7290001234518", "7290001234518"),  # EAN-13, an Israeli prefix
    ("96385074", "0000096385074"),  # EAN-8
    ("55123457", "0000055123457"),  # EAN-8
    ("036000291452", "0036000291452"),  # UPC-A
    ("012345678905", "0012345678905"),  # UPC-A
    (" 036000291452 ", "0036000291452"),  # what a scanner sends, with whitespace
])
def test_each_family_with_a_valid_check_digit_normalises_to_gtin_13(code, gtin):
    assert normalise_barcode(code) == gtin


@pytest.mark.parametrize("code", [
    "4006381333932",  # EAN-13, check digit off by one
    "96385075",  # EAN-8, wrong check digit
    "036000291453",  # UPC-A, wrong check digit
    "400638133393",  # an EAN-13 missing its last digit reads as a UPC-A with a wrong check digit
])
def test_a_wrong_check_digit_is_refused(code):
    with pytest.raises(Invalid) as caught:
        normalise_barcode(code)
    assert caught.value.code == "invalid_barcode"
    assert caught.value.errors == {"barcode": ["Check digit does not match."]}


@pytest.mark.parametrize("code", ["", "1234567", "12345678901", "12345678901234", "03600029145X", "٠٣٦٠٠٠٢٩١٤٥٢",
                                  "0360-0029-1452", None, 36000291452])
def test_malformed_codes_are_refused(code):
    with pytest.raises(Invalid) as caught:
        normalise_barcode(code)
    assert caught.value.code == "invalid_barcode"


def test_every_single_digit_error_is_caught():
    body = "729000123451"
    good = with_check_digit(body)
    for position in range(13):
        for digit in "0123456789":
            if digit == good[position]:
                continue
            typo = good[:position] + digit + good[position + 1:]
            with pytest.raises(Invalid):
                normalise_barcode(typo)


def test_a_upc_a_and_its_ean_13_form_are_one_product(session, program, member):
    coffee = product(session, program, "COF", "036000291452")  # stored as 0036000291452
    assert coffee.barcode == "0036000291452"
    assert scan(session, program, member, "0036000291452").product.id == coffee.id
    assert scan(session, program, member, "036000291452").product.id == coffee.id
    with pytest.raises(Exception) as caught:
        product(session, program, "COF-2", "0036000291452")
    assert caught.value.code == "barcode_taken"


def test_an_ean_8_product_scans(session, program, member):
    gum = product(session, program, "GUM", "96385074")
    assert scan(session, program, member, "96385074").product.id == gum.id


# ------------------------------------------------------------------ what a scan records, and refuses


def test_unknown_malformed_or_inactive_products_write_nothing(session, program, member):
    product(session, program, "OLD", "4006381333931", active=False)
    archived = product(session, program, "GONE", "96385074")
    stores.archive_product(session, program, archived.id)
    for code, error, expected in [("4006381333931", NotFound, "product_not_found"),
                                  ("96385074", NotFound, "product_not_found"),
                                  ("5901234123457", NotFound, "product_not_found"),
                                  ("5901234123458", Invalid, "invalid_barcode"),
                                  ("abc", Invalid, "invalid_barcode")]:
        with pytest.raises(error) as caught:
            scan(session, program, member, code)
        assert caught.value.code == expected
    assert scan_count(session) == 0


def test_the_store_must_exist_and_be_open(session, program, member):
    product(session, program, "A", "4006381333931")
    closed = make_store(session, active=False)
    with pytest.raises(NotFound) as caught:
        scan(session, program, member, "4006381333931", store_id="sto_missing")
    assert caught.value.code == "store_not_found"
    with pytest.raises(Rejected) as caught:
        scan(session, program, member, "4006381333931", store_id=closed.id)
    assert caught.value.code == "store_inactive"
    assert scan_count(session) == 0


def test_the_first_scan_of_a_product_by_a_member_is_marked(session, program, member):
    a = product(session, program, "A", "4006381333931")
    b = product(session, program, "B", "96385074")
    other = make_member(session, program)
    store = make_store(session)
    assert scan(session, program, member, a.barcode, store_id=store.id).scan.first_scan is True
    assert scan(session, program, member, a.barcode).scan.first_scan is False
    assert scan(session, program, member, a.barcode, store_id=store.id).scan.first_scan is False
    assert scan(session, program, member, b.barcode).scan.first_scan is True
    assert scan(session, program, other, a.barcode).scan.first_scan is True
    firsts = session.execute(select(Scan.member_id, Scan.product_id).where(Scan.first_scan.is_(True))).all()
    assert sorted(firsts) == sorted([(member, a.id), (member, b.id), (other, a.id)])
    assert scan_count(session) == 5


def test_the_database_keeps_one_first_scan_per_member_and_product(session, program, member):
    from sqlalchemy.exc import IntegrityError
    a = product(session, program, "A", "4006381333931")
    for _ in range(2):
        session.add(Scan(member_id=member, product_id=a.id, barcode=a.barcode, first_scan=True,
                         created_at=program.now()))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


# ------------------------------------------------------------------ scan rules


def test_discovery_is_rewarded_once_per_product(session, program, member):
    a = product(session, program, "A", "4006381333931")
    b = product(session, program, "B", "96385074")
    rules.create_rule(session, program, {"title": "Discover something new", "trigger": "scan",
                                         "conditions": {"first_scan": True}, "reward": {"points": 5}})
    earned = [scan(session, program, member, code).points_awarded for code in (a.barcode, a.barcode, b.barcode,
                                                                               b.barcode, a.barcode)]
    assert earned == [5, 0, 5, 0, 0]
    assert ledger.balance_of(session, member).points == 10


def test_category_and_store_conditions(session, program, member):
    coffee = product(session, program, "COF", "4006381333931", category="coffee")
    tea = product(session, program, "TEA", "96385074", category="tea")
    store = make_store(session)
    rules.create_rule(session, program, {"title": "Coffee corner", "trigger": "scan",
                                         "conditions": {"categories": ["coffee"], "stores": [store.id]},
                                         "reward": {"points": 2}})
    assert scan(session, program, member, coffee.barcode, store_id=store.id).points_awarded == 2
    assert scan(session, program, member, tea.barcode, store_id=store.id).points_awarded == 0
    assert scan(session, program, member, coffee.barcode).points_awarded == 0  # not in that store
    result = scan(session, program, member, coffee.barcode, store_id=store.id)
    [reward] = result.rewards
    assert {k: reward[k] for k in ("title", "points", "coupon", "pending")} == \
        {"title": "Coffee corner", "points": 2, "coupon": None, "pending": False}


def test_the_nth_scan_of_the_day(session, program, member, clock):
    a = product(session, program, "A", "4006381333931")
    rules.create_rule(session, program, {"title": "Curious shopper", "trigger": "scan",
                                         "conditions": {"nth": {"n": 3, "period": "day"}}, "reward": {"points": 4}})
    assert [scan(session, program, member, a.barcode).points_awarded for _ in range(4)] == [0, 0, 4, 0]
    clock.advance(days=1)
    assert [scan(session, program, member, a.barcode).points_awarded for _ in range(3)] == [0, 0, 4]


def test_check_in_rules_do_not_fire_on_scans(session, program, member):
    a = product(session, program, "A", "4006381333931")
    rules.create_rule(session, program, {"title": "Visit", "trigger": "check_in", "reward": {"points": 10}})
    assert scan(session, program, member, a.barcode).points_awarded == 0
    assert ledger.balance_of(session, member).points == 0


# ------------------------------------------------------------------ complementary products


def _buy(session, program, store, card_number, receipt, barcodes):
    items = [{"barcode": code, "quantity": 1, "unit_price": Decimal("1.00")} for code in barcodes]
    return till.record_purchase(session, program, store_id=store.id, card_code=card_number, amount=Decimal("9.00"),
                                currency=program.currency, receipt_id=receipt, items=items).purchase


def test_the_marketers_list_first_then_what_is_bought_together(session, program, member):
    codes = [with_check_digit(f"72900012345{i}") for i in range(8)]
    coffee, mug, milk, croissant, cookie, jam, retired, paused = (
        product(session, program, sku, code) for sku, code in zip(
            ["COF", "MUG", "MLK", "CRS", "COO", "JAM", "OLD", "PAU"], codes, strict=True))
    stores.archive_product(session, program, retired.id)
    stores.update_product(session, program, paused.id, {"active": False})
    coffee.complementary = [milk.id, mug.id, retired.id, paused.id]  # the marketer's order, with two gone since
    store = make_store(session)
    card = members.get_member(session, member).card.number
    _buy(session, program, store, card, "R1", [coffee.barcode, croissant.barcode, cookie.barcode, mug.barcode])
    _buy(session, program, store, card, "R2", [coffee.barcode, croissant.barcode, paused.barcode])
    _buy(session, program, store, card, "R3", [coffee.barcode, croissant.barcode, "4006381333931"])  # not in catalogue
    refunded = _buy(session, program, store, card, "R4", [coffee.barcode, jam.barcode])
    till.refund_purchase(session, program, refunded.id, store_id=store.id, actor="test")
    _buy(session, program, store, card, "R5", [cookie.barcode, jam.barcode])  # without coffee
    suggestions = scan(session, program, member, coffee.barcode).complementary
    assert [(s["product"].sku, s["source"], s.get("purchases")) for s in suggestions] == [
        ("MLK", "marketer", None), ("MUG", "marketer", None),
        ("CRS", "bought_together", 3), ("COO", "bought_together", 1)]


def test_suggestions_are_capped_and_never_the_product_itself(session, program, member):
    codes = [with_check_digit(f"7290001240{i:02d}") for i in range(15)]
    items = [product(session, program, f"P{i}", code) for i, code in enumerate(codes)]
    main, rest = items[0], items[1:]
    main.complementary = [main.id] + [p.id for p in rest[:3]]  # a self-reference slipped in through old data
    store = make_store(session)
    card = members.get_member(session, member).card.number
    _buy(session, program, store, card, "R1", [p.barcode for p in items])
    suggestions = instore.complementary_products(session, main)
    assert len(suggestions) == instore.COMPLEMENTARY_LIMIT
    assert main.id not in {s["product"].id for s in suggestions}
    assert [s["source"] for s in suggestions[:3]] == ["marketer"] * 3
    assert len({s["product"].id for s in suggestions}) == instore.COMPLEMENTARY_LIMIT
