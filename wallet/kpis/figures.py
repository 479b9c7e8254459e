"""``GET /admin/kpis``: the club's figures for a period, read from the summaries (``summary``) plus the events the
summary job has not reached yet, so an answer is current to the last commit. Never reads purchases or members.

Definitions (the README and the OpenAPI document say the same):
- a period is ``start``..``end``, inclusive club days in ``Program.timezone`` (LOYALTY_TIMEZONE);
- stocks (``members.total``, ``active_*``, ``points.outstanding``, ``liability``) are as at the end of ``end``;
  flows (everything else) count the events of the period, each on the club day it occurred;
- active: a member who bought or checked in (``purchase.recorded``, ``check_in.recorded``) in the N days
  ending on ``end`` (N = 30, 90).
"""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from .. import campaigns
from ..campaigns import Campaign
from ..errors import Invalid
from ..events import CHANNELS
from ..program import Program
from . import days, summary
from .models import COUNTERS, KpiActiveChange, KpiDay

INTERVALS = ("day", "week", "month")
DEFAULT_DAYS = 30
MAX_DAYS = 732  # two years and a day: a longer period is refused
_CENT = Decimal("0.01")
_INDEX = {name: i for i, name in enumerate(COUNTERS)}


def launched_reports(session: Session, start: date, end: date) -> list[tuple[date, int, int]]:
    """``(UTC day of launch, treated, responders)`` of each campaign launched in the period (UTC days): one report
    per campaign (a period holds few), read once for a whole series."""
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    launched = session.execute(select(Campaign.id, Campaign.launched_at)
                               .where(Campaign.launched_at >= since, Campaign.launched_at < until)).all()
    out = []
    for campaign_id, at in launched:
        assert at is not None  # selected by its launch time
        report = campaigns.report(session, campaign_id)
        day = (at.astimezone(UTC) if at.tzinfo else at).date()
        out.append((day, report["treated"], report["responders"]))
    return out


def response_rate_of(reports: list[tuple[date, int, int]], start: date, end: date) -> float | None:
    """The responders of the campaigns launched from ``start`` to ``end`` over their treated members, or None."""
    chosen = [(treated, responders) for day, treated, responders in reports if start <= day <= end]
    treated = sum(t for t, _ in chosen)
    return sum(r for _, r in chosen) / treated if treated else None


def campaign_response_rate(session: Session, start: date, end: date) -> float | None:
    """``campaigns.response_rate`` for a period: the responders of the campaigns launched in it (UTC days) divided
    by their treated members (API.md's report: ``response_rate`` = responders / treated); None when no campaign
    launched then treated anyone."""
    return response_rate_of(launched_reports(session, start, end), start, end)


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    interval: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period(program: Program, start: date | None, end: date | None, interval: str | None) -> Period:
    """The period asked for, checked (422 naming the field); by default the 30 days ending today."""
    if interval is not None and interval not in INTERVALS:
        raise Invalid("Unknown interval", code="validation_error",
                      errors={"interval": [f"One of {', '.join(INTERVALS)}."]})
    today = program.now().astimezone(program.tz).date()
    if end is None:
        end = today if start is None else min(today, start + timedelta(days=DEFAULT_DAYS - 1))
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    for name, value in (("from", start), ("to", end)):
        if not date(2000, 1, 1) <= value <= date(2100, 12, 31):
            raise Invalid("Dates are between 2000-01-01 and 2100-12-31", code="validation_error",
                          errors={name: ["A date between 2000-01-01 and 2100-12-31."]})
    if start > end:
        raise Invalid("The period starts after it ends", code="validation_error",
                      errors={"from": ["Must not be after to."]})
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid(f"A period is at most {MAX_DAYS} days", code="validation_error",
                      errors={"to": [f"At most {MAX_DAYS} days after from."]})
    return Period(start, end, interval)


@dataclass
class _Read:
    before: list[int]  # COUNTERS summed over every day before the period
    per_day: dict[int, list[int]]  # day -> COUNTERS, all channels
    actions: dict[int, dict[str, int]]  # day -> channel -> actions
    changes: dict[int, list[tuple[int, int]]]  # window -> [(day, delta)] up to the period's end


def _add(read: _Read, rows: Any, first: int, last: int) -> None:
    for day, channel, *values in rows:
        if day > last:
            continue
        if day < first:
            read.before = [a + int(b or 0) for a, b in zip(read.before, values, strict=True)]
            continue
        counts = read.per_day.setdefault(day, [0] * len(COUNTERS))
        for i, value in enumerate(values):
            counts[i] += int(value or 0)
        by = read.actions.setdefault(day, {})
        by[channel] = by.get(channel, 0) + int(values[_INDEX["actions"]] or 0)


_days = KpiDay.__table__.c
# Built once: every answer runs them with its period's day numbers.
_BEFORE = select(*[func.coalesce(func.sum(_days[n]), 0) for n in COUNTERS]).where(_days.day < bindparam("first"))
_STORED = select(_days.day, _days.channel, *[_days[n] for n in COUNTERS]).where(
    _days.day.between(bindparam("first"), bindparam("last")))
_CHANGES = select(KpiActiveChange.window_days, KpiActiveChange.day, KpiActiveChange.delta).where(
    KpiActiveChange.day <= bindparam("last"))


