"""Referrals: every member has a referral code. Registering with one (or claiming one after sign-up, before the
first purchase) records the referral, once per person (the referred email and phone are unique among referrals),
never to oneself (the same mailbox, phone or device). It qualifies on the friend's first purchase
(``referral.qualified``): only then do both sides' ``referral`` rules pay."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, String, false, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import events, ledger, rules
from .clock import utcnow
from .db import Base, id_column, rowcount
from .errors import Conflict, Invalid, NotFound, Rejected
from .members import Member
from .program import Program
from .purchases import Purchase

REFERRAL_CLAIM_DAYS = 30


class MemberDevice(Base):
    """A device a member signed up or signed in on (``X-Device-ID``, kept hashed): a referral between two members
    who share one is a self-referral."""

    __tablename__ = "referral_devices"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    device_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


def device_key(device_id: str | None) -> str | None:
    """The device id as kept: a SHA-256 of it trimmed (None for none, or for nothing usable)."""
    device_id = (device_id or "").strip()
    if not device_id or len(device_id) > 200:
        return None
    return hashlib.sha256(device_id.encode()).hexdigest()


def remember_device(session: Session, member_id: str, device_id: str | None, now: datetime) -> None:
    """Keep the device a member used (once per member and device)."""
    key = device_key(device_id)
    if key is None or session.get(MemberDevice, (member_id, key)) is not None:
        return
    session.add(MemberDevice(member_id=member_id, device_key=key, first_seen_at=now))
    session.flush()


def _shares_device(session: Session, referrer_id: str, device_id: str | None, member_id: str | None) -> bool:
    keys = {device_key(device_id)} - {None}
    if member_id is not None:
        keys |= set(session.scalars(select(MemberDevice.device_key).where(MemberDevice.member_id == member_id)))
    if not keys:
        return False
    shared = session.scalar(select(func.count()).select_from(MemberDevice).where(
        MemberDevice.member_id == referrer_id, MemberDevice.device_key.in_(keys)))
    return bool(shared)


class Referral(Base):
    """One member joining through another's code. A person (email, phone) is referred once, ever."""

    __tablename__ = "referrals"

    id: Mapped[str] = id_column("ref")
    referrer_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    referred_id: Mapped[str] = mapped_column(ForeignKey("members.id"), unique=True)
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    phone_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The friend's first purchase qualified it (both sides' rewards paid then); None: not yet.
    qualified_at: Mapped[datetime | None]
    purchase_id: Mapped[str | None] = mapped_column(String(32))


def email_key(email: str) -> str:
    """One key per mailbox: no +tag, and Gmail ignores dots, so dana+2@x.com is dana@x.com."""
    local, _, domain = email.strip().lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def phone_key(phone: str | None) -> str | None:
    """The subscriber part of a phone number (its last 9 digits), so +972-50-... and 050-... are one phone."""
    digits = re.sub(r"\D", "", phone or "")
    return digits[-9:] if len(digits) >= 7 else None


def _same_person(member: Member, email: str, phone: str | None) -> bool:
    if email_key(member.email) == email_key(email):
        return True
    mine, theirs = phone_key(member.phone), phone_key(phone)
    return mine is not None and mine == theirs


def _self_referral() -> Invalid:
    return Invalid("A member can't refer themselves", code="self_referral",
                   errors={"referral_code": ["This is your own referral code."]})


def referrer_for(session: Session, code: str, *, email: str, phone: str | None, device_id: str | None = None,
                 member_id: str | None = None) -> Member:
    """The member whose referral code this is, if this person may join through it: not themselves (the same
    mailbox, phone, or a device either has used), not referred before."""
    referrer = session.scalar(select(Member).where(Member.referral_code == code.strip().upper()))
    if referrer is None or referrer.status != "active":
        raise Invalid("This referral code does not exist", code="unknown_referral_code",
                      errors={"referral_code": ["Unknown referral code."]})
    if referrer.id == member_id or _same_person(referrer, email, phone):
        raise _self_referral()
    if _shares_device(session, referrer.id, device_id, member_id):
        raise _self_referral()
    phone_match = Referral.phone_key == phone_key(phone) if phone_key(phone) else false()
    if session.scalar(select(Referral.id).where(or_(Referral.email_key == email_key(email), phone_match))):
        raise Conflict("This person has already joined through a referral", code="referral_already_claimed",
                       errors={"referral_code": ["A referral can be claimed once."]})
    return referrer


def record_referral(session: Session, program: Program, *, referrer: Member, member: Member,
                    channel: str = "app") -> Referral:
    """Record that ``member`` joined through ``referrer``; it pays when it qualifies (the friend's first purchase)."""
    referral = Referral(referrer_id=referrer.id, referred_id=member.id, email_key=email_key(member.email),
                        phone_key=phone_key(member.phone), channel=channel, created_at=program.now())
    session.add(referral)
    session.flush()  # the unique keys speak here: a concurrent claim by the same person loses
    return referral


