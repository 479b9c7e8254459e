"""Transparency (issue 18): the active rules' terms in the member's words, public; a points statement that says for
every line which rule or action caused it and, for a lot, its own rule's expiry."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.extensions import db
from wallet import ledger
from wallet.tokens import Principal

from .test_offers import make_offer

API = "/api/v1"


def test_the_rules_are_public_in_the_members_words(client, factory, clock):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, title="Free coffee")
    store = factory.store()
    earn = factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1}, points_expiry_days=30)
    surprise = factory.rule(title="Lucky visit", trigger="check_in", reward={"points": 50}, probability=0.25,
                            per_member_limit=1, per_member_period_days=7, conditions={"stores": [store["id"]]})
    coffee = factory.rule(title="Coffee on your birthday", trigger="birthday", reward={"offer_id": offer["id"]})
    double = factory.rule(title="Double next 3", reward={"multiplier": 2, "purchases": 3}, conditions={"min_amount": "100.00"})
    factory.rule(title="Paused", reward={"points": 1}, status="paused")
    factory.rule(title="Over", reward={"points": 1}, ends_at=datetime(2026, 11, 1, tzinfo=UTC))
    r = client.get(f"{API}/rules")  # no Authorization: public
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"items": [
        {"id": coffee, "title": "Coffee on your birthday", "trigger": "birthday", "reward": "a coupon: Free coffee",
         "terms": "A coupon: Free coffee on your birthday."},
        {"id": surprise, "title": "Lucky visit", "trigger": "check_in", "reward": "50 points",
         "terms": f"50 points for checking in at a store (at store {store['id']}), with a 25% chance each time, "
                  "at most 1 time per member in 7 days; the points last 365 days."},
        *sorted([
            {"id": earn, "title": "A point a shekel", "trigger": "purchase", "reward": "1 points per ILS",
             "terms": "1 points per ILS for a purchase; the points last 30 days."},
            {"id": double, "title": "Double next 3", "trigger": "purchase",
             "reward": "points ×2 for your next 3 purchases",
             "terms": "Points ×2 for your next 3 purchases for a purchase (amount at least 100.00); "
                      "the points last 365 days."}], key=lambda i: i["id"]),
    ]}


def test_each_statement_line_names_its_cause_and_a_lot_its_own_expiry(app, client, factory, clock, program):
    member = factory.member()
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    rule = factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1}, points_expiry_days=30)
    r = client.post(f"{API}/pos/purchases", headers=cashier["headers"],
                    json={"card": member["card_number"], "amount": "40.00", "currency": "ILS", "receipt_id": "T-1"})
    assert r.status_code == 201, r.get_json()
    factory.earn(member["id"], 7)  # a manual credit: the programme's default expiry
    clock.now += timedelta(days=31)
    with app.app_context():
        assert ledger.expire_due(db.session, program) == 40
        db.session.commit()
    headers = factory.headers(Principal(member["id"], "member"))  # a fresh token: a month went by
    lines = client.get(f"{API}/me/ledger", headers=headers).get_json()["items"]
    expired, manual, earned = lines
    start = "2026-11-22T10:00:00Z"
    assert {k: earned[k] for k in ("delta", "kind", "reason", "rule_id", "rule_title", "cause", "expires_at", "lot")} == {
        "delta": 40, "kind": "earn", "reason": "purchase", "rule_id": rule, "rule_title": "A point a shekel",
        "cause": 'Rule "A point a shekel"', "expires_at": "2026-12-22T10:00:00Z",
        "lot": {"points": 40, "remaining": 0, "expires_at": "2026-12-22T10:00:00Z", "expiry_days": 30}}
    assert earned["created_at"] == start
    assert {k: manual[k] for k in ("delta", "rule_id", "rule_title", "cause", "lot")} == {
        "delta": 7, "rule_id": None, "rule_title": None, "cause": "Added by the club",
        "lot": {"points": 7, "remaining": 7, "expires_at": "2027-11-22T10:00:00Z", "expiry_days": 365}}
    assert {k: expired[k] for k in ("delta", "kind", "rule_id", "cause", "lot", "description")} == {
        "delta": -40, "kind": "expire", "rule_id": None, "cause": "Expired", "lot": None,
        "description": "40 points expired (earned 2026-11-22, they lasted 30 days)"}


def test_the_statement_reads_a_fixed_number_of_queries(app, client, factory, clock):
    """Three queries per page (entries, their rules, their lots), however many lines and rules."""
    from sqlalchemy import event

    member = factory.member()
    for n in range(5):
        rule = factory.rule(title=f"r{n}", trigger="check_in", reward={"points": 1})
        factory.earn(member["id"], n + 1, rule_id=rule)
    counted = []
    with app.app_context():
        engine = db.engine
    listen = lambda *a, **k: counted.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        r = client.get(f"{API}/me/ledger", headers=member["headers"])
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert r.status_code == 200 and len(r.get_json()["items"]) == 5
    assert [line["cause"] for line in r.get_json()["items"]] == [f'Rule "r{n}"' for n in range(4, -1, -1)]
    # entries, titles, lots, the points debt, and the access check (an erased or closed member's token is refused)
    assert len([s for s in counted if s.lstrip().upper().startswith("SELECT")]) <= 5
