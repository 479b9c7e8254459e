"""The worker's watch on the till: a card used at two stores within a minute (a shared screenshot of a QR code, a
cloned card) is flagged from the event log after the fact, so the till's one statement gains nothing."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..events import advance_cursor, claim_cursor, read
from ..program import Program
from ..purchases import Purchase
from .flags import QR_TWO_STORES, raise_flag

TWO_STORES_WINDOW = timedelta(minutes=1)
EVENT_CURSOR = "fraud"  # the event log reader's name (event_cursors)
_OWNER = f"fraud:{socket.gethostname()[:30]}:{os.getpid()}"


def watch_purchases(session: Session, program: Program, *, batch: int = 500) -> int:
    """Read the next recorded purchases and flag each one made within a minute of the same member's purchase at
    another store; in one transaction with the reader's cursor (the caller commits). How many events were read."""
    now = program.now()
    claimed = claim_cursor(session, EVENT_CURSOR, _OWNER, now, timedelta(minutes=5))
    if claimed is None:
        return 0  # another worker is on it
    found = read(session, claimed.after, limit=batch, types=["purchase.recorded"])
    for event in found:
        purchase_id = (event.data or {}).get("purchase_id")
        if not event.member_id or not event.store_id:
            continue
        at = event.occurred_at
        other = session.execute(
            select(Purchase.id, Purchase.store_id, Purchase.created_at)
            .where(Purchase.member_id == event.member_id, Purchase.store_id != event.store_id,
                   Purchase.created_at >= at - TWO_STORES_WINDOW, Purchase.created_at <= at,
                   Purchase.id != purchase_id)
            .order_by(Purchase.created_at.desc()).limit(1)).first()
        if other is None:
            continue
        raise_flag(session, kind=QR_TWO_STORES, subject=f"member:{event.member_id}", at=at,
                   member_id=event.member_id, store_id=event.store_id,
                   details={"purchase_id": purchase_id, "other_purchase_id": other.id, "other_store_id": other.store_id,
                            "seconds_apart": round((at - other.created_at).total_seconds(), 1)})
    advance_cursor(session, claimed, found[-1].cursor if found else claimed.after, release=True, now=now)
    return len(found)
