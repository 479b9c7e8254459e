"""Why a member won, in a sentence: a grant and its rule's conditions in plain words."""
from __future__ import annotations

from typing import Any

from ..clock import iso
from .models import MEMBER_CAPS, SHARED_CAPS, RuleGrant


def explain(grant: RuleGrant) -> str:
    """Why this member won, in a marketer's words: the rule as it was, the event, the draw, the caps."""
    rule, event = grant.rule_snapshot, grant.event
    what = []
    if grant.points:
        what.append(f"{grant.points} points")
    if grant.coupon_id:
        what.append(f"coupon {grant.coupon_id}")
    if grant.benefit_id:
        reward = rule.get("reward", {})
        spell = " and ".join(p for p in (f"next {reward['purchases']} purchases" if reward.get("purchases") else "",
                                         f"{reward['days']} days" if reward.get("days") else "") if p)
        what.append(f"points ×{reward.get('multiplier')} for {spell} (benefit {grant.benefit_id})")
    where = f" at store {event['store_id']}" if event.get("store_id") else ""
    amount = f" of {event['amount']} {event.get('currency') or ''}".rstrip() if event.get("amount") else ""
    text = (f"Rule \"{rule.get('title')}\" (version {grant.rule_version}) granted {' and '.join(what) or 'nothing'} "
            f"to member {grant.member_id} for {grant.trigger} {grant.event_source}{amount}{where} "
            f"at {iso(grant.granted_at)}")
    local = f" ({event['local_time']} local time)" if event.get("local_time") else ""
    conditions = conditions_text(rule.get("conditions") or {})
    text += f": it met the conditions ({conditions}){local}" if conditions else ": the rule has no conditions"
    if grant.draw is not None:
        text += f"; the draw {grant.draw:.4f} was below the probability {rule.get('probability')}"
    caps = grant.caps or {}
    if caps:
        parts = []
        for name in (*MEMBER_CAPS, *SHARED_CAPS):
            if name not in caps:
                continue
            used = caps[name]
            label = {"per_member_limit": "for this member" + (f" in {used.get('period_days')} days"
                                                              if used.get("period_days") else ""),
                     "daily_limit": f"on {used.get('day')}", "total_limit": "in total",
                     "points_budget": "points of the budget"}.get(name, name)
            parts.append(f"{used['used']} of {used['limit']} {label}")
        text += "; within its caps (" + ", ".join(parts) + ")"
    return text + "."


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def conditions_text(c: dict[str, Any]) -> str:
    parts = []
    if c.get("stores"):
        parts.append(f"at {'store' if len(c['stores']) == 1 else 'one of the stores'} {', '.join(c['stores'])}")
    if "min_amount" in c:
        parts.append(f"amount at least {c['min_amount']}")
    if "days_of_week" in c:
        parts.append("on " + "/".join(_DAYS[d] for d in sorted(c["days_of_week"])))
    if "hours" in c:
        parts.append(f"between {c['hours']['from']} and {c['hours']['to']} in the store's timezone")
    if c.get("categories"):
        parts.append(f"{' or '.join(c['categories'])} in the basket")
    if c.get("tiers"):
        parts.append(f"tier {' or '.join(c['tiers'])}")
    if "nth" in c:
        parts.append(f"event number {c['nth']['n']} of the {c['nth'].get('period', 'month')}")
    if c.get("first_scan"):
        parts.append("first scan of the product")
    if "side" in c:
        parts.append(f"the {c['side']} side of a referral")
    if "inactive_days" in c:
        parts.append(f"{c['inactive_days']} days without activity")
    return "; ".join(parts)
