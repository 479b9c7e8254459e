"""``GET /admin/events`` (the log in commit order, followed with a cursor) and ``GET /admin/audit`` (staff changes,
personal fields by name only); both admin only. And each event type's data schema in the OpenAPI document."""
from __future__ import annotations

from datetime import UTC, datetime

from api.extensions import db
from wallet import audit, events

from ..conftest import assert_problem
from ..outbox import settle

WHEN = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def emit(app, specs) -> list[str]:
    with app.app_context():
        ids = [events.emit(db.session, type_, member_id=member, channel="app", actor=f"member:{member}", data=data,
                           occurred_at=WHEN).id for type_, member, data in specs]
        settle(db.session)
        db.session.remove()
    return ids


def earned(n: int) -> dict:
    return {"entry_id": f"led_{n}", "points": n, "balance_after": n}


def test_the_log_pages_in_commit_order_and_a_follower_sees_what_comes_next(app, client, factory):
    headers = factory.staff("admin")["headers"]
    ids = emit(app, [("points.earned", "mem_a", earned(n)) for n in range(1, 6)])
    first = client.get("/api/v1/admin/events?limit=2", headers=headers).get_json()
    assert [e["id"] for e in first["items"]] == ids[:2]
    assert first["items"][0] == {"id": ids[0], "type": "points.earned", "occurred_at": "2026-11-22T10:00:00Z",
                                 "member_id": "mem_a", "store_id": None, "channel": "app", "actor": "member:mem_a",
                                 "data": {"entry_id": "led_1", "points": 1, "balance_after": 1}}
    second = client.get(f"/api/v1/admin/events?limit=2&after={first['next_cursor']}", headers=headers).get_json()
    assert [e["id"] for e in second["items"]] == ids[2:4]
    third = client.get(f"/api/v1/admin/events?after={second['next_cursor']}", headers=headers).get_json()
    assert [e["id"] for e in third["items"]] == ids[4:]
    caught_up = client.get(f"/api/v1/admin/events?after={third['next_cursor']}", headers=headers).get_json()
    assert caught_up == {"items": [], "next_cursor": None}
    # the follower keeps its cursor and polls: new events come after it
    later = emit(app, [("coupon.issued", "mem_b", {"coupon_id": "cpn_1", "offer_id": "off_1"})])
    again = client.get(f"/api/v1/admin/events?after={third['next_cursor']}", headers=headers).get_json()
    assert [e["id"] for e in again["items"]] == later


def test_filters_and_bad_cursors(app, client, factory):
    headers = factory.staff("admin")["headers"]
    ids = emit(app, [("points.earned", "mem_a", earned(1)), ("points.earned", "mem_b", earned(2)),
                     ("coupon.issued", "mem_a", {"coupon_id": "cpn_1", "offer_id": "off_1"})])
    by_member = client.get("/api/v1/admin/events?member_id=mem_a", headers=headers).get_json()
    assert [e["id"] for e in by_member["items"]] == [ids[0], ids[2]]
    by_type = client.get("/api/v1/admin/events?type=coupon.issued,points.earned&member_id=mem_b",
                         headers=headers).get_json()
    assert [e["id"] for e in by_type["items"]] == [ids[1]]
    assert_problem(client.get("/api/v1/admin/events?type=purchase.made", headers=headers), 422, "validation_error")
    assert_problem(client.get("/api/v1/admin/events?after=nonsense", headers=headers), 422, "invalid_cursor")
    assert_problem(client.get("/api/v1/admin/events?after=WzEsMiwzXQ", headers=headers), 422, "invalid_cursor")
    assert_problem(client.get("/api/v1/admin/events?limit=201", headers=headers), 422, "validation_error")


def test_each_types_data_schema_is_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for type_ in events.TYPES:
        assert schemas[f"EventData.{type_}"]["title"] == type_
    purchase = schemas["EventData.purchase.recorded"]
    assert {"purchase_id", "amount", "currency", "points_awarded"} <= set(purchase["properties"])
    data = schemas["Event"]["properties"]["data"]
    assert {"$ref": "#/components/schemas/EventData.coupon.redeemed"} in data["anyOf"]


def test_the_audit_log_names_personal_fields_without_their_values(app, client, factory):
    admin = factory.staff("admin")
    marketer = factory.staff("marketer")
    with app.app_context():
        audit.record(db.session, {"id": marketer["id"], "role": "marketer"}, "update", "store", "sto_1",
                     {"name": "Dizengoff", "lat": 32.07, "radius_m": 150}, {"name": "Dizengoff", "lat": 32.08,
                                                                             "radius_m": 200})
        audit.record(db.session, {"id": admin["id"], "role": "admin"}, "update", "member", "mem_1",
                     {"email": "old@example.com", "phone": "050", "tier": "basic"},
                     {"email": "new@example.com", "phone": "050", "tier": "gold"})
        db.session.commit()
        db.session.remove()
    headers = admin["headers"]
    items = client.get("/api/v1/admin/audit", headers=headers).get_json()["items"]
    member, store = items
    assert member["entity"] == "member" and member["actor"] == {"id": admin["id"], "email": admin["email"],
                                                                "role": "admin"}
    assert member["before"] == {"email": "(changed)", "tier": "basic"}
    assert member["after"] == {"email": "(changed)", "tier": "gold"}
    assert member["changed"] == ["email", "tier"]
    assert "old@example.com" not in str(items) and "new@example.com" not in str(items) and "050" not in str(items)
    # a store's coordinates are the club's data, not a person's: kept
    assert store["before"] == {"name": "Dizengoff", "lat": 32.07, "radius_m": 150}
    assert store["changed"] == ["lat", "radius_m"] and store["actor"]["email"] == marketer["email"]
    assert store["at"].endswith("Z")

    def ids(query):
        return [i["entity_id"] for i in client.get(f"/api/v1/admin/audit?{query}", headers=headers).get_json()["items"]]
    assert ids(f"actor_id={marketer['id']}") == ["sto_1"]
    assert ids("entity=member") == ["mem_1"]
    assert ids("entity_id=sto_1") == ["sto_1"]
    assert ids("entity=member&entity_id=sto_1") == []
    page = client.get("/api/v1/admin/audit?limit=1", headers=headers).get_json()
    rest = client.get(f"/api/v1/admin/audit?limit=1&cursor={page['next_cursor']}", headers=headers).get_json()
    assert [page["items"][0]["entity"], rest["items"][0]["entity"]] == ["member", "store"]
    assert rest["next_cursor"] is None
