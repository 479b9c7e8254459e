"""Real concurrent transactions on PostgreSQL: simultaneous check-ins by one member count once, the n-th visit is
granted once, a product is discovered once; the database, not Python, holds it."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.extensions import db
from wallet import instore, ledger
from wallet.errors import Rejected
from wallet.instore import CheckIn, Scan
from wallet.ledger import LedgerEntry
from wallet.rules import RuleGrant

from .test_till_concurrency import run_together

pytestmark = pytest.mark.postgres


def count(app, model, **where) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model).filter_by(**where))
        db.session.remove()
        return value


def check_in_in_own_session(app, program, member_id, store):
    with app.app_context():
        try:
            result = instore.check_in(db.session, program, member_id=member_id, store_id=store["id"],
                                      lat=store["lat"], lon=store["lon"])
            db.session.commit()
            return "accepted", result.points_awarded
        except Rejected as error:
            db.session.commit()  # a refusal is recorded, as the request layer does
            return error.code, 0
        finally:
            db.session.remove()


def test_simultaneous_check_ins_in_separate_transactions_count_once(app, factory, program):
    store = factory.store()
    member = factory.member()
    factory.rule(title="Visit", trigger="check_in", reward={"points": 10})
    results = run_together(12, lambda _: check_in_in_own_session(app, program, member["id"], store))
    assert sorted(results) == [("accepted", 10)] + [("check_in_cooldown", 0)] * 11
    assert count(app, CheckIn, status="accepted") == 1
    assert count(app, CheckIn, status="refused", reason="check_in_cooldown") == 11
    assert count(app, LedgerEntry) == 1 and count(app, RuleGrant) == 1
    assert factory.balance(member["id"]) == 10


def test_simultaneous_check_ins_through_the_api_count_once(app, factory):
    store = factory.store()
    member = factory.member()
    factory.rule(title="Visit", trigger="check_in", reward={"points": 10})
    body = {"store_id": store["id"], "lat": store["lat"], "lon": store["lon"]}

    def send(_):
        r = app.test_client().post("/api/v1/me/check-ins", json=body, headers=member["headers"])
        return r.status_code, r.get_json()["code"] if r.status_code != 201 else r.get_json()["points_awarded"]

    results = run_together(12, send)
    assert sorted(results, key=str) == [(201, 10)] + [(422, "check_in_cooldown")] * 11
    assert count(app, CheckIn, status="accepted") == 1
    assert factory.balance(member["id"]) == 10


def test_simultaneous_check_ins_at_different_stores_grant_the_nth_visit_once(app, factory, program):
    program.clock = lambda: datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    stores = [factory.store(code=f"N{i}") for i in range(6)]
    member = factory.member()
    factory.rule(title="5th visit this month", trigger="check_in", conditions={"nth": {"n": 5, "period": "month"}},
                 reward={"points": 100})
    for store in stores[:3]:
        assert check_in_in_own_session(app, program, member["id"], store)[0] == "accepted"
    # Three at once at three more stores: they are the 4th, 5th and 6th visits in some order, never two 5ths.
    results = run_together(3, lambda i: check_in_in_own_session(app, program, member["id"], stores[3 + i]))
    assert sorted(results) == [("accepted", 0), ("accepted", 0), ("accepted", 100)]
    assert factory.balance(member["id"]) == 100
    with app.app_context():
        visits = db.session.scalars(select(CheckIn.created_at).where(CheckIn.member_id == member["id"])).all()
        assert len(visits) == 6
        db.session.remove()


def test_without_the_lock_the_visit_number_still_refuses_a_double(app, factory, program):
    """Two transactions that both believe this is the member's first visit: the unique index lets one commit."""
    store = factory.store()
    member = factory.member()

    def insert(_):
        with app.app_context():
            try:
                db.session.add(CheckIn(member_id=member["id"], store_id=store["id"], status="accepted", lat=0, lon=0,
                                       distance_m=0, visit_number=1, created_at=program.now()))
                db.session.commit()
                return "committed"
            except IntegrityError:
                db.session.rollback()
                return "refused by the database"
            finally:
                db.session.remove()

    assert sorted(run_together(6, insert)) == ["committed"] + ["refused by the database"] * 5
    assert count(app, CheckIn) == 1


def test_simultaneous_first_scans_discover_the_product_once(app, factory, client, program):
    marketer = factory.staff("marketer")
    client.post("/api/v1/admin/products", json={"sku": "COF", "barcode": "036000291452", "name": "Coffee"},
                headers=marketer["headers"])
    factory.rule(title="Discovery", trigger="scan", conditions={"first_scan": True}, reward={"points": 5})
    member = factory.member()

    def send(_):
        r = app.test_client().post("/api/v1/me/scans", json={"barcode": "036000291452"}, headers=member["headers"])
        assert r.status_code == 201, r.get_json()
        return r.get_json()["scan"]["first_scan"], r.get_json()["points_awarded"]

    results = run_together(10, send)
    assert sorted(results) == [(False, 0)] * 9 + [(True, 5)]
    assert count(app, Scan) == 10 and count(app, Scan, first_scan=True) == 1
    assert factory.balance(member["id"]) == 5
    with app.app_context():
        assert ledger.balance_of(db.session, member["id"]).points == 5
        db.session.remove()
