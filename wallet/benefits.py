"""Member benefits: a points multiplier a rule granted for the member's next purchases or for a time window.

A rule whose reward is ``{"multiplier": 2, "purchases": 3}`` (or ``"days": 2``, or both) doesn't give points
when it fires: it gives the member a benefit, stored here, that the purchase rules apply to the following
purchases. A use is consumed with a conditional UPDATE, so two tills can't both spend the last use, and each
application is recorded (``benefit_uses``) with the purchase it boosted and the ledger entry it wrote.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnExpressionArgument,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, Points, id_column, new_id, rowcount
from .errors import NotFound

KIND = "points_multiplier"
MAX_PURCHASES = 100
MAX_DAYS = 366


class MemberBenefit(Base):
    __tablename__ = "member_benefits"
    __table_args__ = (CheckConstraint("uses_left IS NULL OR uses_left >= 0", name="uses_left_not_negative"),
                      Index("ix_member_benefits_member_status", "member_id", "status"))

    id: Mapped[str] = id_column("ben")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"))
    grant_id: Mapped[str] = mapped_column(String(32), index=True)  # the rule grant that gave it
    kind: Mapped[str] = mapped_column(String(24), default=KIND)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 3))
    purchases: Mapped[int | None]  # how many purchases it was granted for; None: any number inside the window
    uses_left: Mapped[int | None]
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, revoked
    revoked_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(80))  # the event that earned it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def usable_at(self, now: datetime) -> bool:
        return (self.status == "active" and self.valid_from <= now
                and (self.valid_until is None or now < self.valid_until)
                and (self.uses_left is None or self.uses_left > 0))

    def extra_points(self, base: int) -> int:
        """The points this benefit adds on top of ``base`` (a multiplier of 2 adds ``base`` once more)."""
        return max(int((Decimal(base) * (self.multiplier - 1)).to_integral_value(ROUND_FLOOR)), 0)


class BenefitUse(Base):
    """One purchase a benefit boosted: the audit of every use."""

    __tablename__ = "benefit_uses"
    __table_args__ = (UniqueConstraint("benefit_id", "event_source"),
                      Index("ix_benefit_uses_event_source", "event_source"))

    id: Mapped[str] = id_column("bnu")
    benefit_id: Mapped[str] = mapped_column(ForeignKey("member_benefits.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    event_source: Mapped[str] = mapped_column(String(80))
    base_points: Mapped[int] = mapped_column(Points)
    points: Mapped[int] = mapped_column(Points)
    entry_id: Mapped[str | None] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(default=utcnow)
    returned_at: Mapped[datetime | None]  # the purchase was refunded: the benefit got this use back


def is_benefit(reward: dict[str, Any]) -> bool:
    """A multiplier with a number of purchases or days is a benefit for later; without, it boosts this event."""
    return "multiplier" in reward and ("purchases" in reward or "days" in reward)


def check_spec(reward: dict[str, Any]) -> list[str]:
    problems = []
    purchases, days = reward.get("purchases"), reward.get("days")
    if purchases is not None and not (_whole(purchases) and 1 <= purchases <= MAX_PURCHASES):
        problems.append(f"purchases is a whole number from 1 to {MAX_PURCHASES}.")
    if days is not None and not (_whole(days) and 1 <= days <= MAX_DAYS):
        problems.append(f"days is a whole number from 1 to {MAX_DAYS}.")
    if ("purchases" in reward or "days" in reward) and Decimal(str(reward.get("multiplier", 1))) <= 1:
        problems.append("A benefit's multiplier is more than 1.")
    return problems


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def grant(session: Session, *, member_id: str, rule_id: str, grant_id: str, reward: dict[str, Any], source: str,
          now: datetime) -> MemberBenefit:
    """Give a member the benefit a rule's reward describes, starting now."""
    days = reward.get("days")
    benefit = MemberBenefit(id=new_id("ben"), member_id=member_id, rule_id=rule_id, grant_id=grant_id,
                            multiplier=Decimal(str(reward["multiplier"])), purchases=reward.get("purchases"),
                            uses_left=reward.get("purchases"), valid_from=now,
                            valid_until=now + timedelta(days=days) if days else None, source=source, created_at=now)
    session.add(benefit)
    return benefit


