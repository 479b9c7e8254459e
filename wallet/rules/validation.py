"""Checking a rule a marketer writes: the parts a schema can't (trigger, reward, conditions, caps, references)."""
from __future__ import annotations

import math
from datetime import time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import benefits
from ..coupons.models import Offer
from ..errors import Invalid
from ..segments import Segment
from ..stores import Store
from ..tiers import Tier
from .models import CONDITION_KEYS, NTH_PERIODS, REWARD_KEYS, REWARD_KINDS, STATUSES, TRIGGERS


def validate_rule(data: dict[str, Any]) -> None:
    """Check the parts of a rule that a schema can't: the trigger, the reward's shape, conditions, caps."""
    errors: dict[str, list[str]] = {}
    trigger = data.get("trigger")
    if trigger not in TRIGGERS:
        errors["trigger"] = [f"Must be one of: {', '.join(TRIGGERS)}."]
    reward = data.get("reward") or {}
    if not isinstance(reward, dict):
        reward = {}
    problems = _check_reward(reward, trigger)
    if problems:
        errors["reward"] = problems
    conditions = data.get("conditions") or {}
    if not isinstance(conditions, dict):
        errors["conditions"] = ["conditions is an object."]
        conditions = {}
    unknown = set(conditions) - CONDITION_KEYS
    if unknown:
        errors["conditions"] = [f"Unknown conditions: {', '.join(sorted(unknown))}."]
    else:
        problems = _check_conditions(conditions, trigger)
        if problems:
            errors["conditions"] = problems
    probability = data.get("probability", 1.0)
    if probability is not None and (isinstance(probability, bool) or not isinstance(probability, (int, float))
                                    or not math.isfinite(probability) or not 0 < probability <= 1):
        errors["probability"] = ["Must be in (0, 1]."]
    if data.get("per_member_period_days") is not None and data.get("per_member_limit") is None:
        errors["per_member_period_days"] = ["Give per_member_limit too: how many grants per member in the period."]
    starts, ends = data.get("starts_at"), data.get("ends_at")
    if starts is not None and ends is not None and ends <= starts:
        errors["ends_at"] = ["ends_at must be after starts_at."]
    if data.get("status", "active") not in (*STATUSES, "archived"):
        errors["status"] = [f"Must be one of: {', '.join(STATUSES)}."]
    if errors:
        raise Invalid("The rule is not valid", errors=errors)


def _check_reward(reward: dict[str, Any], trigger: str | None) -> list[str]:
    kinds = [k for k in REWARD_KINDS if k in reward]
    if len(kinds) != 1:
        return ["Give exactly one of points, points_per_currency_unit, multiplier or offer_id."]
    kind, value = kinds[0], reward[kinds[0]]
    problems = []
    if kind == "points" and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1_000_000):
        problems.append("points must be a whole number from 1 to 1000000.")
    elif kind in ("points_per_currency_unit", "multiplier"):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = Decimal(str(value))
            if not number.is_finite() or number <= 0 or number > 1000:
                raise ValueError
        except (ValueError, ArithmeticError):
            return [f"{kind} must be a positive number up to 1000."]
    elif kind == "offer_id" and not (isinstance(value, str) and value):
        problems.append("offer_id must be an offer's id.")
    unknown = set(reward) - REWARD_KEYS
    if unknown:
        problems.append(f"Unknown keys: {', '.join(sorted(unknown))}.")
    if kind == "points_per_currency_unit" and trigger not in (None, "purchase"):
        problems.append("points_per_currency_unit needs an amount: it is for purchase rules.")
    if "basis" in reward and (kind != "points_per_currency_unit" or reward["basis"] not in ("amount", "matching_items")):
        problems.append('basis goes with points_per_currency_unit: "amount" or "matching_items".')
    if ("purchases" in reward or "days" in reward) and kind != "multiplier":
        problems.append("purchases and days describe a multiplier benefit: give multiplier too.")
    elif kind == "multiplier":
        problems += benefits.check_spec(reward)
    return problems


