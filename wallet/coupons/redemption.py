"""The till: a coupon redeemed once, ever, decided by the database; checked, rolled back."""
from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from .. import events, scanner
from ..clock import iso
from ..db import UTCDateTime, new_id, on_postgres, rowcount, table_of
from ..errors import (
    Conflict,
    CouponAlreadyRedeemed,
    CouponExpired,
    CouponNotValidHere,
    CouponOwnerMismatch,
    CouponVoid,
    NotFound,
    Rejected,
)
from ..fast_sql import execute
from ..members import find_card
from ..program import Program
from ..scanner import Scanned
from .models import SYNC, Coupon, Offer, Redemption, jsonable, shown_status

# ---------------------------------------------------------------- the till

# The till reads a coupon with its offer as one row (Core, no ORM objects): what the answer shows and what the
# checks need. Statements are built once; each request only binds its values.
_C, _O, _R = table_of(Coupon), table_of(Offer), table_of(Redemption)
_TILL_COLUMNS = (_C.c.id, _C.c.offer_id, _C.c.member_id, _C.c.status, _C.c.issued_at, _C.c.expires_at,
                 _C.c.redeemed_at, _C.c.redeemed_store_id, _C.c.redemption_id, _O.c.title, _O.c.terms,
                 _O.c.benefit, _O.c.stores)
_TILL_ROW = {by: select(*_TILL_COLUMNS).join_from(_C, _O, _O.c.id == _C.c.offer_id)
             .where(_C.c[by] == bindparam("key")) for by in ("id", "code")}
_REDEEM_UPDATE = (update(_C).where(_C.c.id == bindparam("p_id"), _C.c.status == "issued",
                                   _C.c.expires_at > bindparam("p_now"))
                  .values(status="redeemed", redeemed_at=bindparam("p_now"), redeemed_store_id=bindparam("p_store"),
                          redemption_id=bindparam("p_redemption")))
_REDEMPTION_INSERT = insert(_R)


def _redeem_cte(by: str):
    """PostgreSQL: the whole redemption in one statement and one round trip. The coupon's conditional UPDATE
    (still issued, not expired, valid in this store) decides; the redemption row is written from what it
    returns, so both happen or neither does. No row back: refused, and :func:`_refusal` says why."""
    return text(f"""
        WITH won AS (
            UPDATE coupons SET status = 'redeemed', redeemed_at = :now, redeemed_store_id = :store_id,
                               redemption_id = :redemption_id
            FROM offers
            WHERE coupons.{by} = :key AND offers.id = coupons.offer_id
              AND coupons.status = 'issued' AND coupons.expires_at > :now
              AND (offers.stores IN (CAST('[]' AS jsonb), CAST('null' AS jsonb))
                   OR offers.stores @> jsonb_build_array(CAST(:store_id AS text)))
            RETURNING coupons.id, coupons.offer_id, coupons.member_id, coupons.status, coupons.issued_at,
                      coupons.expires_at, coupons.redeemed_at, coupons.redeemed_store_id, coupons.redemption_id,
                      offers.title, offers.terms, offers.benefit, offers.stores
        ), made AS (
            INSERT INTO coupon_redemptions (id, coupon_id, offer_id, member_id, store_id, cashier_id, receipt_id,
                                            channel, redeemed_at)
            SELECT :redemption_id, won.id, won.offer_id, won.member_id, :store_id, :cashier_id, :receipt_id,
                   'till', :now
            FROM won
        ), event AS (
            INSERT INTO events (id, type, occurred_at, member_id, store_id, channel, actor, data, created_at)
            SELECT :event_id, 'coupon.redeemed', :now, won.member_id, :store_id, 'till', :actor,
                   jsonb_strip_nulls(jsonb_build_object('coupon_id', won.id, 'offer_id', won.offer_id,
                                                        'redemption_id', CAST(:redemption_id AS text),
                                                        'receipt_id', CAST(:receipt_id AS text))), :now
            FROM won
        )
        SELECT * FROM won
    """).bindparams(bindparam("now", type_=UTCDateTime())).columns(*_TILL_COLUMNS)


_REDEEM_CTE = {by: _redeem_cte(by) for by in ("id", "code")}


def _coupon(program: Program, scanned: str | Scanned) -> tuple[str, str]:
    """How to find the coupon the till scanned (read once, by :func:`wallet.scanner.read`): ("id", coupon id) or
    ("code", stored code)."""
    if not isinstance(scanned, Scanned):
        scanned = scanner.read(program, scanned, want="coupon")
    return scanned.by, scanned.key


def _till_row(session: Session, by: str, key: str):
    """The coupon and its offer as one row; 404 if there is no such coupon."""
    row = execute(session, _TILL_ROW[by], {"key": key}).first()
    if row is None:
        raise NotFound("No such coupon", code="coupon_not_found")
    return row


