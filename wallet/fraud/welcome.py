"""Welcome points wait for the first purchase (LOYALTY_WELCOME_PENDING): a throwaway sign-up earns nothing it can
spend. The enrolment rules hold them (``ledger.hold(..., awaits=FIRST_PURCHASE)``); the till's one read already
says whether the member still has such a hold, and only then does the purchase release it, here."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import rowcount
from ..ledger import FIRST_PURCHASE, Balance, PendingPoints, earn
from ..program import Program


def release_welcome(session: Session, program: Program, member_id: str, *,
                    description: str = "spendable from your first purchase") -> int:
    """Make spendable the member's holds that waited for their first purchase (the welcome points), in the caller's
    transaction; returns the points released. Each hold is released once (a conditional update), and its lot lasts
    as long from now as it would have from when it was held."""
    now = program.now()
    released = 0
    for held in session.scalars(select(PendingPoints).where(
            PendingPoints.member_id == member_id, PendingPoints.status == "pending",
            PendingPoints.awaits == FIRST_PURCHASE)).all():
        won = rowcount(session.execute(update(PendingPoints).where(PendingPoints.id == held.id,
                                                                   PendingPoints.status == "pending")
                                       .values(status="released"), execution_options={"synchronize_session": False}))
        if not won:
            continue
        session.execute(update(Balance).where(Balance.member_id == member_id)
                        .values(pending=Balance.pending - held.points), execution_options={"synchronize_session": False})
        expires_at = None if held.expires_at is None else now + (held.expires_at - held.available_at)
        earn(session, program, member_id=member_id, points=held.points, reason=held.reason,
             idempotency_key=f"release:{held.id}", description=f"{held.description}: {description}"[:240],
             source=held.source, actor=held.actor, expires_at=expires_at, rule_id=held.rule_id, channel=held.channel)
        released += held.points
    return released


