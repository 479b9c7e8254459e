"""Coupons over HTTP: claiming (free and for points), the member's list, QR codes, void and refund, bulk issue."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from api.extensions import db
from wallet import codes, qr
from wallet.coupons import Coupon, bulk
from wallet.ledger import LedgerEntry
from wallet.tokens import Principal

from ..conftest import assert_problem
from .test_offers import API, TEN_OFF, make_offer


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")


def claim(client, member, offer_id, **headers):
    return client.post(f"{API}/me/coupons", json={"offer_id": offer_id}, headers=member["headers"] | headers)


def refresh(factory, who: dict, role: str = "member") -> dict:
    """New access tokens after the test moved the clock past the old ones' life."""
    return who | {"headers": factory.headers(Principal(who["id"], role, who.get("store_id")))}


def rows(app, model, *where) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.remove()
        return n


def spends(app, member_id) -> list[int]:
    with app.app_context():
        out = list(db.session.scalars(select(LedgerEntry.delta).where(LedgerEntry.member_id == member_id,
                                                                      LedgerEntry.reason == "coupon")
                                      .order_by(LedgerEntry.seq)))
        db.session.remove()
        return out


def test_claim_a_free_coupon(app, client, factory, marketer, clock):
    offer = make_offer(client, marketer, terms="Not with other offers.")
    member = factory.member()
    r = claim(client, member, offer["id"])
    assert r.status_code == 201, r.get_json()
    coupon = r.get_json()
    assert coupon["id"].startswith("cpn_") and coupon["offer_id"] == offer["id"]
    assert (coupon["title"], coupon["terms"], coupon["benefit"]) == ("Ten percent off", "Not with other offers.",
                                                                     TEN_OFF)
    assert coupon["status"] == "issued" and coupon["points_cost"] == 0
    assert coupon["expires_at"] == "2026-12-22T10:00:00Z"  # the programme's 30 days
    assert len(coupon["code"]) == 14 and coupon["code"].count("-") == 2
    assert qr.verify_coupon_token(factory.program.secret, coupon["token"]) == coupon["id"]
    assert len(coupon["token"]) <= 80  # a small QR code
    assert factory.balance(member["id"]) == 0 and spends(app, member["id"]) == []


def test_claim_from_the_catalogue_spends_points(app, client, factory, marketer):
    offer = make_offer(client, marketer, title="Mug", points_cost=120)
    member = factory.member()
    factory.earn(member["id"], 200)
    r = claim(client, member, offer["id"])
    assert r.status_code == 201 and r.get_json()["points_cost"] == 120
    assert factory.balance(member["id"]) == 80
    statement = client.get(f"{API}/me/ledger", headers=member["headers"]).get_json()["items"]
    assert (statement[0]["delta"], statement[0]["reason"], statement[0]["description"]) == (-120, "coupon",
                                                                                          "Reward: Mug")


def test_claim_with_too_few_points_is_422_and_changes_nothing(app, client, factory, marketer):
    offer = make_offer(client, marketer, points_cost=120, total_limit=3)
    member = factory.member()
    factory.earn(member["id"], 119)
    problem = assert_problem(claim(client, member, offer["id"]), 422, "insufficient_points")
    assert (problem["balance"], problem["required"]) == (119, 120)
    assert factory.balance(member["id"]) == 119
    assert rows(app, Coupon) == 0
    admin_view = client.get(f"{API}/admin/offers/{offer['id']}", headers=marketer["headers"]).get_json()
    assert admin_view["remaining"] == 3


def test_limits_and_windows(client, factory, marketer, clock):
    member = factory.member()
    once = make_offer(client, marketer, per_member_limit=1)
    assert claim(client, member, once["id"]).status_code == 201
    assert_problem(claim(client, member, once["id"]), 422, "limit_reached")
    scarce = make_offer(client, marketer, total_limit=1)
    assert claim(client, factory.member(), scarce["id"]).status_code == 201
    assert_problem(claim(client, member, scarce["id"]), 422, "offer_exhausted")
    paused = make_offer(client, marketer, active=False)
    assert_problem(claim(client, member, paused["id"]), 422, "offer_not_active")
    later = make_offer(client, marketer, valid_from="2026-12-01T00:00:00Z")
    assert_problem(claim(client, member, later["id"]), 422, "offer_not_active")
    clock.advance(days=10)
    member = refresh(factory, member)
    assert claim(client, member, later["id"]).status_code == 201
    marketer = refresh(factory, marketer, "marketer")
    rules_only = make_offer(client, marketer, claimable=False)
    assert_problem(claim(client, member, rules_only["id"]), 404, "offer_not_found")
    assert_problem(claim(client, member, "off_NOPE"), 404, "offer_not_found")


