"""Defences against farming points, over HTTP: limits of size, welcome points that wait for a purchase, bursts of
enrolments and claims, impossible travel, a card at two stores within a minute, and the flags to review them."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem, run_together
from wallet import fraud
from wallet.db import MAX_BALANCE, MAX_POINTS_PER_MOVEMENT
from wallet.fraud import BurstCounter, Flag
from wallet.instore import CheckIn
from wallet.ledger import Balance, LedgerEntry, PendingPoints
from wallet.purchases import Purchase
from wallet.tokens import Principal

API = "/api/v1"
TEL_AVIV = (32.0753, 34.7754)
JERUSALEM = (31.7776, 35.2245)
HAIFA = (32.7893, 35.0076)


def count(app, model, *where) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.remove()
        return value


def flags(app, kind: str | None = None) -> list[Flag]:
    with app.app_context():
        query = select(Flag).order_by(Flag.first_seen_at)
        if kind:
            query = query.where(Flag.kind == kind)
        found = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
        return found


@pytest.fixture
def till(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    return {"store": store, "h": cashier["headers"]}


def buy(client, headers, card, amount="120.50", receipt="R-1", **extra):
    body = {"card": card, "amount": amount, "currency": "ILS", "receipt_id": receipt} | extra
    return client.post(f"{API}/pos/purchases", json=body, headers=headers)


# ------------------------------------------------------------------ limits of size


def test_a_purchase_of_three_billion_is_422_naming_the_amount_never_500(app, client, factory, till):
    member = factory.member()
    for amount in ("3000000000.00", "1000000000.00", "1000000.01"):
        body = assert_problem(buy(client, till["h"], member["card_number"], amount, receipt=amount), 422,
                              "amount_out_of_range")
        assert body["errors"] == {"amount": ["At most 1000000.00."]}
    assert count(app, Purchase) == 0 and count(app, LedgerEntry) == 0
    r = buy(client, till["h"], member["card_number"], "1000000.00")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["points_awarded"] == 1_000_000 and r.get_json()["balance"] == 1_000_000


def test_an_item_priced_past_the_limit_is_422_naming_the_item(app, client, factory, till):
    member = factory.member()
    items = [{"barcode": "4006381333931", "quantity": 1, "unit_price": "1.00"},
             {"barcode": "4006381333931", "quantity": 1, "unit_price": "2000000.00"}]
    body = assert_problem(buy(client, till["h"], member["card_number"], "10.00", items=items), 422,
                          "amount_out_of_range")
    assert body["errors"] == {"items.1.unit_price": ["At most 1000000.00."]}
    assert count(app, Purchase) == 0


def test_the_limit_is_configurable(app, client, factory, till, program):
    program.max_purchase_amount = Decimal("500.00")
    member = factory.member()
    assert_problem(buy(client, till["h"], member["card_number"], "500.01"), 422, "amount_out_of_range")
    assert buy(client, till["h"], member["card_number"], "500.00").status_code == 201


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2))
def test_any_amount_is_either_recorded_or_refused_with_422(app, client, factory, till, amount):
    member = factory.member()
    r = buy(client, till["h"], member["card_number"], str(amount), receipt=f"H-{amount}")
    if amount <= Decimal("1000000.00"):
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["points_awarded"] == int(amount)
    else:
        assert_problem(r, 422, "amount_out_of_range")


def test_a_rule_that_would_credit_past_one_movement_is_refused_whole(app, client, factory, till):
    factory.rule(title="A thousand a shekel", reward={"points_per_currency_unit": 1000}, priority=5)
    member = factory.member()
    body = assert_problem(buy(client, till["h"], member["card_number"], "100000.01"), 422, "points_out_of_range")
    assert body["errors"] == {"points": [f"At most {MAX_POINTS_PER_MOVEMENT} in one movement."]}
    assert count(app, Purchase) == 0 and count(app, LedgerEntry) == 0
    assert buy(client, till["h"], member["card_number"], "100000.00").status_code == 201  # 100,000,000 exactly


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.integers(min_value=-(2**70), max_value=2**70))
def test_adjustments_are_bounded_to_one_movement(app, client, factory, points):
    marketer = factory.staff("marketer")
    member = factory.member()
    factory.earn(member["id"], MAX_POINTS_PER_MOVEMENT)
    r = client.post(f"{API}/admin/members/{member['id']}/adjustments", json={"points": points, "reason": "test"},
                    headers=marketer["headers"])
    if points == 0:
        assert_problem(r, 422, "zero_adjustment")
    elif abs(points) > MAX_POINTS_PER_MOVEMENT:
        body = assert_problem(r, 422, "validation_error")
        assert list(body["errors"]) == ["points"]
    else:
        assert r.status_code == 201, r.get_json()
        assert factory.balance(member["id"]) == MAX_POINTS_PER_MOVEMENT + points


def test_a_balance_stays_below_2_to_the_53(app, client, factory):
    marketer = factory.staff("marketer")
    member = factory.member()
    with app.app_context():  # a balance already near the top (a long-lived club): set as the ledger would have it
        db.session.execute(Balance.__table__.update().where(Balance.member_id == member["id"])
                           .values(points=MAX_BALANCE - 10))
        db.session.commit()
    r = client.post(f"{API}/admin/members/{member['id']}/adjustments", json={"points": 11, "reason": "too much"},
                    headers=marketer["headers"])
    body = assert_problem(r, 422, "balance_limit")
    assert body["max_balance"] == MAX_BALANCE and body["balance"] == MAX_BALANCE - 10
    r = client.post(f"{API}/admin/members/{member['id']}/adjustments", json={"points": 10, "reason": "to the top"},
                    headers=marketer["headers"])
    assert r.status_code == 201 and r.get_json()["balance_after"] == MAX_BALANCE
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()
    assert wallet["points"]["balance"] == 2**53 - 1


def test_rule_limits_and_budgets_are_bounded(client, factory):
    marketer = factory.staff("marketer")
    for field, value in (("points_budget", MAX_BALANCE + 1), ("total_limit", 10**10), ("daily_limit", 2**31),
                         ("per_member_limit", 10**7)):
        r = client.post(f"{API}/admin/rules", json={"title": "big", "trigger": "purchase", "reward": {"points": 1},
                                                    field: value}, headers=marketer["headers"])
        assert list(assert_problem(r, 422, "validation_error")["errors"]) == [field]


def test_points_are_int64_in_the_openapi_document(client):
    spec = client.get(f"{API}/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert schemas["Points"]["properties"]["balance"]["format"] == "int64"
    assert schemas["Pending"]["properties"]["points"]["format"] == "int64"
    assert schemas["PurchaseOut"]["properties"]["points_awarded"]["format"] == "int64"
    assert schemas["LedgerEntry"]["properties"]["delta"]["format"] == "int64"


# ------------------------------------------------------------------ welcome points wait for the first purchase


def test_welcome_points_are_pending_until_the_first_purchase(app, client, factory, till):
    factory.rule(title="Welcome to the club", trigger="enrolment", reward={"points": 50})
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, points_cost=50)
    member = factory.member()
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()["points"]
    assert wallet["balance"] == 0 and wallet["pending_total"] == 50
    assert wallet["pending"] == [{"points": 50, "available_at": None, "awaits": "first_purchase",
                                  "description": "Welcome to the club"}]
    # the farm of issue 19: sign up, spend the welcome at once
    r = client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"])
    assert_problem(r, 422, "insufficient_points")
    r = buy(client, till["h"], member["card_number"], "10.00")
    assert r.status_code == 201 and r.get_json()["balance"] == 60  # the welcome 50 and the purchase's 10
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()["points"]
    assert (wallet["balance"], wallet["pending"], wallet["pending_total"]) == (60, [], 0)
    statement = client.get(f"{API}/me/ledger", headers=member["headers"]).get_json()["items"]
    assert [(e["delta"], e["reason"], e["description"]) for e in statement] == [
        (10, "purchase", "1 point per shekel"),
        (50, "welcome", "Welcome to the club: spendable from your first purchase")]
    assert buy(client, till["h"], member["card_number"], "10.00", receipt="R-2").get_json()["balance"] == 70
    assert client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"]).status_code == 201


def test_a_retried_first_purchase_releases_the_welcome_once(app, client, factory, till):
    factory.rule(title="Welcome to the club", trigger="enrolment", reward={"points": 50})
    member = factory.member()
    first = buy(client, till["h"], member["card_number"], "10.00")
    again = buy(client, till["h"], member["card_number"], "10.00")
    assert first.get_json()["balance"] == again.get_json()["balance"] == 60
    assert count(app, LedgerEntry, LedgerEntry.member_id == member["id"]) == 2
    assert count(app, PendingPoints, PendingPoints.status == "released") == 1


def test_welcome_points_at_once_when_the_setting_is_off(app, client, factory, program):
    program.welcome_pending = False
    factory.rule(title="Welcome to the club", trigger="enrolment", reward={"points": 50})
    member = factory.member()
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()["points"]
    assert (wallet["balance"], wallet["pending"]) == (50, [])


# ------------------------------------------------------------------ bursts of enrolments and claims


def enrol(client, n: int, device: str | None = "phone-1", address: str = "203.0.113.7"):
    headers = {"X-Device-ID": device} if device else {}
    return client.post(f"{API}/auth/register", json={"email": f"farm{n}@example.com", "password": "correct horse",
                                                     "name": f"Farm {n}"},
                       headers=headers, environ_base={"REMOTE_ADDR": address})


def test_a_burst_of_enrolments_from_one_device_is_slowed_and_flagged(app, client, clock):
    for n in range(10):
        assert enrol(client, n, address=f"198.51.100.{n}").status_code == 201
    r = enrol(client, 10, address="198.51.100.99")
    body = assert_problem(r, 429, "too_many_enrolments")
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and body["limit"] == 10
    assert body["title"] == "Too Many Requests"  # as every 429 says it, the rate limits' included
    assert enrol(client, 11, address="198.51.100.98").status_code == 429
    [flag] = flags(app, "enrolment_burst")
    assert (flag.subject, flag.count, flag.status) == ("device:phone-1", 2, "open")
    assert flag.details == {"count": 12, "limit": 10, "window_seconds": 60}
    assert count(app, Balance) == 10  # the refused ones enrolled nobody
    assert enrol(client, 12, device="phone-2", address="198.51.100.97").status_code == 201  # another device
    clock.advance(minutes=1)
    assert enrol(client, 13, address="198.51.100.96").status_code == 201  # a new minute


def test_a_burst_of_enrolments_from_one_address_without_a_device_id(app, client, clock):
    for n in range(10):
        assert enrol(client, n, device=None).status_code == 201
    assert_problem(enrol(client, 10, device=None), 429, "too_many_enrolments")
    [flag] = flags(app, "enrolment_burst")
    assert flag.subject == "address:203.0.113.7"


def test_a_device_id_that_is_not_one_is_422(app, client):
    for device in ("x" * 129, "bad id", "tab\tid"):
        assert_problem(enrol(client, 1, device=device), 422, "invalid_device_id")
    assert count(app, Balance) == 0 and count(app, BurstCounter) == 0


def test_the_burst_limit_is_configurable(app, client, program):
    program.enrolment_burst = 2
    assert [enrol(client, n).status_code for n in range(3)] == [201, 201, 429]


@pytest.mark.postgres
def test_concurrent_enrolments_from_one_device_count_exactly(app, make_app):
    """Twenty sign-ups at once from one device: ten enrol, ten are slowed, one flag counts them."""
    other = make_app()
    mid_minute = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)  # the twenty cannot straddle a minute's edge
    other.extensions["loyalty.program"].clock = lambda: mid_minute

    def work(i):
        with other.test_client() as c:
            return enrol(c, i, address=f"192.0.2.{i}").status_code

    codes = run_together(20, work)
    assert sorted(codes) == [201] * 10 + [429] * 10
    [flag] = flags(app, "enrolment_burst")
    assert (flag.subject, flag.count) == ("device:phone-1", 10)
    assert count(app, Balance) == 10


def make_offer(client, marketer, **extra):
    r = client.post(f"{API}/admin/offers", json={"title": "Ten percent off", "benefit": {"kind": "percent_off",
                                                                                         "value": "10"}} | extra,
                    headers=marketer["headers"])
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_a_burst_of_claims_is_slowed_and_flagged(app, client, factory, program, clock):
    program.claim_burst = 3
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer)
    member, other = factory.member(), factory.member()
    claims = [client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"])
              for _ in range(5)]
    assert [r.status_code for r in claims] == [201, 201, 201, 429, 429]
    assert_problem(claims[3], 429, "too_many_claims")
    assert "Retry-After" in claims[3].headers
    [flag] = flags(app, "claim_burst")
    assert (flag.subject, flag.member_id, flag.count) == (f"member:{member['id']}", member["id"], 2)
    assert client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]},
                       headers=other["headers"]).status_code == 201  # per member
    clock.advance(minutes=1)
    assert client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]},
                       headers=member["headers"]).status_code == 201


# ------------------------------------------------------------------ impossible travel


def check_in(client, headers, store, position):
    return client.post(f"{API}/me/check-ins", json={"store_id": store["id"], "lat": position[0], "lon": position[1]},
                       headers=headers)


def test_three_cities_in_a_second_is_refused_and_flagged(app, client, factory, clock):
    """Issue 19: one account checked in at Tel Aviv, Jerusalem and Haifa within one second, credited each time."""
    factory.rule(title="Thanks for coming", trigger="check_in", reward={"points": 10})
    stores = [factory.store(lat=p[0], lon=p[1]) for p in (TEL_AVIV, JERUSALEM, HAIFA)]
    member = factory.member()
    assert check_in(client, member["headers"], stores[0], TEL_AVIV).status_code == 201
    body = assert_problem(check_in(client, member["headers"], stores[1], JERUSALEM), 422, "impossible_travel")
    assert body["max_kmh"] == 300 and body["previous_store_id"] == stores[0]["id"] and body["distance_km"] > 50
    assert_problem(check_in(client, member["headers"], stores[2], HAIFA), 422, "impossible_travel")
    assert factory.balance(member["id"]) == 10
    assert count(app, CheckIn, CheckIn.reason == "impossible_travel") == 2
    [flag] = flags(app, "impossible_travel")
    assert (flag.member_id, flag.store_id, flag.count) == (member["id"], stores[2]["id"], 2)
    assert flag.details["previous_store_id"] == stores[0]["id"] and flag.details["speed_kmh"] is None  # no time
    clock.advance(minutes=30)  # Tel Aviv to Jerusalem in half an hour: 108 km/h, believable
    headers = factory.headers(Principal(member["id"], "member"))  # a fresh token: the first one has expired
    assert check_in(client, headers, stores[1], JERUSALEM).status_code == 201


# ------------------------------------------------------------------ a card at two stores within a minute


def test_a_card_used_at_two_stores_within_a_minute_is_flagged_by_the_worker(app, client, factory, program, clock):
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    tlv, jlm = factory.store(), factory.store(lat=JERUSALEM[0], lon=JERUSALEM[1])
    at_tlv, at_jlm = factory.staff("cashier", store_id=tlv["id"]), factory.staff("cashier", store_id=jlm["id"])
    member, honest = factory.member(), factory.member()
    assert buy(client, at_tlv["headers"], member["card_number"], receipt="T-1").status_code == 201
    clock.advance(seconds=40)
    assert buy(client, at_jlm["headers"], member["card_number"], receipt="J-1").status_code == 201  # not refused
    assert buy(client, at_tlv["headers"], honest["card_number"], receipt="T-2").status_code == 201
    clock.advance(minutes=5)
    assert buy(client, at_jlm["headers"], honest["card_number"], receipt="J-2").status_code == 201  # 5 min: fine
    with app.app_context():
        assert fraud.watch_purchases(db.session, program) == 4
        db.session.commit()
        assert fraud.watch_purchases(db.session, program) == 0  # read once
        db.session.remove()
    [flag] = flags(app)
    assert (flag.kind, flag.member_id, flag.store_id) == ("qr_two_stores", member["id"], jlm["id"])
    assert flag.details["other_store_id"] == tlv["id"] and flag.details["seconds_apart"] == 40.0


# ------------------------------------------------------------------ GET /admin/flags and reviewing


def test_flags_are_listed_filtered_paged_and_reviewed(app, client, factory, program, clock):
    program.enrolment_burst = 0
    marketer, member = factory.staff("marketer"), factory.member()
    for n in range(3):  # three devices, three flags
        assert_problem(enrol(client, n, device=f"dev-{n}"), 429, "too_many_enrolments")
        clock.advance(seconds=1)
    with app.app_context():
        fraud.raise_flag(db.session, kind="impossible_travel", subject=f"member:{member['id']}", at=clock.now,
                         member_id=member["id"], details={"speed_kmh": 900.0})
        db.session.commit()
    h = marketer["headers"]
    seen, cursor = [], None
    while True:  # the most recently seen first; the address's flag was seen again with each device
        page = client.get(f"{API}/admin/flags", query_string={"limit": 2} | ({"cursor": cursor} if cursor else {}),
                          headers=h).get_json()
        seen.append([f["subject"] for f in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [[f"member:{member['id']}", "device:dev-2"], ["address:203.0.113.7", "device:dev-1"],
                    ["device:dev-0"]]
    bursts = client.get(f"{API}/admin/flags?kind=enrolment_burst", headers=h).get_json()["items"]
    assert {f["subject"] for f in bursts} == {"device:dev-0", "device:dev-1", "device:dev-2", "address:203.0.113.7"}
    travel = client.get(f"{API}/admin/flags?kind=impossible_travel", headers=h).get_json()["items"]
    assert travel[0]["member_id"] == member["id"] and travel[0]["details"] == {"speed_kmh": 900.0}
    assert travel[0]["last_seen_at"] == "2026-11-22T10:00:03Z"
    r = client.post(f"{API}/admin/flags/{travel[0]['id']}/review", json={"note": "Called the member: a bot"},
                    headers=h)
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["review_note"]) == ("reviewed", "Called the member: a bot")
    assert r.get_json()["reviewed_by"] == f"staff:{marketer['id']}"
    assert [f["id"] for f in client.get(f"{API}/admin/flags?status=open&kind=impossible_travel",
                                        headers=h).get_json()["items"]] == []
    audit = client.get(f"{API}/admin/audit", headers=factory.staff("admin")["headers"]).get_json()["items"]
    assert audit[0]["action"] == "review_flag" and audit[0]["entity_id"] == travel[0]["id"]
    assert_problem(client.post(f"{API}/admin/flags/flg_nope/review", json={}, headers=h), 404, "flag_not_found")
    assert_problem(client.get(f"{API}/admin/flags?kind=nope", headers=h), 422, "validation_error")
    assert_problem(client.get(f"{API}/admin/flags", headers=member["headers"]), 403, "forbidden")
    assert_problem(client.get(f"{API}/admin/flags"), 401, "unauthorized")


def test_a_flood_is_one_flag_per_hour_not_one_row_per_request(app, client, program, clock):
    program.enrolment_burst = 0
    for n in range(30):
        enrol(client, n)
    assert count(app, Flag) == 2  # the device's and the address's
    assert {f.count for f in flags(app)} == {30}
    assert count(app, BurstCounter) == 2
    clock.advance(hours=1)
    enrol(client, 31)
    assert count(app, Flag) == 4
    with app.app_context():
        assert fraud.prune_counters(db.session, clock.now + timedelta(hours=2)) == 2
        db.session.commit()
        db.session.remove()


# ------------------------------------------------------------------ the demo club shows the defences


def test_the_demo_club_shows_a_flagged_check_in_and_a_pending_welcome(app, client, factory, program, clock):
    from wallet import demo
    from wallet.members import Member
    with app.app_context():
        accounts = demo.load(db.session, program)
        demo.load(db.session, program)  # twice: nothing doubles
        db.session.commit()
        member_id = db.session.scalar(select(Member.id).where(Member.email == "member@demo.club"))
        db.session.remove()
    notes = {email: note for _, email, _, note in accounts}
    assert "the welcome points wait for the first purchase" in notes["member@demo.club"]
    assert "flagged" in notes["traveller@demo.club"]
    wallet = client.get(f"{API}/me/wallet", headers=factory.headers(Principal(member_id, "member"))).get_json()
    # 100 spendable: the referral that qualified with her friend's first purchase (the tiers demo); the welcome waits
    assert (wallet["points"]["balance"], wallet["points"]["pending"][0]["awaits"]) == (100, "first_purchase")
    admin = factory.staff("admin")["headers"]
    [flag] = client.get(f"{API}/admin/flags?kind=impossible_travel", headers=admin).get_json()["items"]
    assert flag["count"] == 1 and flag["details"]["distance_km"] > 50
    refused = client.get(f"{API}/admin/check-ins?reason=impossible_travel", headers=admin).get_json()["items"]
    assert len(refused) == 1 and refused[0]["member_id"] == flag["member_id"]