def _check_conditions(c: dict[str, Any], trigger: str | None) -> list[str]:
    problems = []
    if "days_of_week" in c and not (isinstance(c["days_of_week"], list) and c["days_of_week"]
                                    and all(isinstance(d, int) and 0 <= d <= 6 for d in c["days_of_week"])):
        problems.append("days_of_week is a list of 0 (Monday) to 6 (Sunday).")
    if "hours" in c:
        try:
            start, end = parse_hours(c["hours"])
            if start == end:
                raise ValueError
        except (TypeError, ValueError, KeyError):
            problems.append('hours is {"from": "HH:MM", "to": "HH:MM"} (to may be past midnight).')
    if "min_amount" in c:
        try:
            if isinstance(c["min_amount"], (bool, float)) or Decimal(str(c["min_amount"])) < 0:
                raise ValueError
        except (ValueError, ArithmeticError):
            problems.append('min_amount is a non-negative decimal string, e.g. "50.00".')
        if trigger not in (None, "purchase"):
            problems.append("min_amount is for purchase rules.")
    for key in ("stores", "categories", "tiers"):
        if key in c and not (isinstance(c[key], list) and all(isinstance(s, str) for s in c[key])):
            problems.append(f"{key} is a list of strings.")
    if "nth" in c:
        nth = c["nth"]
        if not (isinstance(nth, dict) and set(nth) <= {"n", "period"} and isinstance(nth.get("n"), int)
                and not isinstance(nth.get("n"), bool) and nth["n"] >= 1
                and nth.get("period", "month") in NTH_PERIODS):
            problems.append('nth is {"n": 5, "period": "month"} (period: day, week, month, year or ever).')
    if "side" in c and (c["side"] not in ("referrer", "referred") or trigger not in (None, "referral")):
        problems.append('side is "referrer" or "referred", for referral rules.')
    if "segment" in c and not (isinstance(c["segment"], str) and 1 <= len(c["segment"]) <= 32):
        problems.append("segment is a segment's id.")
    if "first_scan" in c and not isinstance(c["first_scan"], bool):
        problems.append("first_scan is true or false.")
    if trigger == "inactivity" and "inactive_days" not in c:
        problems.append("An inactivity rule says after how many quiet days it fires: inactive_days.")
    if "inactive_days" in c:
        days = c["inactive_days"]
        if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
            problems.append("inactive_days is a whole number of days from 1 to 3650.")
        if trigger not in (None, "inactivity"):
            problems.append("inactive_days is for inactivity rules.")
    return problems


def parse_hours(hours: dict[str, str]) -> tuple[time, time]:
    return time.fromisoformat(hours["from"]), time.fromisoformat(hours["to"])


def check_references(session: Session, data: dict[str, Any]) -> None:
    offer_id = (data.get("reward") or {}).get("offer_id")
    if offer_id:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.archived_at is not None:
            raise Invalid("The rule's reward names an offer that doesn't exist", code="unknown_offer",
                          errors={"reward": [f"Unknown offer: {offer_id}."]})
    segment_id = (data.get("conditions") or {}).get("segment")
    if segment_id and session.get(Segment, segment_id) is None:
        raise Invalid("The rule names a segment that doesn't exist", code="unknown_segment",
                      errors={"conditions": [f"Unknown segment: {segment_id}."]})
    tiers = _unknown(session, Tier.code, (data.get("conditions") or {}).get("tiers"))
    if tiers:
        raise Invalid("The rule names tiers that don't exist", code="unknown_tier",
                      errors={"conditions.tiers": [f"Unknown tier codes: {', '.join(tiers)}."]})
    stores = _unknown(session, Store.id, (data.get("conditions") or {}).get("stores"))
    if stores:
        raise Invalid("The rule names stores that don't exist", code="unknown_store",
                      errors={"conditions": [f"Unknown stores: {', '.join(stores)}."]})


def _unknown(session: Session, column: Any, named: list[str] | None) -> list[str]:
    """Those of ``named`` that no row has in ``column``, in the order named."""
    if not named:
        return []
    known = set(session.scalars(select(column).where(column.in_(named))))
    return [n for n in named if n not in known]
