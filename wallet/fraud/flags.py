"""Flags for review: what the defences saw, one row per kind, subject and hour however often it happened."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, descending_page, id_column, new_id, on_postgres, table_of
from ..errors import NotFound

IMPOSSIBLE_TRAVEL = "impossible_travel"
QR_TWO_STORES = "qr_two_stores"
ENROLMENT_BURST = "enrolment_burst"
CLAIM_BURST = "claim_burst"
KINDS = (IMPOSSIBLE_TRAVEL, QR_TWO_STORES, ENROLMENT_BURST, CLAIM_BURST)
STATUSES = ("open", "reviewed")
# An incident and its repeats within the hour are one flag (counted), so a flood of requests is one row to review.
FLAG_WINDOW = timedelta(hours=1)


class Flag(Base):
    """Something for a marketer to look at: what happened (``kind``), to whom or from where (``subject``), how
    often in its hour, the latest details; open until reviewed."""

    __tablename__ = "fraud_flags"
    __table_args__ = (UniqueConstraint("kind", "subject", "window_start"),
                      Index("ix_fraud_flags_last_seen", "last_seen_at", "id"),
                      Index("ix_fraud_flags_member", "member_id"))

    id: Mapped[str] = id_column("flg")
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(160))  # member:<id>, device:<id>, address:<ip>
    window_start: Mapped[datetime]
    member_id: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    details: Mapped[dict] = mapped_column(default=dict)  # the latest occurrence: ids, distances, speeds, counts
    status: Mapped[str] = mapped_column(String(16), default="open")
    reviewed_by: Mapped[str | None] = mapped_column(String(48))
    reviewed_at: Mapped[datetime | None]
    review_note: Mapped[str | None] = mapped_column(String(500))


_flags = table_of(Flag)


def window_of(at: datetime, width: timedelta = FLAG_WINDOW) -> datetime:
    """The start of the fixed window ``at`` falls in (windows start at the epoch: whole hours, whole minutes)."""
    seconds = int(width.total_seconds())
    stamp = int(at.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=at.tzinfo)


def raise_flag(session: Session, *, kind: str, subject: str, at: datetime, member_id: str | None = None,
               store_id: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Record an occurrence: a new flag for this kind, subject and hour, or one more on the hour's flag (which
    opens again if it had been reviewed). Safe under concurrency (one upsert)."""
    if kind not in KINDS:
        raise ValueError(f"unknown flag kind {kind!r}")
    insert = pg_insert if on_postgres(session) else sqlite_insert
    statement = insert(_flags).values(
        id=new_id("flg"), kind=kind, subject=subject[:160], window_start=window_of(at), member_id=member_id,
        store_id=store_id, count=1, first_seen_at=at, last_seen_at=at, details=details or {}, status="open")
    new = statement.excluded
    session.execute(statement.on_conflict_do_update(
        index_elements=["kind", "subject", "window_start"],
        set_={"count": _flags.c.count + 1, "last_seen_at": new.last_seen_at, "details": new.details,
              "member_id": new.member_id, "store_id": new.store_id, "status": "open"}))


def list_flags(session: Session, *, kind: str | None = None, status: str | None = None,
               member_id: str | None = None, limit: int = 50,
               before: tuple[datetime, str] | None = None) -> list[Flag]:
    """Flags, the most recently seen first; ``before`` is the (last_seen_at, id) cursor."""
    query = select(Flag)
    if kind:
        query = query.where(Flag.kind == kind)
    if status:
        query = query.where(Flag.status == status)
    if member_id:
        query = query.where(Flag.member_id == member_id)
    return list(session.scalars(descending_page(query, Flag.last_seen_at, Flag.id, before, limit)))


def get_flag(session: Session, flag_id: str) -> Flag:
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound("No such flag", code="flag_not_found")
    return flag


def review_flag(session: Session, flag_id: str, *, actor: str, now: datetime, note: str | None = None,
                status: str = "reviewed") -> tuple[Flag, dict[str, Any]]:
    """Mark a flag reviewed (or open again), with who did it and a note; returns it and what it was before."""
    flag = get_flag(session, flag_id)
    before = {"status": flag.status, "review_note": flag.review_note}
    reviewed = status == "reviewed"
    session.execute(update(Flag).where(Flag.id == flag.id).values(
        status=status, reviewed_by=actor[:48] if reviewed else None, reviewed_at=now if reviewed else None,
        review_note=note), execution_options={"synchronize_session": False})
    session.refresh(flag)
    return flag, before
