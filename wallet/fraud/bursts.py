"""Bursts: enrolments per device or address, claims per member, counted per minute and shared by every host.

One counter row per (kind, subject), reset when a new minute starts: the table holds one row per device, address
or member seen lately, not one per request, and ``prune_counters`` (a worker job) drops the idle ones. The count is
an upsert that answers the new count, atomic on PostgreSQL and SQLite alike, so concurrent requests from one
device are counted exactly. On PostgreSQL, when nothing else has begun, it is its own transaction (the driver's
autocommit): the count holds however the request ends, and no row lock is held while the request runs.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import String, case, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, on_postgres, rowcount, table_of
from ..errors import TooManyRequests
from ..fast_sql import own_transaction
from .flags import raise_flag, window_of

BURST_WINDOW = timedelta(minutes=1)


class BurstCounter(Base):
    """How many requests of a kind one subject (a device, an address, a member) made in the current minute."""

    __tablename__ = "burst_counters"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    count: Mapped[int]


_counters = table_of(BurstCounter)


def count(session: Session, *, kind: str, subject: str, now: datetime) -> tuple[int, datetime]:
    """One more request of ``kind`` from ``subject`` in the current minute: the count so far, and when the minute
    ends."""
    start = window_of(now, BURST_WINDOW)
    insert = pg_insert if on_postgres(session) else sqlite_insert
    values = insert(_counters).values(kind=kind, subject=subject[:160], window_start=start, count=1)
    new = values.excluded
    # A new minute starts the count again; a request that read the clock just before a concurrent one crossed into
    # the next minute (and writes after it) counts in that minute: the window never moves back (a count reset there
    # would let a burst through at every minute's edge).
    current = _counters.c.window_start >= new.window_start
    statement = values.on_conflict_do_update(
        index_elements=["kind", "subject"],
        set_={"count": case((current, _counters.c.count + 1), else_=1),
              "window_start": case((current, _counters.c.window_start), else_=new.window_start)},
    ).returning(_counters.c.count)
    with own_transaction(session):
        counted = session.execute(statement).scalar_one()
    return int(counted), start + BURST_WINDOW


def check_burst(session: Session, *, kind: str, subjects: list[str], limit: int, now: datetime, code: str,
                detail: str, member_id: str | None = None) -> None:
    """Count a request against each subject; past ``limit`` in the minute, flag the subject (one flag per hour,
    counted) and refuse with 429 and Retry-After. The refusal is committed: the flag and the counts stay."""
    over, retry_after = [], 1
    for subject in subjects:
        counted, ends = count(session, kind=kind, subject=subject, now=now)
        if counted > limit:
            over.append((subject, counted))
            retry_after = max(retry_after, math.ceil((ends - now).total_seconds()))
    if not over:
        return
    for subject, counted in over:
        raise_flag(session, kind=kind, subject=subject, at=now, member_id=member_id,
                   details={"count": counted, "limit": limit, "window_seconds": int(BURST_WINDOW.total_seconds())})
    raise TooManyRequests(detail, code=code, commit=True, retry_after=retry_after, limit=limit)


def prune_counters(session: Session, now: datetime, *, older_than: timedelta = timedelta(hours=1)) -> int:
    """Drop the counters of subjects idle for an hour (a worker job); how many went."""
    return rowcount(session.execute(delete(BurstCounter).where(BurstCounter.window_start < now - older_than),
                                    execution_options={"synchronize_session": False}))
