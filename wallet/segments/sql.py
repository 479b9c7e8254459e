"""Criteria compiled to ONE select of member ids, the same on SQLite and PostgreSQL: members joined to only the
aggregates the criteria use (one pass over the purchases for every spend and count window, check-ins, the last
purchase, balances, referral values, influence), every value a bound parameter.

Speed (PostgreSQL): the purchase windows read ``purchases`` through its BRIN index on ``created_at`` (the table is
written in time order, so the last 90 days are the last pages); one member's test (:func:`contains`) adds
``members.id = :id``, which the planner pushes into each aggregate, read through ``ix_purchases_member_id`` and
``ix_check_ins_member_time``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    and_,
    case,
    column,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    table,
    true,
)

from .. import influence
from ..db import Base
from ..ledger import Balance
from ..members import Member
from ..program import Program
from ..purchases import Purchase
from . import activity
from .activity import CHECK_INS, PURCHASE_WINDOWS, VISITS_DAYS
from .models import SegmentActivity

_FAR_DAYS = 1_000_000  # past this, "at least N days" is never true (and timedelta stays in range)
_FAR_YEARS = 300
_DEFAULT_PREFERENCES = {"email": True, "push": True}


def tier_ranks() -> Any:
    """The tiers table if tiers have ranks here (``tiers.code``, ``tiers.rank``), else None: then tier codes only
    compare equal or not. The one place that knows how a tier is ranked."""
    tiers = Base.metadata.tables.get("tiers")
    if tiers is None or "code" not in tiers.c or "rank" not in tiers.c:
        return None
    return tiers


def tier_condition(op: str, value: Any) -> ColumnElement[bool]:
    """``tier op value``: by rank where tiers are ranked; codes equal or not otherwise."""
    tiers = tier_ranks()
    values = value if op == "in" else [value]
    if tiers is None or op in ("=", "!=", "in"):
        if op == "!=":
            return Member.tier != value
        return Member.tier.in_(values)
    mine = select(tiers.c.rank).where(tiers.c.code == Member.tier).scalar_subquery()
    theirs = select(tiers.c.rank).where(tiers.c.code == value).scalar_subquery()
    return and_(mine.is_not(None), theirs.is_not(None), _compare(mine, op, theirs))


def consent_column(purpose: str) -> ColumnElement[bool]:
    """Whether the member has granted ``purpose`` (members.consents today: ``{purpose: {granted, at}}``). The one
    place that knows where consents are kept."""
    return func.coalesce(Member.consents[purpose]["granted"].as_boolean(), false())


# wallet.social's attributes, read as a table here (segments sit below the social profile's package).
SOCIAL_ATTRIBUTES = table("social_attributes", column("member_id", String), column("key", String),
                          column("value", String))


def social_condition(attribute: str, op: str, value: Any) -> ColumnElement[bool]:
    """``social.<attribute>``: the member has that attribute, compared as text ignoring case, and the social_data
    consent (without it nothing social is used); otherwise false."""
    stored = func.lower(SOCIAL_ATTRIBUTES.c.value)
    compared: ColumnElement[bool]
    if op == "in":
        compared = stored.in_([str(v).strip().lower() for v in value])
    else:
        wanted = str(value).strip().lower()
        compared = stored == wanted if op == "=" else stored != wanted
    return and_(consent_column("social_data"),
                exists().where(SOCIAL_ATTRIBUTES.c.member_id == Member.id, SOCIAL_ATTRIBUTES.c.key == attribute,
                               compared))


def _compare(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    if op == "in":
        return left.in_(right)
    return {"=": left.__eq__, "!=": left.__ne__, ">": left.__gt__, ">=": left.__ge__, "<": left.__lt__,
            "<=": left.__le__}[op](right)


def _elapsed(column_: Any, op: str, value: Any, cutoff: Callable[[int], Any | None]) -> ColumnElement[bool]:
    """A whole-units-since comparison (age, days since ...) as comparisons of the time itself, so an index on it
    serves and both databases agree: ``units >= n`` is ``time <= cutoff(n)``. Null compares false."""
    def at_least(n: int) -> ColumnElement[bool]:
        if n <= 0:
            return true()
        limit = cutoff(n)
        return false() if limit is None else column_ <= limit

    def exactly(n: int) -> ColumnElement[bool]:
        return and_(at_least(n), not_(at_least(n + 1)))
    if op == "in":
        found = or_(*[exactly(v) for v in value])
    else:
        found = {"=": lambda: exactly(value), "!=": lambda: not_(exactly(value)), ">=": lambda: at_least(value),
                 ">": lambda: at_least(value + 1), "<": lambda: not_(at_least(value)),
                 "<=": lambda: not_(at_least(value + 1))}[op]()
    return and_(column_.is_not(None), found)


class _Compiler:
    def __init__(self, program: Program, criteria: dict[str, Any], activity_as_of: datetime | None) -> None:
        self.program = program
        self.now = program.now()
        self.activity_as_of = activity_as_of if activity.usable(activity_as_of, self.now) else None
        self.criteria = criteria
        self.joins: list[tuple[FromClause, ColumnElement[bool]]] = []
        self.columns: dict[str, Any] = {}
        self.narrow = self._narrowing(criteria)
        self._sources(_fields_of(criteria))

    def _narrowing(self, criteria: dict[str, Any]) -> ColumnElement[bool] | None:
        """The profile conditions every member of the segment meets (the top-level ``all``'s conditions on the
        member's own columns): each aggregate reads only those members' rows (a semi-join), so "spend in 90 days
        of members in Haifa" aggregates Haifa's purchases, not the club's. The result is the same."""
        profile = [self.node(n) for n in criteria.get("all", []) if _profile_only(n)]
        return and_(*profile) if profile else None

    def _only_narrowed(self, member_id: Any) -> list[ColumnElement[bool]]:
        if self.narrow is None:
            return []
        return [member_id.in_(select(Member.id).where(Member.status == "active", self.narrow).correlate(None))]

    def _join(self, source: FromClause) -> FromClause:
        self.joins.append((source, source.c.member_id == Member.id))
        return source

    def _summarised(self, names: set[str]) -> set[str]:
        """The windowed fields read from the summary plus what changed since its cutoff (see .activity)."""
        cutoff = self.activity_as_of
        names = names & activity.FIELDS
        if cutoff is None or not names:
            return set()
        summary = self._join(SegmentActivity.__table__)
        windows = [n for n in PURCHASE_WINDOWS if n in names]
        bought = self._join(activity.purchase_changes(cutoff, self.now, windows).subquery("purchases_since")) \
            if windows else None
        came = self._join(activity.visit_changes(cutoff, self.now).subquery("visits_since")) \
            if "visits_90d" in names else None
        for n in names:
            since = came if n == "visits_90d" else bought
            assert since is not None
            self.columns[n] = func.coalesce(summary.c[n], 0) + func.coalesce(since.c[n], 0)
        return names

    def _sources(self, names: set[str]) -> None:
        names = names - self._summarised(names)
        windows = {n: d for n, d in PURCHASE_WINDOWS.items() if n in names}
        if windows:
            since = {d: self.now - timedelta(days=d) for d in set(windows.values())}
            aggregates = [func.sum(case((Purchase.created_at >= since[d], Purchase.amount if n.startswith("spend")
                                         else 1), else_=0)).label(n) for n, d in windows.items()]
            spend = self._join(select(Purchase.member_id, *aggregates)
                               .where(Purchase.status == "completed", Purchase.created_at >= min(since.values()),
                                      *self._only_narrowed(Purchase.member_id))
                               .group_by(Purchase.member_id).subquery("purchase_windows"))
            for n in windows:
                self.columns[n] = func.coalesce(spend.c[n], 0)
        if "days_since_last_purchase" in names:
            last = self._join(select(Purchase.member_id, func.max(Purchase.created_at).label("at"))
                              .where(Purchase.status == "completed", *self._only_narrowed(Purchase.member_id))
                              .group_by(Purchase.member_id)
                              .subquery("last_purchase"))
            self.columns["days_since_last_purchase"] = last.c.at
        if "visits_90d" in names:
            visits = self._join(select(CHECK_INS.c.member_id, func.count().label("n"))
                                .where(CHECK_INS.c.status == "accepted",
                                       CHECK_INS.c.created_at >= self.now - timedelta(days=VISITS_DAYS),
                                       *self._only_narrowed(CHECK_INS.c.member_id))
                                .group_by(CHECK_INS.c.member_id).subquery("visits"))
            self.columns["visits_90d"] = func.coalesce(visits.c.n, 0)
        if "points_balance" in names:
            balance = self._join(select(Balance.member_id, Balance.points).subquery("balance"))
            self.columns["points_balance"] = func.coalesce(balance.c.points, 0)
        if names & {"referrals", "referral_value"}:
            referral = self._join(influence.referral_values(self.program, self.now).subquery("referral"))
            self.columns["referrals"] = func.coalesce(referral.c.referrals, 0)
            self.columns["referral_value"] = func.coalesce(referral.c.referral_value, 0)
        if "influence" in names:
            quadrant = self._join(influence.influence_by_member(self.program, self.now).subquery("influence"))
            self.columns["influence"] = quadrant.c.influence

    def select(self) -> Select:
        source: FromClause = Member.__table__
        for joined, on in self.joins:
            source = source.outerjoin(joined, on)
        return select(Member.id).select_from(source).where(Member.status == "active", self.node(self.criteria))

    def node(self, node: dict[str, Any]) -> ColumnElement[bool]:
        if "all" in node:
            return and_(true(), *[self.node(n) for n in node["all"]])
        if "any" in node:
            return or_(false(), *[self.node(n) for n in node["any"]])
        if "not" in node:
            return not_(self.node(node["not"]))
        return self.condition(node["field"], node["op"], node["value"])

    def condition(self, name: str, op: str, value: Any) -> ColumnElement[bool]:
        if name in self.columns and name not in ("days_since_last_purchase", "influence"):
            number = Decimal if name.startswith("spend") or name == "referral_value" else int
            return _compare(self.columns[name], op, [number(v) for v in value] if op == "in" else number(value))
        if name == "days_since_last_purchase":
            return _elapsed(self.columns[name], op, value, self._days_ago)
        if name == "enrolled_days":
            return _elapsed(Member.created_at, op, value, self._days_ago)
        if name == "age":
            return _elapsed(Member.birthday, op, value, self._years_ago)
        if name == "influence":
            return _compare(self.columns[name], op, value)
        if name == "tier":
            return tier_condition(op, value)
        if name == "gender":
            return and_(Member.gender.is_not(None), _compare(Member.gender, op, value))
        if name == "city":
            wanted = [v.lower() for v in value] if op == "in" else value.lower()
            return and_(Member.city.is_not(None), _compare(func.lower(Member.city), op, wanted))
        if name.startswith("preferences."):
            channel = name.partition(".")[2]
            shown = func.coalesce(Member.preferences[channel].as_boolean(),
                                  true() if _DEFAULT_PREFERENCES.get(channel) else false())
            return _compare(shown, op, bool(value))
        if name.startswith("consents."):
            return _compare(consent_column(name.partition(".")[2]), op, bool(value))
        if name.startswith("social."):
            return social_condition(name.partition(".")[2], op, value)
        raise AssertionError(f"no SQL for {name}")  # the catalogue and this list go together

    def _days_ago(self, days: int) -> datetime | None:
        return None if days > _FAR_DAYS else self.now - timedelta(days=days)

    def _years_ago(self, years: int) -> date | None:
        if years > _FAR_YEARS:
            return None
        today = self.now.astimezone(self.program.tz).date()
        try:
            return today.replace(year=today.year - years)
        except ValueError:  # 29 February, in a common year
            return today.replace(year=today.year - years, day=28)


PROFILE_FIELDS = frozenset({"tier", "age", "gender", "city", "enrolled_days"})


def _profile_only(node: dict[str, Any]) -> bool:
    """Whether a criterion reads only the member's own row (no aggregate)."""
    if "field" in node:
        return node["field"] in PROFILE_FIELDS or node["field"].startswith(("preferences.", "consents.", "social."))
    children = node.get("all", []) + node.get("any", []) + ([node["not"]] if "not" in node else [])
    return all(_profile_only(n) for n in children)


def _fields_of(criteria: dict[str, Any]) -> set[str]:
    stack, names = [criteria], set()
    while stack:
        node = stack.pop()
        if "field" in node:
            names.add(node["field"])
        stack.extend(node.get("all", []) + node.get("any", []) + ([node["not"]] if "not" in node else []))
    return names


def uses_activity(criteria: dict[str, Any]) -> bool:
    """Whether the criteria name a field the activity summary keeps (spend, purchases or visits in a window)."""
    return bool(_fields_of(criteria) & activity.FIELDS)


def compile_criteria(program: Program, criteria: dict[str, Any], *, activity_as_of: datetime | None = None) -> Select:
    """The select of the ids of active members who meet validated ``criteria`` now (``program.now()``).
    ``activity_as_of``: the activity summary's cutoff (:func:`activity.as_of`); where it is usable now, the windows
    are its values plus the changes since, else they are aggregated live (the same values)."""
    return _Compiler(program, criteria, activity_as_of).select()