def qualify_on_first_purchase(session: Session, program: Program, *, member_id: str, purchase_id: str,
                              actor: str) -> bool:
    """The friend's first purchase: the referral qualifies (once: a conditional update), ``referral.qualified`` is
    recorded and both sides' referral rules fire. Answers whether the friend was given a benefit (a multiplier
    that this very purchase may use)."""
    referral = session.scalar(select(Referral).where(Referral.referred_id == member_id,
                                                     Referral.qualified_at.is_(None)))
    if referral is None:
        return False
    if session.scalar(select(Purchase.id).where(Purchase.member_id == member_id).limit(1)) is not None:
        return False  # bought before (a member the totals had not counted yet): not the first purchase
    now = program.now()
    won = session.execute(update(Referral).where(Referral.id == referral.id, Referral.qualified_at.is_(None))
                          .values(qualified_at=now, purchase_id=purchase_id)
                          .execution_options(synchronize_session=False))
    if not rowcount(won):
        return False
    session.expire(referral)
    mine = rules.fire(session, program, rules.Event(
        trigger="referral", member_id=referral.referrer_id, source=f"referral:{member_id}", channel="till",
        attributes={"referred_member_id": member_id, "side": "referrer"}))
    theirs = rules.fire(session, program, rules.Event(
        trigger="referral", member_id=member_id, source=f"referred:{member_id}", channel="till",
        attributes={"referrer_member_id": referral.referrer_id, "side": "referred"}))
    events.emit(session, "referral.qualified", member_id=member_id, channel="till", actor=actor[:64], occurred_at=now,
                data={"referral_id": referral.id, "referrer_id": referral.referrer_id, "referred_id": member_id,
                      "purchase_id": purchase_id, "points": sum(g.points for g in mine + theirs)})
    return any(g.benefit is not None for g in theirs)


def claim_referral(session: Session, program: Program, member_id: str, code: str, *,
                   device_id: str | None = None) -> Referral:
    """A member who joined without a code names who referred them: before their first purchase, within 30 days
    of joining, once."""
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("No such member")
    if member.referred_by_id is not None:
        raise Conflict("You already joined through a referral", code="referral_already_claimed",
                       errors={"referral_code": ["A referral can be claimed once."]})
    if session.scalar(select(Purchase.id).where(Purchase.member_id == member.id).limit(1)) is not None:
        raise Rejected("A referral is named before your first purchase", code="referral_after_first_purchase",
                       errors={"referral_code": ["Only before your first purchase."]})
    if program.now() - member.created_at > timedelta(days=REFERRAL_CLAIM_DAYS):
        raise Rejected(f"A referral is claimed within {REFERRAL_CLAIM_DAYS} days of joining",
                       code="referral_window_closed")
    remember_device(session, member.id, device_id, program.now())
    referrer = referrer_for(session, code, email=member.email, phone=member.phone, device_id=device_id,
                            member_id=member.id)
    if referrer.referred_by_id == member.id:
        raise Rejected("You referred this member; they can't refer you back", code="circular_referral",
                       errors={"referral_code": ["This member joined through your code."]})
    won = session.execute(update(Member).where(Member.id == member.id, Member.referred_by_id.is_(None))
                          .values(referred_by_id=referrer.id), execution_options={"synchronize_session": False})
    if not rowcount(won):
        raise Conflict("You already joined through a referral", code="referral_already_claimed",
                       errors={"referral_code": ["A referral can be claimed once."]})
    session.expire(member, ["referred_by_id"])
    return record_referral(session, program, referrer=referrer, member=member, channel=member.channel)


def referrals_of(session: Session, referrer_id: str) -> list[Referral]:
    return list(session.scalars(select(Referral).where(Referral.referrer_id == referrer_id)
                                .order_by(Referral.created_at, Referral.id)))


def short_name(name: str) -> str:
    """A friend as another member sees them: first name and initial ("Dana K."), nothing more."""
    parts = name.split()
    if not parts:
        return "A friend"
    first = parts[0][:40]
    return f"{first} {parts[-1][0].upper()}." if len(parts) > 1 else first


def my_referrals(session: Session, program: Program, member_id: str) -> dict[str, Any]:
    """``GET /me/referrals``: my code and link, each friend I brought (first name and initial), whether their
    referral qualified and what it earned me."""
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("No such member")
    rows = session.execute(select(Referral, Member.name).join(Member, Member.id == Referral.referred_id)
                           .where(Referral.referrer_id == member_id)
                           .order_by(Referral.created_at, Referral.id)).all()
    sources = [f"referral:{r.referred_id}" for r, _ in rows]
    earned: dict[str | None, int] = {}
    if sources:
        earned = {source: int(points or 0) for source, points in session.execute(
            select(ledger.LedgerEntry.source, func.sum(ledger.LedgerEntry.delta))
            .where(ledger.LedgerEntry.member_id == member_id, ledger.LedgerEntry.source.in_(sources))
            .group_by(ledger.LedgerEntry.source))}
    friends = [{"friend": short_name(name), "joined_at": r.created_at,
                "status": "qualified" if r.qualified_at else "pending", "qualified_at": r.qualified_at,
                "points_earned": int(earned.get(f"referral:{r.referred_id}") or 0)} for r, name in rows]
    return {"referral_code": member.referral_code,
            "link": f"{program.public_url.rstrip('/')}/join?ref={member.referral_code}",
            "friends": friends, "qualified": sum(1 for f in friends if f["status"] == "qualified"),
            "points_earned": sum(f["points_earned"] for f in friends)}
