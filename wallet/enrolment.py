"""Enrolment: a new member, the loyalty card issued at once, the welcome rules and the referral that brought them."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from . import consents as consent_log
from . import events, fraud, ledger, phones, referrals, rules, tiers
from .codes import new_card_number, new_referral_code
from .errors import Conflict
from .members import CHANNELS, Card, Member, email_taken, hash_password, normalise_city, normalise_email
from .passwords import check_new_password
from .program import Program


def register_member(session: Session, program: Program, *, email: str, password: str, name: str,
                    phone: str | None = None, birthday: date | None = None, gender: str | None = None,
                    city: str | None = None,
                    referral_code: str | None = None, consents: dict[str, Any] | None = None,
                    preferences: dict[str, bool] | None = None, channel: str = "app",
                    device_id: str | None = None, address: str | None = None) -> Member:
    """Enrol a member and issue the loyalty card at once; fires the enrolment and referral triggers.

    ``device_id`` and ``address`` (the app's X-Device-ID, the client's address): past LOYALTY_ENROLMENT_BURST
    enrolments a minute from either, the request is refused (429) and flagged. The welcome points wait for the
    member's first purchase while LOYALTY_WELCOME_PENDING is on."""
    subjects = [f"{kind}:{value}" for kind, value in (("device", device_id), ("address", address)) if value]
    if subjects:
        fraud.check_burst(session, kind=fraud.ENROLMENT_BURST, subjects=subjects, limit=program.enrolment_burst,
                          now=program.now(), code="too_many_enrolments",
                          detail="Too many enrolments from this device or address; try again in a minute")
    email = normalise_email(email)
    check_new_password(password, email=email)
    phone = phones.normalise_phone(phone) or phone  # E.164 when it reads as a number (LOYALTY_PHONE_REGION)
    if email_taken(session, email):
        raise Conflict("An account with this email already exists", code="email_taken")
    now = program.now()
    referrer = None
    if referral_code:
        # unknown code 422, self-referral 422, a person referred twice 409
        referrer = referrals.referrer_for(session, referral_code, email=email, phone=phone, device_id=device_id)
    member = Member(
        email=email, password_hash=hash_password(password), name=name.strip(), phone=phone,
        birthday=birthday, gender=gender, city=normalise_city(city), referral_code=new_referral_code(), channel=channel,
        referred_by_id=referrer.id if referrer else None, created_at=now, tier=tiers.current(session).entry.code,
    )
    member.preferences = {c: c in ("email", "push") for c in CHANNELS} | (preferences or {})
    wanted = consent_log.normalise(consents or {})  # an unknown purpose refused before anything is written
    member.consents = {}
    session.add(member)
    session.flush()
    card = Card(member_id=member.id, number=new_card_number(), issued_at=now)
    session.add(card)
    ledger.open_account(session, member.id)
    session.flush()
    referrals.remember_device(session, member.id, device_id, now)
    event_channel = events.channel_of(channel, "app")
    events.emit(session, "member.enrolled", member_id=member.id, channel=event_channel, actor=f"member:{member.id}",
                occurred_at=now, data={"card_id": card.id} | ({"referred_by": referrer.id} if referrer else {}))
    consent_log.change(session, member, {p: {"granted": g, "text_version": v} if v else g
                                         for p, (g, v) in wanted.items()},
                       now=now, channel=event_channel, source="enrolment", actor=f"member:{member.id}")
    rules.fire(session, program, rules.Event(trigger="enrolment", member_id=member.id, source=f"member:{member.id}",
                                             channel=channel),
               awaits=ledger.FIRST_PURCHASE if program.welcome_pending else None)
    if referrer is not None:
        referrals.record_referral(session, program, referrer=referrer, member=member, channel=channel)
    return member
