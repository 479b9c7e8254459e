"""Creating, entering, publishing and drawing contests."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .. import events
from ..clock import iso
from ..coupons import Offer, issue_coupon
from ..db import on_postgres, rowcount
from ..errors import Conflict, Invalid, NotFound, Rejected
from ..program import Program
from ..purchases import Purchase
from .draw import commitment_of, entry_list_sha256, pick_winners
from .models import Contest, ContestEntry

FIELDS = ("title", "terms", "opens_at", "closes_at", "draw_at", "winners", "prize_offer_id", "entries_per_purchase")
MAX_WINNERS = 1000
_ALIAS_CHARS = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L: read aloud on a stream

DEMO_CONTESTS = (
    {"title": "Win a year of coffee", "terms": "One free entry per member; one more per purchase of 50.00 or more "
     "while the contest is open. Three winners, drawn verifiably.", "winners": 3,
     "entries_per_purchase": {"min_amount": "50.00"}},
)


def _check(contest: Contest) -> None:
    errors: dict[str, list[str]] = {}
    if not contest.opens_at < contest.closes_at:
        errors["closes_at"] = ["Must be after opens_at."]
    if contest.draw_at < contest.closes_at:
        errors["draw_at"] = ["Must not be before closes_at."]
    if not 1 <= contest.winner_count <= MAX_WINNERS:
        errors["winners"] = [f"1 to {MAX_WINNERS}."]
    if contest.min_amount is not None and contest.min_amount <= 0:
        errors["entries_per_purchase.min_amount"] = ["Must be above 0."]
    if errors:
        raise Invalid("The contest is not valid: " + ", ".join(sorted(errors)), errors=errors)


def _apply(session: Session, contest: Contest, data: dict[str, Any]) -> None:
    for key in ("title", "terms", "opens_at", "closes_at", "draw_at"):
        if key in data:
            setattr(contest, key, data[key].strip() if isinstance(data[key], str) else data[key])
    if "winners" in data:
        contest.winner_count = data["winners"]
    if "prize_offer_id" in data:
        if data["prize_offer_id"] is not None and session.get(Offer, data["prize_offer_id"]) is None:
            raise Invalid("No such offer", code="unknown_offer", errors={"prize_offer_id": ["No such offer."]})
        contest.prize_offer_id = data["prize_offer_id"]
    if "entries_per_purchase" in data:
        extra = data["entries_per_purchase"]
        contest.min_amount = None if extra is None else Decimal(str(extra["min_amount"]))


def create_contest(session: Session, program: Program, data: dict[str, Any], *, actor: str) -> Contest:
    """A contest with its secret seed and public commitment, sha256(seed)."""
    seed = secrets.token_bytes(32).hex()
    contest = Contest(seed=seed, commitment=commitment_of(seed), created_at=program.now(), created_by=actor[:64])
    _apply(session, contest, data)
    _check(contest)
    session.add(contest)
    session.flush()
    return contest


def get_contest(session: Session, contest_id: str, *, lock: bool = False) -> Contest:
    query = select(Contest).where(Contest.id == contest_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    contest = session.scalar(query)
    if contest is None:
        raise NotFound("No such contest", code="contest_not_found")
    return contest


def list_contests(session: Session, *, after: str | None = None, limit: int = 50) -> list[Contest]:
    query = select(Contest).order_by(Contest.id.desc())
    if after:
        query = query.where(Contest.id < after)
    return list(session.scalars(query.limit(limit)))


def update_contest(session: Session, program: Program, contest_id: str, changes: dict[str, Any]) -> Contest:
    """Change a contest before it opens; from ``opens_at`` only its title (its terms are what members entered)."""
    contest = get_contest(session, contest_id, lock=True)
    if contest.drawn_at is not None:
        raise Conflict("This contest was drawn: it can't change", code="contest_already_drawn")
    if program.now() >= contest.opens_at and set(changes) - {"title"}:
        raise Conflict("This contest is open: only its title can change", code="contest_started")
    _apply(session, contest, changes)
    _check(contest)
    session.flush()
    return contest


def _new_alias() -> str:
    return "fan-" + "".join(secrets.choice(_ALIAS_CHARS) for _ in range(7))


def enter(session: Session, program: Program, contest_id: str, member_id: str, *, channel: str = "app") -> ContestEntry:
    """The member's free entry (no purchase necessary): 409 ``contest_already_entered`` for a second one."""
    contest = get_contest(session, contest_id)
    now = program.now()
    if now < contest.opens_at:
        raise Rejected("This contest is not open yet", code="contest_not_open")
    if now >= contest.closes_at:
        raise Rejected("This contest is closed", code="contest_closed")
    if session.scalar(select(ContestEntry.id).where(ContestEntry.contest_id == contest.id,
                                                     ContestEntry.member_id == member_id)):
        raise Conflict("You have entered this contest already", code="contest_already_entered")
    taken = set(session.scalars(select(ContestEntry.alias).where(ContestEntry.contest_id == contest.id)))
    alias = _new_alias()
    while alias in taken:  # 30^7 aliases: a clash is rare; the unique constraint stands behind this
        alias = _new_alias()
    entry = ContestEntry(contest_id=contest.id, member_id=member_id, alias=alias, created_at=now)
    session.add(entry)
    session.flush()
    events.emit(session, "contest.entered", member_id=member_id, channel=events.channel_of(channel, "app"),
                actor=f"member:{member_id}"[:64], occurred_at=now, data={"contest_id": contest.id, "entry_id": entry.id})
    return entry


