"""The points ledger: append-only entries, the balance beside them, lots that expire, pending holds.

Invariants at every commit: ``balances.points == sum(entries.delta)`` per member, ``points >= 0``, every
entry's idempotency key unique, ``(member, seq)`` unique and gapless. An entry is never updated or deleted;
a mistake is undone by a ``reverse`` entry that points at what it reverses. Earned points sit in lots; a
debit consumes the lots that expire first and records which ones (``lot_uses``) so a reversal can put
the points back where they came from.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import events
from .clock import iso, utcnow
from .db import MAX_BALANCE, MAX_POINTS_PER_MOVEMENT, Base, Points, id_column, new_id, on_postgres, rowcount, table_of
from .errors import IdempotencyConflict, InsufficientPoints, Invalid, NotFound, Rejected
from .fast_sql import Batch, Lead, add_now, as_written, execute
from .program import Program

KINDS = ("earn", "spend", "expire", "adjust", "reverse")


class Balance(Base):
    __tablename__ = "balances"
    __table_args__ = (CheckConstraint("points >= 0", name="points_not_negative"),
                      CheckConstraint("pending >= 0", name="pending_not_negative"),
                      CheckConstraint("debt >= 0", name="debt_not_negative"))

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    points: Mapped[int] = mapped_column(Points, default=0)
    pending: Mapped[int] = mapped_column(Points, default=0)
    # The number of entries: the next entry's seq. Unique (member, seq) makes a lost update impossible.
    seq: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Points a return took back after they were spent (``points.debt``): later credits pay it first (pay_debt).
    debt: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("member_id", "seq"),
        # One reversal per entry. Partial: the earned entries (every purchase's) have none, and write no index entry.
        Index("ix_ledger_entries_reverses", "reverses_id", unique=True,
              postgresql_where=text("reverses_id IS NOT NULL"), sqlite_where=text("reverses_id IS NOT NULL")),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        CheckConstraint("kind IN ('earn','spend','expire','adjust','reverse')", name="kind_known"),
    )

    id: Mapped[str] = id_column("led")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    seq: Mapped[int]
    delta: Mapped[int] = mapped_column(Points)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(80), index=True)
    balance_after: Mapped[int] = mapped_column(Points)
    expires_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(48), default="system")
    description: Mapped[str] = mapped_column(String(240), default="")
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    reverses_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_entries.id"))
    rule_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    debt_seen = 0  # not a column: the member's debt as the credit's own statement read it (0: nothing to pay)


class Lot(Base):
    """Points earned together, spent first-to-expire-first; ``remaining`` is what is left of them."""

    __tablename__ = "points_lots"
    __table_args__ = (CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
                      Index("ix_points_lots_member_open", "member_id", "expires_at"),
                      Index("ix_points_lots_expiring", "expires_at"))

    id: Mapped[str] = id_column("lot")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[str] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    points: Mapped[int] = mapped_column(Points)
    remaining: Mapped[int] = mapped_column(Points)
    expires_at: Mapped[datetime | None]


class LotUse(Base):
    """How much of which lot a debit took (or a reversal gave back)."""

    __tablename__ = "lot_uses"

    entry_id: Mapped[str] = mapped_column(ForeignKey("ledger_entries.id"), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("points_lots.id"), primary_key=True)
    points: Mapped[int] = mapped_column(Points)

FIRST_PURCHASE = "first_purchase"  # what a welcome hold waits for (LOYALTY_WELCOME_PENDING)


class PendingPoints(Base):
    """Points held for a return window (released by a job), or until the first purchase (``awaits``: welcome points)."""

    __tablename__ = "pending_points"
    # The till's one read asks whether a hold awaits this purchase: an index of only those, next to free to ask.
    __table_args__ = (Index("ix_pending_points_awaiting", "member_id",
                            postgresql_where=text("awaits IS NOT NULL AND status = 'pending'"),
                            sqlite_where=text("awaits IS NOT NULL AND status = 'pending'")),)

    id: Mapped[str] = id_column("pen")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    points: Mapped[int] = mapped_column(Points)
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(80), index=True)
    description: Mapped[str] = mapped_column(String(240), default="")
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    available_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, released, canceled
    rule_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(48), default="system")
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    awaits: Mapped[str | None] = mapped_column(String(16))  # first_purchase; None: released at available_at


_balances = table_of(Balance)
_entries = table_of(LedgerEntry)
# Built once (every purchase runs it): move the balance by :delta unless that takes it below zero or past MAX_BALANCE, count the
# entry, and answer the balance and the entry's seq. The row lock it takes orders the member's movements.
_MOVE = (update(_balances)
         .where(_balances.c.member_id == bindparam("member"), _balances.c.points + bindparam("delta") >= literal_column("0"),
                _balances.c.points + bindparam("delta") <= literal_column(str(MAX_BALANCE)))
         .values(points=_balances.c.points + bindparam("delta"), seq=_balances.c.seq + literal_column("1"),
                 updated_at=bindparam("now", type_=_balances.c.updated_at.type))
         .returning(_balances.c.points, _balances.c.seq, _balances.c.debt))


def _credit_pg(with_event: bool) -> tuple[Any, tuple[str, ...]]:
    """PostgreSQL: _MOVE, the entry (its seq and balance_after from the move) and its lot, in one statement, and with
    ``with_event`` the entry's ``points.earned`` event, whose ``balance_after`` only the move knows. No row back: no
    such member. Parameters: _MOVE's (member, delta, now), ``e_<column>`` for the rest of the entry, ``lot_id``,
    and for the event ``v_<column>`` and ``v_reason``, ``v_source``, ``v_expires_at`` for its data."""
    lots = table_of(Lot)
    moved = _MOVE.cte("moved")
    computed = {"seq": moved.c.seq, "balance_after": moved.c.points, "reverses_id": null(),
                "member_id": bindparam("member", type_=_entries.c.member_id.type),
                "delta": bindparam("delta", type_=_entries.c.delta.type),
                "created_at": bindparam("now", type_=_entries.c.created_at.type)}
    columns = list(_entries.columns)
    entry = (insert(_entries)
             .from_select([c.key for c in columns],
                          select(*[computed.get(c.key, bindparam(f"e_{c.key}", type_=c.type)) for c in columns])
                          .select_from(moved))
             .returning(_entries.c.id, _entries.c.seq, _entries.c.balance_after, _entries.c.expires_at)
             .cte("entry"))
    lot = (insert(lots)
           .from_select(["id", "member_id", "entry_id", "points", "remaining", "expires_at"],
                        select(bindparam("lot_id", type_=lots.c.id.type), bindparam("member", type_=lots.c.member_id.type),
                               entry.c.id, bindparam("delta", type_=lots.c.points.type),
                               bindparam("delta", type_=lots.c.points.type), entry.c.expires_at).select_from(entry))
           .cte("lot"))
    statement = (select(entry.c.balance_after.label("points"), entry.c.seq, moved.c.debt)
                 .select_from(entry).join(moved, true()).add_cte(lot))
    if with_event:
        log = table_of(events.Event)
        text = String()
        data = func.jsonb_strip_nulls(func.jsonb_build_object(
            literal("entry_id"), entry.c.id, literal("points"), bindparam("delta", type_=BigInteger()),
            literal("reason"), bindparam("v_reason", type_=text), literal("source"), bindparam("v_source", type_=text),
            literal("balance_after"), entry.c.balance_after,
            literal("expires_at"), bindparam("v_expires_at", type_=text)))
        fields = {"id": bindparam("v_id", type_=text), "type": literal("points.earned"),
                  "occurred_at": bindparam("now", type_=log.c.occurred_at.type),
                  "member_id": bindparam("member", type_=text), "store_id": null(),
                  "channel": bindparam("v_channel", type_=text), "actor": bindparam("v_actor", type_=text),
                  "data": data, "created_at": bindparam("now", type_=log.c.created_at.type)}
        event = insert(log).from_select(list(fields), select(*fields.values()).select_from(entry)).cte("event")
        statement = statement.add_cte(event)
    return statement, tuple(c.key for c in columns if c.key not in computed)


# The statement, and the entry's columns it binds as e_<column> (the others come from the balance's move); the
# same with the entry's event, for a credit that leads a batch (its balance is known only when it is written).
_CREDIT_PG, _CREDIT_PG_ENTRY = _credit_pg(with_event=False)
_CREDIT_PG_EVENT, _ = _credit_pg(with_event=True)

# A movement's event type, by the entry's kind.
_EVENT_TYPES = {"earn": "points.earned", "spend": "points.spent", "expire": "points.expired", "adjust": "points.adjusted",
                "reverse": "points.adjusted"}


def _event_channel(kind: str, channel: str | None) -> str:
    """The event's channel: the entry's, else where such a movement comes from (a job expires, staff adjust)."""
    return events.channel_of(channel, {"expire": "job", "adjust": "console"}.get(kind, "api"))


def _movement_data(values: dict[str, Any], balance_after: int) -> dict[str, Any]:
    """The event's data: ids, points and codes (an absent value is left out, as the database's copy leaves it)."""
    kind, delta = values["kind"], values["delta"]
    return {key: value for key, value in _movement_fields(kind, delta, values, balance_after).items()
            if value is not None}


def _movement_fields(kind: str, delta: int, values: dict[str, Any], balance_after: int) -> dict[str, Any]:
    base = {"entry_id": values["id"], "balance_after": balance_after}
    if kind == "earn":
        return base | {"points": delta, "reason": values["reason"], "source": values["source"],
                       "expires_at": iso(values["expires_at"])}
    if kind == "spend":
        return base | {"points": -delta, "reason": values["reason"], "source": values["source"]}
    if kind == "expire":
        return base | {"points": -delta}
    return base | {"points": delta, "kind": kind, "reverses": values["reverses_id"]}


def _emit_movement(session: Session, values: dict[str, Any], balance_after: int) -> None:
    """The movement's ``points.*`` event, in the movement's transaction."""
    events.emit(session, _EVENT_TYPES[values["kind"]], member_id=values["member_id"],
                channel=_event_channel(values["kind"], values["channel"]), actor=values["actor"][:64],
                data=_movement_data(values, balance_after), occurred_at=values["created_at"])


def open_account(session: Session, member_id: str) -> None:
    session.add(Balance(member_id=member_id))


def balance_of(session: Session, member_id: str) -> Balance:
    balance = session.get(Balance, member_id)
    if balance is None:
        raise NotFound("No such member")
    return balance


def default_expiry(program: Program, now: datetime, days: int | None = None) -> datetime | None:
    days = program.points_expiry_days if days is None else days
    return None if not days else now + timedelta(days=days)


def _replay(session: Session, key: str, member_id: str, delta: int | None, kind: str) -> LedgerEntry | None:
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == key))
    if entry is not None and (entry.member_id != member_id or entry.kind != kind
                              or (delta is not None and entry.delta != delta)):
        raise IdempotencyConflict(f"Ledger key {key!r} was used for a different movement")
    return entry


def _move(session: Session, program: Program, *, member_id: str, delta: int, kind: str, reason: str,
          idempotency_key: str, description: str, source: str | None, actor: str,
          expires_at: datetime | None = None, reverses_id: str | None = None,
          rule_id: str | None = None, channel: str | None = None, lot: bool = False,
          batch: Batch | None = None, announce: bool = True) -> LedgerEntry:
    """Change the balance and append the entry in one go; the UPDATE takes the member's row lock.

    ``lot``: a credit also opens its lot. On PostgreSQL the balance, the entry and the lot are then written
    by one statement (data-modifying CTEs), elsewhere by three. The entry is handed back as written; it need not
    be in the session (the one statement's is not: a later look-up reads its row).

    ``batch``: on PostgreSQL that one statement may be put off to lead the caller's batch (if no other leads it
    yet), written with its rows by ``fast_sql.write``; until then the entry's ``seq`` and ``balance_after`` are None.
    """
    check_points(abs(delta))
    now = program.now()
    values = {"id": new_id("led"), "member_id": member_id, "delta": delta, "kind": kind, "reason": reason,
              "source": source, "expires_at": expires_at, "actor": actor, "description": description,
              "idempotency_key": idempotency_key, "reverses_id": reverses_id, "rule_id": rule_id, "channel": channel,
              "created_at": now}
    if lot and on_postgres(session):  # the statement writes the entry: handed back as written, not in the session
        entry = as_written(LedgerEntry, values)
        params = {"member": member_id, "delta": delta, "now": now, "lot_id": new_id("lot"),
                  **{f"e_{key}": values[key] for key in _CREDIT_PG_ENTRY}}
        if batch is not None and batch.lead is None and kind == "earn":
            if announce:  # the event goes in the same statement: its balance_after comes from the move
                data = _movement_data(values, 0)
                channel = _event_channel(kind, channel)
                events.check("points.earned", channel, data)
                params |= {"v_id": new_id("evt"), "v_channel": channel, "v_actor": actor[:64], "v_reason": reason,
                           "v_source": source, "v_expires_at": data.get("expires_at")}
            statement = _CREDIT_PG_EVENT if announce else _CREDIT_PG
            batch.lead = Lead(statement, params, lambda row: _moved(session, entry, row))
            return entry
        _moved(session, entry, execute(session, _CREDIT_PG, params).one_or_none())
    else:
        entry = LedgerEntry(**values)
        _moved(session, entry, execute(session, _MOVE, {"member": member_id, "delta": delta, "now": now}).one_or_none())
        add_now(session, entry)
        if lot:
            add_now(session, Lot(member_id=member_id, entry_id=entry.id, points=delta, remaining=delta,
                                 expires_at=expires_at))
    if announce:
        _emit_movement(session, values, entry.balance_after)
    return entry


def check_points(points: int) -> None:
    """One movement carries at most MAX_POINTS_PER_MOVEMENT points (422 points_out_of_range)."""
    if points > MAX_POINTS_PER_MOVEMENT:
        raise Invalid(f"One movement carries at most {MAX_POINTS_PER_MOVEMENT:,} points; this one is {points:,}",
                      code="points_out_of_range", errors={"points": [f"At most {MAX_POINTS_PER_MOVEMENT} in one movement."]})


def _moved(session: Session, entry: LedgerEntry, row: Any) -> None:
    """What the balance's move answered (its points and the entry's seq), or no row: refused."""
    if row is None:
        points = session.scalar(select(Balance.points).where(Balance.member_id == entry.member_id))
        if points is None:
            raise NotFound("No such member")
        if entry.delta > 0:  # refused by the upper bound, not for want of points
            raise Rejected(f"This credit of {entry.delta:,} points would take the balance past {MAX_BALANCE:,}",
                           code="balance_limit", balance=points, max_balance=MAX_BALANCE)
        raise InsufficientPoints(f"This needs {-entry.delta} points; the balance is {points}",
                                 balance=points, required=-entry.delta)
    # set as loaded values (no change to flush: the row is written)
    entry.__dict__["seq"], entry.__dict__["balance_after"] = row.seq, row.points
    entry.debt_seen = row.debt
    _forget_balance(session, entry.member_id)


def _forget_balance(session: Session, member_id: str) -> None:
    """An UPDATE bypassed the ORM: a Balance already loaded in this session must be read again."""
    if not session.identity_map:  # the till's path loads nothing: skip building the key (a mapper walk)
        return
    cached = session.identity_map.get(session.identity_key(Balance, member_id))
    if cached is not None:
        session.expire(cached)


def _take_from_lots(session: Session, entry: LedgerEntry, points: int, first_lot_ids: Collection[str] = ()) -> None:
    """Consume ``points`` from the member's open lots: the named lots first, then first-to-expire-first."""
    lots = list(session.scalars(
        select(Lot).where(Lot.member_id == entry.member_id, Lot.remaining > 0)
        .order_by(Lot.expires_at.is_(None), Lot.expires_at, Lot.id)
    ))
    lots.sort(key=lambda lot: lot.id not in first_lot_ids)  # stable: keeps FEFO within each group
    left = points
    for lot in lots:
        if not left:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        left -= take
        session.add(LotUse(entry_id=entry.id, lot_id=lot.id, points=take))
    # The balance row and the lots move together; a gap would mean they disagreed.
    assert left == 0, f"lots of {entry.member_id} hold less than the balance"


