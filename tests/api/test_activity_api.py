"""GET /me/activity: one timeline read from the event log, across purchases, refunds, check-ins, scans, coupons,
points, joining and consents, newest first, with the channel each came through."""
from __future__ import annotations

import pytest

from tests.conftest import assert_problem
from wallet import tokens

ACTIVITY = "/api/v1/me/activity"


def fresh(factory, member):
    return factory.headers(tokens.Principal(member["id"], "member"))


@pytest.fixture
def story(client, factory, clock):
    """A member's day: a purchase at the till, a check-in, a scan, a refund, a coupon, a manual credit."""
    store = factory.store(code="TLV", name="Dizengoff")
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    member = factory.member()
    factory.rule(title="1 point per shekel", trigger="purchase", reward={"points_per_currency_unit": 1})
    factory.rule(title="Thanks for coming", trigger="check_in", reward={"points": 10})
    factory.rule(title="Discover something new", trigger="scan", conditions={"first_scan": True},
                 reward={"points": 5})
    coffee = client.post("/api/v1/admin/products", json={"sku": "COF", "barcode": "036000291452", "name": "Coffee"},
                         headers=marketer["headers"]).get_json()
    purchase = client.post("/api/v1/pos/purchases", json={
        "card": member["card_number"], "amount": "50.00", "currency": "ILS", "receipt_id": "R-1",
        "items": [{"barcode": "036000291452", "quantity": 2, "unit_price": "25.00"}]}, headers=cashier["headers"])
    assert purchase.status_code == 201, purchase.get_json()
    clock.advance(hours=1)
    r = client.post("/api/v1/me/check-ins", json={"store_id": store["id"], "lat": store["lat"], "lon": store["lon"]},
                    headers=fresh(factory, member))
    assert r.status_code == 201
    clock.advance(minutes=5)
    r = client.post("/api/v1/me/check-ins", json={"store_id": store["id"], "lat": store["lat"], "lon": store["lon"]},
                    headers=fresh(factory, member))
    assert r.status_code == 422
    clock.advance(hours=1)
    r = client.post("/api/v1/me/scans", json={"barcode": "036000291452", "store_id": store["id"]},
                    headers=fresh(factory, member))
    assert r.status_code == 201
    clock.advance(hours=1)
    cashier_headers = factory.headers(tokens.Principal(cashier["id"], "cashier", store["id"]))
    r = client.post(f"/api/v1/pos/purchases/{purchase.get_json()['purchase_id']}/refund", headers=cashier_headers)
    assert r.status_code == 200, r.get_json()
    clock.advance(hours=1)
    marketer_headers = factory.headers(tokens.Principal(marketer["id"], "marketer"))
    r = client.post(f"/api/v1/admin/members/{member['id']}/adjustments", json={"points": 7, "reason": "Sorry!"},
                    headers=marketer_headers)
    assert r.status_code == 201, r.get_json()
    return {"member": member, "headers": fresh(factory, member), "marketer": marketer_headers, "store": store,
            "coffee": coffee, "cashier": cashier_headers}


def walk(client, headers, path=ACTIVITY, **query):
    items, cursor = [], None
    while True:
        r = client.get(path, query_string=query | ({"cursor": cursor} if cursor else {}), headers=headers)
        assert r.status_code == 200, r.get_json()
        items += r.get_json()["items"]
        cursor = r.get_json()["next_cursor"]
        if not cursor:
            return items


def test_the_timeline_is_newest_first_across_channels(client, story):
    items = client.get(ACTIVITY, headers=story["headers"]).get_json()["items"]
    assert [(i["kind"], i["points"], i["channel"]) for i in items] == [
        ("points", 7, "console"),  # the manual credit
        ("points", -50, "till"),  # the refund takes the purchase's points back
        ("refund", None, "till"),
        ("points", 5, "app"), ("scan", 5, "app"),
        ("check_in", 0, "app"),  # the refused repeat
        ("points", 10, "app"), ("check_in", 10, "app"),
        ("purchase", 50, "till"),  # its points are on it: the purchase's one event carries them
        ("enrolment", None, "app"),
    ]
    assert [i["summary"] for i in items] == [
        "Sorry!", "Refund of receipt R-1: points taken back", "Refund of the purchase of 50.00 ILS at Dizengoff",
        "Discover something new", "Scanned Coffee for the first time at Dizengoff",
        "Check-in at Dizengoff not accepted: already checked in recently", "Thanks for coming",
        "Checked in at Dizengoff", "Purchase of 50.00 ILS at Dizengoff", "Joined the club",
    ]
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times, reverse=True)
    purchase = items[-2]
    assert purchase["store"] == {"id": story["store"]["id"], "code": "TLV", "name": "Dizengoff"}
    assert purchase["details"]["receipt_id"] == "R-1" and purchase["details"]["status"] == "refunded"
    [reward] = purchase["details"]["rewards"]
    assert (reward["points"], reward["description"], reward["balance_after"], reward["pending"]) == \
        (50, "1 point per shekel", 50, False)
    assert items[4]["details"]["product_name"] == "Coffee" and items[4]["details"]["first_scan"] is True
    assert items[5]["details"]["reason"] == "check_in_cooldown"
    assert items[0]["details"]["balance_after"] == 22  # 50 + 10 + 5 - 50 + 7


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
def test_pages_cover_the_timeline_exactly_once(client, story, limit):
    whole = client.get(ACTIVITY, query_string={"limit": 200}, headers=story["headers"]).get_json()["items"]
    assert walk(client, story["headers"], limit=limit) == whole