def _entries_now(session: Session, contest: Contest) -> list[str]:
    """One alias per free entry, plus one per completed purchase of at least ``min_amount`` made by an entrant
    within [opens_at, closes_at); sorted."""
    rows = session.execute(select(ContestEntry.member_id, ContestEntry.alias)
                           .where(ContestEntry.contest_id == contest.id)).all()
    counts = {member_id: 1 for member_id, _ in rows}
    if contest.min_amount is not None and counts:
        extra = session.execute(
            select(Purchase.member_id, func.count())
            .join(ContestEntry, (ContestEntry.member_id == Purchase.member_id) & (ContestEntry.contest_id == contest.id))
            .where(Purchase.created_at >= contest.opens_at, Purchase.created_at < contest.closes_at,
                   Purchase.amount >= contest.min_amount, Purchase.status == "completed")
            .group_by(Purchase.member_id)).all()
        for member_id, n in extra:
            counts[member_id] += int(n)
    return sorted(alias for member_id, alias in rows for _ in range(counts[member_id]))


def frozen_entries(session: Session, program: Program, contest: Contest) -> list[str] | None:
    """The published entry list: None before ``closes_at``; from then on computed once and kept (the first
    writer wins a conditional update, so every reader sees the same list and hash)."""
    if contest.entry_list is not None:
        return list(contest.entry_list)
    if program.now() < contest.closes_at:
        return None
    entries = _entries_now(session, contest)
    session.execute(update(Contest).where(Contest.id == contest.id, Contest.entry_list.is_(None))
                    .values(entry_list=entries, entry_list_sha256=entry_list_sha256(entries))
                    .execution_options(synchronize_session=False))
    session.refresh(contest, ["entry_list", "entry_list_sha256"])
    return list(contest.entry_list or [])