def refuse_unusable(coupon, now: datetime) -> None:
    if coupon.status == "redeemed":
        raise CouponAlreadyRedeemed("This coupon was already redeemed", redeemed_at=iso(coupon.redeemed_at),
                                    redeemed_store_id=coupon.redeemed_store_id)
    if coupon.status == "void":
        raise CouponVoid("This coupon was cancelled")
    if coupon.expires_at <= now:
        raise CouponExpired(f"This coupon expired on {coupon.expires_at:%Y-%m-%d}",
                            expired_at=iso(coupon.expires_at))


def _refuse_elsewhere(session: Session, program: Program, row, store_id: str | None, card: str | None) -> None:
    """``row`` is a till row (a coupon with its offer's ``stores``)."""
    stores = row.stores or []
    if store_id is not None and stores and store_id not in stores:
        raise CouponNotValidHere("This coupon can't be redeemed in this store")
    if card is not None:
        if find_card(session, scanner.read(program, card, want="card")).member_id != row.member_id:
            raise CouponOwnerMismatch("This coupon belongs to another member")


def _till_view(coupon, now: datetime) -> dict[str, Any]:
    """``coupon`` is a till row, or anything with the same attributes."""
    return {"id": coupon.id, "offer_id": coupon.offer_id, "member_id": coupon.member_id, "title": coupon.title,
            "terms": coupon.terms, "benefit": coupon.benefit, "status": shown_status(coupon, now),
            "issued_at": coupon.issued_at, "expires_at": coupon.expires_at, "redeemed_at": coupon.redeemed_at,
            "stores": coupon.stores or []}


def _till_fields(coupon: Coupon) -> SimpleNamespace:
    """An ORM coupon in the till row's shape."""
    offer = coupon.offer
    return SimpleNamespace(id=coupon.id, offer_id=coupon.offer_id, member_id=coupon.member_id, status=coupon.status,
                           issued_at=coupon.issued_at, expires_at=coupon.expires_at, redeemed_at=coupon.redeemed_at,
                           redeemed_store_id=coupon.redeemed_store_id, redemption_id=coupon.redemption_id,
                           title=offer.title, terms=offer.terms, benefit=offer.benefit, stores=offer.stores)


def check_redemption(session: Session, program: Program, scanned: str | Scanned, *, store_id: str | None,
                     card: str | None = None) -> dict[str, Any]:
    """Whether redeeming now would succeed, and why not; changes nothing."""
    row = _till_row(session, *_coupon(program, scanned))
    now = program.now()
    result = {"redeemable": True, "code": None, "detail": None, "coupon": _till_view(row, now),
              "benefit": row.benefit}
    try:
        _refuse_elsewhere(session, program, row, store_id, card)
        refuse_unusable(row, now)
    except (Rejected, Conflict) as refusal:
        result.update(redeemable=False, code=refusal.code, detail=refusal.detail)
    return result


def coupon_for_till(session: Session, program: Program, code: str | Scanned, store_id: str | None = None) -> dict[str, Any]:
    """A scanned or typed coupon for the till's screen (JSON-ready), with whether it can be redeemed here now."""
    checked = check_redemption(session, program, code, store_id=store_id)
    return jsonable(checked["coupon"]) | {"redeemable": checked["redeemable"], "reason": checked["code"]}


def _redemption_view(program: Program, redemption, coupon, now: datetime, replayed: bool = False) -> dict[str, Any]:
    """``redemption`` a Redemption (or the same attributes); ``coupon`` a till row."""
    return {"id": redemption.id, "coupon": _till_view(coupon, now), "benefit": coupon.benefit,
            "store_id": redemption.store_id, "receipt_id": redemption.receipt_id,
            "redeemed_at": redemption.redeemed_at, "rolled_back_at": redemption.rolled_back_at,
            "rollback_until": redemption.redeemed_at + program.redemption_rollback_window,
            "status": "rolled_back" if redemption.rolled_back_at else "redeemed", "replayed": replayed}


