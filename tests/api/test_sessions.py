"""Tokens that can be taken back: sign-out, password change, staff deactivation and membership closure stop a
principal's tokens on the very next request, in this app and in another one on the same database (another host)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.extensions import db
from wallet import tokens
from wallet.audit import AuditEntry
from wallet.members import Card, Member
from wallet.purchases import Purchase

from ..conftest import assert_problem

TOKEN, LOGOUT, ME, PASSWORD = "/api/v1/auth/token", "/api/v1/auth/logout", "/api/v1/me", "/api/v1/me/password"
STAFF = "/api/v1/admin/staff"


def sign_in(client, email, password):
    r = client.post(TOKEN, json={"email": email, "password": password})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    return body, {"Authorization": f"Bearer {body['access_token']}"}


@pytest.fixture
def other_host(make_app):
    """A second app on the same database: what another API host would answer."""
    return make_app().test_client()


def test_sign_out_stops_the_access_token_and_the_refresh_chain_at_once(client, factory, other_host):
    member = factory.member()
    body, auth = sign_in(client, member["email"], "correct horse")
    _, elsewhere = sign_in(client, member["email"], "correct horse")  # another phone: not signed out
    assert client.get(ME, headers=auth).status_code == 200 and other_host.get(ME, headers=auth).status_code == 200
    r = client.post(LOGOUT, headers=auth)
    assert r.status_code == 204 and r.data == b""
    assert_problem(client.get(ME, headers=auth), 401, "signed_out")
    assert_problem(other_host.get(ME, headers=auth), 401, "signed_out")
    assert_problem(client.post(TOKEN, json={"refresh_token": body["refresh_token"]}), 401, "invalid_token")
    assert_problem(client.post(LOGOUT, headers=auth), 401, "signed_out")
    assert client.get(ME, headers=elsewhere).status_code == 200


def test_a_refreshed_token_belongs_to_the_same_sign_in(client, factory):
    member = factory.member()
    body, first = sign_in(client, member["email"], "correct horse")
    refreshed = client.post(TOKEN, json={"refresh_token": body["refresh_token"]}).get_json()
    second = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert client.post(LOGOUT, headers=second).status_code == 204
    for auth in (first, second):
        assert_problem(client.get(ME, headers=auth), 401, "signed_out")
    assert_problem(client.post(TOKEN, json={"refresh_token": refreshed["refresh_token"]}), 401, "invalid_token")


def test_a_reused_refresh_token_ends_its_sign_in(client, factory):
    member = factory.member()
    body, auth = sign_in(client, member["email"], "correct horse")
    assert client.post(TOKEN, json={"refresh_token": body["refresh_token"]}).status_code == 200
    assert_problem(client.post(TOKEN, json={"refresh_token": body["refresh_token"]}), 401, "refresh_token_reused")
    assert_problem(client.get(ME, headers=auth), 401, "signed_out")


def test_a_token_of_no_sign_in_is_refused(client, app, factory):
    member = factory.member()
    ring = app.extensions["loyalty.keyring"]
    now = app.extensions["loyalty.program"].now()
    bare = tokens.issue_access_token(ring, tokens.Principal(member["id"], "member"), now)
    made_up = tokens.issue_access_token(ring, tokens.Principal(member["id"], "member", session_id="f" * 32), now)
    for token in (bare, made_up):
        assert_problem(client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401, "signed_out")
    # another account's sign-in id does not lend its standing
    other = factory.member()
    sid = tokens.verify_access_token(ring, other["headers"]["Authorization"][7:], now).session_id
    borrowed = tokens.issue_access_token(ring, tokens.Principal(member["id"], "member", session_id=sid), now)
    assert_problem(client.get(ME, headers={"Authorization": f"Bearer {borrowed}"}), 401, "signed_out")


def test_a_password_change_ends_every_other_sign_in(client, factory, other_host, app):
    member = factory.member()
    _, here = sign_in(client, member["email"], "correct horse")
    _, there = sign_in(client, member["email"], "correct horse")
    change = {"current_password": "correct horse", "new_password": "a much better passphrase"}
    r = client.post(PASSWORD, json=change, headers=here)
    assert r.status_code == 204, r.get_json()
    assert client.get(ME, headers=here).status_code == 200  # the caller's own sign-in goes on
    assert_problem(client.get(ME, headers=there), 401, "signed_out")
    assert_problem(other_host.get(ME, headers=there), 401, "signed_out")
    assert_problem(client.post(TOKEN, json={"email": member["email"], "password": "correct horse"}), 401,
                   "invalid_credentials")
    sign_in(client, member["email"], "a much better passphrase")


@pytest.mark.parametrize("change, status, code, field", [
    ({"current_password": "not it at all", "new_password": "a much better passphrase"}, 403, "wrong_password",
     "current_password"),
    ({"current_password": "correct horse", "new_password": "12345678"}, 422, "validation_error", "new_password"),
    ({"current_password": "correct horse", "new_password": "1234567890"}, 422, "validation_error", "new_password"),
    ({"current_password": "correct horse", "new_password": "Password123"}, 422, "validation_error", "new_password"),
    ({"current_password": "correct horse", "new_password": "x" * 129}, 422, "validation_error", "new_password"),
    ({"current_password": "correct horse"}, 422, "validation_error", "new_password"),
])
def test_a_refused_password_change_changes_nothing(client, factory, change, status, code, field):
    member = factory.member()
    _, here = sign_in(client, member["email"], "correct horse")
    _, there = sign_in(client, member["email"], "correct horse")
    body = assert_problem(client.post(PASSWORD, json=change, headers=here), status, code)
    assert field in body["errors"]
    assert client.get(ME, headers=there).status_code == 200
    sign_in(client, member["email"], "correct horse")


@pytest.mark.parametrize("password", ["12345678", "1234567890", "qwertyuiop", "aaaaaaaaaaaa", "abcdefghijk", "short"])
def test_weak_passwords_are_refused_at_enrolment(client, password):
    r = client.post("/api/v1/auth/register", json={"email": "new@example.com", "password": password, "name": "N"})
    assert "password" in assert_problem(r, 422, "validation_error")["errors"]


def test_staff_list_and_deactivation(client, factory, other_host, app):
    admin = factory.staff("admin")
    cashier = factory.staff("cashier", email="till@example.com", password="till password 1")
    _, till = sign_in(client, "till@example.com", "till password 1")
    member = factory.member()
    identify = {"card_number": member["card_number"]}
    assert client.post("/api/v1/pos/identify", json=identify, headers=till).status_code == 200

    listed = client.get(STAFF, query_string={"limit": 1}, headers=admin["headers"]).get_json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    rest = client.get(STAFF, query_string={"cursor": listed["next_cursor"]}, headers=admin["headers"]).get_json()
    everyone = {s["id"]: s for s in listed["items"] + rest["items"]}
    assert set(everyone) == {admin["id"], cashier["id"]} and rest["next_cursor"] is None
    assert set(everyone[cashier["id"]]) == {"id", "email", "name", "role", "store_id", "active"}
    assert everyone[cashier["id"]]["active"] is True

    r = client.post(f"{STAFF}/{cashier['id']}/deactivate", headers=admin["headers"])
    assert r.status_code == 200 and r.get_json()["active"] is False
    for host in (client, other_host):
        assert_problem(host.post("/api/v1/pos/identify", json=identify, headers=till), 401, "signed_out")
        assert_problem(host.post("/api/v1/pos/identify", json=identify, headers=cashier["headers"]), 401, "signed_out")
    assert_problem(client.post(TOKEN, json={"email": "till@example.com", "password": "till password 1"}), 401,
                   "invalid_credentials")
    # once more changes nothing and audits nothing more
    assert client.post(f"{STAFF}/{cashier['id']}/deactivate", headers=admin["headers"]).status_code == 200
    assert client.post(f"{STAFF}/{cashier['id']}/activate", headers=admin["headers"]).get_json()["active"] is True
    assert_problem(client.post("/api/v1/pos/identify", json=identify, headers=till), 401, "signed_out")  # still
    _, again = sign_in(client, "till@example.com", "till password 1")
    assert client.post("/api/v1/pos/identify", json=identify, headers=again).status_code == 200
    with app.app_context():
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == cashier["id"])
                                     .order_by(AuditEntry.id)).all()
        db.session.remove()
    assert [a for a in actions if a != "create"] == ["deactivate", "activate"]


def test_staff_accounts_are_for_admins_only(client, factory):
    admin, marketer, member = factory.staff("admin"), factory.staff("marketer"), factory.member()
    assert_problem(client.get(STAFF, headers=marketer["headers"]), 403, "forbidden")
    assert_problem(client.post(f"{STAFF}/{admin['id']}/deactivate", headers=marketer["headers"]), 403, "forbidden")
    assert_problem(client.get(STAFF, headers=member["headers"]), 403, "forbidden")
    assert_problem(client.post(f"{STAFF}/stf_NOPE/deactivate", headers=admin["headers"]), 404, "not_found")
    assert_problem(client.post(f"{STAFF}/{admin['id']}/deactivate", headers=admin["headers"]), 422,
                   "cannot_deactivate_self")


def test_closing_a_membership(client, factory, other_host, app):
    admin = factory.staff("admin")
    till = factory.staff("cashier")
    member = factory.member()
    _, phone = sign_in(client, member["email"], "correct horse")
    r = client.post(f"/api/v1/admin/members/{member['id']}/close", headers=admin["headers"])
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    for host in (client, other_host):
        assert_problem(host.get(ME, headers=phone), 401, "signed_out")
    assert_problem(client.post(TOKEN, json={"email": member["email"], "password": "correct horse"}), 401,
                   "account_disabled")
    buy = {"card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-1"}
    assert_problem(client.post("/api/v1/pos/purchases", json=buy, headers=till["headers"]), 422, "card_inactive")
    with app.app_context():
        assert db.session.get(Member, member["id"]).status == "closed"
        assert db.session.get(Card, member["card_id"]).status == "blocked"
        db.session.remove()
    again = client.post(f"/api/v1/admin/members/{member['id']}/close", headers=admin["headers"])
    assert again.status_code == 200
    assert_problem(client.post("/api/v1/admin/members/mem_NOPE/close", headers=admin["headers"]), 404, "not_found")
    marketer = factory.staff("marketer")
    assert_problem(client.post(f"/api/v1/admin/members/{member['id']}/close", headers=marketer["headers"]), 403,
                   "forbidden")


def test_the_signed_in_check_costs_one_read_by_key(app, factory):
    """What every request with a token pays: measured, with a generous bound as a guard only."""
    import time

    member = factory.member()
    ring = app.extensions["loyalty.keyring"]
    principal = tokens.verify_access_token(ring, member["headers"]["Authorization"][7:],
                                           app.extensions["loyalty.program"].now())
    with app.app_context():
        session = db.session()
        tokens.check_signed_in(session, principal)
        started = time.perf_counter()
        for _ in range(500):
            tokens.check_signed_in(session, principal)
        per_check = (time.perf_counter() - started) / 500
        db.session.remove()
    assert per_check < 0.005, f"{per_check * 1e6:.0f} us per check"


def test_a_purchase_reads_the_cashiers_sign_in_with_its_card(client, factory, other_host, app):
    """The till's purchase checks the sign-in in its own read (a round trip fewer): after a deactivation the
    purchase, its Idempotency-Key replay and a malformed one are all 401 on any host, and nothing is written."""
    admin = factory.staff("admin")
    cashier = factory.staff("cashier", email="till@example.com", password="till password 1")
    _, till = sign_in(client, "till@example.com", "till password 1")
    member = factory.member()
    buy = {"card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-1"}
    replayable = till | {"Idempotency-Key": "till-r1"}
    assert client.post("/api/v1/pos/purchases", json=buy, headers=replayable).status_code == 201
    assert client.post(f"{STAFF}/{cashier['id']}/deactivate", headers=admin["headers"]).status_code == 200
    for host in (client, other_host):
        assert_problem(host.post("/api/v1/pos/purchases", json=buy | {"receipt_id": "R-2"}, headers=till), 401,
                       "signed_out")
        assert_problem(host.post("/api/v1/pos/purchases", json=buy, headers=replayable), 401, "signed_out")
        assert_problem(host.post("/api/v1/pos/purchases", json=buy | {"amount": "x"}, headers=till), 401,
                       "signed_out")
        assert_problem(host.post("/api/v1/pos/purchases", json=buy | {"card": "0000000000000000"}, headers=till), 401,
                       "signed_out")
    with app.app_context():
        assert [p.receipt_id for p in db.session.scalars(select(Purchase))] == ["R-1"]
        db.session.remove()