def draw(session: Session, program: Program, contest_id: str, *, actor: str, channel: str = "console") -> Contest:
    """Draw the winners once: the contest row is locked and the draw is a conditional update, so a retry or a
    second worker gets 409 ``contest_already_drawn``. Each winner gets the prize offer's coupon."""
    contest = get_contest(session, contest_id, lock=True)
    if contest.drawn_at is not None:
        raise Conflict("This contest was drawn already", code="contest_already_drawn")
    now = program.now()
    if now < contest.closes_at:
        raise Conflict(f"This contest closes at {iso(contest.closes_at)}: no draw before", code="contest_not_closed")
    entries = frozen_entries(session, program, contest) or []
    aliases = pick_winners(contest.seed, entries, contest.winner_count) if entries else []
    member_of = dict(session.execute(select(ContestEntry.alias, ContestEntry.member_id)
                                     .where(ContestEntry.contest_id == contest.id,
                                            ContestEntry.alias.in_(aliases))).all()) if aliases else {}
    winners = [member_of[a] for a in aliases]
    done = session.execute(update(Contest).where(Contest.id == contest.id, Contest.drawn_at.is_(None))
                           .values(drawn_at=now, winner_aliases=aliases, winner_member_ids=winners)
                           .execution_options(synchronize_session=False))
    if not rowcount(done):
        raise Conflict("This contest was drawn already", code="contest_already_drawn")
    session.refresh(contest)
    channel = events.channel_of(channel, "console")
    for member_id in winners:
        coupon = None
        if contest.prize_offer_id is not None:
            coupon = issue_coupon(session, program, offer_id=contest.prize_offer_id, member_id=member_id,
                                  idempotency_key=f"contest:{contest.id}", source="contest", actor=actor[:64],
                                  channel=channel)
        events.emit(session, "contest.won", member_id=member_id, channel=channel, actor=actor[:64], occurred_at=now,
                    data={"contest_id": contest.id, "coupon_id": coupon.id if coupon is not None else None})
    events.emit(session, "contest.drawn", channel=channel, actor=actor[:64], occurred_at=now,
                data={"contest_id": contest.id, "winners": winners, "proof": contest.seed})
    session.flush()
    return contest


def draw_due(session: Session, program: Program) -> int:
    """The worker's job: draw one contest whose ``draw_at`` has come (1), or nothing is due (0). A contest another
    worker is drawing is skipped (SKIP LOCKED), and the draw itself is once only."""
    query = (select(Contest.id).where(Contest.drawn_at.is_(None), Contest.draw_at <= program.now())
             .order_by(Contest.draw_at).limit(1))
    if on_postgres(session):
        query = query.with_for_update(skip_locked=True)
    contest_id = session.scalar(query)
    if contest_id is None:
        return 0
    draw(session, program, contest_id, actor="worker", channel="job")
    return 1


def public_view(session: Session, program: Program, contest: Contest) -> dict[str, Any]:
    """What anyone may read: terms, entry count and commitment; from the close the entry list and its hash;
    after the draw the seed and the winners (aliases, never names)."""
    now = program.now()
    entries = frozen_entries(session, program, contest)
    members = session.scalar(select(func.count()).select_from(ContestEntry)
                             .where(ContestEntry.contest_id == contest.id)) or 0
    status = "drawn" if contest.drawn_at else "closed" if now >= contest.closes_at else \
        "open" if now >= contest.opens_at else "upcoming"
    view: dict[str, Any] = {
        "id": contest.id, "title": contest.title, "terms": contest.terms, "status": status,
        "opens_at": contest.opens_at, "closes_at": contest.closes_at, "draw_at": contest.draw_at,
        "winner_count": contest.winner_count, "entry_count": len(entries) if entries is not None else members,
        "entrants": members, "commitment": contest.commitment,
        "entries_per_purchase": {"min_amount": contest.min_amount} if contest.min_amount is not None else None,
        "entries": entries, "entries_sha256": contest.entry_list_sha256 if entries is not None else None,
        "seed": contest.seed if contest.drawn_at else None, "drawn_at": contest.drawn_at,
        "winners": list(contest.winner_aliases or []) if contest.drawn_at else None,
    }
    return view


def member_entry(session: Session, contest_id: str, member_id: str) -> ContestEntry | None:
    return session.scalar(select(ContestEntry).where(ContestEntry.contest_id == contest_id,
                                                    ContestEntry.member_id == member_id))


def demo_window(now: datetime) -> dict[str, datetime]:
    return {"opens_at": now - timedelta(days=1), "closes_at": now + timedelta(days=13),
            "draw_at": now + timedelta(days=14)}