def earn(session: Session, program: Program, *, member_id: str, points: int, reason: str, idempotency_key: str,
         description: str, source: str | None = None, actor: str = "system", expires_at: datetime | None = None,
         expiry_days: int | None = None, rule_id: str | None = None, channel: str | None = None,
         kind: str = "earn", fresh: bool = False, batch: Batch | None = None, announce: bool = True) -> LedgerEntry:
    """Credit points as a new lot (expiring per the programme unless told otherwise).

    ``announce``: write the credit's ``points.earned`` event; False when the caller's own event carries the credit
    (a purchase's ``purchase.recorded`` lists the points and grants it earned: one event row per purchase).

    ``fresh``: the caller's event was inserted in this transaction under a unique constraint, so no movement
    with this key can exist yet; the look-up is skipped (the key's unique index still guards).
    ``batch``: the credit may be put off to be written with the caller's batch (see ``_move``).
    """
    if points <= 0:
        raise ValueError("earn takes a positive number of points")
    existing = None if fresh else _replay(session, idempotency_key, member_id, points, kind)
    if existing is not None:
        return existing
    if expires_at is None:
        expires_at = default_expiry(program, program.now(), expiry_days)
    entry = _move(session, program, member_id=member_id, delta=points, kind=kind, reason=reason,
                  idempotency_key=idempotency_key, description=description, source=source, actor=actor,
                  expires_at=expires_at, rule_id=rule_id, channel=channel, lot=True, batch=batch, announce=announce)
    if entry.debt_seen:  # known from the credit's own statement: no round trip for a member without debt
        pay_debt(session, program, entry.member_id, key=entry.id, channel=channel)
    return entry


