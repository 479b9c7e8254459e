"""The declarative base, column types and id generation shared by every model."""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CursorResult,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Result,
    Select,
    String,
    Table,
    TypeDecorator,
    and_,
    or_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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
# Points: 64-bit on PostgreSQL (a 32-bit column overflowed at 2,147,483,647: a purchase of 3 billion answered 500).
# SQLite's INTEGER already holds 8 bytes whatever the declared type, so it keeps INTEGER (no table rebuilt for it).
Points = BigInteger().with_variant(Integer(), "sqlite")
# What a balance may reach: 2^53 - 1, the largest integer every JSON reader (JavaScript's Number) keeps exact.
MAX_BALANCE = 2**53 - 1
# What one movement (an earn, a spend, an adjustment, a rule's reward, an offer's cost) may carry.
MAX_POINTS_PER_MOVEMENT = 100_000_000
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


def table_of(cls: type[Base]) -> Table:
    """A mapped class's table, for Core statements. Declarative annotates ``__table__`` as any ``FromClause``;
    every model here is mapped to a plain ``Table``."""
    return cast(Table, cls.__table__)


def on_postgres(session: Session) -> bool:
    """Whether the session's database is PostgreSQL (where a few hot paths take a one-statement route)."""
    return session.get_bind().dialect.name == "postgresql"


def rowcount(result: Result[Any]) -> int:
    """The number of rows an UPDATE or DELETE run by ``Session.execute`` matched. At run time that result is a
    ``CursorResult``; ``Session.execute`` is annotated as returning a plain ``Result``, which has no ``rowcount``."""
    return cast(CursorResult[Any], result).rowcount


def descending_page(query: Select, value: Any, key: Any, after: tuple[Any, str] | None, limit: int) -> Select:
    """One page of a keyset list: highest ``value`` first, ties by ``key`` (an id), highest first; ``after`` is the
    previous page's last ``(value, key)``. The order a backward scan of a ``(value, key)`` index reads, so a page is
    read from the index, not sorted."""
    if after is not None:
        query = query.where(or_(value < after[0], and_(value == after[0], key < after[1])))
    return query.order_by(value.desc(), key.desc()).limit(limit)


def bump_revision_token(session: Session, revision: type[Base]) -> None:
    """Give a one-row revision table (``id`` 1, ``token``) a new token: what a process cached under the old one
    (the rules, the tier ladder) is stale. Tokens are unique ids, never counters. The row is made at the first
    change."""
    token = new_id("rev")
    bumped = rowcount(session.execute(update(revision).where(table_of(revision).c.id == 1).values(token=token),
                                      execution_options={"synchronize_session": False}))
    if not bumped:
        session.add(revision(id=1, token=token))
        session.flush()
