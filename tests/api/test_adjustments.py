"""Bulk adjustments (issue 18): POST /admin/adjustments by list (or segment, once segments are wired), once per batch,
set-based, each balance at or above zero (a debit takes what there is), audited, a points.adjusted event each."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import adjustments, enrolment, ledger
from wallet.events import Event
from wallet.ledger import LedgerEntry

from ..conftest import assert_problem
from ..wallet.test_ledger import assert_consistent

API = "/api/v1"


def test_a_credit_and_a_debit_for_a_list_once_per_batch(app, client, factory):
    marketer = factory.staff("marketer")
    h = marketer["headers"]
    rich, poor, broke = factory.member(), factory.member(), factory.member()
    factory.earn(rich["id"], 100)
    factory.earn(poor["id"], 30)
    ids = [rich["id"], poor["id"], broke["id"]]
    body = {"member_ids": ids, "points": 50, "reason": "Storm apology", "batch": "storm-2026-12"}
    r = client.post(f"{API}/admin/adjustments", json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"batch": "storm-2026-12", "points": 50, "members": 3, "adjusted": 3, "skipped": 0,
                            "short": 0, "points_moved": 150, "replayed": False}
    again = client.post(f"{API}/admin/adjustments", json=body, headers=h)
    assert again.status_code == 201 and again.get_json() == r.get_json() | {"replayed": True}
    assert [factory.balance(m) for m in ids] == [150, 80, 50]
    assert_problem(client.post(f"{API}/admin/adjustments", json=body | {"points": 60}, headers=h), 409,
                   "batch_conflict")
    # a debit takes what each member has, never below zero
    debit = client.post(f"{API}/admin/adjustments", headers=h, json={
        "member_ids": ids, "points": -100, "reason": "Fraud clean-up", "batch": "debit-1"}).get_json()
    assert (debit["adjusted"], debit["short"], debit["points_moved"]) == (3, 2, -230)
    assert [factory.balance(m) for m in ids] == [50, 0, 0]
    skip = client.post(f"{API}/admin/adjustments", headers=h, json={
        "member_ids": ids, "points": -10, "reason": "Again", "batch": "debit-2"}).get_json()
    assert (skip["adjusted"], skip["skipped"], skip["points_moved"]) == (1, 2, -10)
    with app.app_context():
        for m in ids:
            assert_consistent(db.session, m)
        adjusted = db.session.scalar(select(func.count()).select_from(Event).where(Event.type == "points.adjusted"))
        assert adjusted == 3 + 3 + 1
        db.session.remove()
    admin = factory.staff("admin")
    audit = client.get(f"{API}/admin/audit?entity=adjustment_batch", headers=admin["headers"]).get_json()["items"]
    assert sorted(a["entity_id"] for a in audit) == ["debit-1", "debit-2", "storm-2026-12"]


def test_bad_batches_change_nothing(client, factory):
    marketer = factory.staff("marketer")
    h = marketer["headers"]
    member = factory.member()
    base = {"member_ids": [member["id"]], "points": 5, "reason": "Thanks", "batch": "b1"}
    for body, code in [(base | {"points": 0}, "validation_error"), (base | {"points": 10**9}, "validation_error"),
                       (base | {"points": "5"}, "validation_error"), (base | {"member_ids": []}, "validation_error"),
                       (base | {"segment_id": "seg_1"}, "validation_error"),
                       ({k: v for k, v in base.items() if k != "member_ids"}, "validation_error"),
                       (base | {"batch": "a b"}, "validation_error"), (base | {"reason": ""}, "validation_error"),
                       (base | {"member_ids": [member["id"], "mem_NOPE"]}, "unknown_members")]:
        assert_problem(client.post(f"{API}/admin/adjustments", json=body, headers=h), 422, code)
    segment = {"segment_id": "seg_1", "points": 5, "reason": "Thanks", "batch": "b2"}
    assert_problem(client.post(f"{API}/admin/adjustments", json=segment, headers=h), 404, "segment_not_found")
    assert_problem(client.post(f"{API}/admin/adjustments", json=base, headers=member["headers"]), 403, "forbidden")
    assert factory.balance(member["id"]) == 0
    # the failed batches left no name behind: b1 is still free
    assert client.post(f"{API}/admin/adjustments", json=base, headers=h).status_code == 201


def test_a_credit_pays_a_debt_first(app, client, factory):
    marketer = factory.staff("marketer")
    member = factory.member()
    with app.app_context():
        ledger.owe(db.session, member["id"], 15)
        db.session.commit()
    r = client.post(f"{API}/admin/adjustments", headers=marketer["headers"], json={
        "member_ids": [member["id"]], "points": 40, "reason": "Goodwill", "batch": "g1"})
    assert r.status_code == 201, r.get_json()
    with app.app_context():
        balance = ledger.balance_of(db.session, member["id"])
        assert (balance.points, balance.debt) == (25, 0)
        assert_consistent(db.session, member["id"])
        db.session.remove()


def test_erased_members_are_not_adjusted(client, factory):
    marketer, admin = factory.staff("marketer"), factory.staff("admin")
    member = factory.member()
    assert client.post(f"{API}/admin/members/{member['id']}/erase", headers=admin["headers"]).status_code == 202
    r = client.post(f"{API}/admin/adjustments", headers=marketer["headers"], json={
        "member_ids": [member["id"]], "points": 5, "reason": "Thanks", "batch": "b1"})
    assert_problem(r, 422, "unknown_members")


@pytest.mark.parametrize("size", [1000])
def test_a_large_batch_is_a_fixed_number_of_statements(app, factory, size):
    """Set-based: statements don't grow with the members (pages of 5,000 rows at most)."""
    program = app.extensions["loyalty.program"]
    with app.app_context():
        session = db.session
        ids = [enrolment.register_member(session, program, email=f"bulk{i}@example.com", password="bulk-member-pass-1",
                                         name=f"Bulk {i}").id for i in range(size)]
        session.commit()
        statements = []
        from sqlalchemy import event
        engine = session.get_bind()
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            started = time.perf_counter()
            result, _ = adjustments.adjust_many(session, program, batch="big", points=7, reason="Welcome gift",
                                                actor="staff:test", member_ids=ids)
            session.commit()
            elapsed = time.perf_counter() - started
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert result["adjusted"] == size
        assert len(statements) < 30, len(statements)
        assert session.scalar(select(func.sum(LedgerEntry.delta)).where(LedgerEntry.source == "batch:big")) == 7 * size
        print(f"{size} members adjusted in {elapsed:.2f}s with {len(statements)} statements")
        db.session.remove()


def test_a_segment_is_adjusted_as_one_batch(client, factory):
    h = factory.staff("marketer")["headers"]
    first, second = factory.member(), factory.member()
    r = client.post(f"{API}/admin/segments", headers=h, json={
        "name": "Everyone with points or none", "criteria": {"field": "points_balance", "op": ">=", "value": 0}})
    assert r.status_code == 201, r.get_json()
    body = {"segment_id": r.get_json()["id"], "points": 5, "reason": "Thanks for being here", "batch": "seg-1"}
    answer = client.post(f"{API}/admin/adjustments", json=body, headers=h)
    assert answer.status_code == 201, answer.get_json()
    assert (factory.balance(first["id"]), factory.balance(second["id"])) == (5, 5)
    again = client.post(f"{API}/admin/adjustments", json=body, headers=h)  # once per batch
    assert again.get_json() == answer.get_json() | {"replayed": True} and factory.balance(first["id"]) == 5
