"""Every staff change to stores, products, offers, rules, staff and members' points is in the audit log: who, what,
before and after; a staff member's personal fields by name only; nothing for a change that was refused."""
from __future__ import annotations

API = "/api/v1/admin"


def audit(client, admin, **query):
    r = client.get(f"{API}/audit", query_string=query, headers=admin["headers"])
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_a_store_created_changed_and_archived(client, factory):
    admin = factory.staff("admin")
    marketer = factory.staff("marketer")
    body = {"code": "TLV-1", "name": "Dizengoff", "lat": 32.08, "lon": 34.77, "radius_m": 150,
            "timezone": "Asia/Jerusalem", "check_in_cooldown_minutes": 240}
    store = client.post(f"{API}/stores", json=body, headers=marketer["headers"]).get_json()
    assert client.patch(f"{API}/stores/{store['id']}", json={"radius_m": 300},
                        headers=marketer["headers"]).status_code == 200
    assert client.patch(f"{API}/stores/{store['id']}", json={"radius_m": 5},
                        headers=marketer["headers"]).status_code == 422  # refused: not logged
    assert client.delete(f"{API}/stores/{store['id']}", headers=marketer["headers"]).status_code == 204
    entries = audit(client, admin, entity="store", entity_id=store["id"])
    assert [e["action"] for e in entries] == ["archive", "update", "create"]  # newest first
    archive, update, create = entries
    assert create["before"] is None and create["after"]["radius_m"] == 150 and create["after"]["lat"] == 32.08
    assert "radius_m" in update["changed"] and "code" not in update["changed"]
    assert (update["before"]["radius_m"], update["after"]["radius_m"]) == (150, 300)
    assert archive["after"] is None and archive["before"]["code"] == "TLV-1"
    assert create["actor"] == {"id": marketer["id"], "email": marketer["email"], "role": "marketer"}


def test_rules_offers_products_points_and_staff(client, factory):
    admin = factory.staff("admin")
    marketer = factory.staff("marketer")
    h = marketer["headers"]
    rule = client.post(f"{API}/rules", json={"title": "Double", "trigger": "purchase", "reward": {"points": 5}},
                       headers=h).get_json()
    assert client.post(f"{API}/rules/{rule['id']}/pause", headers=h).status_code == 200
    offer = client.post(f"{API}/offers", json={"title": "Coffee", "benefit": {"kind": "percent_off", "value": "10"}},
                        headers=h)
    assert offer.status_code == 201, offer.get_json()
    offer = offer.get_json()
    product = client.post(f"{API}/products", json={"sku": "COF", "barcode": "4006381333931", "name": "Coffee"},
                          headers=h)
    assert product.status_code == 201, product.get_json()
    product = product.get_json()
    member = factory.member()
    assert client.post(f"{API}/members/{member['id']}/adjustments", json={"points": 25, "reason": "goodwill"},
                       headers=h).status_code == 201
    staff = client.post(f"{API}/staff", json={"email": "new.cashier@example.com", "password": "a long secret",
                                             "role": "marketer", "name": "Ruth Katz"}, headers=admin["headers"])
    assert staff.status_code == 201, staff.get_json()
    seen = {(e["entity"], e["action"], e["entity_id"]) for e in audit(client, admin, limit=200)}
    assert {("rule", "create", rule["id"]), ("rule", "pause", rule["id"]), ("offer", "create", offer["id"]),
            ("product", "create", product["id"]), ("member", "adjust_points", member["id"]),
            ("staff", "create", staff.get_json()["id"])} <= seen
    made = audit(client, admin, entity="staff", entity_id=staff.get_json()["id"])[0]
    assert made["after"]["email"] == "(changed)" and made["after"]["name"] == "(changed)"
    assert made["after"]["role"] == "marketer" and "Ruth" not in str(made)
    points = audit(client, admin, entity="member", entity_id=member["id"])[0]
    assert points["after"]["points"] == 25 and points["after"]["reason"] == "goodwill"


def test_only_admins_read_the_log(client, factory):
    marketer = factory.staff("marketer")
    r = client.get(f"{API}/audit", headers=marketer["headers"])
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"
