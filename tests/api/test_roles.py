"""Roles: every route of the till and the marketers' side checks who calls, before it reads anything.

The routes are read from the app's URL map, so a route added later is covered without touching this file.
"""
from __future__ import annotations

import re

import pytest

from tests.conftest import assert_problem

PUBLIC = ("/api/v1/auth/", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/redoc", "/static/",
          "/api/v1/rules",  # the rules' terms are public (issue 18)
          "/api/v1/unsubscribe/",  # RFC 8058: the signed link is the authority, no sign-in (issue 15)
          "/api/v1/m/",  # a message's tracked links and open pixel: the signed link is the authority (issue 15)
          "/api/v1/contests/")  # a contest's public page: anyone checks the draw (issue 14)
WRITE = {"POST", "PUT", "PATCH"}


def routes(app, prefix: str) -> list[tuple[str, str]]:
    """(method, url) for every route under ``prefix``, path parameters filled with an id that exists nowhere."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or rule.rule.startswith(PUBLIC):
            continue
        url = re.sub(r"<[^>]+>", "xyz_0000", rule.rule)
        out.extend((method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return out


def call(client, method: str, url: str, headers=None):
    kwargs = {"json": {}} if method in WRITE else {}
    return client.open(url, method=method, headers=headers or {}, **kwargs)


@pytest.fixture
def people(factory):
    return {"member": factory.member(), "cashier": factory.staff("cashier"),
            "marketer": factory.staff("marketer"), "admin": factory.staff("admin")}


def test_the_url_map_has_the_routes_we_expect(app):
    assert len(routes(app, "/api/v1/pos/")) >= 3
    assert len(routes(app, "/api/v1/admin/")) >= 5
    assert ("GET", "/api/v1/me") in routes(app, "/api/v1/me")


def test_401_without_a_token_everywhere(app, client):
    checked = routes(app, "/api/v1/")
    for method, url in checked:
        r = call(client, method, url)
        assert r.status_code == 401, (method, url, r.status_code, r.get_data(as_text=True))
        assert r.get_json()["code"] == "unauthorized", (method, url)
    assert len(checked) > 10


def test_401_with_a_garbage_token_everywhere(app, client):
    for method, url in routes(app, "/api/v1/"):
        r = call(client, method, url, {"Authorization": "Bearer not.a.token"})
        assert_problem(r, 401, "invalid_token")


def test_a_member_can_not_reach_the_till_or_the_marketers_side(app, client, people):
    for method, url in routes(app, "/api/v1/pos/") + routes(app, "/api/v1/admin/"):
        r = call(client, method, url, people["member"]["headers"])
        assert r.status_code == 403, (method, url, r.status_code, r.get_data(as_text=True))
        assert r.get_json()["code"] == "forbidden"


def test_a_cashier_can_not_reach_the_marketers_side(app, client, people):
    for method, url in routes(app, "/api/v1/admin/"):
        r = call(client, method, url, people["cashier"]["headers"])
        assert r.status_code == 403, (method, url, r.status_code, r.get_data(as_text=True))


def test_staff_have_no_member_wallet(app, client, people):
    for role in ("cashier", "marketer", "admin"):
        for url in ("/api/v1/me", "/api/v1/me/wallet", "/api/v1/me/card/token", "/api/v1/me/card/qr",
                    "/api/v1/me/ledger"):
            assert_problem(client.get(url, headers=people[role]["headers"]), 403, "forbidden")


def test_marketers_and_admins_can_not_use_the_till(app, client, people):
    for role in ("marketer", "admin"):
        for method, url in routes(app, "/api/v1/pos/"):
            r = call(client, method, url, people[role]["headers"])
            assert r.status_code == 403, (role, method, url, r.status_code)


def test_a_cashier_without_a_store_is_refused(client, factory):
    from wallet import tokens
    unbound = factory.headers(tokens.Principal("stf_01JZZZZZZZZZZZZZZZZZZZZZZZ", "cashier", None))
    r = client.post("/api/v1/pos/identify", json={"card_number": "8000000000000000"}, headers=unbound)
    assert_problem(r, 403, "forbidden")


def test_only_an_admin_creates_staff(client, people, factory):
    store = factory.store()
    body = {"email": "new.cashier@example.com", "password": "long enough", "role": "cashier",
            "store_id": store["id"]}
    for role in ("member", "cashier", "marketer"):
        assert_problem(client.post("/api/v1/admin/staff", json=body, headers=people[role]["headers"]),
                       403, "forbidden")
    r = client.post("/api/v1/admin/staff", json=body, headers=people["admin"]["headers"])
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["role"] == "cashier" and created["store_id"] == store["id"] and "password" not in created
    token = client.post("/api/v1/auth/token", json={"email": body["email"], "password": body["password"]})
    assert token.status_code == 200 and token.get_json()["role"] == "cashier"


def test_admin_staff_endpoint_validates(client, people, factory):
    admin = people["admin"]["headers"]
    body = {"email": "x@example.com", "password": "long enough", "role": "cashier"}
    assert_problem(client.post("/api/v1/admin/staff", json=body, headers=admin), 422, "store_required")
    r = client.post("/api/v1/admin/staff", json=body | {"store_id": "sto_nope"}, headers=admin)
    assert_problem(r, 422, "unknown_store")
    r = client.post("/api/v1/admin/staff", json=body | {"role": "owner"}, headers=admin)
    assert "role" in assert_problem(r, 422, "validation_error")["errors"]
    r = client.post("/api/v1/admin/staff", json=body | {"role": "member"}, headers=admin)
    assert "role" in assert_problem(r, 422, "validation_error")["errors"]
    r = client.post("/api/v1/admin/staff", json={"email": people["member"]["email"], "password": "long enough",
                                                 "role": "marketer"}, headers=admin)
    assert_problem(r, 409, "email_taken")


def test_member_detail_is_for_marketers_only(client, people):
    url = f"/api/v1/admin/members/{people['member']['id']}"
    for role in ("member", "cashier"):
        assert_problem(client.get(url, headers=people[role]["headers"]), 403, "forbidden")
    for role in ("marketer", "admin"):
        r = client.get(url, headers=people[role]["headers"])
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["member"]["id"] == people["member"]["id"]
        assert r.get_json()["member"]["balance"] == 0
        assert "password_hash" not in r.get_data(as_text=True)


def test_adjustments_are_for_marketers_only(client, people, factory):
    url = f"/api/v1/admin/members/{people['member']['id']}/adjustments"
    body = {"points": 25, "reason": "goodwill gesture"}
    for role in ("member", "cashier"):
        assert_problem(client.post(url, json=body, headers=people[role]["headers"]), 403, "forbidden")
    assert factory.balance(people["member"]["id"]) == 0
    r = client.post(url, json=body, headers=people["marketer"]["headers"])
    assert r.status_code == 201, r.get_json()
    assert factory.balance(people["member"]["id"]) == 25



def test_marketers_find_members(client, factory, people):
    dana = factory.member(email="dana.levi@example.com", name="Dana Levi", phone="+972501234567")
    factory.member(email="eli@example.com", name="Eli 100%_off")
    headers = people["marketer"]["headers"]

    def found(q: str) -> list[str]:
        r = client.get("/api/v1/admin/members", query_string={"q": q}, headers=headers)
        assert r.status_code == 200, r.get_json()
        return [m["id"] for m in r.get_json()["items"]]

    assert found("DANA.levi") == [dana["id"]]
    assert found("levi") == [dana["id"]]
    assert found("+972501234567") == [dana["id"]]
    assert found(dana["card_number"]) == [dana["id"]]
    eli = found("100%_off")
    assert len(eli) == 1 and found("%") == eli and found("_") == eli  # % and _ are characters, not wildcards
    assert found("nobody-like-this") == []


def test_member_list_pages(client, factory, people):
    ids = sorted(factory.member()["id"] for _ in range(5)) + [people["member"]["id"]]
    seen, cursor = [], None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/admin/members", query_string=query, headers=people["admin"]["headers"]).get_json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
