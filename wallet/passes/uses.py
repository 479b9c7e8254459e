"""Pass codes at the till. A Google Wallet code (``G1-``, a card's TOTP value of one 30-second step) is good for
one identify and one purchase, both at the store that first took it; anywhere else, or a second time, it is
refused. An Apple Wallet pass code (``P1-``, static) is recorded at each use, and flagged for fraud review when the
same card's code is used at two stores within a minute (a screenshot going round)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db import on_postgres, table_of
from ..errors import Rejected
from ..program import Program
from ..scanner import Scanned
from .models import PassScan, RotatingCodeUse

log = logging.getLogger("loyalty.passes")

Purpose = Literal["identify", "purchase"]
REUSE_WINDOW = timedelta(minutes=1)
_USES = table_of(RotatingCodeUse)


def record_use(session: Session, program: Program, scanned: Scanned, *, store_id: str | None,
               purpose: Purpose) -> None:
    """Record a pass code's use at a till, in the caller's transaction; Rejected if a rotating code may not be used
    here or again. Nothing for codes that are not a pass's."""
    if scanned.pass_code == "G1":
        _rotating(session, program, scanned, store_id, purpose)
    elif scanned.pass_code == "P1" and store_id is not None:
        _static(session, program, scanned.key, store_id, purpose)


def _rotating(session: Session, program: Program, scanned: Scanned, store_id: str | None, purpose: Purpose) -> None:
    if store_id is None or scanned.step is None:
        raise Rejected("A Google Wallet code is taken at a store's till", code="pass_code_needs_store")
    now = program.now()
    column = "identified_at" if purpose == "identify" else "purchased_at"
    insert = pg_insert if on_postgres(session) else sqlite_insert
    values = {"card_id": scanned.key, "step": scanned.step, "store_id": store_id, "identified_at": None,
              "purchased_at": None, "created_at": now} | {column: now}
    # One statement: the first use makes the row; a later one takes its purpose only at the same store and
    # only once. No row back: refused.
    taken = session.execute(
        insert(RotatingCodeUse).values(**values)
        .on_conflict_do_update(index_elements=["card_id", "step"], set_={column: now},
                               where=(_USES.c.store_id == store_id) & _USES.c[column].is_(None))
        .returning(_USES.c.card_id)).first()
    if taken is not None:
        return
    first = session.execute(select(_USES.c.store_id).where(_USES.c.card_id == scanned.key,
                                                           _USES.c.step == scanned.step)).scalar()
    if first is not None and first != store_id:
        raise Rejected("This Google Wallet code was already used at another store", code="pass_code_used_elsewhere",
                       errors={"card": ["Used at another store."]})
    raise Rejected(f"This Google Wallet code was already used for a {purpose}: ask for the next code (it changes "
                   "every 30 seconds)", code="pass_code_used", errors={"card": ["Already used."]})


def _static(session: Session, program: Program, card_id: str, store_id: str, purpose: Purpose) -> None:
    now = program.now()
    other = session.execute(select(PassScan.store_id).where(PassScan.card_id == card_id, PassScan.store_id != store_id,
                                                            PassScan.at > now - REUSE_WINDOW).limit(1)).scalar()
    session.add(PassScan(card_id=card_id, store_id=store_id, purpose=purpose, at=now, flagged=other is not None,
                         other_store_id=other))
    if other is not None:
        log.warning("pass code of card %s used at stores %s and %s within a minute: flagged for review",
                    card_id, other, store_id)


def flagged_scans(session: Session, since: datetime, *, limit: int = 100) -> list[PassScan]:
    """Static pass codes used at two stores within a minute, newest first (for the fraud review's list)."""
    return list(session.scalars(select(PassScan).where(PassScan.flagged.is_(True), PassScan.at >= since)
                                .order_by(PassScan.at.desc()).limit(limit)))
