"""Conditions: whether an event meets a rule's stores, amount, days and hours, categories, tiers, n-th visit."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    func,
    select,
)

from .. import segments
from ..errors import NotFound
from ..purchases import Purchase
from .evaluation import Run
from .models import Rule
from .validation import parse_hours


def first_unmet(run: Run, rule: Rule) -> str | None:
    """The first condition of the rule that the event does not meet (cheap ones first), or None."""
    c = rule.conditions or {}
    event = run.event
    if c.get("stores") and event.store_id not in c["stores"]:
        return "stores"
    if "min_amount" in c and (event.amount is None or event.amount < Decimal(str(c["min_amount"]))):
        return "min_amount"
    if "side" in c and event.attributes.get("side") != c["side"]:
        return "side"
    if "inactive_days" in c and event.attributes.get("inactive_days") != c["inactive_days"]:
        return "inactive_days"
    if c.get("first_scan") and not event.attributes.get("first_scan"):
        return "first_scan"
    if c.get("categories"):
        category = event.attributes.get("category")
        if category is not None:
            if category not in c["categories"]:
                return "categories"
        elif not any(item.get("category") in c["categories"] for item in event.items):
            return "categories"
    if "days_of_week" in c or "hours" in c:
        local = run.now.astimezone(run.store_tz())
        if "days_of_week" in c and local.weekday() not in c["days_of_week"]:
            return "days_of_week"
        if "hours" in c:
            start, end = parse_hours(c["hours"])
            t = local.time()
            inside = start <= t < end if start < end else (t >= start or t < end)  # a window past midnight
            if not inside:
                return "hours"
    if c.get("tiers") and run.tier() not in c["tiers"]:
        return "tiers"
    if c.get("segment") and not _in_segment(run, c["segment"]):
        return "segment"
    if "nth" in c:
        period = c["nth"].get("period", "month")
        if _nth_count(run, period) != c["nth"]["n"]:
            return "nth"
    return None


def _in_segment(run: Run, segment_id: str) -> bool:
    """Whether the member is in the segment as things stood before this event (one query); a segment deleted
    meanwhile holds no one."""
    try:
        return segments.contains(run.session, segment_id, run.event.member_id, program=run.program)
    except NotFound:
        return False


def _nth_count(run: Run, period: str) -> int | None:
    """Which of the member's events of this kind in the period this one is (1 for the first)."""
    counts = run.event.attributes.get("nth_counts")
    if counts is not None:
        return counts.get(period)
    if run.event.trigger != "purchase":
        return None
    run.lock_member()  # two purchases at once must not both be "the 5th"
    query = select(func.count()).select_from(Purchase).where(Purchase.member_id == run.event.member_id)
    start = period_start(run.now, run.program.tz, period)
    if start is not None:
        query = query.where(Purchase.created_at >= start)
    # The till writes a purchase after its rules have run (and a dry run's purchase is never written).
    return run.session.execute(query).scalar_one() + 1


def period_start(now: datetime, tz: ZoneInfo, period: str) -> datetime | None:
    """The start of the calendar day, week (Monday), month or year containing ``now`` in ``tz``, in UTC."""
    local = now.astimezone(tz).date()
    if period == "ever":
        return None
    if period == "week":
        local -= timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1)
    elif period == "year":
        local = local.replace(month=1, day=1)
    return datetime.combine(local, time(), tz).astimezone(UTC)