def pay_debt(session: Session, program: Program, member_id: str, *, key: str, channel: str | None = None) -> int:
    """Pay the member's points debt from the balance, as far as it goes, by a ``spend`` entry (reason ``debt``)."""
    balance = session.execute(select(Balance).where(Balance.member_id == member_id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one()
    paid, left = min(balance.debt, balance.points), max(balance.debt - balance.points, 0)
    if paid > 0:
        spend(session, program, member_id=member_id, points=paid, reason="debt", idempotency_key=f"debt:{key}",
              source=f"debt:{key}", channel=channel, description=f"{paid} points paid towards the points debt a "
              "return left " + (f"({left} still owed)" if left else "(the debt is paid off)"))
        owe(session, member_id, -paid)
    return max(paid, 0)


def owe(session: Session, member_id: str, points: int) -> None:
    """Add to (or, negative, take from) the member's points debt."""
    session.execute(update(Balance).where(Balance.member_id == member_id).values(debt=Balance.debt + points),
                    execution_options={"synchronize_session": False})
    _forget_balance(session, member_id)


def spend(session: Session, program: Program, *, member_id: str, points: int, reason: str, idempotency_key: str,
          description: str, source: str | None = None, actor: str = "system", kind: str = "spend",
          channel: str | None = None, first_lots: Collection[str] = ()) -> LedgerEntry:
    """Debit points from the named lots, then those that expire first; InsufficientPoints if the balance can't pay."""
    if points <= 0:
        raise ValueError("spend takes a positive number of points")
    existing = _replay(session, idempotency_key, member_id, -points, kind)
    if existing is not None:
        return existing
    entry = _move(session, program, member_id=member_id, delta=-points, kind=kind, reason=reason,
                  idempotency_key=idempotency_key, description=description, source=source, actor=actor,
                  channel=channel)
    _take_from_lots(session, entry, points, first_lot_ids=first_lots)
    return entry


def adjust(session: Session, program: Program, *, member_id: str, points: int, reason: str, idempotency_key: str,
           actor: str, description: str) -> LedgerEntry:
    """A manual credit (positive) or debit (negative) by staff, kept with its actor and reason."""
    if points == 0:
        raise Rejected("An adjustment of zero points changes nothing", code="zero_adjustment")
    source = f"adjustment:{actor}"
    if points > 0:
        return earn(session, program, member_id=member_id, points=points, reason="manual", kind="adjust",
                    idempotency_key=idempotency_key, description=description, source=source, actor=actor)
    return spend(session, program, member_id=member_id, points=-points, reason="manual", kind="adjust",
                 idempotency_key=idempotency_key, description=description, source=source, actor=actor)


@dataclass
class Reversal:
    entry: LedgerEntry | None
    requested: int
    reversed: int

    @property
    def shortfall(self) -> int:
        return self.requested - self.reversed


def reverse(session: Session, program: Program, original: LedgerEntry, *, actor: str, description: str,
            reason: str | None = None, channel: str | None = None) -> Reversal:
    """Undo an entry with a new one. A credit is taken back only as far as the balance allows."""
    key = f"reverse:{original.id}"
    existing = session.scalar(select(LedgerEntry).where(LedgerEntry.reverses_id == original.id))
    if existing is not None:
        return Reversal(existing, abs(original.delta), abs(existing.delta))
    if original.kind == "reverse":
        raise Rejected("A reversal is not reversed; post a new movement instead", code="cannot_reverse")
    reason = reason or original.reason
    if original.delta > 0:
        balance = session.execute(
            select(Balance).where(Balance.member_id == original.member_id).with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        take = min(original.delta, balance.points)
        if take == 0:
            return Reversal(None, original.delta, 0)
        entry = _move(session, program, member_id=original.member_id, delta=-take, kind="reverse", reason=reason,
                      idempotency_key=key, description=description, source=original.source, actor=actor,
                      reverses_id=original.id, channel=channel)
        own = list(session.scalars(select(Lot.id).where(Lot.entry_id == original.id)))
        _take_from_lots(session, entry, take, first_lot_ids=own)
        return Reversal(entry, original.delta, take)
    # A debit given back: the points return to the lots they came from, unless those have expired.
    now = program.now()
    entry = _move(session, program, member_id=original.member_id, delta=-original.delta, kind="reverse",
                  reason=reason, idempotency_key=key, description=description, source=original.source,
                  actor=actor, reverses_id=original.id, channel=channel)
    uses = session.execute(select(LotUse, Lot).join(Lot, Lot.id == LotUse.lot_id)
                           .where(LotUse.entry_id == original.id)).all()
    lapsed = 0
    for use, lot in uses:
        if lot.expires_at is not None and lot.expires_at <= now:
            lapsed += use.points
            continue
        lot.remaining += use.points
        session.add(LotUse(entry_id=entry.id, lot_id=lot.id, points=-use.points))
    unaccounted = -original.delta - sum(use.points for use, _ in uses)
    if lapsed + unaccounted:
        # Their lots expired meanwhile: a fresh lot, so the member does not lose points to our refund.
        expires = default_expiry(program, now)
        session.add(Lot(member_id=original.member_id, entry_id=entry.id, points=lapsed + unaccounted,
                        remaining=lapsed + unaccounted, expires_at=expires))
    return Reversal(entry, -original.delta, -original.delta)


def expire_due(session: Session, program: Program, *, batch_size: int = 500) -> int:
    """Write ``expire`` entries for what is left of lots past their date, one batch of members; returns points expired.

    Safe to run twice or concurrently: each member's balance row is locked before their lots are read, and
    an expiry's key is its lot, so a lot can only ever expire once.
    """
    now = program.now()
    member_ids = list(session.scalars(
        select(Lot.member_id).where(Lot.remaining > 0, Lot.expires_at <= now)
        .group_by(Lot.member_id).order_by(Lot.member_id).limit(batch_size)
    ))
    expired = 0
    for member_id in member_ids:
        session.execute(select(Balance.member_id).where(Balance.member_id == member_id).with_for_update())
        lots = session.execute(
            select(Lot, LedgerEntry.created_at).join(LedgerEntry, LedgerEntry.id == Lot.entry_id)
            .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= now)
            .order_by(Lot.expires_at).execution_options(populate_existing=True)
        ).all()
        for lot, earned_at in lots:
            points = lot.remaining
            # The lot's own life (its rule's points_expiry_days), not the programme's default.
            entry = _move(session, program, member_id=member_id, delta=-points, kind="expire", reason="expiry",
                          idempotency_key=f"expire:{lot.id}", source=f"lot:{lot.id}", actor="system",
                          description=f"{points} points expired (earned {earned_at.date().isoformat()}, they "
                                      f"lasted {lasts_days(earned_at, lot.expires_at)} days)")
            lot.remaining = 0
            session.add(LotUse(entry_id=entry.id, lot_id=lot.id, points=points))
            expired += points
    session.flush()
    return expired


def hold(session: Session, program: Program, *, member_id: str, points: int, reason: str, source: str,
         idempotency_key: str, description: str, available_at: datetime, expiry_days: int | None = None,
         rule_id: str | None = None, actor: str = "system", channel: str | None = None,
         awaits: str | None = None) -> PendingPoints:
    """Hold points as pending until ``available_at`` (a return window), or until ``awaits`` (fraud.release_welcome)."""
    existing = session.scalar(select(PendingPoints).where(PendingPoints.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    check_points(points)
    expires_at = default_expiry(program, available_at, expiry_days)
    held = PendingPoints(member_id=member_id, points=points, reason=reason, source=source, rule_id=rule_id,
                         idempotency_key=idempotency_key, description=description, available_at=available_at,
                         expires_at=expires_at, actor=actor, channel=channel, created_at=program.now(),
                         awaits=awaits)
    session.add(held)
    session.execute(update(Balance).where(Balance.member_id == member_id)
                    .values(pending=Balance.pending + points), execution_options={"synchronize_session": False})
    session.flush()
    return held


def release_due(session: Session, program: Program, *, batch_size: int = 500) -> int:
    """Turn pending points whose window has passed into spendable points; returns how many holds were released."""
    now = program.now()
    ids = list(session.scalars(select(PendingPoints.id).where(PendingPoints.status == "pending",
                                                               PendingPoints.awaits.is_(None),
                                                               PendingPoints.available_at <= now)
                               .order_by(PendingPoints.available_at).limit(batch_size)))
    released = 0
    for pending_id in ids:
        # Conditional update: a concurrent release or a refund of the same hold wins at most once.
        won = rowcount(session.execute(update(PendingPoints).where(PendingPoints.id == pending_id,
                                                                   PendingPoints.status == "pending")
                                       .values(status="released"),
                                       execution_options={"synchronize_session": False}))
        if not won:
            continue
        held = session.get_one(PendingPoints, pending_id, populate_existing=True)  # just updated: it exists
        session.execute(update(Balance).where(Balance.member_id == held.member_id)
                        .values(pending=Balance.pending - held.points), execution_options={"synchronize_session": False})
        earn(session, program, member_id=held.member_id, points=held.points, reason=held.reason,
             idempotency_key=f"release:{held.id}", description=held.description, source=held.source,
             actor=held.actor, expires_at=held.expires_at, rule_id=held.rule_id, channel=held.channel)
        released += 1
    session.flush()
    return released


def cancel_pending(session: Session, source: str) -> int:
    """Cancel the holds a source made that are still pending; returns the points cancelled."""
    cancelled, sync = 0, {"synchronize_session": False}
    for held in session.scalars(select(PendingPoints).where(PendingPoints.source == source,
                                                            PendingPoints.status == "pending")).all():
        if rowcount(session.execute(update(PendingPoints).where(PendingPoints.id == held.id,
                                                                PendingPoints.status == "pending")
                                    .values(status="canceled"), execution_options=sync)):
            session.execute(update(Balance).where(Balance.member_id == held.member_id)
                            .values(pending=Balance.pending - held.points), execution_options=sync)
            cancelled += held.points
    return cancelled


def lasts_days(earned_at: datetime, expires_at: datetime | None) -> int | None:
    """How many days a lot lasts: its own expiry, not the programme's default (a rule may give 30 days)."""
    if expires_at is None:
        return None
    return round((expires_at - earned_at).total_seconds() / 86400)
