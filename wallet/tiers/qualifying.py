"""Qualifying values, exactly: what a member earned, spent, visited and brought in over a window (never the
balance). One member's (the till's crossing, ``GET /me/tier``) or every member's at once (the review).

Definitions (API.md "Tiers"): ``spend`` sums completed purchases (a refunded purchase counts nothing);
``points_earned`` sums earned entries less the credits taken back (a refund's reversal); ``visits`` counts the
UTC days with a purchase or an accepted check-in; ``referral_value`` is influence's (:func:`referral_value_query`).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import FromClause, and_, column, func, or_, select, table, union
from sqlalchemy.orm import Session

from ..influence import referral_values_of, spend_since
from ..ledger import LedgerEntry
from ..purchases import Purchase

# check_ins belongs to the in-store use cases (a layer above): named here by its columns alone.
_check_ins = table("check_ins", column("member_id"), column("status"), column("created_at"))


def _spend(since: Any, member_ids: Any = None) -> Any:
    query = (select(Purchase.member_id.label("member_id"), func.sum(Purchase.amount).label("v"))
             .where(Purchase.status == "completed", Purchase.created_at >= since))
    if member_ids is not None:
        query = query.where(Purchase.member_id.in_(member_ids))
    return query.group_by(Purchase.member_id)


def _points(since: Any, member_ids: Any = None) -> Any:
    earned = or_(LedgerEntry.kind == "earn", and_(LedgerEntry.kind == "reverse", LedgerEntry.delta < 0))
    query = (select(LedgerEntry.member_id.label("member_id"), func.sum(LedgerEntry.delta).label("v"))
             .where(earned, LedgerEntry.created_at >= since))
    if member_ids is not None:
        query = query.where(LedgerEntry.member_id.in_(member_ids))
    return query.group_by(LedgerEntry.member_id)


def _visits(since: Any, member_ids: Any = None) -> Any:
    bought = select(Purchase.member_id.label("member_id"), func.date(Purchase.created_at).label("day")).where(
        Purchase.created_at >= since)
    came = select(_check_ins.c.member_id.label("member_id"), func.date(_check_ins.c.created_at).label("day")).where(
        _check_ins.c.status == "accepted", _check_ins.c.created_at >= since)
    if member_ids is not None:
        bought = bought.where(Purchase.member_id.in_(member_ids))
        came = came.where(_check_ins.c.member_id.in_(member_ids))
    days = union(bought, came).subquery("days")
    return select(days.c.member_id.label("member_id"), func.count().label("v")).group_by(days.c.member_id)


def referral_value_query(since: Any, member_ids: Any = None, *, second_degree: Decimal,
                         spend: FromClause | None = None) -> Any:
    """The referral value as ``SELECT member_id, v``: :func:`wallet.influence.referral_values_of` over the spend
    since ``since`` (``spend``: that :func:`~wallet.influence.spend_since` already made, e.g. as a CTE).
    ``member_ids``: only these referrers (a subquery or a list); None: everyone who referred anyone.
    ``second_degree``: the program's LOYALTY_INFLUENCE_SECOND_DEGREE (how much a friend's friend's spend counts); no
    default, so that no caller weighs it otherwise than the club does."""
    spend = spend if spend is not None else spend_since(since).subquery("friend_spend")
    values = referral_values_of(spend, second_degree, member_ids)
    referred = values.subquery("referred")
    return select(referred.c.member_id.label("member_id"), referred.c.referral_value.label("v"))


_QUERIES = {"spend": _spend, "points_earned": _points, "visits": _visits}  # and referral_value_query


def values_query(metric: str, since: Any, member_ids: Any = None, *, second_degree: Decimal,
                 spend: FromClause | None = None) -> Any:
    """``SELECT member_id, v`` of one metric over the window from ``since`` (members with nothing are absent);
    ``second_degree``: the program's LOYALTY_INFLUENCE_SECOND_DEGREE, for the referral value. ``spend``: the
    window's :func:`~wallet.influence.spend_since` already made (a CTE the review shares between the spend and
    the referral value of one window: the purchases aggregated once, not three times), for those two metrics."""
    if metric == "referral_value":
        return referral_value_query(since, member_ids, second_degree=second_degree, spend=spend)
    if metric == "spend" and spend is not None and member_ids is None:
        return select(spend.c.member_id.label("member_id"), spend.c.spend.label("v"))
    return _QUERIES[metric](since, member_ids)


def value_of(session: Session, member_id: str, metric: str, since: datetime, *, second_degree: Decimal) -> Decimal:
    """One member's exact qualifying value over the window from ``since``."""
    sub = values_query(metric, since, [member_id], second_degree=second_degree).subquery()
    value = session.execute(select(sub.c.v)).scalar()
    return Decimal(value or 0)
