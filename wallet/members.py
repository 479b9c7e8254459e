"""Members, their loyalty cards, staff accounts and passwords."""
from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, and_, func, or_, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from . import consents as consent_log
from . import contact, events, phones
from .clock import utcnow
from .codes import new_card_number
from .db import Base, id_column, new_id, rowcount
from .errors import Busy, Conflict, Invalid, NotFound, Rejected, Unauthorized
from .passwords import check_new_password
from .program import Program
from .scanner import Scanned
from .stores import Store

CHANNELS = ("email", "sms", "push", "wallet")
GENDERS = ("female", "male", "other")
ROLES = ("member", "cashier", "marketer", "admin")
STAFF_ROLES = ("cashier", "marketer", "admin")
# Hashing cost: scrypt (werkzeug's default KDF). Tests may lower it through configure_password_hashing.
_PASSWORD_METHOD = "scrypt:16384:8:1"
# Hashes computed at once in this process: scrypt takes ~100 ms of a core and 32 MB; a burst of sign-ins beyond
# this waits (at most HASH_WAIT_SECONDS, then Busy) instead of taking every core the tills need.
_HASHING = threading.BoundedSemaphore(1)
HASH_WAIT_SECONDS = 10.0


def configure_password_hashing(method: str, concurrency: int = 1) -> None:
    global _PASSWORD_METHOD, _HASHING
    _PASSWORD_METHOD = method
    _HASHING = threading.BoundedSemaphore(max(1, concurrency))


@contextmanager
def _hashing() -> Iterator[None]:
    gate = _HASHING
    if not gate.acquire(timeout=HASH_WAIT_SECONDS):
        raise Busy("Too many sign-ins at once; try again in a moment", code="busy", retry_after=1)
    try:
        yield
    finally:
        gate.release()


def hash_password(password: str) -> str:
    with _hashing():
        return generate_password_hash(password, method=_PASSWORD_METHOD)


