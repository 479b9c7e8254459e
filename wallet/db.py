"""The declarative base, column types and id generation shared by every model."""
from __future__ import annotations

import os
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Numeric, String, TypeDecorator, bindparam, insert, inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, MultipleResultsFound
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, make_transient_to_detached, mapped_column
from sqlalchemy.orm.attributes import manager_of_class

# Stable constraint names, so Alembic migrations name the same thing the same way everywhere.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC in the database, so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


Money = Numeric(12, 2, asdecimal=True)
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money, dict: JSONType, list: JSONType}


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # every 10 bits as two characters
_SHIFTS = range(120, -1, -10)  # 13 pairs: the 128 bits, with two leading zero bits as in a ULID


_last_id = [0]  # the last id's value in this process


def new_id(prefix: str) -> str:
    """A time-ordered, unguessable id (ULID layout: 48-bit ms clock + 80 random bits), e.g. ``mem_01J...``.

    Within a process each id sorts after the one before, also in the same millisecond (ULID's monotonic mode,
    with a random step instead of +1), so "order by id" is the order things were made in."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    if value <= _last_id[0]:
        value = _last_id[0] + 1 + int.from_bytes(os.urandom(4), "big")
    _last_id[0] = value
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def id_column(prefix: str) -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=lambda: new_id(prefix))


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def on_postgres(session: Session) -> bool:
    """Whether the session's database is PostgreSQL (where a few hot paths take a one-statement route)."""
    return session.get_bind().dialect.name == "postgresql"


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
        raise ValueError("db.execute takes statements whose SQL is fixed (no expanding IN lists)")
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("db.execute runs no Python-side column defaults: give every column's value")
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
        *first, (last_table, last_values) = rows
        statement = _row_insert(len(first), last_table, last_values).add_cte(
            *[_row_insert(i, table, values).cte(f"row{i}") for i, (table, values) in enumerate(first)])
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


def write(session: Session, batch: Batch) -> None:
    """Write a batch now: its lead with its rows as CTEs of the lead's statement (PostgreSQL), or its rows alone."""
    lead = batch.lead
    if lead is None:
        insert_rows(session, batch.rows)
        return
    key = (lead.statement, *_shape(batch.rows))
    statement = _MULTI_INSERTS.get(key)
    if statement is None:
        statement = _MULTI_INSERTS[key] = lead.statement.add_cte(
            *[_row_insert(i, table, values).cte(f"row{i}") for i, (table, values) in enumerate(batch.rows)])
    lead.done(execute(session, statement, {**lead.params, **_row_params(batch.rows)}).one_or_none())


def iso(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC with ``Z``, e.g. ``2026-11-22T10:00:00Z``.

    Exactly what ``isoformat`` gives for the UTC instant (so microseconds appear when the value has any), with
    ``Z`` for ``+00:00``. An aware value in another zone is converted to UTC; None stays None. A naive datetime
    is refused (ValueError), as ``UTCDateTime`` refuses one: every datetime here is aware."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} has no UTC instant to write")
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"
