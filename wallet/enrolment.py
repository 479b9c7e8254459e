"""Enrolment: a new member, the loyalty card issued at once, the welcome rules and the referral that brought them."""
from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from . import events, ledger, phones, referrals, rules
from .clock import iso
from .codes import new_card_number, new_referral_code
from .errors import Conflict
from .members import CHANNELS, Card, Member, email_taken, hash_password, normalise_email
from .program import Program


def register_member(session: Session, program: Program, *, email: str, password: str, name: str,
                    phone: str | None = None, birthday: date | None = None,
                    referral_code: str | None = None, consents: dict[str, bool] | None = None,
                    preferences: dict[str, bool] | None = None, channel: str = "app") -> Member:
    """Enrol a member and issue the loyalty card at once; fires the enrolment and referral triggers."""
    email = normalise_email(email)
    phone = phones.normalise_phone(phone) or phone  # E.164 when it reads as a number (LOYALTY_PHONE_REGION)
    if email_taken(session, email):
        raise Conflict("An account with this email already exists", code="email_taken")
    now = program.now()
    referrer = None
    if referral_code:
        # unknown code 422, self-referral 422, a person referred twice 409
        referrer = referrals.referrer_for(session, referral_code, email=email, phone=phone)
    member = Member(
        email=email, password_hash=hash_password(password), name=name.strip(), phone=phone,
        birthday=birthday, referral_code=new_referral_code(), channel=channel,
        referred_by_id=referrer.id if referrer else None, created_at=now,
    )
    member.preferences = {c: c in ("email", "push") for c in CHANNELS} | (preferences or {})
    member.consents = {k: {"granted": bool(v), "at": iso(now)} for k, v in (consents or {}).items()}
    session.add(member)
    session.flush()
    card = Card(member_id=member.id, number=new_card_number(), issued_at=now)
    session.add(card)
    ledger.open_account(session, member.id)
    session.flush()
    event_channel = events.channel_of(channel, "app")
    events.emit(session, "member.enrolled", member_id=member.id, channel=event_channel, actor=f"member:{member.id}",
                occurred_at=now, data={"card_id": card.id} | ({"referred_by": referrer.id} if referrer else {}))
    for purpose, granted in member.consents.items():
        events.emit(session, "consent.changed", member_id=member.id, channel=event_channel,
                    actor=f"member:{member.id}", occurred_at=now,
                    data={"consent": purpose, "granted": granted["granted"], "source": "enrolment"})
    rules.fire(session, program, rules.Event(trigger="enrolment", member_id=member.id, source=f"member:{member.id}",
                                             channel=channel))
    if referrer is not None:
        referrals.record_referral(session, program, referrer=referrer, member=member, channel=channel)
    return member
