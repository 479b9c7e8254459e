"""The marketers' ladder: create, change and delete tiers, each change checked against the whole ladder."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..errors import Conflict, Invalid, NotFound, Rejected
from ..members import Member
from ..program import Program
from .ladder import Ladder, ladder, shown_value
from .models import ENTRY_CODE, ENTRY_RANK, METRICS, MONEY_METRICS, MemberTier, Tier, bump_revision, revision_column

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MONEY = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
MAX_TIERS = 20
MAX_WINDOW_DAYS = 3650
MAX_THRESHOLD = Decimal("9999999999.99")
TIER_FIELDS = ("code", "name", "rank", "qualify", "retain_days", "description")


def current(session: Session) -> Ladder:
    """The ladder now (cached per process under its revision token)."""
    return ladder(session, session.scalar(select(revision_column())))


def list_tiers(session: Session) -> list[Tier]:
    return list(session.scalars(select(Tier).order_by(Tier.rank)))


def get_tier(session: Session, tier_id: str) -> Tier:
    tier = session.get(Tier, tier_id)
    if tier is None:
        raise NotFound("No such tier", code="tier_not_found")
    return tier


def threshold_of(metric: str, value: Any) -> Decimal:
    """A threshold as API.md types it: an integer for points and visits, a decimal string for money."""
    field = {"qualify.threshold": []}  # type: dict[str, list[str]]
    if metric in MONEY_METRICS:
        if not isinstance(value, str):
            field["qualify.threshold"].append(f'For {metric}, a decimal string such as "1000.00".')
        else:
            try:
                number = Decimal(value.strip()) if MONEY.match(value.strip()) else Decimal("NaN")
            except (InvalidOperation, ValueError):
                number = Decimal("NaN")
            if not number.is_finite() or number < 0 or number > MAX_THRESHOLD:
                field["qualify.threshold"].append("A non-negative amount with at most two decimal places.")
            else:
                return number
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            field["qualify.threshold"].append(f"For {metric}, a whole number.")
        elif not 0 <= value <= 10**10:
            field["qualify.threshold"].append("From 0 to 10,000,000,000.")
        else:
            return Decimal(value)
    raise Invalid(f"The threshold does not fit the metric {metric}", code="invalid_threshold", errors=field)


def _clean(data: dict[str, Any], old: Tier | None) -> dict[str, Any]:
    """The tier's columns from the API's fields (a change: the old values for what it leaves out)."""
    qualify = data.get("qualify")
    out: dict[str, Any] = {}
    if old is not None:
        out = {"code": old.code, "name": old.name, "rank": old.rank, "metric": old.metric,
               "threshold": old.threshold, "window_days": old.window_days, "retain_days": old.retain_days,
               "description": old.description}
    for key in ("code", "name", "rank", "retain_days", "description"):
        if key in data:
            out[key] = data[key]
    if "code" in data:
        code = str(data["code"]).strip().lower()
        if not CODE.match(code):
            raise Invalid("A tier's code is 1 to 32 lower-case letters, digits, '-' or '_'", code="invalid_tier_code",
                          errors={"code": ["1 to 32 lower-case letters, digits, '-' or '_'."]})
        if old is not None and code != old.code:
            raise Invalid("A tier's code is kept for good: rules and the wallet name it", code="tier_code_immutable",
                          errors={"code": ["A tier's code can't be changed; create another tier."]})
        out["code"] = code
    if qualify is not None:
        metric = qualify.get("metric", out.get("metric"))
        if metric not in METRICS:
            raise Invalid("Unknown qualifying metric", code="unknown_metric",
                          errors={"qualify.metric": [f"One of {', '.join(METRICS)}."]})
        if "threshold" not in qualify and metric != out.get("metric"):
            raise Invalid("A new metric needs its threshold", code="invalid_threshold",
                          errors={"qualify.threshold": ["Give the threshold with the metric."]})
        out["metric"] = metric
        if "threshold" in qualify:
            out["threshold"] = threshold_of(metric, qualify["threshold"])
        if "window_days" in qualify:
            out["window_days"] = qualify["window_days"]
    missing = [k for k in ("code", "name", "rank", "metric", "threshold") if k not in out]
    if missing:
        field = {"metric": "qualify.metric", "threshold": "qualify.threshold"}
        raise Invalid("A tier needs a code, a name, a rank and what qualifies for it", code="validation_error",
                      errors={field.get(k, k): ["Missing data for required field."] for k in missing})
    out.setdefault("window_days", 365)
    out.setdefault("retain_days", 365)
    out.setdefault("description", "")
    if not 1 <= int(out["window_days"]) <= MAX_WINDOW_DAYS:
        raise Invalid("window_days is 1 to 3650", code="invalid_window", errors={"qualify.window_days": ["1 to 3650."]})
    return out


def _check_ladder(session: Session, values: dict[str, Any], tier_id: str | None) -> None:
    """The ladder with this tier in it: one tier per rank, rank 0 the entry (threshold 0), thresholds rising."""
    others = [t for t in list_tiers(session) if t.id != tier_id]
    rank = values["rank"]
    if rank == ENTRY_RANK and Decimal(values["threshold"]) != 0:
        raise Invalid("Rank 0 is the entry tier: every member has it, so its threshold is 0",
                      code="entry_tier_threshold", errors={"qualify.threshold": ["Must be 0 for the rank-0 tier."]})
    if any(t.rank == rank for t in others):
        raise Invalid(f"Another tier already has rank {rank}", code="tier_rank_taken",
                      errors={"rank": [f"Rank {rank} is taken; one tier per rank."]})
    if any(t.code == values["code"] for t in others):
        raise Conflict("Another tier already has this code", code="tier_code_taken",
                       errors={"code": ["This code is taken."]})
    if tier_id is not None and rank != ENTRY_RANK and not any(t.rank == ENTRY_RANK for t in others):
        raise Invalid("The ladder needs its entry tier at rank 0", code="entry_tier_required",
                      errors={"rank": ["This is the entry tier: its rank stays 0."]})
    if len(others) >= MAX_TIERS:
        raise Rejected(f"A club has at most {MAX_TIERS} tiers", code="too_many_tiers")
    threshold, metric = Decimal(values["threshold"]), values["metric"]
    for other in others:
        if other.rank == ENTRY_RANK or rank == ENTRY_RANK or other.metric != metric:
            continue  # thresholds of different metrics don't compare
        if other.rank < rank and threshold <= other.threshold:
            raise Invalid(f"The threshold must be above that of {other.name} (rank {other.rank}): "
                          f"{shown_value(metric, other.threshold)}", code="threshold_below_tier_beneath",
                          errors={"qualify.threshold": [f"Above {shown_value(metric, other.threshold)}, the threshold "
                                                        f"of the tier beneath ({other.code})."]})
        if other.rank > rank and threshold >= other.threshold:
            raise Invalid(f"The threshold must be below that of {other.name} (rank {other.rank}): "
                          f"{shown_value(metric, other.threshold)}", code="threshold_above_tier_above",
                          errors={"qualify.threshold": [f"Below {shown_value(metric, other.threshold)}, the threshold "
                                                        f"of the tier above ({other.code})."]})


def ensure_entry_tier(session: Session, program: Program) -> Tier:
    """The rank-0 tier, made (``basic``, threshold 0) if the ladder has none yet."""
    entry = session.scalar(select(Tier).where(Tier.rank == ENTRY_RANK))
    if entry is None:
        now = program.now()
        entry = Tier(code=ENTRY_CODE, name="Basic", rank=ENTRY_RANK, metric="spend", threshold=Decimal(0),
                     window_days=365, retain_days=0, description="Every member starts here.", created_at=now,
                     updated_at=now)
        session.add(entry)
        session.flush()
        bump_revision(session)
    return entry


def create_tier(session: Session, program: Program, data: dict[str, Any]) -> Tier:
    """Add a tier to the ladder (the entry tier is made first if the ladder has none)."""
    values = _clean(data, None)
    if values["rank"] != ENTRY_RANK:
        ensure_entry_tier(session, program)
    _check_ladder(session, values, None)
    now = program.now()
    tier = Tier(**values, created_at=now, updated_at=now)
    session.add(tier)
    session.flush()
    bump_revision(session)
    return tier


def update_tier(session: Session, program: Program, tier_id: str, data: dict[str, Any]) -> Tier:
    """Change a tier; the whole ladder is checked again. Members move by it at their next event or review."""
    tier = get_tier(session, tier_id)
    values = _clean(data, tier)
    _check_ladder(session, values, tier.id)
    for key, value in values.items():
        setattr(tier, key, value)
    tier.updated_at = program.now()
    session.flush()
    bump_revision(session)
    return tier


def members_holding(session: Session, code: str, now: datetime) -> int:
    held = session.scalar(select(func.count()).select_from(Member).where(Member.tier == code)) or 0
    matched = session.scalar(select(func.count()).select_from(MemberTier).where(
        MemberTier.match_code == code, or_(MemberTier.match_until.is_(None), MemberTier.match_until > now))) or 0
    return held + matched


def delete_tier(session: Session, program: Program, tier_id: str) -> Tier:
    """Remove a tier nobody holds (nor has by a status match); the entry tier stays."""
    tier = get_tier(session, tier_id)
    if tier.rank == ENTRY_RANK:
        raise Rejected("The entry tier (rank 0) can't be deleted: every member has a tier", code="entry_tier_required")
    held = members_holding(session, tier.code, program.now())
    if held:
        raise Conflict(f"{held} members hold this tier; it can be deleted once nobody does", code="tier_in_use",
                       holders=held)
    session.delete(tier)
    session.flush()
    bump_revision(session)
    return tier
