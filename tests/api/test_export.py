"""GET /me/export (issue 18): everything held about the member as JSON, under API.md's keys; nothing of another
member's; a fixed number of queries however much the member has."""
from __future__ import annotations

from sqlalchemy import event

from api.extensions import db

from ..conftest import assert_problem
from .test_offers import make_offer

API = "/api/v1"
KEYS = {"profile", "consents", "consent_history", "ledger", "purchases", "coupons", "check_ins", "scans", "referrals",
        "grants", "messages", "social", "tiers", "contest_entries"}


def active_member(client, factory, *, store, cashier, marketer, offer, n: int, referral_code=None):
    """A member with n purchases, a consent given then withdrawn, a claimed coupon, a check-in and a scan."""
    member = factory.member(phone=f"+972 50 000 000{n}", consents={"marketing_email": True})
    h = member["headers"]
    if referral_code:
        r = client.post(f"{API}/me/referral", json={"referral_code": referral_code}, headers=h)
        assert r.status_code == 201, r.get_json()
    assert client.patch(f"{API}/me", json={"consents": {"marketing_email": False}}, headers=h).status_code == 200
    for i in range(n):
        r = client.post(f"{API}/pos/purchases", headers=cashier["headers"],
                        json={"card": member["card_number"], "amount": "30.00", "currency": "ILS",
                              "receipt_id": f"{member['id']}-{i}", "items": [{"barcode": "96385074", "quantity": 1,
                                                                            "unit_price": "29.90"}]})
        assert r.status_code == 201, r.get_json()
    assert client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=h).status_code == 201
    assert client.post(f"{API}/me/check-ins", json={"store_id": store["id"], "lat": store["lat"], "lon": store["lon"],
                                                    "accuracy_m": 10}, headers=h).status_code == 201
    assert client.post(f"{API}/me/scans", json={"barcode": "96385074", "store_id": store["id"]},
                       headers=h).status_code == 201
    return member


def test_export_holds_everything_of_the_member_and_nothing_of_another(app, client, factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1})
    factory.rule(title="Thanks for coming", trigger="check_in", reward={"points": 10})
    client.post(f"{API}/admin/products", json={"sku": "MUG", "barcode": "96385074", "name": "Club mug",
                                               "category": "homeware", "price": "29.90"}, headers=marketer["headers"])
    offer = make_offer(client, marketer, title="Free coffee")
    kw = {"store": store, "cashier": cashier, "marketer": marketer, "offer": offer}
    one = active_member(client, factory, n=1, **kw)
    with app.app_context():
        from wallet.members import get_member
        code = get_member(db.session, one["id"]).referral_code
        db.session.remove()
    other = active_member(client, factory, n=3, referral_code=code, **kw)

    r = client.get(f"{API}/me/export", headers=one["headers"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert set(body) == KEYS
    assert body["profile"]["id"] == one["id"] and body["profile"]["email"] == one["email"]
    assert body["profile"]["phone"] == "+972500000001"  # kept in E.164
    assert "password_hash" not in body["profile"]
    assert [c["number"] for c in body["profile"]["cards"]] == [one["card_number"]]
    assert body["profile"]["points"] == 40  # 30 for the purchase, 10 for the check-in
    assert body["consents"]["marketing_email"]["granted"] is False
    assert [(h["consent"], h["granted"], h["source"]) for h in body["consent_history"]] == [
        ("marketing_email", True, "enrolment"), ("marketing_email", False, "profile")]
    assert [(e["delta"], e["kind"]) for e in body["ledger"]] == [(30, "earn"), (10, "earn")]
    assert len(body["purchases"]) == 1 and body["purchases"][0]["amount"] == "30.00"
    assert [(i["barcode"], i["quantity"]) for i in body["purchases"][0]["items"]] == [("0000096385074", 1)]
    assert [(c["title"], c["status"]) for c in body["coupons"]] == [("Free coffee", "issued")]
    assert len(body["check_ins"]) == 1 and body["check_ins"][0]["status"] == "accepted"
    assert len(body["scans"]) == 1 and body["scans"][0]["first_scan"] is True
    assert [r["role"] for r in body["referrals"]] == ["referrer"]
    assert len(body["grants"]) == 2
    assert body["messages"] == []
    assert body["social"] == {"networks": [], "attributes": {}, "share_consent": False}
    assert body["tiers"] == [] and body["contest_entries"] == []
    # nothing of the other member's: no id, email, card number or key of theirs anywhere in it
    text = r.get_data(as_text=True)
    for value in (other["id"], other["email"], other["card_number"]):
        assert value not in text

    theirs = client.get(f"{API}/me/export", headers=other["headers"]).get_json()
    assert len(theirs["purchases"]) == 3 and len(theirs["ledger"]) == 4
    assert [r["role"] for r in theirs["referrals"]] == ["referred"] and one["id"] not in str(theirs)

    # a fixed number of queries: the member with three purchases costs what the one with one does
    def queries(member) -> int:
        with app.app_context():
            engine = db.engine
        seen: list[str] = []

        def listen(conn, cursor, statement, *rest):
            seen.append(statement)
        event.listen(engine, "before_cursor_execute", listen)
        try:
            assert client.get(f"{API}/me/export", headers=member["headers"]).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return len(seen)
    assert queries(one) == queries(other)


def test_export_needs_a_member(client, factory):
    assert_problem(client.get(f"{API}/me/export"), 401, "unauthorized")
    assert_problem(client.get(f"{API}/me/export", headers=factory.staff("admin")["headers"]), 403, "forbidden")
