"""Segments over HTTP: CRUD (audited), the field catalogue, preview writing nothing, members as a cursor list, bad
criteria as problems naming the path, members' gender and city, a rule's conditions.segment and an offer's
segment_id."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet.audit import AuditEntry
from wallet.segments import Segment

from ..conftest import assert_problem

BASE = "/api/v1/admin/segments"
HAIFA_WOMEN = {"all": [{"field": "city", "op": "=", "value": "Haifa"}, {"field": "gender", "op": "=",
                                                                        "value": "female"}]}


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")


@pytest.fixture
def club(factory):
    """Three members in Haifa (two women), one in Eilat."""
    return [factory.member(city="Haifa", gender="female"), factory.member(city=" haifa ", gender="female"),
            factory.member(city="Haifa", gender="male"), factory.member(city="Eilat", gender="female")]


def _count(app, model) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
        return value


def test_create_read_update_delete_audited(client, app, marketer, club):
    h = marketer["headers"]
    r = client.post(BASE, json={"name": "Haifa women", "criteria": HAIFA_WOMEN}, headers=h)
    assert r.status_code == 201, r.get_json()
    segment = r.get_json()
    assert segment["criteria"] == HAIFA_WOMEN and segment["id"].startswith("seg_")
    assert client.get(f"{BASE}/{segment['id']}", headers=h).get_json()["name"] == "Haifa women"
    assert [s["id"] for s in client.get(BASE, headers=h).get_json()["items"]] == [segment["id"]]
    assert_problem(client.post(BASE, json={"name": "haifa  WOMEN", "criteria": HAIFA_WOMEN}, headers=h), 409,
                   "segment_name_taken")
    r = client.patch(f"{BASE}/{segment['id']}", json={"criteria": {"field": "city", "op": "=", "value": "Haifa"}},
                     headers=h)
    assert r.status_code == 200 and r.get_json()["criteria"]["field"] == "city"
    assert client.delete(f"{BASE}/{segment['id']}", headers=h).status_code == 204
    assert_problem(client.get(f"{BASE}/{segment['id']}", headers=h), 404, "segment_not_found")
    with app.app_context():
        actions = [(e.action, e.entity) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.at))]
        db.session.remove()
    assert actions == [("create", "segment"), ("update", "segment"), ("delete", "segment")]


def test_preview_counts_and_samples_and_writes_nothing(client, app, marketer, club):
    before = (_count(app, Segment), _count(app, AuditEntry))
    r = client.post(f"{BASE}/preview", json={"criteria": HAIFA_WOMEN}, headers=marketer["headers"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["count"] == 2
    assert sorted(m["id"] for m in body["sample"]) == sorted([club[0]["id"], club[1]["id"]])
    assert body["sample"][0]["city"] in ("Haifa", "haifa") and body["sample"][0]["gender"] == "female"
    assert (_count(app, Segment), _count(app, AuditEntry)) == before


def test_members_are_a_cursor_list(client, marketer, club):
    h = marketer["headers"]
    segment = client.post(BASE, json={"name": "Haifa", "criteria": {"field": "city", "op": "=", "value": "HAIFA"}},
                          headers=h).get_json()
    first = client.get(f"{BASE}/{segment['id']}/members?limit=2", headers=h).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(f"{BASE}/{segment['id']}/members?limit=2&cursor={first['next_cursor']}", headers=h).get_json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    seen = [m["id"] for m in first["items"] + second["items"]]
    assert seen == sorted(c["id"] for c in club[:3])
    assert_problem(client.get(f"{BASE}/{segment['id']}/members?cursor=%%%", headers=h), 422, "invalid_cursor")
    assert_problem(client.get(f"{BASE}/seg_nope/members", headers=h), 404, "segment_not_found")


@pytest.mark.parametrize("criteria, code, path", [
    ({"field": "shoe_size", "op": "=", "value": 1}, "unknown_field", "criteria.field"),
    ({"all": [{"field": "city", "op": "=", "value": "x"}, {"field": "spend_90d", "op": "like", "value": "1"}]},
     "invalid_operator", "criteria.all[1].op"),
    ({"field": "spend_90d", "op": ">", "value": "lots"}, "invalid_value", "criteria.value"),
    ({"field": "city", "op": "=", "value": "<script>alert(1)</script>" * 10}, "invalid_value", "criteria.value"),
])
def test_bad_criteria_are_422_naming_the_path(client, marketer, criteria, code, path):
    for url, body in ((f"{BASE}/preview", {"criteria": criteria}), (BASE, {"name": "x", "criteria": criteria})):
        problem = assert_problem(client.post(url, json=body, headers=marketer["headers"]), 422, code)
        assert list(problem["errors"]) == [path]


def test_limits_and_sql_in_a_value(client, marketer, club):
    h = marketer["headers"]
    deep: dict = {"field": "city", "op": "=", "value": "Haifa"}
    for depth in range(50):
        deep = {"not": deep}
        if depth == 12:  # past the criteria's 10 levels, inside what the API reads at all
            problem = assert_problem(client.post(f"{BASE}/preview", json={"criteria": deep}, headers=h), 422,
                                     "criteria_too_deep")
            assert "at most 10 levels" in problem["detail"]
    # 50 deep: the body itself is refused before anything reads it (the API's JSON depth limit)
    assert_problem(client.post(f"{BASE}/preview", json={"criteria": deep}, headers=h), 400, "malformed_json")
    wide = {"any": [{"field": "visits_90d", "op": "=", "value": i} for i in range(1000)]}
    assert_problem(client.post(f"{BASE}/preview", json={"criteria": wide}, headers=h), 422, "criteria_too_large")
    sql = {"field": "city", "op": "=", "value": "Haifa' OR 1=1; DROP TABLE members; --"}
    r = client.post(f"{BASE}/preview", json={"criteria": sql}, headers=h)
    assert r.status_code == 200 and r.get_json()["count"] == 0
    assert client.post(f"{BASE}/preview", json={"criteria": {"all": []}}, headers=h).get_json()["count"] == 4


def test_only_marketers_and_admins(client, club, factory):
    assert_problem(client.post(f"{BASE}/preview", json={"criteria": HAIFA_WOMEN}, headers=club[0]["headers"]), 403,
                   "forbidden")
    cashier = factory.staff("cashier")
    assert_problem(client.get(BASE, headers=cashier["headers"]), 403, "forbidden")
    assert client.get(f"{BASE}/fields", headers=factory.staff("admin")["headers"]).status_code == 200


def test_the_field_catalogue(client, marketer):
    items = client.get(f"{BASE}/fields", headers=marketer["headers"]).get_json()["items"]
    by_name = {f["name"]: f for f in items}
    assert {"tier", "spend_30d", "spend_90d", "spend_365d", "purchases_90d", "purchases_365d", "visits_90d",
            "days_since_last_purchase", "points_balance", "age", "gender", "city", "enrolled_days", "referrals",
            "referral_value", "influence", "preferences.email", "consents.marketing_email"} <= set(by_name)
    assert by_name["spend_90d"]["type"] == "decimal"
    assert "never bought" in by_name["days_since_last_purchase"]["null"]
    assert by_name["gender"]["choices"] == ["female", "male", "other"]


def test_the_openapi_document_lists_the_fields(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schema = spec["components"]["schemas"]["SegmentField"]
    assert "days_since_last_purchase" in schema["properties"]["name"]["enum"]
    assert "/api/v1/admin/segments/{segment_id}/members" in spec["paths"]
    assert "visits_90d" in spec["components"]["schemas"]["Segment"]["properties"]["criteria"]["description"]


# ------------------------------------------------------------------ members' gender and city

def test_gender_and_city_on_register_patch_admin_view_and_export(client, factory, marketer):
    r = client.post("/api/v1/auth/register", json={"email": "dana@example.com", "password": "a long secret",
                                                   "name": "Dana", "gender": "female", "city": "  Tel   Aviv "})
    assert r.status_code == 201, r.get_json()
    member = r.get_json()["member"]
    assert (member["gender"], member["city"]) == ("female", "Tel Aviv")
    h = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    assert_problem(client.patch("/api/v1/me", json={"gender": "robot"}, headers=h), 422, "validation_error")
    assert_problem(client.patch("/api/v1/me", json={"city": "a\u0000b"}, headers=h), 422, "validation_error")
    r = client.patch("/api/v1/me", json={"gender": None, "city": "חיפה"}, headers=h)
    assert r.status_code == 200 and (r.get_json()["gender"], r.get_json()["city"]) == (None, "חיפה")
    detail = client.get(f"/api/v1/admin/members/{member['id']}", headers=marketer["headers"]).get_json()
    assert detail["member"]["city"] == "חיפה"
    profile = client.get("/api/v1/me/export", headers=h).get_json()["profile"]
    assert profile["city"] == "חיפה" and profile["gender"] is None


# ------------------------------------------------------------------ rules and offers restricted to a segment

def test_an_offer_with_a_segment_is_seen_and_claimed_only_by_its_members(client, marketer, club):
    h = marketer["headers"]
    segment = client.post(BASE, json={"name": "Haifa women", "criteria": HAIFA_WOMEN}, headers=h).get_json()
    assert_problem(client.post("/api/v1/admin/offers", json={"title": "x", "benefit": {"kind": "percent_off",
                                                                                       "value": "10"},
                                                             "segment_id": "seg_nope"}, headers=h),
                   422, "unknown_segment")
    offer = client.post("/api/v1/admin/offers", json={"title": "For Haifa", "benefit": {"kind": "percent_off",
                                                                                       "value": "10"},
                                                      "segment_id": segment["id"]}, headers=h).get_json()
    everyone = client.post("/api/v1/admin/offers", json={"title": "For all", "benefit": {"kind": "percent_off",
                                                                                        "value": "5"}},
                           headers=h).get_json()
    assert offer["segment_id"] == segment["id"] and everyone["segment_id"] is None
    inside, outside = club[0]["headers"], club[3]["headers"]
    assert {o["id"] for o in client.get("/api/v1/offers", headers=inside).get_json()["items"]} == \
        {offer["id"], everyone["id"]}
    assert {o["id"] for o in client.get("/api/v1/offers", headers=outside).get_json()["items"]} == {everyone["id"]}
    assert_problem(client.get(f"/api/v1/offers/{offer['id']}", headers=outside), 404, "offer_not_found")
    assert_problem(client.post("/api/v1/me/coupons", json={"offer_id": offer["id"]}, headers=outside), 404,
                   "offer_not_found")
    assert client.post("/api/v1/me/coupons", json={"offer_id": offer["id"]}, headers=inside).status_code == 201
    in_use = assert_problem(client.delete(f"{BASE}/{segment['id']}", headers=h), 409, "segment_in_use")
    assert in_use["errors"]["offers"] == [offer["id"]]


def test_a_rule_with_a_segment_rewards_only_its_members(client, factory, marketer, club):
    h = marketer["headers"]
    segment = client.post(BASE, json={"name": "Haifa women", "criteria": HAIFA_WOMEN}, headers=h).get_json()
    rule = {"title": "Haifa bonus", "trigger": "purchase", "reward": {"points": 50},
            "conditions": {"segment": segment["id"]}}
    assert_problem(client.post("/api/v1/admin/rules", json=rule | {"conditions": {"segment": "seg_nope"}},
                               headers=h), 422, "unknown_segment")
    r = client.post("/api/v1/admin/rules", json=rule, headers=h)
    assert r.status_code == 201, r.get_json()
    rule_id = r.get_json()["id"]
    cashier = factory.staff("cashier")
    answers = []
    for i, member in enumerate((club[0], club[3])):
        r = client.post("/api/v1/pos/purchases", headers=cashier["headers"],
                        json={"card": member["card_number"], "amount": "10.00", "currency": "ILS",
                              "receipt_id": f"seg-{i}"})
        assert r.status_code == 201, r.get_json()
        answers.append(r.get_json()["points_awarded"])
    assert answers == [50, 0]
    assert "selected members" in client.get("/api/v1/rules").get_data(as_text=True)
    in_use = assert_problem(client.delete(f"{BASE}/{segment['id']}", headers=h), 409, "segment_in_use")
    assert in_use["errors"]["rules"] == [rule_id]


def test_the_demo_club_has_segments_with_members(app, client, factory):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    assert runner.invoke(args=["demo"]).exit_code == 0  # safe twice
    h = factory.staff("marketer")["headers"]
    found = {s["name"]: s for s in client.get(BASE, headers=h).get_json()["items"]}
    assert {"Lapsed high spenders", "Haifa women", "Advocates"} <= set(found)
    counts = {}
    for name in ("Lapsed high spenders", "Haifa women", "Advocates"):
        preview = client.post(f"{BASE}/preview", json={"criteria": found[name]["criteria"]}, headers=h).get_json()
        counts[name] = sorted(m["email"] for m in preview["sample"])
    assert counts == {"Lapsed high spenders": ["avi@demo.club", "maya@demo.club"],
                      "Haifa women": ["maya@demo.club", "shira@demo.club"],
                      "Advocates": ["maya@demo.club", "member@demo.club", "shira@demo.club"]}
