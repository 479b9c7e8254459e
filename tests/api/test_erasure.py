"""Erasure (issue 18): POST /me/erase and POST /admin/members/{id}/erase. No personal value remains anywhere in the
database afterwards (every text and JSON column of every table is scanned), the books stay, the points are
forfeited by a ledger entry, every token stops at once, the email can enrol again, and erasing twice is 409."""
from __future__ import annotations

from sqlalchemy import JSON, LargeBinary, String, Text, cast, func, select, text

from api.extensions import db
from wallet import ledger
from wallet.db import Base
from wallet.events import Event
from wallet.ledger import LedgerEntry
from wallet.members import Member
from wallet.purchases import Purchase

from ..conftest import assert_problem
from ..outbox import member_events
from .test_offers import make_offer

API = "/api/v1"
EMAIL = "zelda.quixotic@example.com"
NAME = "Zelda Quixötic-Ünïcode"
PHONE = "+972 54 777 1234"


def _scan_for(app, needles: list[str]) -> list[tuple[str, str]]:
    """(table, column) of every text, JSON or binary column holding one of the needles (case-insensitive)."""
    found = []
    with app.app_context():
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, (String, Text, JSON, LargeBinary)):
                    continue
                as_text = column if isinstance(column.type, (String, Text)) else cast(column, Text)
                if isinstance(column.type, LargeBinary):
                    rows = [bytes(v).decode("utf8", "replace") for v in
                            db.session.scalars(select(column).where(column.is_not(None)))]
                    if any(n.lower() in r.lower() for r in rows for n in needles):
                        found.append((table.name, column.key))
                    continue
                for needle in needles:
                    hit = db.session.scalar(select(func.count()).select_from(table)
                                            .where(func.lower(as_text).contains(needle.lower(), autoescape=True)))
                    if hit:
                        found.append((table.name, column.key))
        db.session.remove()
    return found


def _lively_member(client, factory):
    """A member with a profile, a purchase, a check-in, a coupon, a manual adjustment naming them and a stored
    idempotent answer: personal data in as many places as the club keeps it."""
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1})
    factory.rule(title="Thanks for coming", trigger="check_in", reward={"points": 10})
    member = factory.member(email=EMAIL, name=NAME, phone=PHONE, consents={"marketing_email": True})
    h = member["headers"]
    r = client.patch(f"{API}/me", json={"birthday": "1990-04-01"}, headers=h | {"Idempotency-Key": "patch-1"})
    assert r.status_code == 200, r.get_json()
    r = client.post(f"{API}/pos/purchases", headers=cashier["headers"],
                    json={"card": member["card_number"], "amount": "80.00", "currency": "ILS", "receipt_id": "R-1"})
    assert r.status_code == 201, r.get_json()
    r = client.post(f"{API}/me/check-ins", json={"store_id": store["id"], "lat": store["lat"] + 0.0001,
                                                 "lon": store["lon"], "accuracy_m": 12}, headers=h)
    assert r.status_code == 201, r.get_json()
    offer = make_offer(client, marketer, title="Free coffee")
    r = client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=h | {"Idempotency-Key": "claim-1"})
    assert r.status_code == 201, r.get_json()
    r = client.post(f"{API}/admin/members/{member['id']}/adjustments", headers=marketer["headers"],
                    json={"points": 5, "reason": f"Sorry {NAME}, call {PHONE}"})
    assert r.status_code == 201, r.get_json()
    return member, cashier, marketer


