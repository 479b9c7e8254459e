"""The event log: a transactional outbox written by the use cases, read in commit order by the admin API and the
worker (webhooks, the broker stream) through named cursors."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FetchedValue,
    Index,
    Integer,
    String,
    func,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import iso, utcnow
from ..db import Base, JSONType, new_id, on_postgres, rowcount
from .types import check

# SQLite makes only an INTEGER PRIMARY KEY an autoincrementing rowid; PostgreSQL gets a 64-bit identity.
_POSITION = BigInteger().with_variant(Integer(), "sqlite")

# On PostgreSQL the writing transaction's id, filled by the column's default (migration 0004): a reader pages only
# what every transaction older than its snapshot's xmin wrote, so an event whose transaction commits late is
# never skipped by a reader who has already seen later-committed ones.
_XMIN: ColumnElement[int] = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


class Event(Base):
    """One change that matters to a member or a marketer, recorded in the change's own transaction."""

    __tablename__ = "events"
    # (member, time): a member's timeline is read newest first from it.
    __table_args__ = (Index("ix_events_xact_id_position", "xact_id", "position"),
                      Index("ix_events_member_time", "member_id", "occurred_at"))

    position: Mapped[int] = mapped_column(_POSITION, primary_key=True, autoincrement=True)
    # Unique by construction (a ULID, or a backfilled row's own id), and looked up by position, not id: an index of
    # its own would cost every purchase three more index writes (its events' rows).
    id: Mapped[str] = mapped_column(String(32), default=lambda: new_id("evt"))
    xact_id: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    type: Mapped[str] = mapped_column(String(40))  # filtered along the (xact, position) or (member, time) index
    occurred_at: Mapped[datetime]
    member_id: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def cursor(self) -> tuple[int, int]:
        """Where a reader that has seen this event goes on from: (transaction id or 0, position)."""
        return (self.xact_id or 0, self.position)