def redeem(session: Session, program: Program, scanned: str, *, store_id: str, cashier_id: str | None = None,
           receipt_id: str | None = None, card: str | None = None) -> dict[str, Any]:
    """Redeem a coupon once, ever: the conditional update below is the only thing that decides.

    On PostgreSQL without a card to check this is one statement (:data:`_REDEEM_CTE`); otherwise the coupon is
    read and checked first, then the same conditional update (and the redemption row) is written.
    """
    by, key = _coupon(program, scanned)
    now = program.now()
    redemption_id = new_id("rdm")
    session.flush()  # Core statements don't autoflush: what this session changed must be in the database first
    postgres = on_postgres(session)
    row = None
    if card is not None or not postgres:
        row = _till_row(session, by, key)
        _refuse_elsewhere(session, program, row, store_id, card)
        by, key = "id", row.id
    if postgres:
        won = session.execute(_REDEEM_CTE[by], {"key": key, "now": now, "store_id": store_id,
                                                "redemption_id": redemption_id, "cashier_id": cashier_id,
                                                "receipt_id": receipt_id, "event_id": new_id("evt"),
                                                "actor": events.till_actor(cashier_id)}).first()
    else:
        assert row is not None  # read above: not on PostgreSQL
        won = row if rowcount(session.execute(_REDEEM_UPDATE, {"p_id": row.id, "p_now": now, "p_store": store_id,
                                                               "p_redemption": redemption_id})) else None
        if won is not None:
            session.execute(_REDEMPTION_INSERT, {
                "id": redemption_id, "coupon_id": row.id, "offer_id": row.offer_id, "member_id": row.member_id,
                "store_id": store_id, "cashier_id": cashier_id, "receipt_id": receipt_id, "channel": "till",
                "redeemed_at": now})
            events.emit(session, "coupon.redeemed", member_id=row.member_id, store_id=store_id, channel="till",
                        actor=events.till_actor(cashier_id), occurred_at=now,
                        data={k: v for k, v in {"coupon_id": row.id, "offer_id": row.offer_id,
                                                "redemption_id": redemption_id, "receipt_id": receipt_id}.items()
                              if v is not None})
    if won is None:
        return _refusal(session, program, by, key, store_id=store_id, receipt_id=receipt_id, now=now)
    coupon = SimpleNamespace(**won._asdict())
    coupon.status, coupon.redeemed_at, coupon.redeemed_store_id, coupon.redemption_id = \
        "redeemed", now, store_id, redemption_id
    held = session.identity_map.get(identity_key(Coupon, coupon.id))
    if held is not None:  # a Coupon this session already holds shows what the UPDATE wrote, without a read
        for name in ("status", "redeemed_at", "redeemed_store_id", "redemption_id"):
            set_committed_value(held, name, getattr(coupon, name))
    redemption = SimpleNamespace(id=redemption_id, store_id=store_id, receipt_id=receipt_id, redeemed_at=now,
                                 rolled_back_at=None)
    return _redemption_view(program, redemption, coupon, now)



def _refusal(session: Session, program: Program, by: str, key: str, *, store_id: str, receipt_id: str | None,
             now: datetime) -> dict[str, Any]:
    """The conditional update changed nothing: read the coupon as it is now and say why (or replay a retry)."""
    row = _till_row(session, by, key)
    _refuse_elsewhere(session, program, row, store_id, None)
    if row.status == "redeemed" and receipt_id is not None:
        # The same till sending the same receipt again (a retry after a timeout) gets the same answer.
        live = session.get(Redemption, row.redemption_id)
        if live is not None and live.store_id == store_id and live.receipt_id == receipt_id:
            return _redemption_view(program, live, row, now, replayed=True)
    refuse_unusable(row, now)
    raise CouponAlreadyRedeemed("This coupon was already redeemed")  # the state moved under us; say so


def rollback_redemption(session: Session, program: Program, redemption_id: str, *, store_id: str,
                        actor: str) -> dict[str, Any]:
    """Undo a redemption (the purchase was cancelled) at the same store within the window; safe to repeat."""
    redemption = session.get(Redemption, redemption_id)
    if redemption is None or redemption.store_id != store_id:
        raise NotFound("No such redemption", code="redemption_not_found")
    coupon = session.get_one(Coupon, redemption.coupon_id)  # a foreign key: it exists
    now = program.now()
    if redemption.rolled_back_at is not None:
        return _redemption_view(program, redemption, _till_fields(coupon), now)
    until = redemption.redeemed_at + program.redemption_rollback_window
    if now > until:
        raise Rejected("This redemption can no longer be rolled back", code="rollback_window_passed",
                       rollback_until=iso(until))
    won = rowcount(session.execute(update(Redemption).where(Redemption.id == redemption.id,
                                                            Redemption.rolled_back_at.is_(None))
                                   .values(rolled_back_at=now, rolled_back_by=actor[:48]), execution_options=SYNC))
    if won:
        session.execute(update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "redeemed",
                                             Coupon.redemption_id == redemption.id)
                        .values(status="issued", redeemed_at=None, redeemed_store_id=None, redemption_id=None),
                        execution_options=SYNC)
        events.emit(session, "coupon.redemption_rolled_back", member_id=coupon.member_id, store_id=store_id,
                    channel="till", actor=actor[:64], occurred_at=now,
                    data={"coupon_id": coupon.id, "redemption_id": redemption.id})
    session.refresh(redemption)
    session.refresh(coupon)
    return _redemption_view(program, redemption, _till_fields(coupon), now)


