"""Rewards: writing what a rule grants (points through the ledger, a coupon, a benefit) and its audit row."""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

from .. import benefits, events, ledger
from ..clock import iso
from ..coupons.issuing import issue_coupon
from ..coupons.models import coupon_summary
from ..db import new_id, table_of
from .caps import uncount
from .evaluation import Event, Grant, Run
from .models import TOTAL, Rule, RuleGrant


def base_points(rule: Rule, event: Event) -> int:
    reward = rule.reward
    if "points" in reward:
        return int(reward["points"])
    if "points_per_currency_unit" in reward:
        amount = event.amount or Decimal(0)
        if reward.get("basis") == "matching_items" and rule.conditions.get("categories"):
            amount = sum((Decimal(str(i.get("unit_price", 0))) * int(i.get("quantity", 1)) for i in event.items
                          if i.get("category") in rule.conditions["categories"]), Decimal(0))
        return int((amount * Decimal(str(reward["points_per_currency_unit"]))).to_integral_value(ROUND_FLOOR))
    return 0


def multiply_points(base: int, multiplier: Any) -> int:
    return max(int((Decimal(base) * (Decimal(str(multiplier)) - 1)).to_integral_value(ROUND_FLOOR)), 0)


def write_grant(run: Run, grant: Grant) -> bool:
    session, event, rule = run.session, run.event, grant.rule
    grant_id = new_id("gnt")
    key = f"{event.source}:{rule.id}"
    description = _describe(rule, event)
    if grant.points:
        grant.entry = _credit(run, grant.points, key=key, reason=_reason(rule, event), description=description,
                              rule=rule)
        grant.pending = run.pending_until is not None or run.awaits is not None
    if grant.offer_id:
        coupon = issue_coupon(session, run.program, offer_id=grant.offer_id, member_id=event.member_id,
                                      idempotency_key=key, source=event.source, actor=f"rule:{rule.id}",
                                      channel=event.channel)
        grant.coupon = coupon_summary(coupon) if coupon is not None else None
        if coupon is None and not grant.points and not benefits.is_benefit(rule.reward):
            if "total_limit" in grant.caps or "points_budget" in grant.caps:
                uncount(session, rule.id, TOTAL, 0)
            if "daily_limit" in grant.caps:
                uncount(session, rule.id, run.day.isoformat(), 0)
            run.skip(rule, "offer_unavailable")
            return False
    if benefits.is_benefit(rule.reward):
        grant.benefit = benefits.grant(session, member_id=event.member_id, rule_id=rule.id, grant_id=grant_id,
                                       reward=rule.reward, source=event.source, now=run.now)
    run.rows.append((_grants, {
        "id": grant_id, "rule_id": rule.id, "rule_version": rule.version, "rule_snapshot": snapshot_of(rule),
        "member_id": event.member_id, "trigger": event.trigger, "event_source": event.source,
        "event": _event_record(run), "draw": grant.draw, "points": grant.points,
        "coupon_id": (grant.coupon or {}).get("id"), "benefit_id": grant.benefit.id if grant.benefit is not None else None,
        "entry_id": getattr(grant.entry, "id", None), "caps": grant.caps, "day": run.day, "granted_at": run.now}))
    grant.grant_id = grant_id
    if event.announced_by_caller:
        return True
    channel = events.channel_of(event.channel, "api")
    run.rows.append((_events, events.event_row(
        "reward.granted", member_id=event.member_id, store_id=event.store_id, channel=channel,
        actor=f"rule:{rule.id}", occurred_at=run.now,
        data={"grant_id": grant_id, "rule_id": rule.id, "trigger": event.trigger, "points": grant.points,
              "coupon_id": (grant.coupon or {}).get("id"), "surprise": rule.surprise})))
    return True


_grants = RuleGrant.__table__
_events = table_of(events.Event)


_SNAPSHOTS: dict[tuple[str, int], dict[str, Any]] = {}


def snapshot_of(rule: Rule) -> dict[str, Any]:
    """``rule.snapshot()``, kept per rule and version (a version is never changed; an edit makes a new one)."""
    key = (rule.id, rule.version)
    snapshot = _SNAPSHOTS.get(key)
    if snapshot is None:
        if len(_SNAPSHOTS) > 1000:
            _SNAPSHOTS.clear()
        snapshot = _SNAPSHOTS[key] = rule.snapshot()
    return snapshot


def _event_record(run: Run) -> dict[str, Any]:
    record = run.event.describe()
    if record["occurred_at"] is None:
        record["occurred_at"] = iso(run.now)
    if run._tz is not None:  # a day or hour condition was read in this timezone: keep what it saw
        record["local_time"] = run.now.astimezone(run._tz).strftime("%a %Y-%m-%d %H:%M")
        record["timezone"] = str(run._tz)
    return record


def _credit(run: Run, points: int, *, key: str, reason: str, description: str, rule: Rule) -> Any:
    event = run.event
    if run.awaits is not None:
        return ledger.hold(run.session, run.program, member_id=event.member_id, points=points, reason=reason,
                           source=event.source, idempotency_key=key, description=description,
                           available_at=run.now, expiry_days=rule.points_expiry_days, rule_id=rule.id,
                           actor=f"rule:{rule.id}", channel=event.channel, awaits=run.awaits)
    if run.pending_until is not None:
        return ledger.hold(run.session, run.program, member_id=event.member_id, points=points, reason=reason,
                           source=event.source, idempotency_key=key, description=description,
                           available_at=run.pending_until, expiry_days=rule.points_expiry_days, rule_id=rule.id,
                           actor=f"rule:{rule.id}", channel=event.channel)
    # fresh: _load found no grant of this rule for this event, and a grant and its entry are written together,
    # so the key can't exist; a concurrent duplicate still meets the key's unique index.
    return ledger.earn(run.session, run.program, member_id=event.member_id, points=points, reason=reason,
                       idempotency_key=key, description=description, source=event.source,
                       expiry_days=rule.points_expiry_days, rule_id=rule.id, channel=event.channel,
                       actor=f"rule:{rule.id}", fresh=True, batch=run.batch, announce=not event.announced_by_caller)


def apply_benefits(run: Run, base: int) -> None:
    """The member's multiplier benefits boost what this purchase earned; each use is taken atomically."""
    session, event = run.session, run.event
    if run.has_benefits is False:
        return
    for benefit in benefits.usable(session, event.member_id, run.now, source=event.source):
        rule = session.get_one(Rule, benefit.rule_id)  # a foreign key: it exists
        grant = Grant(rule=rule, points=benefit.extra_points(base), kind="benefit", benefit=benefit)
        if not grant.points:
            continue
        if run.live:
            if not benefits.consume(session, benefit):
                run.skip(rule, "benefit_used_up", benefit.id)
                continue
            grant.entry = _credit(run, grant.points, key=f"{event.source}:{benefit.id}", reason=event.trigger,
                                  description=f"{rule.title}: points ×{benefit.multiplier.normalize()}", rule=rule)
            grant.pending = run.pending_until is not None
            benefits.record_use(session, benefit, source=event.source, base_points=base, points=grant.points,
                                entry_id=getattr(grant.entry, "id", None), now=run.now)
        run.grants.append(grant)


def _reason(rule: Rule, event: Event) -> str:
    if rule.surprise:
        return "surprise"
    return {"enrolment": "welcome"}.get(event.trigger, event.trigger)


def _describe(rule: Rule, event: Event) -> str:
    if rule.surprise:
        return f"Surprise! {rule.title}"
    if event.trigger == "birthday":
        return f"Happy birthday! {rule.title}"
    return rule.title