def event_row(type: str, *, member_id: str | None = None, store_id: str | None = None, channel: str, actor: str,
              data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """The checked column values of a new event, for a hot path that writes its rows together (``db.Batch``)."""
    check(type, channel, data)
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be an aware datetime")
    if not actor or len(actor) > 64:
        raise ValueError("actor is 1 to 64 characters, e.g. 'member:mem_...', 'staff:stf_...', 'job:points-expire'")
    return {"id": new_id("evt"), "type": type, "occurred_at": occurred_at, "member_id": member_id,
            "store_id": store_id, "channel": channel, "actor": actor, "data": data, "created_at": utcnow()}


def emit(session: Session, type: str, *, member_id: str | None = None, store_id: str | None = None,
         channel: str, actor: str, data: dict[str, Any], occurred_at: datetime) -> Event:
    """Record an event in the caller's transaction (not committed here); ValueError for a bad type or data."""
    event = Event(**event_row(type, member_id=member_id, store_id=store_id, channel=channel, actor=actor,
                              data=data, occurred_at=occurred_at))
    session.add(event)
    return event


def envelope(event: Event) -> dict[str, Any]:
    """The event as the API, webhooks and the broker publish it."""
    return {"id": event.id, "type": event.type, "occurred_at": iso(event.occurred_at), "member_id": event.member_id,
            "store_id": event.store_id, "channel": event.channel, "actor": event.actor, "data": event.data}


def read(session: Session, after: tuple[int, int] | None = None, *, limit: int = 50, types: list[str] | None = None,
         member_id: str | None = None) -> list[Event]:
    """Committed events after a cursor, in commit order: on PostgreSQL only those older than every running writer."""
    session.flush()
    query = select(Event)
    if on_postgres(session):
        query = query.where(Event.xact_id < _XMIN).order_by(Event.xact_id, Event.position)
        if after is not None:
            query = query.where(tuple_(Event.xact_id, Event.position) > tuple_(*after))
    else:
        # SQLite has one writer at a time (BEGIN IMMEDIATE): positions are given in commit order.
        query = query.order_by(Event.position)
        if after is not None:
            query = query.where(Event.position > after[1])
    if types:
        query = query.where(Event.type.in_(types))
    if member_id:
        query = query.where(Event.member_id == member_id)
    return list(session.scalars(query.limit(limit)))


def after(session: Session, cursor: tuple[Any, Any] | None, upto: tuple[int, int] | None = None) -> ColumnElement[bool]:
    """The log's events after ``cursor`` (and up to ``upto``, inclusive), in commit order's terms: a condition for a
    reader that aggregates a stretch of the log in SQL instead of loading it (the KPI summaries). The cursor may be
    two bound parameters, for a statement built once."""
    start = cursor or (0, 0)
    if on_postgres(session):
        where = tuple_(Event.xact_id, Event.position) > tuple_(*start)
        return where if upto is None else where & (tuple_(Event.xact_id, Event.position) <= tuple_(*upto))
    where = Event.position > start[1]
    return where if upto is None else where & (Event.position <= upto[1])


def last_of_next(session: Session, cursor: tuple[int, int] | None, limit: int) -> tuple[int, int] | None:
    """The cursor of the last of the next ``limit`` committed events after ``cursor`` (None: none yet), read as
    ``read`` reads: on PostgreSQL only what every transaction older than this one's snapshot wrote."""
    session.flush()
    query = select(func.coalesce(Event.xact_id, 0).label("x"), Event.position.label("p")).where(after(session, cursor))
    if on_postgres(session):
        query = query.where(Event.xact_id < _XMIN).order_by(Event.xact_id, Event.position)
    else:
        query = query.order_by(Event.position)
    page = query.limit(limit).subquery()
    row = session.execute(select(page.c.x, page.c.p).order_by(page.c.x.desc(), page.c.p.desc()).limit(1)).first()
    return None if row is None else (int(row[0]), int(row[1]))


# ------------------------------------------------------------------ readers' cursors


class EventCursor(Base):
    """How far a reader of the log (webhook fan-out, the broker stream) has got, and who holds it now."""

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    xact_id: Mapped[int] = mapped_column(BigInteger, default=0)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Claimed:
    name: str
    owner: str
    after: tuple[int, int]


def claim_cursor(session: Session, name: str, owner: str, now: datetime, lease: timedelta) -> Claimed | None:
    """Take a reader's cursor for ``lease`` if no other worker holds it; None if one does. The caller commits."""
    if session.get(EventCursor, name) is None:
        insert = pg_insert if on_postgres(session) else sqlite_insert
        # Another worker may make it at the same moment: theirs is as good.
        session.execute(insert(EventCursor).values(name=name, xact_id=0, position=0, updated_at=now)
                        .on_conflict_do_nothing())
    taken = session.execute(
        update(EventCursor).where(EventCursor.name == name)
        .where((EventCursor.lease_until.is_(None)) | (EventCursor.lease_until < now) | (EventCursor.lease_owner == owner))
        .values(lease_owner=owner, lease_until=now + lease)
        .returning(EventCursor.xact_id, EventCursor.position),
        execution_options={"synchronize_session": False}).first()
    return None if taken is None else Claimed(name, owner, (taken[0], taken[1]))


def advance_cursor(session: Session, claimed: Claimed, to: tuple[int, int], *, release: bool, now: datetime) -> bool:
    """Move a held cursor on (and let it go); False if the lease was lost meanwhile. The caller commits."""
    values: dict[str, Any] = {"xact_id": to[0], "position": to[1], "updated_at": now}
    if release:
        values |= {"lease_owner": None, "lease_until": None}
    done = session.execute(update(EventCursor).where(EventCursor.name == claimed.name,
                                                     EventCursor.lease_owner == claimed.owner).values(**values),
                           execution_options={"synchronize_session": False})
    return rowcount(done) == 1


def backlog(session: Session) -> tuple[list[tuple[str, int]], int]:
    """The outbox's backlog: per reader of the log, the events recorded after its position; and the events in all."""
    behind = [(name, session.scalar(select(func.count()).select_from(Event).where(Event.position > position)) or 0)
              for name, position in session.execute(select(EventCursor.name, EventCursor.position)).all()]
    return behind, session.scalar(select(func.count()).select_from(Event)) or 0