def test_claim_body_is_checked(client, factory):
    member = factory.member()
    assert_problem(client.post(f"{API}/me/coupons", json={}, headers=member["headers"]), 422, "validation_error")
    r = client.post(f"{API}/me/coupons", json={"offer_id": "x", "points": 1}, headers=member["headers"])
    assert "points" in assert_problem(r, 422, "validation_error")["errors"]
    assert_problem(client.post(f"{API}/me/coupons", json={"offer_id": "x"}), 401, "unauthorized")
    cashier = factory.staff("cashier")
    assert_problem(client.post(f"{API}/me/coupons", json={"offer_id": "x"}, headers=cashier["headers"]), 403,
                   "forbidden")


def test_a_retried_claim_with_its_idempotency_key_spends_once(app, client, factory, marketer):
    offer = make_offer(client, marketer, points_cost=100)
    member = factory.member()
    factory.earn(member["id"], 500)
    first = claim(client, member, offer["id"], **{"Idempotency-Key": "claim-1"})
    again = claim(client, member, offer["id"], **{"Idempotency-Key": "claim-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json() and again.headers["Idempotency-Replayed"] == "true"
    assert factory.balance(member["id"]) == 400 and spends(app, member["id"]) == [-100]
    assert rows(app, Coupon) == 1


def test_member_lists_their_coupons_with_status(client, factory, marketer, clock):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    member = factory.member()
    offer = make_offer(client, marketer)
    short = make_offer(client, marketer, coupon_valid_days=1)
    redeemed = claim(client, member, offer["id"]).get_json()
    expiring = claim(client, member, short["id"]).get_json()
    kept = claim(client, member, offer["id"]).get_json()
    voided = claim(client, member, offer["id"]).get_json()
    assert client.post(f"{API}/pos/redemptions", json={"coupon": redeemed["code"]},
                       headers=cashier["headers"]).status_code == 201
    client.post(f"{API}/admin/coupons/{voided['id']}/void", json={"reason": "sorry"}, headers=marketer["headers"])
    clock.advance(days=2)
    member = refresh(factory, member)
    items = client.get(f"{API}/me/coupons", headers=member["headers"]).get_json()["items"]
    assert [(c["id"], c["status"]) for c in items] == [
        (voided["id"], "void"), (kept["id"], "issued"), (expiring["id"], "expired"), (redeemed["id"], "redeemed")]
    used = {c["id"]: c for c in items}
    assert used[redeemed["id"]]["redeemed_at"] == "2026-11-22T10:00:00Z"
    assert used[redeemed["id"]]["code"] is None and used[redeemed["id"]]["token"] is None
    only = client.get(f"{API}/me/coupons?status=expired", headers=member["headers"]).get_json()["items"]
    assert [c["id"] for c in only] == [expiring["id"]]
    page = client.get(f"{API}/me/coupons?limit=3", headers=member["headers"]).get_json()
    rest = client.get(f"{API}/me/coupons?limit=3&cursor={page['next_cursor']}", headers=member["headers"]).get_json()
    assert [c["id"] for c in page["items"] + rest["items"]] == [c["id"] for c in items]
    assert rest["next_cursor"] is None
    wallet = client.get(f"{API}/me/wallet", headers=member["headers"]).get_json()
    assert [c["id"] for c in wallet["coupons"]] == [kept["id"]]
    assert wallet["coupons"][0]["code"] == kept["code"]
    assert_problem(client.get(f"{API}/me/coupons?status=lost", headers=member["headers"]), 422, "validation_error")


def test_a_member_never_sees_another_members_coupon(client, factory, marketer):
    offer = make_offer(client, marketer)
    owner, stranger = factory.member(), factory.member()
    coupon = claim(client, owner, offer["id"]).get_json()
    assert client.get(f"{API}/me/coupons", headers=stranger["headers"]).get_json()["items"] == []
    for path in (f"/me/coupons/{coupon['id']}", f"/me/coupons/{coupon['id']}/qr"):
        assert_problem(client.get(API + path, headers=stranger["headers"]), 404, "coupon_not_found")
    assert client.get(f"{API}/me/wallet", headers=stranger["headers"]).get_json()["coupons"] == []
    assert client.get(f"{API}/me/coupons/{coupon['id']}", headers=owner["headers"]).get_json() == coupon


def test_coupon_qr_code_decodes_to_a_token_that_names_the_coupon(client, factory, marketer):
    offer = make_offer(client, marketer)
    member = factory.member()
    coupon = claim(client, member, offer["id"]).get_json()
    r = client.get(f"{API}/me/coupons/{coupon['id']}/qr", headers=member["headers"])
    assert r.status_code == 200 and r.mimetype == "image/png"
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(r.data)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    assert found[0].text == coupon["token"]
    assert qr.verify_coupon_token(factory.program.secret, found[0].text) == coupon["id"]
    svg = client.get(f"{API}/me/coupons/{coupon['id']}/qr?format=svg", headers=member["headers"])
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert_problem(client.get(f"{API}/me/coupons/{coupon['id']}/qr?format=gif", headers=member["headers"]), 422,
                   "validation_error")


def test_no_qr_code_for_a_coupon_that_cannot_be_used(client, factory, marketer):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    member = factory.member()
    coupon = claim(client, member, make_offer(client, marketer)["id"]).get_json()
    client.post(f"{API}/pos/redemptions", json={"coupon": coupon["token"]}, headers=cashier["headers"])
    assert_problem(client.get(f"{API}/me/coupons/{coupon['id']}/qr", headers=member["headers"]), 409,
                   "coupon_already_redeemed")


# ------------------------------------------------------------------ void and refund

def test_void_refunds_the_points_through_a_reversal(app, client, factory, marketer):
    offer = make_offer(client, marketer, points_cost=150)
    member = factory.member()
    factory.earn(member["id"], 200)
    coupon = claim(client, member, offer["id"]).get_json()
    assert factory.balance(member["id"]) == 50
    r = client.post(f"{API}/admin/coupons/{coupon['id']}/void", json={"reason": "store closed"},
                    headers=marketer["headers"])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["status"], body["points_refunded"], body["void_reason"]) == ("void", 150, "store closed")
    assert body["voided_by"] == f"staff:{marketer['id']}"
    assert factory.balance(member["id"]) == 200
    statement = client.get(f"{API}/me/ledger", headers=member["headers"]).get_json()["items"]
    assert [(e["delta"], e["kind"]) for e in statement[:2]] == [(150, "reverse"), (-150, "spend")]
    assert statement[0]["reverses"] == statement[1]["id"]
    again = client.post(f"{API}/admin/coupons/{coupon['id']}/void", json={"reason": "twice"},
                        headers=marketer["headers"])
    assert again.status_code == 200 and again.get_json()["points_refunded"] == 0
    assert factory.balance(member["id"]) == 200
    mine = client.get(f"{API}/me/coupons/{coupon['id']}", headers=member["headers"]).get_json()
    assert mine["status"] == "void" and mine["token"] is None


def test_void_is_for_marketers_and_not_for_redeemed_coupons(client, factory, marketer):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    member = factory.member()
    coupon = claim(client, member, make_offer(client, marketer)["id"]).get_json()
    for who in (member, cashier):
        assert_problem(client.post(f"{API}/admin/coupons/{coupon['id']}/void", json={"reason": "mine"},
                                   headers=who["headers"]), 403, "forbidden")
    client.post(f"{API}/pos/redemptions", json={"coupon": coupon["code"]}, headers=cashier["headers"])
    assert_problem(client.post(f"{API}/admin/coupons/{coupon['id']}/void", json={"reason": "late"},
                               headers=marketer["headers"]), 409, "coupon_already_redeemed")
    assert_problem(client.post(f"{API}/admin/coupons/cpn_NOPE/void", json={"reason": "x" * 5},
                               headers=marketer["headers"]), 404, "coupon_not_found")


def test_marketer_finds_coupons(client, factory, marketer):
    offer = make_offer(client, marketer)
    a, b = factory.member(), factory.member()
    ca = claim(client, a, offer["id"]).get_json()
    claim(client, b, offer["id"])
    found = client.get(f"{API}/admin/coupons?member_id={a['id']}", headers=marketer["headers"]).get_json()["items"]
    assert [c["id"] for c in found] == [ca["id"]]
    assert found[0]["member_id"] == a["id"] and found[0]["source"] == "claim" and found[0]["code"] is None
    by_offer = client.get(f"{API}/admin/coupons?offer_id={offer['id']}&status=issued", headers=marketer["headers"])
    assert len(by_offer.get_json()["items"]) == 2
    one = client.get(f"{API}/admin/coupons/{ca['id']}", headers=marketer["headers"]).get_json()
    assert one["actor"] == f"member:{a['id']}" and one["token"] is None


# ------------------------------------------------------------------ bulk issue

def test_bulk_issue_to_a_list_reports_and_is_idempotent(app, client, factory, marketer):
    offer = make_offer(client, marketer, claimable=False, per_member_limit=1)
    people = [factory.member() for _ in range(4)]
    ids = [p["id"] for p in people] + [people[0]["id"], "mem_NOPE"]
    url = f"{API}/admin/offers/{offer['id']}/issue"
    r = client.post(url, json={"member_ids": ids, "batch": "vip-nov"}, headers=marketer["headers"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"offer_id": offer["id"], "batch": "vip-nov", "issued": 4,
                            "skipped": {"duplicate": 1, "unknown_member": 1}}
    again = client.post(url, json={"member_ids": ids, "batch": "vip-nov"}, headers=marketer["headers"]).get_json()
    assert again["issued"] == 0 and again["skipped"] == {"already_issued": 4, "duplicate": 1, "unknown_member": 1}
    other_round = client.post(url, json={"member_ids": ids, "batch": "vip-dec"}, headers=marketer["headers"])
    assert other_round.get_json()["skipped"]["limit_reached"] == 4  # one per member, ever
    assert rows(app, Coupon) == 4
    mine = client.get(f"{API}/me/coupons", headers=people[1]["headers"]).get_json()["items"]
    assert len(mine) == 1 and mine[0]["status"] == "issued" and mine[0]["token"]


def test_bulk_issue_to_every_active_member(app, client, factory, marketer):
    offer = make_offer(client, marketer, total_limit=3)
    for _ in range(5):
        factory.member()
    r = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"all_members": True},
                    headers=marketer["headers"])
    assert r.get_json() == {"offer_id": offer["id"], "batch": "default", "issued": 3,
                            "skipped": {"offer_exhausted": 2}}
    assert client.get(f"{API}/admin/offers/{offer['id']}", headers=marketer["headers"]).get_json()["remaining"] == 0


