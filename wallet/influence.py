"""Influence: what a member is worth through the friends they bring, beside what they spend themselves (Kumar,
Petersen and Leone's customer referral value against lifetime value; the seeds' influencer "worth about ten
average members").

Over the window (``program.influence_window_days``, LOYALTY_INFLUENCE_WINDOW_DAYS, 365):
- ``own_value``: the member's own spend (completed purchases);
- ``referred_spend``: the spend of the friends they referred (``members.referred_by_id``);
- ``referral_value``: ``referred_spend`` + ``program.influence_second_degree`` (0.5) x the spend of those friends'
  friends (two levels, no more);
- ``referrals``: friends referred (ever); ``qualified_referrals``: those of them who have made a purchase (ever);
- ``influence``: ``champion`` (own value above the median own value of members who bought in the window, and
  referral value above the median of the non-zero referral values), ``affluent`` (own only), ``advocate``
  (referral only), ``miser`` (neither).

Everything is computed in SQL, the same statements on SQLite and PostgreSQL: :func:`referral_values` is the
per-member select other features build on (segments' ``referral_value`` and ``influence`` fields; a tier that
qualifies on referral value).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from .errors import NotFound
from .members import Member
from .program import Program
from .purchases import Purchase

QUADRANTS = ("champion", "affluent", "advocate", "miser")
CENT = Decimal("0.01")
_MONEY = Numeric(14, 2)


def window_start(program: Program, now: datetime | None = None) -> datetime:
    return (now or program.now()) - timedelta(days=program.influence_window_days)


def spend_since(since: datetime) -> Select:
    """``(member_id, spend)`` of every member who bought since ``since`` (completed purchases)."""
    return (select(Purchase.member_id.label("member_id"), func.sum(Purchase.amount).label("spend"))
            .where(Purchase.created_at >= since, Purchase.status == "completed")
            .group_by(Purchase.member_id))


def own_values(program: Program, now: datetime | None = None) -> Select:
    """``(member_id, own_value)`` of the members who bought in the influence window."""
    spend = spend_since(window_start(program, now)).subquery("own")
    return select(spend.c.member_id, spend.c.spend.label("own_value"))


def referral_values(program: Program, now: datetime | None = None) -> Select:
    """``(member_id, referrals, referred_spend, second_degree_spend, referral_value)`` of every member who referred
    someone: the per-member referral value select (a VIP tier on referral value ranks on this)."""
    spend = spend_since(window_start(program, now)).subquery("spend")
    friend, parent = aliased(Member, name="friend"), aliased(Member, name="parent")
    first = (select(friend.referred_by_id.label("member_id"), literal(1).label("n"),
                    func.coalesce(spend.c.spend, 0).label("first"), literal(0).label("second"))
             .select_from(friend).outerjoin(spend, spend.c.member_id == friend.id)
             .where(friend.referred_by_id.is_not(None)))
    second = (select(parent.referred_by_id.label("member_id"), literal(0).label("n"), literal(0).label("first"),
                     spend.c.spend.label("second"))
              .select_from(friend).join(parent, parent.id == friend.referred_by_id)
              .join(spend, spend.c.member_id == friend.id)
              .where(parent.referred_by_id.is_not(None)))
    rows = union_all(first, second).subquery("levels")
    referred = cast(func.sum(rows.c.first), _MONEY)
    second_spend = cast(func.sum(rows.c.second), _MONEY)
    weight = literal(program.influence_second_degree, _MONEY)
    return (select(rows.c.member_id, func.sum(rows.c.n).label("referrals"), referred.label("referred_spend"),
                   second_spend.label("second_degree_spend"),
                   (referred + weight * second_spend).label("referral_value"))
            .group_by(rows.c.member_id))


def _median(values: Select) -> ColumnElement:
    """The median of a one-column select, as a scalar subquery (the mean of the two middle values for an even
    count; null for none), in SQL both databases speak (SQLite has no percentile_cont)."""
    listed = values.subquery("values_")
    value = listed.c[0]
    count = select(func.count()).select_from(listed).scalar_subquery()
    middle = (select(value.label("v")).order_by(value).limit(2 - count % 2).offset((count - 1) // 2)
              .subquery("middle"))
    return select(func.avg(middle.c.v)).scalar_subquery()


def medians(program: Program, now: datetime | None = None) -> tuple[ColumnElement, ColumnElement]:
    """(median own value of members who bought in the window, median non-zero referral value) as scalar
    subqueries."""
    own = own_values(program, now).subquery("own_all")
    referral = referral_values(program, now).subquery("ref_all")
    return (_median(select(own.c.own_value).where(own.c.own_value > 0)),
            _median(select(referral.c.referral_value).where(referral.c.referral_value != 0)))


def quadrant_sql(own: ColumnElement, referral: ColumnElement, own_median: ColumnElement,
                 referral_median: ColumnElement) -> ColumnElement:
    """The quadrant's name from a member's values and the medians (a missing value or median is not high)."""
    high_own = and_(own.is_not(None), own_median.is_not(None), own > own_median)
    high_ref = and_(referral.is_not(None), referral_median.is_not(None), referral > referral_median)
    return case((and_(high_own, high_ref), "champion"), (high_own, "affluent"), (high_ref, "advocate"),
                else_="miser")


def influence_by_member(program: Program, now: datetime | None = None) -> Select:
    """``(member_id, own_value, referral_value, influence)`` of every member: what the segments' ``influence``
    field compares."""
    own = own_values(program, now).subquery("own")
    referral = referral_values(program, now).subquery("ref")
    own_median, referral_median = medians(program, now)
    return (select(Member.id.label("member_id"), own.c.own_value, referral.c.referral_value,
                   quadrant_sql(own.c.own_value, referral.c.referral_value, own_median, referral_median)
                   .label("influence"))
            .outerjoin(own, own.c.member_id == Member.id).outerjoin(referral, referral.c.member_id == Member.id))


@dataclass(frozen=True)
class Influence:
    member_id: str
    name: str
    referrals: int
    qualified_referrals: int
    referred_spend: Decimal
    referral_value: Decimal
    own_value: Decimal
    influence: str

    @property
    def member(self) -> dict[str, str]:
        return {"id": self.member_id, "name": self.name}


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def _qualified(member_id: Any) -> ColumnElement:
    """Friends of ``member_id`` who have made a purchase (ever)."""
    friend = aliased(Member, name="qfriend")
    bought = exists().where(Purchase.member_id == friend.id, Purchase.status == "completed")
    return (select(func.count()).select_from(friend).where(friend.referred_by_id == member_id, bought)
            .scalar_subquery())


def _report(session: Session, program: Program, where: ColumnElement | None, *, ranked: bool,
            after: tuple[Decimal, str] | None = None, limit: int = 50) -> list[Influence]:
    now = program.now()
    own = own_values(program, now).subquery("own")
    referral = referral_values(program, now).subquery("ref")
    own_median, referral_median = (session.execute(select(*medians(program, now))).one())
    value = func.coalesce(referral.c.referral_value, 0)
    query = (select(Member.id, Member.name, func.coalesce(referral.c.referrals, 0), _qualified(Member.id),
                    func.coalesce(referral.c.referred_spend, 0), value, func.coalesce(own.c.own_value, 0))
             .select_from(Member))
    if ranked:  # only members who referred someone rank; the page's qualified counts are read for its rows only
        query = query.join(referral, referral.c.member_id == Member.id)
        if after is not None:
            query = query.where(or_(value < after[0], and_(value == after[0], Member.id > after[1])))
        query = query.order_by(value.desc(), Member.id).limit(limit)
    else:
        query = query.outerjoin(referral, referral.c.member_id == Member.id)
    query = query.outerjoin(own, own.c.member_id == Member.id)
    if where is not None:
        query = query.where(where)
    found = []
    for member_id, name, referrals, qualified, referred, referral_value, own_value in session.execute(query):
        own_value, referral_value = _money(own_value), _money(referral_value)
        found.append(Influence(member_id=member_id, name=name, referrals=int(referrals), qualified_referrals=int(qualified),
                               referred_spend=_money(referred), referral_value=referral_value, own_value=own_value,
                               influence=quadrant(own_value, referral_value, own_median, referral_median)))
    return found


def quadrant(own_value: Decimal, referral_value: Decimal, own_median: Any, referral_median: Any) -> str:
    high_own = own_median is not None and own_value > Decimal(str(own_median))
    high_ref = referral_median is not None and referral_value > Decimal(str(referral_median))
    return QUADRANTS[0 if high_own and high_ref else 1 if high_own else 2 if high_ref else 3]


def influence_of(session: Session, program: Program, member_id: str) -> Influence:
    """One member's influence figures."""
    found = _report(session, program, Member.id == member_id, ranked=False)
    if not found:
        raise NotFound("No such member")
    return found[0]


def influencers(session: Session, program: Program, *, after: tuple[Decimal, str] | None = None,
                limit: int = 50) -> list[Influence]:
    """Members who referred someone, highest referral value first (ties by id); ``after`` is the last row's
    ``(referral_value, member_id)``."""
    return _report(session, program, None, ranked=True, after=after, limit=limit)
