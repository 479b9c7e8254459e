"""Why a member won, in a sentence: a grant and its rule's conditions in plain words."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import ledger
from ..clock import iso
from ..coupons.models import Offer
from ..program import Program
from ..statement import entries as ledger_entries
from ..statement import lots_of
from .models import MEMBER_CAPS, SHARED_CAPS, Rule, RuleGrant

PUBLIC_RULES_MAX = 500  # the public terms page: more active rules than this is a marketer's mistake, not a page


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
    if c.get("segment"):
        parts.append("for selected members")
    if "nth" in c:
        parts.append(f"event number {c['nth']['n']} of the {c['nth'].get('period', 'month')}")
    if c.get("first_scan"):
        parts.append("first scan of the product")
    if "side" in c:
        parts.append(f"the {c['side']} side of a referral")
    if "inactive_days" in c:
        parts.append(f"{c['inactive_days']} days without activity")
    return "; ".join(parts)


_TRIGGER_WORDS = {"purchase": "for a purchase", "check_in": "for checking in at a store",
                  "scan": "for scanning a product in the store", "enrolment": "for joining the club",
                  "birthday": "on your birthday", "inactivity": "when you come back after a while",
                  "referral": "for a referral", "data_shared": "for sharing your social profile",
                  "profile_completed": "for completing your profile"}


def reward_text(reward: dict[str, Any], currency: str, offers: dict[str, str] | None = None) -> str:
    """What a rule gives, in the member's words."""
    parts = []
    if "points" in reward:
        parts.append(f"{reward['points']} points")
    if "points_per_currency_unit" in reward:
        on = " spent on the qualifying items" if reward.get("basis") == "matching_items" else ""
        parts.append(f"{reward['points_per_currency_unit']} points per {currency}{on}")
    if "multiplier" in reward:
        spell = " and ".join(p for p in (f"your next {reward['purchases']} purchases" if reward.get("purchases") else "",
                                         f"{reward['days']} days" if reward.get("days") else "") if p)
        parts.append(f"points ×{reward['multiplier']}" + (f" for {spell}" if spell else ""))
    if reward.get("offer_id"):
        title = (offers or {}).get(reward["offer_id"])
        parts.append(f"a coupon: {title}" if title else "a coupon")
    return " and ".join(parts) or "nothing"


def terms_text(rule: Rule, reward: str, default_expiry_days: int | None) -> str:
    """A rule's terms in the member's words: what, for what, when, how likely, how often, how long the points last."""
    text = f"{reward[:1].upper()}{reward[1:]} {_TRIGGER_WORDS.get(rule.trigger, rule.trigger)}"
    conditions = conditions_text(rule.conditions or {})
    if conditions:
        text += f" ({conditions})"
    if rule.probability < 1:
        text += f", with a {rule.probability * 100:g}% chance each time"
    if rule.per_member_limit:
        text += f", at most {rule.per_member_limit} time{'s' if rule.per_member_limit != 1 else ''} per member"
        text += f" in {rule.per_member_period_days} days" if rule.per_member_period_days else ""
    if rule.daily_limit or rule.total_limit or rule.points_budget:
        text += ", while the campaign's allowance lasts"
    if rule.ends_at is not None:
        text += f", until {iso(rule.ends_at)}"
    if "points" in rule.reward or "points_per_currency_unit" in rule.reward or "multiplier" in rule.reward:
        days = rule.points_expiry_days or default_expiry_days
        text += f"; the points last {days} days" if days else "; the points do not expire"
    return text + "."


def public_rules(session: Session, program: Program, now: datetime) -> list[dict[str, Any]]:
    """Every active rule's terms in the member's words (two queries: the rules, the offers they give)."""
    rules = list(session.scalars(
        select(Rule).where(Rule.status == "active", or_(Rule.starts_at.is_(None), Rule.starts_at <= now),
                           or_(Rule.ends_at.is_(None), Rule.ends_at > now))
        .order_by(Rule.trigger, Rule.priority.desc(), Rule.created_at, Rule.id).limit(PUBLIC_RULES_MAX)))
    offer_ids = {r.reward["offer_id"] for r in rules if r.reward.get("offer_id")}
    offers = {i: t for i, t in session.execute(select(Offer.id, Offer.title).where(Offer.id.in_(offer_ids)))} \
        if offer_ids else {}
    out = []
    for rule in rules:
        reward = reward_text(rule.reward, program.currency, offers)
        out.append({"id": rule.id, "title": rule.title, "trigger": rule.trigger, "reward": reward,
                    "terms": terms_text(rule, reward, program.points_expiry_days)})
    return out


_ACTIONS = {("spend", "coupon"): "Spent on a coupon", ("reverse", "refund"): "Taken back: the purchase was refunded",
            ("reverse", "coupon"): "Given back: the coupon was cancelled", ("expire", "expiry"): "Expired",
            ("earn", "manual"): "Added by the club", ("adjust", "manual"): "Corrected by the club",
            ("spend", "debt"): "Paid towards your points debt (points a return took back after they were spent)",
            ("adjust", "erasure"): "Forfeited: the member's data was erased"}


def statement(session: Session, member_id: str, *, limit: int, before_seq: int | None = None) -> list[dict[str, Any]]:
    """The points statement, newest first: each line with what caused it (its rule, or the action) and, for a lot,
    its own expiry. Three queries whatever the page's length: the entries, their rules' titles, their lots."""
    entries = ledger_entries(session, member_id, limit=limit, before_seq=before_seq)
    rule_ids = {e.rule_id for e in entries if e.rule_id}
    titles = {i: t for i, t in session.execute(select(Rule.id, Rule.title).where(Rule.id.in_(rule_ids)))} \
        if rule_ids else {}
    lots = lots_of(session, [e.id for e in entries if e.delta > 0])
    lines = []
    for entry in entries:
        title = titles.get(entry.rule_id) if entry.rule_id else None
        if entry.rule_id:
            cause = f"Rule \"{title or entry.rule_id}\""
        else:
            cause = _ACTIONS.get((entry.kind, entry.reason)) or f"{entry.kind.capitalize()}: {entry.reason}"
        lot = lots.get(entry.id)
        lines.append({
            "id": entry.id, "seq": entry.seq, "delta": entry.delta, "kind": entry.kind, "reason": entry.reason,
            "balance_after": entry.balance_after, "created_at": entry.created_at, "expires_at": entry.expires_at,
            "description": entry.description, "reverses_id": entry.reverses_id, "channel": entry.channel,
            "rule_id": entry.rule_id, "rule_title": title, "cause": cause,
            "lot": None if lot is None else {
                "points": lot.points, "remaining": lot.remaining, "expires_at": lot.expires_at,
                "expiry_days": ledger.lasts_days(entry.created_at, lot.expires_at)},
        })
    return lines
