"""Stored answers to requests that carried an ``Idempotency-Key``, so a retry replays instead of repeating."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import LargeBinary, String, UniqueConstraint, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, rowcount
from .errors import IdempotencyConflict


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def find(session: Session, principal: str, key: str, fingerprint: str) -> IdempotencyKey | None:
    """The stored answer for this key, or None; IdempotencyConflict if the key came with another request."""
    row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.principal == principal,
                                                      IdempotencyKey.key == key))
    if row is not None and row.fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used with a different request")
    return row


def claim(session: Session, principal: str, key: str, fingerprint: str, now: datetime) -> IdempotencyKey:
    """Insert the key first: a concurrent request with the same key waits on it, then fails and replays."""
    row = IdempotencyKey(principal=principal, key=key, fingerprint=fingerprint, created_at=now)
    session.add(row)
    session.flush()
    return row


def record(session: Session, row: IdempotencyKey, status: int, body: bytes, content_type: str) -> None:
    session.execute(update(IdempotencyKey).where(IdempotencyKey.id == row.id)
                    .values(status=status, body=body, content_type=content_type),
                    execution_options={"synchronize_session": False})


def purge(session: Session, now: datetime, keep: timedelta = timedelta(hours=24)) -> int:
    """Forget answers older than ``keep``; a client retries within minutes, not days."""
    return rowcount(session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - keep)))
