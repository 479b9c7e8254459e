"""Bulk issue: one offer's coupons to a list of members or to all of them, once per batch (COPY on PostgreSQL)."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import events
from ..codes import new_codes, new_ids
from ..db import on_postgres, table_of
from ..errors import (
    Invalid,
    NotFound,
)
from ..members import Member
from ..program import Program
from .models import SYNC, Coupon, Offer, remaining_of
from .offers import check_open, coupon_expiry


def bulk_issue(session: Session, program: Program, offer_id: str, *, member_ids: list[str] | None = None,
               all_members: bool = False, batch: str | None = None, actor: str = "system") -> dict[str, Any]:
    """Give many members a coupon at once, in batched inserts; idempotent per ``batch``. Reports what was skipped.

    Without a ``batch`` name the batch is the offer itself, so running it twice gives nobody a second coupon;
    name a new batch to give another round.
    """
    if bool(member_ids) == bool(all_members):
        raise Invalid("Name the members or choose all members", code="validation_error",
                      errors={"member_ids": ["Send member_ids or all_members, not both."]})
    # The offer's row lock makes concurrent runs of one offer take turns, so the total limit and counts hold.
    offer = session.execute(select(Offer).where(Offer.id == offer_id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if offer is None or offer.archived_at is not None:
        raise NotFound("No such offer", code="offer_not_found")
    now = program.now()
    check_open(offer, now)
    batch = batch or "default"
    key = f"bulk:{batch}"
    skipped: Counter[str] = Counter()

    if all_members:
        # Core, not ORM: 100,000 ids need no objects (the ORM query above has flushed what was pending).
        members = Member.__table__
        candidates = session.execute(select(members.c.id).where(members.c.status == "active")
                                     .order_by(members.c.id)).scalars().all()
    else:
        assert member_ids is not None  # checked above: member_ids or all_members
        wanted = list(dict.fromkeys(member_ids))
        skipped["duplicate"] = len(member_ids) - len(wanted)
        status_of: dict[str, str] = {}
        for chunk in _chunks(wanted, 5000):
            status_of.update(session.execute(select(Member.id, Member.status).where(Member.id.in_(chunk))).all())
        candidates = []
        for member_id in wanted:
            status = status_of.get(member_id)
            if status is None:
                skipped["unknown_member"] += 1
            elif status != "active":
                skipped["member_inactive"] += 1
            else:
                candidates.append(member_id)

    already = set(session.scalars(select(Coupon.member_id).where(Coupon.offer_id == offer.id,
                                                                 Coupon.issue_key == key)))
    held: dict[str, int] = {}
    if offer.per_member_limit is not None:
        held = dict(session.execute(select(Coupon.member_id, func.count())
                                    .where(Coupon.offer_id == offer.id, Coupon.status != "void")
                                    .group_by(Coupon.member_id)).all())
    limit = offer.per_member_limit
    if not already and limit is None:
        eligible = list(candidates)  # the first round of an offer without a per-member limit: everyone
    else:
        eligible = []
        for member_id in candidates:
            if member_id in already:
                skipped["already_issued"] += 1
            elif limit is not None and held.get(member_id, 0) >= limit:
                skipped["limit_reached"] += 1
            else:
                eligible.append(member_id)
    left = remaining_of(offer)
    if left is not None and len(eligible) > left:
        skipped["offer_exhausted"] += len(eligible) - left
        eligible = eligible[:left]

    ids = _insert_coupons(session, program, offer, eligible, now=now, key=key, actor=actor[:48])
    issued = len(ids)
    if issued:
        _record_issues(session, offer, ids[0], ids[-1], key=key, batch=batch, now=now, actor=actor)
        session.execute(update(Offer).where(Offer.id == offer.id)
                        .values(issued_count=Offer.issued_count + issued, updated_at=now), execution_options=SYNC)
        session.expire(offer)
    session.flush()
    return {"offer_id": offer.id, "batch": batch, "issued": issued,
            "skipped": {reason: n for reason, n in sorted(skipped.items()) if n}}


def _insert_coupons(session: Session, program: Program, offer: Offer, member_ids: list[str], *, now: datetime,
                    key: str, actor: str) -> list[str]:
    """Insert one coupon per member: on PostgreSQL one COPY, elsewhere batched executemany; the new ids, sorted.

    Members, ids and codes are each sorted before they are paired (ids and codes are random, so which member
    gets which is still random): every index of the table (id, code, offer and key and member, member) then
    takes its new entries in ascending order, leaf page after leaf page, instead of all over the tree.
    """
    n = len(member_ids)
    if not n:
        return []
    expires = coupon_expiry(program, offer, now)
    member_ids = sorted(member_ids)
    ids = sorted(new_ids("cpn", n))
    codes = new_codes(n)
    while len(set(codes)) < n:  # two equal codes in one batch (about 1 in 10^10 for 100,000): draw again
        codes = new_codes(n)
    codes.sort()
    constant = {"offer_id": offer.id, "status": "issued", "issued_at": now, "expires_at": expires,
                "source": key[:80], "issue_key": key, "actor": actor, "channel": "bulk", "points_cost": 0}
    if on_postgres(session):
        _copy_coupons(session, ids, member_ids, codes, constant)
    else:
        for start in range(0, n, 5_000):
            session.execute(_COUPON_INSERT, [
                {"id": i, "member_id": m, "code": c} | constant
                for i, m, c in zip(ids[start:start + 5_000], member_ids[start:start + 5_000],
                                   codes[start:start + 5_000], strict=True)])
    return ids


def _record_issues(session: Session, offer: Offer, first_id: str, last_id: str, *, key: str, batch: str,
                   now: datetime, actor: str) -> None:
    """One ``coupon.issued`` event per coupon this run issued (ids ``first_id`` to ``last_id``: one run's ids share
    their clock prefix, no other run's fall between them), made by one statement from the coupons' rows. An event's
    id is its coupon's, ``evt_`` for ``cpn_``, so each is unique and tells which coupon it speaks of."""
    coupons, log = table_of(Coupon), table_of(events.Event)
    events.check("coupon.issued", "console", {"coupon_id": "cpn_", "offer_id": offer.id, "source": key[:64],
                                              "points_cost": 0, "batch": batch[:64]})
    build = func.jsonb_build_object if on_postgres(session) else func.json_object
    data = build(literal("coupon_id"), coupons.c.id, literal("offer_id"), coupons.c.offer_id,
                 literal("source"), func.substr(coupons.c.source, 1, 64), literal("points_cost"), coupons.c.points_cost,
                 literal("batch"), literal(batch[:64]))
    at = literal(now, log.c.occurred_at.type)
    rows = (select(literal("evt_") + func.substr(coupons.c.id, 5), literal("coupon.issued"), at, coupons.c.member_id,
                   literal("console"), literal(actor[:64]), data, at)
            .where(coupons.c.offer_id == offer.id, coupons.c.issue_key == key, coupons.c.id >= first_id,
                   coupons.c.id <= last_id))
    session.execute(insert(log).from_select(["id", "type", "occurred_at", "member_id", "channel", "actor", "data",
                                             "created_at"], rows))


_COUPON_INSERT = insert(table_of(Coupon))


_COPY_COLUMNS = ("offer_id", "status", "issued_at", "expires_at", "source", "issue_key", "actor", "channel",
                 "points_cost")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One field in COPY's text format (no NULLs here)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")  # the columns hold naive UTC
    return str(value).translate(_COPY_ESCAPES)


def _copy_coupons(session: Session, ids: list[str], member_ids: list[str], codes: list[str],
                  constant: dict[str, Any]) -> None:
    """PostgreSQL: the rows as one COPY in the session's transaction, sent in slices so the server writes one
    slice while the next is formatted. COPY writes rows in batches; an INSERT writes them one at a time."""
    tail = "\t" + "\t".join(_copy_text(constant[c]) for c in _COPY_COLUMNS) + "\n"
    if any(ch in "".join(member_ids) for ch in "\\\t\n\r"):
        member_ids = [_copy_text(m) for m in member_ids]  # ids this club makes never need it; others might
    raw = session.connection().connection.driver_connection
    assert raw is not None  # the session's connection is checked out: psycopg's connection
    statement = f"COPY coupons ({', '.join(('id', 'member_id', 'code') + _COPY_COLUMNS)}) FROM STDIN"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for start in range(0, len(ids), 10_000):
                stop = start + 10_000
                copy.write("".join([f"{i}\t{m}\t{c}{tail}" for i, m, c in
                                    zip(ids[start:stop], member_ids[start:stop], codes[start:stop], strict=True)]))
    except psycopg.Error as error:
        # As SQLAlchemy would have raised it: a unique violation (a code already taken) is an IntegrityError,
        # which the request's retry answers by drawing new codes.
        raise DBAPIError.instance(statement, None, error, psycopg.Error) from error


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