def test_a_member_erases_themselves_and_nothing_personal_remains(app, client, factory):
    member, cashier, _ = _lively_member(client, factory)
    needles = [EMAIL, NAME, PHONE, "Zelda", "1990-04-01"]
    assert _scan_for(app, needles), "the scan must find the data before erasure (or it proves nothing)"
    balance = factory.balance(member["id"])
    assert balance == 80 + 10 + 5

    r = client.post(f"{API}/me/erase", json={"password": member["password"]}, headers=member["headers"])
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["member_id"] == member["id"] and r.get_json()["status"] == "erased"

    assert _scan_for(app, needles) == []
    with app.app_context():
        erased = db.session.get(Member, member["id"])
        assert erased.erased_at is not None and erased.status == "erased" and erased.phone is None
        assert erased.birthday is None and erased.consents == {}
        # the books: the purchase's amount stays, the ledger sums to the (now zero) balance, points forfeited
        assert db.session.scalar(select(Purchase.amount).where(Purchase.member_id == member["id"])) == 80
        entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member["id"])
                                     .order_by(LedgerEntry.seq)).all()
        assert sum(e.delta for e in entries) == 0 == ledger.balance_of(db.session, member["id"]).points
        assert (entries[-1].kind, entries[-1].reason, entries[-1].delta) == ("adjust", "erasure", -balance)
        # the check-in's coordinates are gone, the check-in itself (a visit in the books) stays
        lat, lon = db.session.execute(text("SELECT lat, lon FROM check_ins")).one()
        assert (lat, lon) == (0, 0)
        types = [e.type for e in db.session.scalars(select(Event).where(Event.member_id == member["id"])
                                                    .order_by(Event.position))]
        assert types[-1] == "member.erased" and types.count("member.erased") == 1
        db.session.remove()

    # every token stops at once; sign-in is refused; the card is refused at the till
    assert_problem(client.get(f"{API}/me/wallet", headers=member["headers"]), 401, "signed_out")
    assert_problem(client.get(f"{API}/me/export", headers=member["headers"]), 401, "signed_out")
    r = client.post(f"{API}/auth/token", json={"email": EMAIL, "password": member["password"]})
    assert r.status_code == 401, r.get_json()
    r = client.post(f"{API}/pos/purchases", headers=cashier["headers"],
                    json={"card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-2"})
    assert_problem(r, 422, "card_inactive")

    # the email enrols again, as a new member with nothing of the old one
    r = client.post(f"{API}/auth/register", json={"email": EMAIL, "password": "another password", "name": NAME})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["member"]["id"] != member["id"]
    assert factory.balance(r.get_json()["member"]["id"]) == 0


def test_a_wrong_password_erases_nothing(app, client, factory):
    member = factory.member(email=EMAIL, name=NAME)
    factory.earn(member["id"], 40)
    r = client.post(f"{API}/me/erase", json={"password": "not my password"}, headers=member["headers"])
    body = assert_problem(r, 422, "wrong_password")
    assert body["errors"] == {"password": ["Wrong password."]}
    assert factory.balance(member["id"]) == 40
    assert client.get(f"{API}/me", headers=member["headers"]).get_json()["email"] == EMAIL
    assert_problem(client.post(f"{API}/me/erase", json={}, headers=member["headers"]), 422, "validation_error")
    assert_problem(client.post(f"{API}/me/erase", json={"password": "x", "extra": 1}, headers=member["headers"]),
                   422, "validation_error")


def test_an_admin_erases_a_member_audited_and_twice_is_409(app, client, factory):
    member = factory.member(email=EMAIL, name=NAME, phone=PHONE)
    factory.earn(member["id"], 25)
    admin = factory.staff("admin")
    marketer = factory.staff("marketer")
    assert_problem(client.post(f"{API}/admin/members/{member['id']}/erase", headers=marketer["headers"]), 403,
                   "forbidden")
    r = client.post(f"{API}/admin/members/{member['id']}/erase", headers=admin["headers"])
    assert r.status_code == 202, r.get_json()
    again = client.post(f"{API}/admin/members/{member['id']}/erase", headers=admin["headers"])
    assert_problem(again, 409, "already_erased")
    assert_problem(client.post(f"{API}/admin/members/mem_NOPE/erase", headers=admin["headers"]), 404, "not_found")
    audit = client.get(f"{API}/admin/audit?entity=member&entity_id={member['id']}", headers=admin["headers"]).get_json()
    assert [(a["action"], a["after"]) for a in audit["items"]] == [("erase", {"erased": True})]
    erased = [e for e in member_events(app, member["id"]) if e.type == "member.erased"]
    assert [(e.channel, e.data) for e in erased] == [("console", {"requested_by": "admin", "points_forfeited": 25})]
    # erased members leave the search (an audience); the email is free
    found = client.get(f"{API}/admin/members?q=erased", headers=admin["headers"]).get_json()["items"]
    assert found == []
    assert _scan_for(app, [EMAIL, NAME, PHONE]) == []


def test_erasure_writes_off_a_debt_and_cancels_held_points(app, client, factory, program):
    member = factory.member()
    with app.app_context():
        ledger.owe(db.session, member["id"], 30)
        ledger.hold(db.session, program, member_id=member["id"], points=12, reason="purchase", source="purchase:x",
                    idempotency_key="hold-1", description="held", available_at=program.now())
        db.session.commit()
    admin = factory.staff("admin")
    assert client.post(f"{API}/admin/members/{member['id']}/erase", headers=admin["headers"]).status_code == 202
    with app.app_context():
        balance = ledger.balance_of(db.session, member["id"])
        assert (balance.points, balance.pending, balance.debt) == (0, 0, 0)
        db.session.remove()
