"""The till's hand-made SQL path: the one place where speed bends SQLAlchemy's usual way of writing.

A purchase is the club's hottest request, and it shares one budget with every feature (at least half the
throughput of a bare Flask endpoint doing one write transaction). Profiles showed a third to a half of a
statement's client-side cost in the ORM's and Core's execution machinery, and a round trip per statement and
per BEGIN/COMMIT. So the hot paths (the till's purchase, the ledger's credit, the coupon redemption) use:

- :func:`execute`: a statement compiled once per dialect and run on the driver's cursor, binding only the
  parameters (with the types' processors) and reading rows. It relies on SQLAlchemy's compiler
  (``bind_names``, ``positiontup``, ``insert_prefetch``/``update_prefetch``, type ``bind_processor`` and
  ``result_processor``), the connection's ``dispatch.before_cursor_execute`` and ``DBAPIError.instance``;
- :func:`own_transaction`: on PostgreSQL, psycopg's ``autocommit`` while nothing has begun, so a purchase whose
  one statement is its whole transaction needs no BEGIN/COMMIT; relies on psycopg 3's
  ``info.transaction_status``;
- :class:`Batch` and :func:`write`: a purchase's rows as CTEs of one statement led by the ledger's credit;
- :func:`as_written` and :func:`attach`: objects for rows a statement just wrote, without the mapped
  constructor's per-attribute events (``manager_of_class(cls).new_instance``, ``make_transient_to_detached``);
- psycopg's cache of converted statements holds our hot statements too (:data:`HOT_STATEMENT_PARAMS`): it
  relies on two constants of psycopg's private ``_queries`` module.

``tests/wallet/test_fast_sql.py`` checks each of these against the installed SQLAlchemy and psycopg, so an
upgrade that changes what they rely on fails a test instead of a purchase. Everything else in the domain writes
through the ORM as usual.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import _queries as psycopg_queries
from sqlalchemy import bindparam, insert, inspect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import manager_of_class

from .db import Base, on_postgres

# psycopg turns a statement's %(name)s placeholders into PostgreSQL's $n once and caches that, but only for
# statements of at most 4,096 bytes and 50 parameters (so that one-off ORM statements don't crowd its cache, an
# LRU of 128). A purchase's one statement (the balance, its entry and lot, the grant, the purchase and its three
# events) has about 75 parameters: uncached, psycopg parses its 4 KB again on every purchase, about 180 us of a
# purchase's 2.5 ms. The hot statements are few and built once, so the cache holds them well.
HOT_STATEMENT_PARAMS = 200
HOT_STATEMENT_BYTES = 16_384
psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, HOT_STATEMENT_PARAMS)
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, HOT_STATEMENT_BYTES)

_INSERTS: dict = {}  # one INSERT statement per table, built once


def add_now(session: Session, obj: Base) -> Base:
    """INSERT one new object at once, as one plain statement, and keep it in the session as a clean persistent
    object: the hot paths' way to write a row, without the unit of work's flush machinery.

    Columns not set on ``obj`` get their Python-side default (or NULL), set on the object too, so reading them
    later needs no reload. Not for autoincrement keys (nothing is read back).
    """
    table = obj.__table__
    loaded = inspect(obj).dict
    values = {}
    for column in table.columns:
        key = column.key
        if key in loaded:
            values[key] = loaded[key]
            continue
        default = column.default
        value = None if default is None else default.arg if default.is_scalar else default.arg(None)
        setattr(obj, key, value)
        values[key] = value
    insert_row(session, table, values)
    return attach(session, obj)


def attach(session: Session, obj: Base) -> Base:
    """Keep an object whose row was just written by a statement in the session as persistent and clean (no
    INSERT at flush). Every column must be set on it."""
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def as_written(cls: type[Base], values: dict[str, Any]) -> Any:
    """An instance of ``cls`` holding a row that a statement has just written (``values``: every column), for the
    caller to read, not to change: made without the mapped constructor's per-attribute events (a twentieth of
    its cost), and not in the session (a later look-up reads the row)."""
    obj = manager_of_class(cls).new_instance()
    obj.__dict__.update(values)
    return obj


@contextmanager
def own_transaction(session: Session) -> Iterator[None]:
    """On PostgreSQL, while nothing has yet begun in the database for the session's transaction, each statement
    run inside is its own transaction (the driver's autocommit): no BEGIN and COMMIT round trips. For reads,
    which need no transaction around them (at READ COMMITTED each statement reads its own snapshot anyway), and
    for a single statement that is all its transaction writes (one statement is atomic on its own). Once anything
    has begun (a write, a read in a transaction), or on another database, it changes nothing.

    What is pending in the session is flushed first, so that it is not written outside the transaction."""
    session.flush()
    if not on_postgres(session):
        yield
        return
    driver = session.connection().connection.dbapi_connection
    assert driver is not None  # the session's connection is checked out
    if driver.autocommit or driver.info.transaction_status.name != "IDLE":
        yield
        return
    driver.autocommit = True
    try:
        yield
    finally:
        if not driver.closed:
            driver.autocommit = False


class Result(list):
    """The rows a statement answered (named tuples), with the two look-ups the hot paths ask of a result."""

    def first(self) -> Any:
        return self[0] if self else None

    def one_or_none(self) -> Any:
        if len(self) > 1:
            raise MultipleResultsFound("Expected at most one row")
        return self[0] if self else None


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for a dialect, with what its execution needs per call."""

    sql: str
    order: tuple[str, ...] | None  # positional paramstyles (SQLite's ?): the parameters' order
    fixed: dict[str, Any]  # parameters the statement carries itself (literal values in a where clause)
    binds: dict[str, Callable[[Any], Any]]  # bind processors (UTCDateTime, JSON) by parameter name
    row: Any  # the named tuple of a returned row; None when the statement returns none
    results: tuple[Callable[[Any], Any] | None, ...]  # result processors by column


_COMPILED: dict[tuple[Any, str, frozenset[str]], _Compiled] = {}


def _compile(statement: Any, dialect: Any, keys: frozenset[str]) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("fast_sql.execute takes statements whose SQL is fixed (no expanding IN lists)")
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("fast_sql.execute runs no Python-side column defaults: give every column's value")
    binds, fixed = {}, {}
    for bind, name in compiled.bind_names.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            binds[name] = processor
        if name not in keys and not bind.required:
            fixed[name] = bind.effective_value
    columns = list(statement.exported_columns) if getattr(statement, "_returning", True) else []
    names = [getattr(c, "key", None) or getattr(c, "name", None) or f"_{i}" for i, c in enumerate(columns)]
    row = namedtuple("Row", names, rename=True) if columns else None  # noqa: PYI024
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Compiled(compiled.string, tuple(compiled.positiontup) if compiled.positional else None, fixed,
                     binds, row, results)


def execute(session: Session, statement: Any, params: dict[str, Any] | None = None) -> Result:
    """Run one of the hot paths' statements (built once, at import) on the driver's cursor of the session's
    connection, in the session's transaction: compiled once per dialect, then per call only the parameters are
    bound and the rows read, none of the execution machinery of the ORM or of Core around it (a third to a
    half of a statement's cost in the client). What is pending in the session is flushed first, as the ORM's
    autoflush would (a row written here may refer to it).

    The engine's ``before_cursor_execute`` listeners still see the statement; a driver error is raised as
    SQLAlchemy raises it (IntegrityError for a unique key, so a request's retry works as before), and a broken
    connection is invalidated. Echo logging (SQLALCHEMY_ECHO) does not show these statements."""
    session.flush()
    params = params or {}
    connection = session.connection()
    dialect = connection.dialect
    keys = frozenset(params)
    compiled = _COMPILED.get((statement, dialect.name, keys))
    if compiled is None:
        compiled = _COMPILED[(statement, dialect.name, keys)] = _compile(statement, dialect, keys)
    values = {**compiled.fixed, **params} if compiled.fixed else dict(params)
    for name, processor in compiled.binds.items():
        values[name] = processor(values[name])
    bound = values if compiled.order is None else tuple(values[name] for name in compiled.order)
    cursor = connection.connection.cursor()
    try:
        if connection.dispatch.before_cursor_execute:
            connection.dispatch.before_cursor_execute(connection, cursor, compiled.sql, bound, None, False)
        try:
            cursor.execute(compiled.sql, bound)
            rows = cursor.fetchall() if compiled.row is not None else ()
        except dialect.loaded_dbapi.Error as error:
            broken = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
            if broken:
                connection.invalidate(error)
            raise DBAPIError.instance(compiled.sql, bound, error, dialect.loaded_dbapi.Error, dialect=dialect,
                                      connection_invalidated=broken) from error
    finally:
        cursor.close()
    if compiled.row is None:
        return Result()
    make, processors = compiled.row._make, compiled.results
    if not any(processors):
        return Result(map(make, rows))
    return Result(make([v if p is None else p(v) for p, v in zip(processors, row, strict=True)]) for row in rows)


def insert_row(session: Session, table: Any, values: dict[str, Any]) -> None:
    """INSERT one row now, from a dict of the columns' values (every column but those the database fills, such
    as an autoincrement key; no Python-side default is run): a row the hot path writes and never reads back."""
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    execute(session, statement, values)


Rows = list[tuple[Any, dict[str, Any]]]  # (table, its columns' values as insert_row takes them), rows to INSERT


_MULTI_INSERTS: dict[tuple[Any, ...], Any] = {}


def _row_insert(i: int, table: Any, keys: Any) -> Any:
    return insert(table).values({c.key: bindparam(f"r{i}_{c.key}", type_=c.type) for c in table.columns
                                 if c.key in keys})


def _group_insert(table: Any, keys: Any, numbers: list[int]) -> Any:
    """One INSERT of several rows (``r<i>_<column>`` for each row number ``i``) that set the same columns."""
    if len(numbers) == 1:
        return _row_insert(numbers[0], table, keys)
    return insert(table).values([{c.key: bindparam(f"r{i}_{c.key}", type_=c.type) for c in table.columns
                                  if c.key in keys} for i in numbers])


def _groups(rows: Rows) -> list[tuple[Any, Any, list[int]]]:
    """The rows' numbers by (table, columns set), in the order each group first appears: a table's rows go in one
    INSERT (a purchase's events, a basket's items), which PostgreSQL plans and runs once."""
    groups: dict[tuple[Any, ...], tuple[Any, Any, list[int]]] = {}
    for i, (table, values) in enumerate(rows):
        group = groups.setdefault((table.name, *values), (table, values, []))
        group[2].append(i)
    return list(groups.values())


def _shape(rows: Rows) -> tuple[Any, ...]:
    """What a statement for these rows depends on: each row's table and columns."""
    return tuple((table.name, *values) for table, values in rows)


def _row_params(rows: Rows) -> dict[str, Any]:
    return {f"r{i}_{k}": v for i, (_, values) in enumerate(rows) for k, v in values.items()}


def insert_rows(session: Session, rows: Rows) -> None:
    """INSERT rows into one or more tables now: on PostgreSQL in one statement however many (each row but the
    last in a data-modifying CTE; foreign keys are checked at the end of the statement), elsewhere one INSERT
    each, in order. For rows that nothing in the same statement reads. A row gives the columns it sets (a column
    it leaves out, such as an autoincrement key, gets the database's default)."""
    if len(rows) < 2 or not on_postgres(session):
        for table, values in rows:
            insert_row(session, table, values)
        return
    key = _shape(rows)
    statement = _MULTI_INSERTS.get(key)
    if statement is None:
        *first, (last_table, last_values, last_numbers) = _groups(rows)
        statement = _group_insert(last_table, last_values, last_numbers).add_cte(
            *[_group_insert(table, values, numbers).cte(f"row{n}") for n, (table, values, numbers) in enumerate(first)])
        _MULTI_INSERTS[key] = statement
    execute(session, statement, _row_params(rows))


@dataclass
class Lead:
    """A statement put off to lead a batch's rows: a SELECT (with data-modifying CTEs) that returns at most one
    row, which ``done`` is given once the batch is written (None if it returned none)."""

    statement: Any
    params: dict[str, Any]
    done: Callable[[Any], None]


@dataclass
class Batch:
    """What a hot path writes at its end, together: rows to INSERT, and on PostgreSQL at most one statement put
    off to lead them (the ledger's credit), so that all of it is one statement, one round trip (:func:`write`).

    Nothing in the transaction may read what the batch holds before it is written."""

    rows: Rows = field(default_factory=list)
    lead: Lead | None = None
    # Other data-modifying statements (built once, for the session's dialect; an upsert such as a member's running
    # totals), with their parameters (named apart from the rows' and the lead's): on PostgreSQL each is a CTE of
    # the one statement, elsewhere run after the rows. Nothing may read what they return.
    statements: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)


