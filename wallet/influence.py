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
    ForeignKey,
    Index,
    Numeric,
    Select,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from .db import Base, UTCDateTime, descending_page, on_postgres
from .errors import NotFound
from .members import Member
from .program import Program
from .purchases import Purchase

QUADRANTS = ("champion", "affluent", "advocate", "miser")
CENT = Decimal("0.01")
_MONEY = Numeric(14, 2)


ANALYTIC_WORK_MEM = "256MB"


def analytic(session: Session) -> None:
    """PostgreSQL: room for this transaction's aggregates over a whole club to stay in memory (work_mem counts per
    sort or hash, for this transaction only); the default 4 MB makes a hash of a million members spill to disk.
    Segments' previews and lists and the influence summary ask for it. JIT off: compiling the plan cost more (1.5 s
    of a segment's preview on 10 million purchases) than it saved."""
    if on_postgres(session):
        session.execute(text(f"SET LOCAL work_mem = '{ANALYTIC_WORK_MEM}'"))
        session.execute(text("SET LOCAL jit = off"))


def window_start(program: Program, now: datetime | None = None) -> datetime:
    return (now or program.now()) - timedelta(days=program.influence_window_days)


def spend_since(since: datetime) -> Select:
    """``(member_id, spend)`` of every member who bought since ``since`` (completed purchases)."""
    return (select(Purchase.member_id.label("member_id"), func.sum(Purchase.amount).label("spend"))
            .where(Purchase.created_at >= since, Purchase.status == "completed")
            .group_by(Purchase.member_id))


def own_values(program: Program, now: datetime | None = None, *, spend: FromClause | None = None) -> Select:
    """``(member_id, own_value)`` of the members who bought in the influence window (``spend``: a
    :func:`spend_since` already made, e.g. as a CTE)."""
    spend = spend if spend is not None else spend_since(window_start(program, now)).subquery("own")
    return select(spend.c.member_id, spend.c.spend.label("own_value"))


def referral_values(program: Program, now: datetime | None = None, *, spend: FromClause | None = None) -> Select:
    """``(member_id, referrals, referred_spend, second_degree_spend, referral_value)`` of every member who referred
    someone, over the influence window: the per-member referral value select."""
    spend = spend if spend is not None else spend_since(window_start(program, now)).subquery("spend")
    return referral_values_of(spend, program.influence_second_degree)


def referral_values_of(spend: FromClause, second_degree: Decimal, referrers: Any = None) -> Select:
    """THE referral value (API.md "Influence and referrals") over ``spend`` (a :func:`spend_since`), with
    ``second_degree`` the weight of the friends' friends' spend: the select :func:`referral_values` answers and a
    tier that qualifies on referral value counts (``wallet.tiers.qualifying``). ``referrers``: only these members'
    rows (a list or a subquery); None: everyone who referred anyone."""
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
    if referrers is not None:
        first = first.where(friend.referred_by_id.in_(referrers))
        second = second.where(parent.referred_by_id.in_(referrers))
    rows = union_all(first, second).subquery("levels")
    referred = cast(func.sum(rows.c.first), _MONEY)
    second_spend = cast(func.sum(rows.c.second), _MONEY)
    weight = literal(second_degree, _MONEY)
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


def medians(program: Program, now: datetime | None = None, *, own: FromClause | None = None,
            referral: FromClause | None = None) -> tuple[ColumnElement, ColumnElement]:
    """(median own value of members who bought in the window, median non-zero referral value) as scalar
    subqueries (``own``, ``referral``: :func:`own_values` and :func:`referral_values` already made)."""
    own = own if own is not None else own_values(program, now).subquery("own_all")
    referral = referral if referral is not None else referral_values(program, now).subquery("ref_all")
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
    as_of: datetime | None = None  # from the summary as of then; None: computed now

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


def _live(session: Session, program: Program, where: ColumnElement | None, *, ranked: bool,
          after: tuple[Decimal, str] | None, limit: int) -> list[Influence]:
    now = program.now()
    analytic(session)
    own = own_values(program, now).subquery("own")
    referral = referral_values(program, now).subquery("ref")
    own_median, referral_median = (session.execute(select(*medians(program, now))).one())
    value = func.coalesce(referral.c.referral_value, 0)
    query = (select(Member.id, Member.name, func.coalesce(referral.c.referrals, 0), _qualified(Member.id),
                    func.coalesce(referral.c.referred_spend, 0), value, func.coalesce(own.c.own_value, 0))
             .select_from(Member))
    if ranked:  # only members who referred someone rank; the page's qualified counts are read for its rows only
        query = query.join(referral, referral.c.member_id == Member.id)
        query = descending_page(query, value, Member.id, after, limit)
    else:
        query = query.outerjoin(referral, referral.c.member_id == Member.id)
    query = query.outerjoin(own, own.c.member_id == Member.id)
    if where is not None:
        query = query.where(where)
    found = []
    for member_id, name, referrals, qualified, referred, referral_value, own_value in session.execute(query):
        own_value, referral_value = _money(own_value), _money(referral_value)
        found.append(Influence(member_id=member_id, name=name, referrals=int(referrals),
                               qualified_referrals=int(qualified), referred_spend=_money(referred),
                               referral_value=referral_value, own_value=own_value,
                               influence=quadrant(own_value, referral_value, own_median, referral_median)))
    return found