def usable_where(member_id: str | ColumnExpressionArgument[str], now: datetime | ColumnExpressionArgument[datetime],
                 source: str | ColumnExpressionArgument[str]) -> list[Any]:
    """The conditions of a benefit a purchase (``source``) now would use; not one that purchase itself earned.
    Each argument is a value, or an expression (a column, a bound parameter) for a statement built once."""
    return [MemberBenefit.member_id == member_id, MemberBenefit.status == "active", MemberBenefit.source != source,
            MemberBenefit.valid_from <= now,
            or_(MemberBenefit.valid_until.is_(None), MemberBenefit.valid_until > now),
            or_(MemberBenefit.uses_left.is_(None), MemberBenefit.uses_left > 0)]


def usable(session: Session, member_id: str, now: datetime, *, source: str) -> list[MemberBenefit]:
    """The benefits a purchase (``source``) now would use, oldest first."""
    query = (select(MemberBenefit).where(*usable_where(member_id, now, source))
             .order_by(MemberBenefit.created_at, MemberBenefit.id))
    return list(session.scalars(query))


def consume(session: Session, benefit: MemberBenefit) -> bool:
    """Take one use; False when a concurrent purchase took the last one first. Window-only benefits always pass."""
    if benefit.uses_left is None:
        return True
    taken = session.execute(update(MemberBenefit)
                            .where(MemberBenefit.id == benefit.id, MemberBenefit.status == "active",
                                   MemberBenefit.uses_left > 0)
                            .values(uses_left=MemberBenefit.uses_left - 1)
                            .returning(MemberBenefit.uses_left),
                            execution_options={"synchronize_session": False}).first()
    if taken is None:
        return False
    session.expire(benefit, ["uses_left"])
    return True


def give_back_uses(session: Session, source: str, now: datetime) -> int:
    """A refunded purchase (``source``) no longer counts against the benefits it used: each use is given back
    to its benefit, once however often the refund is repeated or raced. Returns how many were given back."""
    returned = 0
    for use_id, benefit_id in session.execute(select(BenefitUse.id, BenefitUse.benefit_id)
                                              .where(BenefitUse.event_source == source,
                                                     BenefitUse.returned_at.is_(None))).all():
        won = rowcount(session.execute(update(BenefitUse).where(BenefitUse.id == use_id,
                                                                BenefitUse.returned_at.is_(None))
                                       .values(returned_at=now), execution_options={"synchronize_session": False}))
        if not won:
            continue  # a concurrent refund gave it back
        session.execute(update(MemberBenefit)
                        .where(MemberBenefit.id == benefit_id, MemberBenefit.uses_left.is_not(None))
                        .values(uses_left=MemberBenefit.uses_left + 1),
                        execution_options={"synchronize_session": False})
        benefit = session.identity_map.get(session.identity_key(MemberBenefit, benefit_id))
        if benefit is not None:
            session.expire(benefit, ["uses_left"])
        returned += 1
    return returned


def record_use(session: Session, benefit: MemberBenefit, *, source: str, base_points: int, points: int,
               entry_id: str | None, now: datetime) -> BenefitUse:
    use = BenefitUse(benefit_id=benefit.id, member_id=benefit.member_id, event_source=source, base_points=base_points,
                     points=points, entry_id=entry_id, used_at=now)
    session.add(use)
    return use


def benefits_of(session: Session, member_id: str, *, include_finished: bool = False,
                now: datetime | None = None) -> list[MemberBenefit]:
    """A member's benefits, newest first; only those still usable unless ``include_finished``."""
    query = select(MemberBenefit).where(MemberBenefit.member_id == member_id)
    found = list(session.scalars(query.order_by(MemberBenefit.created_at.desc(), MemberBenefit.id.desc())))
    if include_finished or now is None:
        return found
    return [b for b in found if b.usable_at(now) or b.valid_from > now]


def uses_of(session: Session, benefit_id: str) -> list[BenefitUse]:
    return list(session.scalars(select(BenefitUse).where(BenefitUse.benefit_id == benefit_id)
                                .order_by(BenefitUse.used_at, BenefitUse.id)))


def revoke(session: Session, benefit_id: str, now: datetime) -> MemberBenefit:
    """Withdraw a benefit (granted by mistake); past uses stay as they were."""
    benefit = session.get(MemberBenefit, benefit_id)
    if benefit is None:
        raise NotFound("No such benefit", code="benefit_not_found")
    if benefit.status != "revoked":
        benefit.status = "revoked"
        benefit.revoked_at = now
    session.flush()
    return benefit