def write(session: Session, batch: Batch) -> None:
    """Write a batch now: its lead with its rows and statements as CTEs of the lead's statement (PostgreSQL), or
    its rows and statements alone."""
    lead = batch.lead
    extra = batch.statements
    if lead is None and not extra:
        insert_rows(session, batch.rows)
        return
    if not on_postgres(session):
        if lead is not None:
            lead.done(execute(session, lead.statement, lead.params).one_or_none())
        insert_rows(session, batch.rows)
        for statement, params in extra:
            execute(session, statement, params)
        return
    params = {key: value for _, values in extra for key, value in values.items()} | _row_params(batch.rows)
    if lead is None:  # the first statement leads, with the rows and the other statements as its CTEs
        first, *others = extra
        key = (None, first[0], *[s for s, _ in others], *_shape(batch.rows))
        statement = _MULTI_INSERTS.get(key)
        if statement is None:
            statement = _MULTI_INSERTS[key] = first[0].add_cte(*_ctes(batch.rows, [s for s, _ in others]))
        execute(session, statement, params)
        return
    key = (lead.statement, *[s for s, _ in extra], *_shape(batch.rows))
    statement = _MULTI_INSERTS.get(key)
    if statement is None:
        statement = _MULTI_INSERTS[key] = lead.statement.add_cte(*_ctes(batch.rows, [s for s, _ in extra]))
    lead.done(execute(session, statement, {**lead.params, **params}).one_or_none())


def _ctes(rows: Rows, statements: list[Any]) -> list[Any]:
    return [*[_group_insert(table, values, numbers).cte(f"row{n}") for n, (table, values, numbers) in enumerate(_groups(rows))],
            *[statement.cte(f"stmt{n}") for n, statement in enumerate(statements)]]