# ------------------------------------------------------------------ the summary the worker keeps

class InfluenceScore(Base):
    """Every member's influence as of ``computed_at``, written whole by :func:`refresh` (the worker, hourly): the
    ranking and a member's figures read it in milliseconds where computing them means aggregating a year of
    purchases (seconds at 10 million). Members with neither own spend nor referrals have no row (all zero)."""

    __tablename__ = "influence_scores"
    __table_args__ = (Index("ix_influence_scores_ranking", "referral_value", "member_id"),)

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    referrals: Mapped[int]
    qualified_referrals: Mapped[int]
    referred_spend: Mapped[Decimal] = mapped_column(_MONEY)
    referral_value: Mapped[Decimal] = mapped_column(_MONEY)
    own_value: Mapped[Decimal] = mapped_column(_MONEY)
    influence: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime]


def refresh(session: Session, program: Program) -> int:
    """Recompute the summary now: one DELETE and one INSERT ... SELECT (the window's spend aggregated once, as a
    CTE); the number of rows written."""
    now = program.now()
    spend = spend_since(window_start(program, now)).cte("spend")
    referral = referral_values(program, now, spend=spend).cte("ref")
    own = own_values(program, now, spend=spend).cte("own")
    own_median, referral_median = medians(program, now, own=own, referral=referral)
    own_value, referral_value = func.coalesce(own.c.own_value, 0), func.coalesce(referral.c.referral_value, 0)
    analytic(session)
    rows = (select(Member.id, func.coalesce(referral.c.referrals, 0),
                   case((referral.c.referrals > 0, _qualified(Member.id)), else_=0),
                   func.coalesce(referral.c.referred_spend, 0), referral_value, own_value,
                   quadrant_sql(own_value, referral_value, own_median, referral_median), literal(now, UTCDateTime()))
            .select_from(Member).outerjoin(own, own.c.member_id == Member.id)
            .outerjoin(referral, referral.c.member_id == Member.id)
            .where(or_(own.c.member_id.is_not(None), referral.c.member_id.is_not(None))))
    session.execute(delete(InfluenceScore))
    session.execute(insert(InfluenceScore).from_select(
        ["member_id", "referrals", "qualified_referrals", "referred_spend", "referral_value", "own_value",
         "influence", "computed_at"], rows))
    # (SQLite's driver counts no rows for an INSERT with a WITH clause: ask)
    return int(session.scalar(select(func.count()).select_from(InfluenceScore)) or 0)


def refresh_due(session: Session, program: Program, *, fresh_for: timedelta = timedelta(minutes=30)) -> int:
    """The worker's job: refresh unless the summary is younger than ``fresh_for``; rows written (0: it was)."""
    last = computed_at(session)
    if last is not None and program.now() - last < fresh_for:
        return 0
    return refresh(session, program)  # the next call finds it fresh (or, for a club with no rows, nothing to do)


def computed_at(session: Session) -> datetime | None:
    """When the summary was last written (None: never, or it holds nobody). Every row of one refresh has the same
    time, so any row says it (one row read, not a scan)."""
    return session.scalar(select(InfluenceScore.computed_at).limit(1))


def _summary(session: Session, where: ColumnElement | None, *, ranked: bool, after: tuple[Decimal, str] | None,
             limit: int, as_of: datetime) -> list[Influence]:
    score = InfluenceScore
    query = select(Member.id, Member.name, score.referrals, score.qualified_referrals, score.referred_spend,
                   score.referral_value, score.own_value, score.influence)
    if ranked:
        query = descending_page(query.select_from(score).join(Member, Member.id == score.member_id)
                      .where(score.referrals > 0), score.referral_value, score.member_id, after, limit)
    else:
        query = query.select_from(Member).outerjoin(score, score.member_id == Member.id)
    if where is not None:
        query = query.where(where)
    return [Influence(member_id=member_id, name=name, referrals=int(referrals or 0),
                      qualified_referrals=int(qualified or 0), referred_spend=_money(referred),
                      referral_value=_money(value), own_value=_money(own_value), influence=quadrant_ or "miser",
                      as_of=as_of)
            for member_id, name, referrals, qualified, referred, value, own_value, quadrant_ in session.execute(query)]


def _report(session: Session, program: Program, where: ColumnElement | None, *, ranked: bool,
            after: tuple[Decimal, str] | None = None, limit: int = 50) -> list[Influence]:
    """From the summary when the worker has written one (``as_of`` says when), else computed now."""
    as_of = computed_at(session)
    if as_of is not None:
        return _summary(session, where, ranked=ranked, after=after, limit=limit, as_of=as_of)
    return _live(session, program, where, ranked=ranked, after=after, limit=limit)


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
    """Members who referred someone, highest referral value first (ties by id, descending); ``after`` is the last row's
    ``(referral_value, member_id)``."""
    return _report(session, program, None, ranked=True, after=after, limit=limit)