def test_filters_by_kind_and_channel(client, story):
    kinds = [i["kind"] for i in walk(client, story["headers"], kind=["check_in", "scan"], limit=2)]
    assert kinds == ["scan", "check_in", "check_in"]
    till = walk(client, story["headers"], channel="till")
    assert [i["kind"] for i in till] == ["points", "refund", "purchase"]
    assert_problem(client.get(ACTIVITY, query_string={"kind": "gossip"}, headers=story["headers"]),
                   422, "validation_error")


def test_a_member_sees_only_their_own_timeline_and_marketers_see_any(client, factory, story):
    other = factory.member()
    theirs = client.get(ACTIVITY, headers=other["headers"]).get_json()
    assert [i["kind"] for i in theirs["items"]] == ["enrolment"] and theirs["next_cursor"] is None
    mine = client.get(ACTIVITY, headers=story["headers"]).get_json()
    path = f"/api/v1/admin/members/{story['member']['id']}/activity"
    assert client.get(path, headers=story["marketer"]).get_json() == mine
    assert_problem(client.get(path, headers=story["headers"]), 403, "forbidden")
    assert_problem(client.get("/api/v1/admin/members/mem_nope/activity", headers=story["marketer"]), 404, "not_found")
    assert_problem(client.get(ACTIVITY), 401, "unauthorized")


@pytest.mark.parametrize("cursor", ["nonsense", "WyJ4Il0", "WyIyMDI2LTExLTIyVDEwOjAwOjAwKzAwOjAwIiwgImdvc3NpcCIsICJ4Il0",
                                    "WyIyMDI2LTExLTIyVDEwOjAwOjAwIiwgInNjYW4iLCAieCJd"])
def test_a_bad_cursor_is_a_422_problem(client, story, cursor):
    assert_problem(client.get(ACTIVITY, query_string={"cursor": cursor}, headers=story["headers"]),
                   422, "invalid_cursor")


def test_coupons_appear_when_the_offers_feature_is_there(client, factory, story):
    from wallet import coupons
    if not hasattr(coupons, "Coupon"):
        pytest.skip("the offers feature is not built yet")
    r = client.post("/api/v1/admin/offers", json={"title": "Free croissant", "benefit": {"kind": "free_item",
                                                                                         "sku": "COF"}},
                    headers=story["marketer"])
    if r.status_code == 404:
        pytest.skip("no offers endpoint yet")
    assert r.status_code == 201, r.get_json()
    r = client.post("/api/v1/me/coupons", json={"offer_id": r.get_json()["id"]}, headers=story["headers"])
    assert r.status_code == 201, r.get_json()
    first = client.get(ACTIVITY, query_string={"kind": "coupon"}, headers=story["headers"]).get_json()["items"]
    assert [(i["kind"], i["summary"]) for i in first] == [("coupon", "Coupon: Free croissant")]
    assert first[0]["details"]["status"] in ("issued", "active")


def test_consents_and_profile_changes_are_in_the_timeline(client, factory):
    member = factory.member()
    r = client.patch("/api/v1/me", json={"consents": {"marketing_email": True}, "name": "Dana"},
                     headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    r = client.patch("/api/v1/me", json={"consents": {"marketing_email": False}}, headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    items = client.get(ACTIVITY, headers=member["headers"]).get_json()["items"]
    assert [(i["kind"], i["summary"]) for i in items] == [
        ("profile", "Changed consents"), ("consent", "Withdrew consent to marketing email"),
        ("profile", "Changed name, consents"), ("consent", "Agreed to marketing email"),
        ("enrolment", "Joined the club"),
    ]
    assert items[1]["details"] == {"consent": "marketing_email", "granted": False, "source": "profile"}
    only = client.get(ACTIVITY, query_string={"kind": "consent"}, headers=member["headers"]).get_json()["items"]
    assert [i["details"]["granted"] for i in only] == [False, True]
