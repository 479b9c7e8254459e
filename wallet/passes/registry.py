"""The passes handed out and their update tags: a pass is recorded when it is first handed out, and every change
to what it shows moves its tag on and marks it for the worker (APNs pushes, Google Wallet updates)."""
from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db import on_postgres, rowcount
from ..program import Program
from .models import WalletPass

SYNC = {"synchronize_session": False}


def epoch(program: Program) -> int:
    return int(program.now().timestamp())


def _next(now: int):
    """The next update tag: now, or a second past the last one if that is not earlier (so every version of a pass
    has its own Last-Modified, and tags only grow)."""
    return case((WalletPass.modified >= now, WalletPass.modified + 1), else_=now)


def ensure(session: Session, program: Program, *, serial: str, kind: str, member_id: str, apple: bool = False,
           google: bool = False) -> None:
    """Record that this card or coupon was handed out as an Apple pass and/or a Google Wallet object (nothing is
    written when it already was)."""
    known = session.get(WalletPass, serial)
    if known is not None and (known.apple or not apple) and (known.google or not google):
        return
    insert = pg_insert if on_postgres(session) else sqlite_insert
    session.execute(insert(WalletPass).values(
        serial=serial, kind=kind, member_id=member_id, apple=apple, google=google, modified=epoch(program),
        push_due=False, google_due=False, created_at=program.now()).on_conflict_do_nothing(index_elements=["serial"]))
    flags = {name: True for name, wanted in (("apple", apple), ("google", google)) if wanted}
    if flags:
        session.execute(update(WalletPass).where(WalletPass.serial == serial,
                                                 or_(*[getattr(WalletPass, name).is_(False) for name in flags]))
                        .values(**flags), execution_options=SYNC)


def refresh(session: Session, program: Program, serial: str, digest: str) -> int:
    """The pass's update tag after serving content with this digest: moved on (and the pass's other devices and
    Google object marked) if the content differs from what was served last, so a change that no event announced
    still reaches the phone that asks, and the others."""
    known = session.get(WalletPass, serial)
    if known is not None and known.content_hash == digest:
        return known.modified  # as served last: nothing to write
    moved = session.execute(
        update(WalletPass).where(WalletPass.serial == serial,
                                 or_(WalletPass.content_hash.is_(None), WalletPass.content_hash != digest))
        .values(modified=_next(epoch(program)), content_hash=digest,
                push_due=case((WalletPass.content_hash.is_(None), WalletPass.push_due), else_=WalletPass.apple),
                google_due=case((WalletPass.content_hash.is_(None), WalletPass.google_due), else_=WalletPass.google))
        .returning(WalletPass.modified), execution_options=SYNC).first()
    if moved is not None:
        return int(moved[0])
    return int(session.scalars(select(WalletPass.modified).where(WalletPass.serial == serial)).one())


def changed(session: Session, program: Program, member_id: str, *, card: bool = True,
            coupon_ids: Collection[str] = (), all_coupons: bool = False) -> int:
    """A member's card (balance, tier, name, status) or coupons (used, cancelled) changed: move those passes'
    update tags on and mark them for the worker, which tells the phones. One UPDATE; nothing when the member has
    no passes. Call it in the change's transaction, or let the worker call it from the event log
    (:func:`wallet.passes.updates.follow_events`). How many passes were marked."""
    which = []
    if card:
        which.append(WalletPass.kind == "card")
    if all_coupons:
        which.append(WalletPass.kind == "coupon")
    elif coupon_ids:
        which.append(WalletPass.serial.in_(list(coupon_ids)))
    if not which:
        return 0
    done = session.execute(update(WalletPass).where(WalletPass.member_id == member_id, or_(*which))
                           .values(modified=_next(epoch(program)), push_due=WalletPass.apple,
                                   google_due=WalletPass.google), execution_options=SYNC)
    return rowcount(done)