def test_bulk_issued_coupons_store_what_was_asked_and_redeem(app, client, factory, marketer, clock):
    """On PostgreSQL bulk issue writes with COPY: a batch name COPY would read as an escape, times and codes."""
    offer = make_offer(client, marketer, coupon_valid_days=7)
    people = [factory.member() for _ in range(3)]
    batch = r'tab\t-back\\slash-"q"'
    r = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"member_ids": [p["id"] for p in people],
                                                                     "batch": batch}, headers=marketer["headers"])
    assert r.status_code == 200 and r.get_json()["issued"] == 3, r.get_json()
    with app.app_context():
        given = db.session.scalars(select(Coupon).where(Coupon.offer_id == offer["id"])).all()
        stored = {c.member_id: (c.issue_key, c.source, c.actor, c.channel, c.status, c.issued_at, c.expires_at,
                                c.points_cost) for c in given}
        codes = {c.member_id: c.code for c in given}
        db.session.remove()
    assert stored == {p["id"]: (f"bulk:{batch}", f"bulk:{batch}", f"staff:{marketer['id']}", "bulk", "issued",
                                clock.now, clock.now + timedelta(days=7), 0) for p in people}
    assert len(set(codes.values())) == 3
    mine = client.get(f"{API}/me/coupons", headers=people[0]["headers"]).get_json()["items"]
    assert [c["code"].replace("-", "") for c in mine] == [codes[people[0]["id"]]]
    cashier = factory.staff("cashier", store_id=factory.store()["id"])
    for coupon in (mine[0]["code"], codes[people[1]["id"]]):
        done = client.post(f"{API}/pos/redemptions", json={"coupon": coupon}, headers=cashier["headers"])
        assert done.status_code == 201, done.get_json()
    again = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"all_members": True, "batch": batch},
                        headers=marketer["headers"]).get_json()
    assert again["skipped"].get("already_issued") == 3


