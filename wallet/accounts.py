"""Accounts' life: password changes, staff deactivation, membership closure. Each ends the sign-ins it must
(:mod:`wallet.tokens`), so the tokens it takes back stop on the next request, on any host."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import events, members, passwords, tokens
from .db import rowcount
from .errors import Forbidden, NotFound, Rejected
from .members import Member, Staff
from .program import Program


def account_of(session: Session, principal: tokens.Principal) -> Member | Staff:
    account: Member | Staff | None = (session.get(Member, principal.id) if principal.role == "member"
                                      else session.get(Staff, principal.id))
    if account is None:
        raise NotFound("No such account")
    return account


def change_password(session: Session, program: Program, principal: tokens.Principal, *, current_password: str,
                    new_password: str) -> None:
    """Set a new password after checking the current one; every other sign-in of the account ends."""
    account = account_of(session, principal)
    if not members.verify_password(account.password_hash, current_password):
        raise Forbidden("The current password is not right", code="wrong_password",
                        errors={"current_password": ["Not your current password."]})
    passwords.check_new_password(new_password, email=account.email, field="new_password")
    if members.verify_password(account.password_hash, new_password):
        raise Rejected("The new password is the current one", code="same_password",
                       errors={"new_password": ["Choose a password you are not using now."]})
    account.password_hash = members.hash_password(new_password)
    now = program.now()
    tokens.sign_out_everywhere(session, account.id, now, keep=principal.session_id)
    if isinstance(account, Member):
        events.emit(session, "member.updated", member_id=account.id, channel="app", actor=f"member:{account.id}",
                    occurred_at=now, data={"fields": ["password"]})
    session.flush()


def list_staff(session: Session, *, after: str | None, limit: int) -> list[Staff]:
    query = select(Staff).order_by(Staff.id)
    if after:
        query = query.where(Staff.id > after)
    return list(session.scalars(query.limit(limit)))


def get_staff(session: Session, staff_id: str) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound("No such staff account", code="not_found")
    return staff


def set_staff_active(session: Session, program: Program, staff_id: str, active: bool, *,
                     by: tokens.Principal) -> tuple[Staff, bool]:
    """Deactivate (every sign-in ends at once, sign-in refused) or activate a staff account; ``(staff, changed)``."""
    staff = get_staff(session, staff_id)
    if not active and staff.id == by.id:
        raise Rejected("An admin cannot deactivate their own account", code="cannot_deactivate_self")
    changed = rowcount(session.execute(update(Staff).where(Staff.id == staff.id, Staff.active.is_(not active))
                                       .values(active=active).execution_options(synchronize_session=False)))
    if not active:
        tokens.sign_out_everywhere(session, staff.id, program.now())  # even if already inactive: nothing survives
    session.refresh(staff)
    return staff, bool(changed)


def close_membership(session: Session, program: Program, member_id: str, *, actor: str) -> tuple[Member, bool]:
    """Close a membership: the card is blocked, sign-in is refused, every token stops; ``(member, changed)``."""
    member = members.get_member(session, member_id)
    now = program.now()
    changed = rowcount(session.execute(update(Member).where(Member.id == member.id, Member.status == "active")
                                       .values(status="closed").execution_options(synchronize_session=False)))
    if member.card is not None:
        members.block_card(session, program, member.id, actor=actor)
    tokens.sign_out_everywhere(session, member.id, now)
    if changed:
        events.emit(session, "member.updated", member_id=member.id, channel="console", actor=actor[:64],
                    occurred_at=now, data={"fields": ["status"]})
    session.refresh(member)
    return member, bool(changed)
