"""The member's points statement, read from the ledger: entries newest first, the lots credits opened and how long
what expires soon, what is pending, and a source's entries."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .ledger import LedgerEntry, Lot, PendingPoints


def entries_from(session: Session, source: str) -> list[LedgerEntry]:
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.source == source).order_by(LedgerEntry.seq)))


def entries(session: Session, member_id: str, *, limit: int = 50, before_seq: int | None = None) -> list[LedgerEntry]:
    """The member's entries, newest first; ``before_seq`` is the cursor."""
    query = select(LedgerEntry).where(LedgerEntry.member_id == member_id)
    if before_seq is not None:
        query = query.where(LedgerEntry.seq < before_seq)
    return list(session.scalars(query.order_by(LedgerEntry.seq.desc()).limit(limit)))


def lots_of(session: Session, entry_ids: list[str]) -> dict[str, Lot]:
    """The lots these credits opened, by entry (one query)."""
    if not entry_ids:
        return {}
    return {lot.entry_id: lot for lot in session.scalars(select(Lot).where(Lot.entry_id.in_(entry_ids)))}


def expiring(session: Session, member_id: str, now: datetime, within: timedelta = timedelta(days=90)) -> list[dict]:
    """What of the balance expires soon: [{points, expires_at}] by date, earliest first."""
    rows = session.execute(
        select(Lot.expires_at, func.sum(Lot.remaining))
        .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at.is_not(None),
               Lot.expires_at <= now + within)
        .group_by(Lot.expires_at).order_by(Lot.expires_at)
    ).all()
    return [{"points": int(points), "expires_at": at} for at, points in rows]


def pending_of(session: Session, member_id: str) -> list[PendingPoints]:
    return list(session.scalars(select(PendingPoints).where(PendingPoints.member_id == member_id,
                                                            PendingPoints.status == "pending")
                                .order_by(PendingPoints.available_at)))