def test_bulk_issue_that_draws_a_code_already_taken_runs_again(client, factory, marketer, monkeypatch):
    offer = make_offer(client, marketer)
    taken = claim(client, factory.member(), offer["id"]).get_json()["code"].replace("-", "")
    people = [factory.member() for _ in range(3)]
    draws, real = [], codes.new_codes

    def unlucky(n):
        draws.append(n)
        fresh = real(n)
        return [taken, *fresh[1:]] if len(draws) == 1 else fresh

    monkeypatch.setattr(bulk, "new_codes", unlucky)  # the name the bulk issue draws codes by
    r = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"member_ids": [p["id"] for p in people]},
                    headers=marketer["headers"])
    assert r.status_code == 200 and r.get_json()["issued"] == 3, r.get_json()
    assert draws == [3, 3]  # the unique code index refused the first draw; the request ran again
    assert offer_coupons(client, marketer, offer["id"]) == 4


def offer_coupons(client, marketer, offer_id: str) -> int:
    return len(client.get(f"{API}/admin/coupons?offer_id={offer_id}", headers=marketer["headers"]).get_json()["items"])


@pytest.mark.parametrize("body", [{}, {"member_ids": []}, {"member_ids": ["m"], "all_members": True},
                                  {"all_members": False}, {"member_ids": "m"}])
def test_bulk_issue_body_is_checked(client, factory, marketer, body):
    offer = make_offer(client, marketer)
    r = client.post(f"{API}/admin/offers/{offer['id']}/issue", json=body, headers=marketer["headers"])
    assert_problem(r, 422, "validation_error")


def test_bulk_issue_is_for_marketers(client, factory, marketer):
    offer = make_offer(client, marketer)
    member = factory.member()
    r = client.post(f"{API}/admin/offers/{offer['id']}/issue", json={"all_members": True}, headers=member["headers"])
    assert_problem(r, 403, "forbidden")
