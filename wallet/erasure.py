"""Erasure (the right to be forgotten): a member's personal data removed or irreversibly pseudonymised, the books kept.

What goes: name, email, phone, birthday (and gender, city, social data, message bodies where those tables exist),
the password, consents and preferences, check-in coordinates, staff's free text about the member (adjustment
reasons in the ledger and the audit log), stored request answers (idempotency replays) and the phone's pass
registrations. What stays: ids, amounts and points (the ledger's sums, purchase amounts, coupon counts, the event
log, whose ``data`` never carries personal data). The remaining points are forfeited by a ledger entry, every
token stops working, and the email is free to enrol again (as a new member).

Audiences leave erased members out with ``Member.erased_at.is_(None)`` (segments, campaigns, searches).
Erasing an erased member is refused (409 ``already_erased``): there is nothing left to erase, and a retry of a
request that did erase gets a clear answer instead of a second ``member.erased``.

Tables that other parts of the club add later are covered by :func:`_scrub_member_rows`: any column of a table
with a ``member_id`` whose name says it holds personal data (``PERSONAL_COLUMNS``) is cleared for the member.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Numeric, String, Text, delete, literal, select, update
from sqlalchemy.orm import Session

from . import events, ledger, tokens
from .audit import AuditEntry
from .codes import new_referral_code
from .db import Base
from .errors import Conflict, Invalid
from .idempotency import IdempotencyKey
from .members import CHANNELS, Card, Member, check_password, get_member
from .passes import PassDevice, PassRegistration, WalletPass
from .program import Program
from .referrals import Referral
from .tokens import RefreshToken

ERASED_NAME = "Erased member"
ERASED_TEXT = "[erased]"
# Columns that hold personal data, wherever a table keyed by member has them (cleared: NULL, "", 0 or {}).
PERSONAL_COLUMNS = frozenset({
    "name", "first_name", "last_name", "email", "phone", "birthday", "gender", "city", "address", "lat", "lon",
    "accuracy_m", "handle", "attributes", "body", "subject", "text", "message", "note", "notes", "comment",
    "free_text", "push_token", "token", "ip", "ip_address", "user_agent", "device_id", "rendered", "payload",
})
# Tables whose rows are the member's personal data through and through: deleted, where they exist.
PERSONAL_TABLES = ("social_profiles", "social_networks", "social_accounts", "social_attributes", "devices",
                   "push_devices", "member_devices", "referral_devices")
# Tables whose member rows are the books (or are handled above): never scrubbed by the generic pass.
_KEPT_TABLES = frozenset({"members", "ledger_entries", "balances", "points_lots", "lot_uses", "purchases",
                          "purchase_items", "events", "rule_grants", "coupons", "redemptions", "cards"})


def erase_member(session: Session, program: Program, member_id: str, *, actor: str, channel: str,
                 password: str | None = None) -> Member:
    """Erase a member (``password``: the member's own request, checked first); Conflict if already erased."""
    member = session.scalar(select(Member).where(Member.id == member_id).with_for_update()) \
        or get_member(session, member_id)
    if member.erased_at is not None:
        raise Conflict("This member's data was already erased", code="already_erased")
    if password is not None and not check_password(member, password):
        raise Invalid("The password is not right", code="wrong_password", errors={"password": ["Wrong password."]})
    now = program.now()
    old = {"email": member.email, "name": member.name, "phone": member.phone}
    forfeited = _forfeit_points(session, program, member, actor=actor)
    revoke_member_sessions(session, member.id, now)
    _pseudonymise(member, now)
    session.execute(update(Card).where(Card.member_id == member.id, Card.status == "active")
                    .values(status="blocked", blocked_at=now), execution_options={"synchronize_session": False})
    _scrub_member_rows(session, member.id)
    _scrub_free_text(session, member.id, old)
    session.flush()
    events.emit(session, "member.erased", member_id=member.id, channel=events.channel_of(channel, "app"),
                actor=actor[:64], occurred_at=now,
                data={"requested_by": "member" if password is not None else "admin", "points_forfeited": forfeited})
    return member


def revoke_member_sessions(session: Session, member_id: str, now: datetime) -> None:
    """Every token of the member stops working: every sign-in ended (the check every request makes, so access tokens
    stop at once, on any host), refresh tokens revoked, and the member's status (which sign-in reads) set to
    ``erased``. The one place erasure revokes access."""
    tokens.sign_out_everywhere(session, member_id, now)
    session.execute(update(RefreshToken).where(RefreshToken.subject == member_id).values(revoked=True),
                    execution_options={"synchronize_session": False})
    session.execute(update(Member).where(Member.id == member_id).values(status="erased"),
                    execution_options={"synchronize_session": False})


def _forfeit_points(session: Session, program: Program, member: Member, *, actor: str) -> int:
    """Cancel held points, write off any debt, and forfeit the balance by one ledger entry; the points forfeited."""
    balance = session.execute(select(ledger.Balance).where(ledger.Balance.member_id == member.id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one()
    if balance.pending:
        session.execute(update(ledger.PendingPoints).where(ledger.PendingPoints.member_id == member.id,
                                                           ledger.PendingPoints.status == "pending")
                        .values(status="canceled"), execution_options={"synchronize_session": False})
        session.execute(update(ledger.Balance).where(ledger.Balance.member_id == member.id).values(pending=0),
                        execution_options={"synchronize_session": False})
    if balance.debt:
        ledger.owe(session, member.id, -balance.debt)
    points = balance.points
    if points:
        ledger.spend(session, program, member_id=member.id, points=points, reason="erasure", kind="adjust",
                     idempotency_key=f"erasure:{member.id}", source=f"erasure:{member.id}", actor=actor[:48],
                     description=f"{points} points forfeited: the member's data was erased")
    return points


def _pseudonymise(member: Member, now: datetime) -> None:
    member.email = f"erased-{member.id.lower()}@erased.invalid"  # unique, and no mailbox: the real one is free
    member.name = ERASED_NAME
    member.phone = None
    member.birthday = None
    member.password_hash = "!erased"  # not a hash: no password matches it
    member.consents = {}
    member.preferences = dict.fromkeys(CHANNELS, False)
    member.referral_code = new_referral_code()  # the old code leads nowhere
    member.status, member.erased_at = "erased", now
    for optional in ("gender", "city"):  # profile fields other parts of the club add
        if hasattr(Member, optional):
            setattr(member, optional, None)


def _cleared(column: Any) -> Any:
    if column.nullable:
        return None
    if isinstance(column.type, (Float, Numeric)):
        return 0
    if isinstance(column.type, JSON):
        return {}
    if isinstance(column.type, (String, Text)):
        return ""
    return None


def _scrub_member_rows(session: Session, member_id: str) -> None:
    """Clear personal columns of every other table keyed by member (check-in coordinates, message bodies...),
    delete the member's rows of personal tables, stored request answers and pass registrations."""
    for table in Base.metadata.sorted_tables:
        if "member_id" not in table.c or table.name in _KEPT_TABLES:
            continue
        if table.name in PERSONAL_TABLES:
            session.execute(delete(table).where(table.c.member_id == member_id))
            continue
        values = {c.key: _cleared(c) for c in table.columns
                  if c.key in PERSONAL_COLUMNS and not c.primary_key and not c.foreign_keys}
        if values:
            session.execute(update(table).where(table.c.member_id == member_id).values(values))
    # The person referred is known to the club by their email and phone (to refuse a second referral): no more.
    session.execute(update(Referral).where(Referral.referred_id == member_id)
                    .values(email_key=literal("erased:") + Referral.id, phone_key=None),
                    execution_options={"synchronize_session": False})
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.principal == member_id))
    serials = select(WalletPass.serial).where(WalletPass.member_id == member_id)
    devices = list(session.scalars(select(PassRegistration.device_id).where(PassRegistration.serial.in_(serials))))
    session.execute(delete(PassRegistration).where(PassRegistration.serial.in_(serials)))
    if devices:  # a device that now follows no pass keeps no push token
        still = select(PassRegistration.device_id)
        session.execute(delete(PassDevice).where(PassDevice.id.in_(devices), PassDevice.id.not_in(still)))


def _scrub_free_text(session: Session, member_id: str, old: dict[str, str | None]) -> None:
    """Staff's free text about the member: manual adjustments' descriptions, and the audit log's values."""
    session.execute(update(ledger.LedgerEntry)
                    .where(ledger.LedgerEntry.member_id == member_id, ledger.LedgerEntry.reason == "manual")
                    .values(description="Manual adjustment (its reason was erased with the member's data)"),
                    execution_options={"synchronize_session": False})
    needles = [v.lower() for v in old.values() if v]
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.entity == "member",
                                                          AuditEntry.entity_id == member_id)):
        entry.before = _redacted(entry.before, needles)
        entry.after = _redacted(entry.after, needles)


def _redacted(value: Any, needles: list[str]) -> Any:
    """A JSON value with free text (reasons, notes) and anything naming the member replaced by ``[erased]``."""
    if isinstance(value, dict):
        return {k: ERASED_TEXT if k in ("reason", "description", "note", "notes") and isinstance(v, str)
                else _redacted(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, needles) for v in value]
    if isinstance(value, str) and any(n in value.lower() for n in needles):
        return ERASED_TEXT
    return value
