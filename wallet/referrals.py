"""Referrals: every member has a referral code. Registering with one (or claiming one soon after) records the
referral, once per person (the referred email and phone are unique among referrals), and fires the ``referral``
trigger for both sides."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, false, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import rules
from .clock import utcnow
from .db import Base, id_column, rowcount
from .errors import Conflict, Invalid, NotFound, Rejected
from .members import Member
from .program import Program

REFERRAL_CLAIM_DAYS = 30




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


def referrer_for(session: Session, code: str, *, email: str, phone: str | None) -> Member:
    """The member whose referral code this is, if this person may join through it."""
    referrer = session.scalar(select(Member).where(Member.referral_code == code.strip().upper()))
    if referrer is None or referrer.status != "active":
        raise Invalid("This referral code does not exist", code="unknown_referral_code",
                      errors={"referral_code": ["Unknown referral code."]})
    if _same_person(referrer, email, phone):
        raise Invalid("A member can't refer themselves", code="self_referral",
                      errors={"referral_code": ["This is your own referral code."]})
    phone_match = Referral.phone_key == phone_key(phone) if phone_key(phone) else false()
    if session.scalar(select(Referral.id).where(or_(Referral.email_key == email_key(email), phone_match))):
        raise Conflict("This person has already joined through a referral", code="referral_already_claimed",
                       errors={"referral_code": ["A referral can be claimed once."]})
    return referrer


def record_referral(session: Session, program: Program, *, referrer: Member, member: Member,
                    channel: str = "app") -> Referral:
    """Record that ``member`` joined through ``referrer`` and fire the ``referral`` rules for both sides."""
    referral = Referral(referrer_id=referrer.id, referred_id=member.id, email_key=email_key(member.email),
                        phone_key=phone_key(member.phone), channel=channel, created_at=program.now())
    session.add(referral)
    session.flush()  # the unique keys speak here: a concurrent claim by the same person loses
    rules.fire(session, program, rules.Event(trigger="referral", member_id=referrer.id, source=f"referral:{member.id}",
                                             channel=channel, attributes={"referred_member_id": member.id,
                                                                          "side": "referrer"}))
    rules.fire(session, program, rules.Event(trigger="referral", member_id=member.id, source=f"referred:{member.id}",
                                             channel=channel, attributes={"referrer_member_id": referrer.id,
                                                                          "side": "referred"}))
    return referral


def claim_referral(session: Session, program: Program, member_id: str, code: str) -> Referral:
    """A member who joined without a code names who referred them, within 30 days of joining, once."""
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("No such member")
    if member.referred_by_id is not None:
        raise Conflict("You already joined through a referral", code="referral_already_claimed",
                       errors={"referral_code": ["A referral can be claimed once."]})
    if program.now() - member.created_at > timedelta(days=REFERRAL_CLAIM_DAYS):
        raise Rejected(f"A referral is claimed within {REFERRAL_CLAIM_DAYS} days of joining",
                       code="referral_window_closed")
    referrer = referrer_for(session, code, email=member.email, phone=member.phone)
    if referrer.id == member.id:
        raise Invalid("A member can't refer themselves", code="self_referral",
                      errors={"referral_code": ["This is your own referral code."]})
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
