"""The hand-made SQL path (wallet.fast_sql) and ids: the same rows, errors and listeners as SQLAlchemy's own, and
the SQLAlchemy and psycopg internals it relies on still where it expects them (an upgrade that moves one fails
here, not at the till)."""
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
    assert tuple(row) == (7, 1, 0)  # points, seq and the debt (0: nothing to pay first)
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
    row = {"member_id": member.id, "points": 0, "pending": 0, "seq": 0, "debt": 0, "updated_at": datetime.now(UTC)}
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


# ---------------------------------------------------------------- what fast_sql relies on in its libraries

def test_sqlalchemys_compiler_still_gives_what_execute_reads(session):
    from sqlalchemy.dialects import postgresql, sqlite

    from wallet.db import UTCDateTime
    statement = select(Balance.member_id).where(Balance.member_id == bindparam("m"),
                                                 Balance.points > 5).add_columns(bindparam("t", type_=UTCDateTime()))
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        compiled = statement.compile(dialect=dialect, column_keys=["m"])
        assert isinstance(compiled.string, str)
        assert {name for name in compiled.bind_names.values()} >= {"m", "t"}
        assert hasattr(compiled, "insert_prefetch") and hasattr(compiled, "update_prefetch")
        literal = next(b for b in compiled.bind_names if compiled.bind_names[b] not in ("m", "t"))
        assert literal.effective_value == 5 and literal.required is False
        processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert processor is None or callable(processor)
        if compiled.positional:
            assert list(compiled.positiontup) == ["t", "m", "points_1"]  # in the order the SQL names them
    assert compiled.positional is False  # psycopg: named parameters


def test_execute_reaches_the_connections_listener_hook_and_error_wrapper(session):
    from sqlalchemy.exc import DBAPIError
    connection = session.connection()
    assert hasattr(connection.dispatch, "before_cursor_execute")
    assert callable(DBAPIError.instance)
    assert issubclass(connection.dialect.loaded_dbapi.Error, Exception)
    assert callable(connection.dialect.is_disconnect)


def test_as_written_makes_an_instance_without_the_mapped_constructor(session, member):
    from sqlalchemy.orm.attributes import manager_of_class

    from wallet.fast_sql import as_written
    assert callable(manager_of_class(Balance).new_instance)
    row = as_written(Balance, {"member_id": member.id, "points": 7})
    assert isinstance(row, Balance) and row.points == 7 and row.member_id == member.id
    assert row not in session


def test_psycopg_still_reports_the_transaction_state_own_transaction_reads(session, is_postgres):
    if not is_postgres:
        pytest.skip("own_transaction changes nothing on SQLite")
    driver = session.connection().connection.dbapi_connection
    assert hasattr(driver, "autocommit")
    assert driver.info.transaction_status.name in ("IDLE", "INTRANS")


def test_psycopg_caches_the_conversion_of_a_statement_as_large_as_a_purchases(session, member, is_postgres):
    """fast_sql raises psycopg's limits on what it caches; if psycopg renames them, or stops reading them, the
    purchase's statement is parsed again on every purchase: this fails instead."""
    from psycopg import _queries

    from wallet import fast_sql
    assert _queries.MAX_CACHED_STATEMENT_PARAMS >= fast_sql.HOT_STATEMENT_PARAMS
    assert _queries.MAX_CACHED_STATEMENT_LENGTH >= fast_sql.HOT_STATEMENT_BYTES
    if not is_postgres:
        pytest.skip("only psycopg converts statements")
    statement = select(*[bindparam(f"p{i}", type_=Balance.points.type) for i in range(80)])
    params = {f"p{i}": i for i in range(80)}
    assert list(execute(session, statement, params).first()) == list(range(80))
    before = _queries._query2pg.cache_info().hits
    assert list(execute(session, statement, params).first()) == list(range(80))
    assert _queries._query2pg.cache_info().hits == before + 1