def _read(session: Session, program: Program, first: int, last: int) -> _Read:
    """The summaries and the events after them, from one consistent view: if the job moved on while they were
    being read (its cursor changed), they are read again."""
    for _ in range(5):
        cursor = summary.position(session)
        read = _Read([0] * len(COUNTERS), {}, {}, defaultdict(list))
        span = {"first": first, "last": last}
        read.before = [int(v) for v in session.execute(_BEFORE, span).one()]
        _add(read, session.execute(_STORED, span).all(), first, last)
        changes = list(session.execute(_CHANGES, span).all())
        tail_rows, tail_changes = summary.tail(session, program.timezone)
        after = {"after_xact": cursor[0], "after_position": cursor[1]}
        _add(read, session.execute(tail_rows, after).all(), first, last)
        changes += session.execute(tail_changes, after).all()
        for window, day, delta in changes:
            if day <= last:
                read.changes[window].append((day, int(delta)))
        if summary.position(session) == cursor:
            return read
        session.rollback()  # a fresh snapshot where the database gives one per transaction
    raise RuntimeError("the KPI summaries kept moving while being read")


class _Active:
    """Members active in the N days ending on a day: the sum of the changes up to that day."""

    def __init__(self, changes: list[tuple[int, int]]):
        by_day: dict[int, int] = defaultdict(int)
        for day, delta in changes:
            by_day[day] += delta
        self.days = sorted(by_day)
        self.totals, running = [], 0
        for day in self.days:
            running += by_day[day]
            self.totals.append(running)

    def at(self, day: int) -> int:
        i = bisect_right(self.days, day)
        return self.totals[i - 1] if i else 0


def _money(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(_CENT))


def _rate(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


def _starts(p: Period) -> list[date]:
    """The first day of each bucket of the series within the period (the first bucket starts with the period)."""
    starts, day = [p.start], p.start
    while True:
        if p.interval == "day":
            day += timedelta(days=1)
        elif p.interval == "week":
            day += timedelta(days=7 - day.weekday())
        else:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        if day > p.end:
            return starts
        starts.append(day)


def kpis(session: Session, program: Program, p: Period) -> dict[str, Any]:
    """The figures of API.md's KPIs for the period, with a series per ``interval`` if asked."""
    first, last = days.number(p.start), days.number(p.end)
    read = _read(session, program, first, last)
    active = {n: _Active(read.changes[n]) for n in summary.WINDOWS}
    value = Decimal(program.point_value)
    launched = launched_reports(session, p.start, p.end)  # once: a series' blocks each take their days' share

    def block(a: int, b: int, stock_before: list[int]) -> tuple[dict[str, Any], list[int]]:
        flows = [0] * len(COUNTERS)
        by_channel = dict.fromkeys(CHANNELS, 0)
        for day in range(a, b + 1):
            for i, v in enumerate(read.per_day.get(day, ())):
                flows[i] += v
            for channel, n in read.actions.get(day, {}).items():
                by_channel[channel] = by_channel.get(channel, 0) + n
        stock = [x + y for x, y in zip(stock_before, flows, strict=True)]
        f = dict(zip(COUNTERS, flows, strict=True))
        s = dict(zip(COUNTERS, stock, strict=True))
        revenue = f["revenue_cents"] - f["refunded_cents"]
        active_30, active_90 = active[30].at(b), active[90].at(b)
        outstanding = (s["points_issued"] - s["points_redeemed"] - s["points_expired"] + s["points_adjusted"]
                       + s["points_reversed"])
        start, end = days.of_number(a), days.of_number(b)
        out = {
            "members": {"total": s["members_new"] - s["members_erased"], "new": f["members_new"],
                        "active_30d": active_30, "active_90d": active_90},
            "purchases": {"count": f["purchases"], "revenue": _money(revenue),
                          "per_active_member": None if not active_30 else
                          str((Decimal(revenue) / 100 / active_30).quantize(_CENT, ROUND_HALF_UP)),
                          "refunds": f["refunds"], "refunded": _money(f["refunded_cents"])},
            "points": {"issued": f["points_issued"], "redeemed": f["points_redeemed"], "expired": f["points_expired"],
                       "adjusted": f["points_adjusted"], "reversed": f["points_reversed"], "outstanding": outstanding,
                       "liability": str((outstanding * value).quantize(_CENT, ROUND_HALF_UP))},
            "coupons": {"issued": f["coupons_issued"], "redeemed": f["coupons_redeemed"],
                        "redemption_rate": _rate(f["coupons_redeemed_of_issued"], f["coupons_issued"])},
            "campaigns": {"sent": f["messages_sent"], "response_rate": response_rate_of(launched, start, end)},
            "by_channel": by_channel,
        }
        return out, stock

    answer, _ = block(first, last, read.before)
    answer = {"from": p.start, "to": p.end, "timezone": program.timezone, **answer}
    if p.interval:
        series, stock = [], read.before
        starts = _starts(p)
        for i, start in enumerate(starts):
            end = starts[i + 1] - timedelta(days=1) if i + 1 < len(starts) else p.end
            item, stock = block(days.number(start), days.number(end), stock)
            series.append({"date": start, **item})
        answer["series"] = series
    return answer
