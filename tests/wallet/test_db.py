"""The hot paths' statement runner (db.execute) and ids: the same rows, errors and listeners as SQLAlchemy's own."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.extensions import db
from wallet import enrolment, ledger
from wallet.db import new_id
from wallet.fast_sql import execute, own_transaction
from wallet.ledger import Balance


@pytest.fixture
def member(session, program):
    member = enrolment.register_member(session, program, email="db@example.com", password="a long secret", name="Db")
    session.flush()
    return member


def test_rows_are_what_sqlalchemy_answers(session, member):
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    row = execute(session, ledger._MOVE, {"member": member.id, "delta": 7, "now": now}).one_or_none()
    assert (row.points, row.seq) == (7, 1)
    assert tuple(row) == (7, 1)
    stored = session.execute(select(Balance.points, Balance.seq, Balance.updated_at)
                             .where(Balance.member_id == member.id)).one()
    # the UTCDateTime bind processor ran: stored naive UTC, read back aware
    assert tuple(stored) == (7, 1, now)
    assert execute(session, ledger._MOVE, {"member": member.id, "delta": -8, "now": now}).one_or_none() is None
    assert execute(session, ledger._MOVE, {"member": "mem_NOPE", "delta": 1, "now": now}).first() is None


def test_a_statement_that_returns_no_rows_answers_an_empty_result(session, member):
    statement = update(Balance).where(Balance.member_id == bindparam("member")).values(pending=Balance.pending + 2)
    result = execute(session, statement, {"member": member.id})
    assert result == [] and result.first() is None and result.one_or_none() is None
    assert session.scalar(select(Balance.pending).where(Balance.member_id == member.id)) == 2


def test_a_unique_key_is_raised_as_sqlalchemy_raises_it_so_requests_retry(session, member):
    # the till's retry after a race (api/resource.py) catches sqlalchemy's IntegrityError, not the driver's
    row = {"member_id": member.id, "points": 0, "pending": 0, "seq": 0, "updated_at": datetime.now(UTC)}
    with pytest.raises(IntegrityError):
        execute(session, insert(Balance), row)
    session.rollback()


def test_python_side_defaults_are_not_run_so_a_statement_that_needs_them_is_refused(session, member):
    with pytest.raises(ValueError, match="every column"):
        execute(session, insert(Balance), {"member_id": member.id})


def test_the_engines_listeners_see_the_statement(app, session, member):
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0], parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        execute(session, ledger._MOVE, {"member": member.id, "delta": 1, "now": datetime.now(UTC)})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [verb for verb, _ in seen] == ["UPDATE"]


def test_ids_made_in_one_process_sort_in_the_order_they_were_made():
    ids = [new_id("x") for _ in range(20_000)]  # many share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 28 and i.startswith("x_") for i in ids)


def test_own_transaction_commits_each_statement_while_nothing_has_begun(session, member, is_postgres):
    statement = update(Balance).where(Balance.member_id == bindparam("member")).values(pending=Balance.pending + 3)
    session.commit()  # the member exists for other transactions; nothing has begun now
    with own_transaction(session):
        execute(session, statement, {"member": member.id})
    session.rollback()
    pending = session.scalar(select(Balance.pending).where(Balance.member_id == member.id))
    # PostgreSQL: the statement was its own transaction, the rollback had nothing to take back; elsewhere a no-op
    assert pending == (3 if is_postgres else 0)


def test_own_transaction_writes_nothing_pending_outside_the_transaction(session, member):
    # what the session holds unflushed is flushed first, in the transaction: a rollback still takes it back
    from wallet.stores import Store
    session.commit()
    session.add(Store(code="PENDING", name="Not yet flushed", lat=32.0, lon=34.8))
    with own_transaction(session):
        execute(session, select(Balance.points).where(Balance.member_id == bindparam("member")), {"member": member.id})
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Store).where(Store.code == "PENDING")) == 0


def test_own_transaction_changes_nothing_once_the_transaction_has_begun(session, member):
    statement = update(Balance).where(Balance.member_id == bindparam("member")).values(pending=Balance.pending + 3)
    session.commit()
    session.execute(select(Balance.points))  # begins the transaction in the database
    with own_transaction(session):
        execute(session, statement, {"member": member.id})
    session.rollback()
    assert session.scalar(select(Balance.pending).where(Balance.member_id == member.id)) == 0
