"""Bulk points adjustments: one credit or debit for a list of members or a segment, once per ``batch``.

Set-based: however many members, a fixed number of statements (the targets staged into a table, their balances
locked and read in one query, then one INSERT of entries, one of lots or lot uses, one of events, one UPDATE of
balances); Python only builds the rows. Each member's balance stays at or above zero: a debit takes what the
member has, up to the points asked (a member with nothing is skipped and counted), never refusing the batch.
A credit to a member with a points debt pays the debt first (``ledger.pay_debt``, only for those members).

A batch name is used once: the same batch again with the same request answers what the first did; with another
request it is 409 ``batch_conflict``. ``segment_id`` goes through :func:`segment_members` (one place to wire the
segments package in).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Table, bindparam, case, delete, func, insert, literal, select, true, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import events, ledger, segments
from .db import Base, new_id, table_of
from .errors import Conflict, Invalid
from .members import Member
from .program import Program

MAX_POINTS = 100_000_000
_CHUNK = 5_000  # ids per look-up


class AdjustmentBatch(Base):
    """One bulk adjustment, by its batch name: what was asked and what it did (the replayed answer)."""

    __tablename__ = "adjustment_batches"

    batch: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(48))
    result: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class AdjustmentTarget(Base):
    """A batch's members, staged so that every step is one statement over all of them."""

    __tablename__ = "adjustment_targets"

    batch: Mapped[str] = mapped_column(ForeignKey("adjustment_batches.batch"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)


def segment_members(session: Session, segment_id: str) -> Any:
    """The segment's member ids now, as a Select (one statement with the adjustment's); 404 ``segment_not_found``."""
    return segments.member_ids(session, segments.get_segment(session, segment_id))


def fingerprint_of(points: int, reason: str, member_ids: list[str] | None, segment_id: str | None) -> str:
    canonical = json.dumps([points, reason, sorted(set(member_ids)) if member_ids is not None else None, segment_id])
    return hashlib.sha256(canonical.encode()).hexdigest()


def adjust_many(session: Session, program: Program, *, batch: str, points: int, reason: str, actor: str,
                member_ids: list[str] | None = None, segment_id: str | None = None) -> tuple[dict[str, Any], bool]:
    """Credit (points > 0) or debit every member of the list or segment once; ``(result, replayed)``."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise Invalid("points is a non-zero number up to 100,000,000 either way", code="validation_error",
                      errors={"points": ["Must be non-zero, at most 100000000 either way."]})
    fingerprint = fingerprint_of(points, reason, member_ids, segment_id)
    existing = session.get(AdjustmentBatch, batch)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise Conflict("This batch was already used for another adjustment", code="batch_conflict")
        return existing.result, True
    now = program.now()
    record = AdjustmentBatch(batch=batch, fingerprint=fingerprint, points=points, reason=reason, actor=actor[:48],
                             segment_id=segment_id, created_at=now)
    session.add(record)
    session.flush()  # a concurrent batch of the same name waits here, then fails on the key (and is retried)
    targets = table_of(AdjustmentTarget)
    if segment_id is not None:
        session.execute(insert(targets).from_select(["batch", "member_id"], select(
            literal(batch, String), Member.id).where(Member.id.in_(segment_members(session, segment_id)),
                                                       Member.erased_at.is_(None))))
    else:
        wanted = sorted(set(member_ids or []))
        known = _existing(session, wanted)
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise Invalid(f"{len(unknown)} of the members do not exist or were erased", code="unknown_members",
                          errors={"member_ids": [f"Unknown: {', '.join(unknown[:20])}"]})
        _insert(session, targets, [{"batch": batch, "member_id": m} for m in wanted])
    result = _apply(session, program, record, targets, now)
    session.execute(delete(targets).where(targets.c.batch == batch))
    record.result = result
    session.flush()
    return result, False


def _existing(session: Session, member_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for page in range(0, len(member_ids), _CHUNK):
        found.update(session.scalars(select(Member.id).where(Member.id.in_(member_ids[page:page + _CHUNK]),
                                                             Member.erased_at.is_(None))))
    return found


def _apply(session: Session, program: Program, record: AdjustmentBatch, targets: Table,
           now: datetime) -> dict[str, Any]:
    balances = table_of(ledger.Balance)
    staged = select(targets.c.member_id).where(targets.c.batch == record.batch)
    # One query: every target's balance, locked (the ledger's one lock order: the balance row first).
    rows = session.execute(select(balances.c.member_id, balances.c.points, balances.c.seq, balances.c.debt)
                           .where(balances.c.member_id.in_(staged)).order_by(balances.c.member_id)
                           .with_for_update()).all()
    actor, channel = record.actor, "console"
    entries, lots, uses, event_rows, moves = [], [], [], [], []
    debit = record.points < 0
    lot_takes = _lot_takes(session, staged, -record.points) if debit else {}
    expires_at = ledger.default_expiry(program, now)
    skipped = 0
    debtors = []
    for member_id, points, seq, debt in rows:
        delta = record.points if not debit else -min(points, -record.points)
        if delta == 0:
            skipped += 1
            continue
        entry_id = new_id("led")
        entries.append({"id": entry_id, "member_id": member_id, "seq": seq + 1, "delta": delta, "kind": "adjust",
                        "reason": "manual", "source": f"batch:{record.batch}"[:80], "balance_after": points + delta,
                        "expires_at": expires_at if delta > 0 else None, "actor": actor, "description": record.reason,
                        "idempotency_key": f"batch:{record.batch}:{member_id}", "reverses_id": None, "rule_id": None,
                        "channel": channel, "created_at": now})
        if delta > 0:
            lots.append({"id": new_id("lot"), "member_id": member_id, "entry_id": entry_id, "points": delta,
                         "remaining": delta, "expires_at": expires_at})
            if debt:
                debtors.append((member_id, entry_id))
        else:
            uses += [{"entry_id": entry_id, "lot_id": lot_id, "points": take}
                     for lot_id, take in lot_takes.get(member_id, [])]
        moves.append({"m": member_id, "d": delta})
        event_rows.append(events.event_row("points.adjusted", member_id=member_id, channel=channel, actor=actor,
                                           occurred_at=now, data={"entry_id": entry_id, "points": delta,
                                                                  "kind": "adjust", "balance_after": points + delta}))
    _insert(session, table_of(ledger.LedgerEntry), entries)
    _insert(session, table_of(ledger.Lot), lots)
    _insert(session, table_of(ledger.LotUse), uses)
    _insert(session, table_of(events.Event), event_rows)
    if uses:
        lot_table = table_of(ledger.Lot)
        session.execute(update(lot_table).where(lot_table.c.id == bindparam("l"))
                        .values(remaining=lot_table.c.remaining - bindparam("t")),
                        [{"l": u["lot_id"], "t": u["points"]} for u in uses])
    if moves:  # one statement for all: the same credit, or each member's debit up to what they have
        delta = (bindparam("p") if not debit else
                 -case((balances.c.points < bindparam("x"), balances.c.points), else_=bindparam("x")))
        session.execute(update(balances).where(balances.c.member_id.in_(staged), balances.c.points > 0 if debit else true())
                        .values(points=balances.c.points + delta, seq=balances.c.seq + 1, updated_at=now),
                        {"p": record.points, "x": -record.points})
    session.expire_all()
    for member_id, entry_id in debtors:  # few: a credit pays a points debt first
        ledger.pay_debt(session, program, member_id, key=entry_id, channel=channel)
    moved = sum(m["d"] for m in moves)
    return {"batch": record.batch, "points": record.points, "members": len(rows), "adjusted": len(moves),
            "skipped": skipped, "points_moved": moved,
            "short": sum(1 for m in moves if debit and m["d"] != record.points)}


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """The driver's executemany, a page at a time (psycopg pipelines it: no round trip per row). Measured against
    multi-row INSERTs: psycopg's client-side parsing of a statement with thousands of parameters cost more."""
    for page in range(0, len(rows), _CHUNK):
        session.execute(insert(table), rows[page:page + _CHUNK])


def _lot_takes(session: Session, staged: Any, points: int) -> dict[str, list[tuple[str, int]]]:
    """For a debit of ``points`` from every staged member: which of their open lots give how much, first to expire
    first (one query, a running sum per member)."""
    lot = table_of(ledger.Lot)
    order = (lot.c.expires_at.is_(None), lot.c.expires_at, lot.c.id)
    before = func.coalesce(func.sum(lot.c.remaining).over(partition_by=lot.c.member_id, order_by=order,
                                                         rows=(None, -1)), 0)
    ranked = (select(lot.c.member_id, lot.c.id, lot.c.remaining, before.label("before"))
              .where(lot.c.member_id.in_(staged), lot.c.remaining > 0).subquery())
    rows = session.execute(select(ranked.c.member_id, ranked.c.id, ranked.c.remaining, ranked.c.before)
                           .where(ranked.c.before < points)).all()
    takes: dict[str, list[tuple[str, int]]] = {}
    for member_id, lot_id, remaining, taken_before in rows:
        take = min(remaining, points - int(taken_before))
        if take > 0:
            takes.setdefault(member_id, []).append((lot_id, take))
    return takes