# A hash to check against when the account does not exist, so timing doesn't reveal which emails exist.
_DUMMY_HASH: str | None = None


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches the hash (a missing account's check takes as long as a real one)."""
    return _verify(password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    global _DUMMY_HASH
    if password_hash is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password("not-a-password")
        with _hashing():
            check_password_hash(_DUMMY_HASH, password)
        return False
    with _hashing():
        return check_password_hash(password_hash, password)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[str] = id_column("mem")
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)  # E.164 when it reads as a number (phones)
    birthday: Mapped[date | None]
    gender: Mapped[str | None] = mapped_column(String(16))  # female, male, other (GENDERS); optional
    city: Mapped[str | None] = mapped_column(String(80))  # optional, as the member spells it
    status: Mapped[str] = mapped_column(String(16), default="active")
    tier: Mapped[str] = mapped_column(String(32), default="basic")
    preferences: Mapped[dict] = mapped_column(default=lambda: {c: c in ("email", "push") for c in CHANNELS})
    # {purpose: {granted, at, text_version?}}: written only by wallet.consents, which keeps every change
    consents: Mapped[dict] = mapped_column(default=dict)
    # {timezone?, quiet_hours?: {from, to}, max_messages_per_week?}: wallet.contact reads it with the defaults
    contact_rules: Mapped[dict] = mapped_column(default=dict)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    # indexed: a member's friends (influence, referral counts) are read by it (migration 0008)
    referred_by_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by erasure (wallet.erasure): the row stays for the books, pseudonymised. Audiences (segments, campaigns,
    # exports, searches) leave out members whose erased_at is set: ``Member.erased_at.is_(None)``.
    erased_at: Mapped[datetime | None]

    # The member's current card: the one not replaced (a replaced card stays, blocked, for the books and the till's
    # refusal). Read-only: cards are written as rows (enrolment, replace_card).
    card: Mapped[Card] = relationship(primaryjoin="and_(Member.id == Card.member_id, Card.replaced_by_id.is_(None))",
                                      uselist=False, viewonly=True)


# Segments find a city's members by it (``lower(city) = 'haifa'``, wallet.segments.sql); it carries the id and status
# too, so a city's members are read from the index alone, no table pages (migration 0017). PostgreSQL only: SQLite
# reads its small tables whole, and cannot reflect an index on an expression for Alembic to compare.
Index("ix_members_city_lower", func.lower(Member.city),
      postgresql_include=["id", "city", "status"]).ddl_if(dialect="postgresql")


class Card(Base):
    __tablename__ = "cards"
    # One current card per member; replaced ones keep their row (and number: it is refused, never reused).
    __table_args__ = (Index("ix_cards_member_current", "member_id", unique=True,
                            postgresql_where=text("replaced_by_id IS NULL"), sqlite_where=text("replaced_by_id IS NULL")),
                      Index("ix_cards_member_id", "member_id"))

    id: Mapped[str] = id_column("crd")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    number: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, blocked
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_at: Mapped[datetime | None]
    # No foreign key: the old card is marked before its successor's row exists (one current card per member).
    replaced_by_id: Mapped[str | None] = mapped_column(String(32))

    member: Mapped[Member] = relationship(viewonly=True)


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[str] = id_column("stf")
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """One spelling per mailbox: NFKC, trimmed, lower-cased."""
    email = unicodedata.normalize("NFKC", email).strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid("Not a valid email address", errors={"email": ["Not a valid email address."]})
    return email


def normalise_city(city: str | None) -> str | None:
    """A city as one spelling: NFKC, inner spaces collapsed, trimmed; blank is none."""
    if city is None:
        return None
    city = " ".join(unicodedata.normalize("NFKC", city).split())
    return city or None


def email_taken(session: Session, email: str) -> bool:
    return bool(
        session.scalar(select(func.count()).select_from(Member).where(Member.email == email))
        or session.scalar(select(func.count()).select_from(Staff).where(Staff.email == email))
    )


def update_member(session: Session, program: Program, member: Member, changes: dict[str, Any], *,
                  channel: str = "app") -> Member:
    """Change a member's profile, channel preferences, contact rules and consents (each consent change kept in its
    history); the ``member.updated`` event names the fields that changed (never their values), each consent its
    own ``consent.changed`` event."""
    now = program.now()
    changed: list[str] = []

    def put(field: str, value: Any) -> None:
        if getattr(member, field) != value:
            setattr(member, field, value)
            changed.append(field)
    if "name" in changes:
        put("name", changes["name"].strip())
    if "phone" in changes:
        put("phone", phones.normalise_phone(changes["phone"]) or changes["phone"])
    for key in ("birthday", "gender"):
        if key in changes:
            put(key, changes[key])
    if "city" in changes:
        put("city", normalise_city(changes["city"]))
    if "preferences" in changes:
        put("preferences", dict(member.preferences) | changes["preferences"])
    if "contact_rules" in changes:
        put("contact_rules", contact.validate_rules(changes["contact_rules"], member.contact_rules))
    actor, event_channel = f"member:{member.id}", events.channel_of(channel, "app")
    if "consents" in changes and consent_log.change(session, member, changes["consents"], now=now,
                                                    channel=event_channel, source="profile", actor=actor):
        changed.append("consents")
    if changed:
        events.emit(session, "member.updated", member_id=member.id, channel=event_channel, actor=actor,
                    occurred_at=now, data={"fields": changed})
    session.flush()
    return member


def check_password(member: Member, password: str) -> bool:
    """Whether this is the member's password (an erased member has none)."""
    return _verify(member.password_hash, password)


def membership_status(session: Session, member_id: str) -> str | None:
    """``active``, ``closed`` or ``erased`` (``wallet.erasure``): only an active member's tokens work; None: no member."""
    return session.scalar(select(Member.status).where(Member.id == member_id))


def authenticate(session: Session, email: str, password: str) -> Member | Staff:
    """The member or staff account with this email and password, or Unauthorized."""
    try:
        email = normalise_email(email)
    except Invalid:
        email = ""
    account: Member | Staff | None = session.scalar(select(Member).where(Member.email == email))
    if account is None:
        account = session.scalar(select(Staff).where(Staff.email == email, Staff.active.is_(True)))
    if not _verify(account.password_hash if account else None, password) or account is None:
        raise Unauthorized("Wrong email or password", code="invalid_credentials")
    if isinstance(account, Member) and account.status != "active":
        raise Unauthorized("This membership is closed", code="account_disabled")
    return account


def create_staff(session: Session, *, email: str, password: str, role: str, name: str = "",
                 store_code: str | None = None, store_id: str | None = None) -> Staff:
    """A cashier (bound to one store), marketer or admin account."""
    email = normalise_email(email)
    if role not in STAFF_ROLES:
        raise Invalid(f"role must be one of {', '.join(STAFF_ROLES)}", errors={"role": ["Unknown role."]})
    if email_taken(session, email):
        raise Conflict("An account with this email already exists", code="email_taken")
    store = None
    if store_code:
        store = session.scalar(select(Store).where(Store.code == store_code.strip().upper()))
    elif store_id:
        store = session.get(Store, store_id)
    if store is not None and store.archived_at is not None:
        store = None  # a closed store takes no new staff
    if (store_code or store_id) and store is None:
        raise Invalid("Unknown store", code="unknown_store", errors={"store": ["Unknown store."]})
    if role == "cashier" and store is None:
        raise Invalid("A cashier is bound to one store", code="store_required", errors={"store": ["Required for a cashier."]})
    check_new_password(password, email=email)
    staff = Staff(email=email, password_hash=hash_password(password), role=role, name=name,
                  store_id=store.id if store and role == "cashier" else None)
    session.add(staff)
    session.flush()
    return staff


def get_member(session: Session, member_id: str) -> Member:
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("No such member")
    return member


def search_members(session: Session, q: str | None, *, after: str | None, limit: int) -> list[Member]:
    """Members (not the erased) whose email or name contains ``q``, or whose phone or card number (current or
    replaced) is ``q``; by id, after ``after``."""
    query = select(Member).where(Member.erased_at.is_(None)).order_by(Member.id)  # the erased are nobody now
    if q:
        q = q.strip()
        # contains(autoescape): a % or _ typed in the search box is a character, not a wildcard
        # a card number, current or replaced, finds its member (a subquery: a member with two cards is one row)
        by_card = select(Card.member_id).where(Card.number == q)
        query = query.where(or_(Member.email.contains(q.lower(), autoescape=True),
                                func.lower(Member.name).contains(q.lower(), autoescape=True),
                                Member.phone == q, Member.id.in_(by_card)))
    if after:
        query = query.where(Member.id > after)
    return list(session.scalars(query.limit(limit)))



def find_card(session: Session, scanned: Scanned) -> Card:
    """The card a scanned card code names (:func:`wallet.scanner.read`); it must be active."""
    if scanned.by == "id":
        card = session.get(Card, scanned.key)
    else:
        card = session.scalar(select(Card).where(Card.number == scanned.key))
    if card is None:
        raise NotFound("No card with this number" if scanned.by == "number" else "No such card",
                       code="card_not_found")
    if card.status != "active":
        raise Rejected("This card is blocked", code="card_inactive")
    return card


def _current_card(session: Session, member: Member) -> Card:
    card = session.scalar(select(Card).where(Card.member_id == member.id, Card.replaced_by_id.is_(None))
                          .with_for_update().execution_options(populate_existing=True))
    if card is None:
        raise NotFound("This member has no card", code="card_not_found")
    return card


def block_card(session: Session, program: Program, member_id: str, *, actor: str) -> tuple[Card, bool]:
    """Block the member's current card at every till (its number, QR tokens and pass codes); ``(card, changed)``.
    Blocking a blocked card changes nothing and writes no event."""
    member = get_member(session, member_id)
    card = _current_card(session, member)
    now = program.now()
    done = session.execute(update(Card).where(Card.id == card.id, Card.status == "active")
                           .values(status="blocked", blocked_at=now).execution_options(synchronize_session=False))
    if not rowcount(done):
        return card, False
    session.refresh(card)
    events.emit(session, "card.blocked", member_id=member.id, channel="console", actor=actor[:64], occurred_at=now,
                data={"card_id": card.id})
    return card, True


def replace_card(session: Session, program: Program, member_id: str, *, actor: str) -> tuple[Card, Card]:
    """Block the member's current card (if it is not already) and issue a new number; ``(old, new)``."""
    member = get_member(session, member_id)
    if member.status != "active":
        raise Rejected("This membership is closed: no new card", code="account_disabled")
    old = _current_card(session, member)
    now = program.now()
    new = Card(id=new_id("crd"), member_id=member.id, number=new_card_number(), issued_at=now)
    done = session.execute(update(Card).where(and_(Card.id == old.id, Card.replaced_by_id.is_(None)))
                           .values(status="blocked", blocked_at=func.coalesce(Card.blocked_at, now),
                                   replaced_by_id=new.id).execution_options(synchronize_session=False))
    if not rowcount(done):  # a concurrent replace got there first (the row lock makes this rare)
        raise Conflict("The card was replaced meanwhile", code="card_replaced_concurrently")
    session.add(new)
    session.flush()
    session.refresh(old)
    session.expire(member, ["card"])
    events.emit(session, "card.replaced", member_id=member.id, channel="console", actor=actor[:64], occurred_at=now,
                data={"card_id": old.id, "new_card_id": new.id})
    return old, new
