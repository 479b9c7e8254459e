"""Rules as marketers manage them: create, change, pause, resume, archive, with every version kept."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from ..errors import NotFound, Rejected
from ..program import Program
from .caps import sync_counters
from .models import RULE_FIELDS, SHARED_CAPS, Rule, RuleGrant, RuleVersion, bump_revision
from .validation import check_references, validate_rule

DEMO_RULES: list[dict[str, Any]] = [
    {"title": "A coffee on us", "description": "Now and then, a check-in earns a surprise.", "trigger": "check_in",
     "reward": {"points": 25}, "probability": 0.1, "per_member_limit": 1, "per_member_period_days": 7,
     "daily_limit": 50},
    {"title": "Happy birthday from the club", "trigger": "birthday", "reward": {"points": 100}},
]


def load_demo(session: Session, program: Program) -> None:
    """The demo club's surprise and birthday rules, created once."""
    existing = set(session.scalars(select(Rule.title)))
    for data in DEMO_RULES:
        if data["title"] not in existing:
            create_rule(session, program, dict(data), actor="demo")


def create_rule(session: Session, program: Program, data: dict[str, Any], *, actor: str = "system") -> Rule:
    """A new rule, validated, with its first version recorded."""
    validate_rule(data)
    check_references(session, data)
    rule = Rule(**{k: v for k, v in data.items() if k in RULE_FIELDS})
    rule.created_at = rule.updated_at = program.now()
    session.add(rule)
    session.flush()
    _record_version(session, rule, "created", sorted(k for k in data if k in RULE_FIELDS), actor, rule.created_at)
    sync_counters(session, program, rule)
    session.flush()
    return rule


def update_rule(session: Session, program: Program, rule_id: str, changes: dict[str, Any], *,
                actor: str = "system") -> Rule:
    """Change a rule; its version goes up and is kept, so past grants still say what the rule was."""
    rule = get_rule(session, rule_id)
    changed = {k: v for k, v in changes.items() if k in RULE_FIELDS and getattr(rule, k) != v}
    if not changed:
        return rule
    merged = {k: getattr(rule, k) for k in RULE_FIELDS} | changed
    validate_rule(merged)
    check_references(session, merged)
    if "trigger" in changed and session.scalar(select(RuleGrant.id).where(RuleGrant.rule_id == rule.id).limit(1)):
        raise Rejected("This rule has granted rewards; create a new rule for another trigger",
                       code="rule_has_grants", errors={"trigger": ["Can't change once the rule has granted."]})
    caps_before = {cap: getattr(rule, cap) for cap in SHARED_CAPS}
    for key, value in changed.items():
        setattr(rule, key, value)
    rule.version += 1
    rule.updated_at = program.now()
    if set(changed) == {"status"}:
        change = "paused" if rule.status == "paused" else "resumed"
    else:
        change = "updated"
    _record_version(session, rule, change, sorted(changed), actor, rule.updated_at)
    if any(caps_before[cap] is None and getattr(rule, cap) is not None for cap in SHARED_CAPS):
        sync_counters(session, program, rule)  # a cap added now counts what the rule gave before
    session.flush()
    return rule


def pause_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> Rule:
    """Stop a rule granting until it is resumed."""
    return update_rule(session, program, rule_id, {"status": "paused"}, actor=actor)


def resume_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> Rule:
    """Let a paused rule grant again."""
    return update_rule(session, program, rule_id, {"status": "active"}, actor=actor)


def _record_version(session: Session, rule: Rule, change: str, fields: list[str], actor: str,
                    at: datetime) -> None:
    bump_revision(session)
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, change=change, changed_fields=fields,
                            snapshot=rule.snapshot(), actor=actor[:48], changed_at=at))


def get_rule(session: Session, rule_id: str, *, include_archived: bool = False) -> Rule:
    rule = session.get(Rule, rule_id)
    if rule is None or (rule.status == "archived" and not include_archived):
        raise NotFound("No such rule", code="rule_not_found")
    return rule


def archive_rule(session: Session, program: Program, rule_id: str, *, actor: str = "system") -> None:
    """Rules that granted are kept for the audit; deleting one archives it."""
    rule = get_rule(session, rule_id)
    rule.status = "archived"
    rule.version += 1
    rule.updated_at = program.now()
    _record_version(session, rule, "archived", ["status"], actor, rule.updated_at)
    session.flush()


def list_rules(session: Session, *, trigger: str | None = None, status: str | None = None, limit: int = 50,
               after: str | None = None) -> list[Rule]:
    query = select(Rule).where(Rule.status != "archived")
    if trigger:
        query = query.where(Rule.trigger == trigger)
    if status:
        query = query.where(Rule.status == status)
    if after:
        query = query.where(Rule.id > after)
    return list(session.scalars(query.order_by(Rule.id).limit(limit)))


def versions_of(session: Session, rule_id: str) -> list[RuleVersion]:
    """Every version of a rule, newest first."""
    return list(session.scalars(select(RuleVersion).where(RuleVersion.rule_id == rule_id)
                                .order_by(RuleVersion.version.desc())))


def grants_of(session: Session, rule_id: str | None = None, *, member_id: str | None = None, limit: int = 50,
              after: str | None = None) -> list[RuleGrant]:
    """Grants newest first, of one rule and/or one member; ``after`` is the last id of the previous page."""
    query = select(RuleGrant)
    if rule_id:
        query = query.where(RuleGrant.rule_id == rule_id)
    if member_id:
        query = query.where(RuleGrant.member_id == member_id)
    if after:
        query = query.where(RuleGrant.id < after)
    return list(session.scalars(query.order_by(RuleGrant.id.desc()).limit(limit)))


def get_grant(session: Session, grant_id: str) -> RuleGrant:
    grant = session.get(RuleGrant, grant_id)
    if grant is None:
        raise NotFound("No such grant", code="grant_not_found")
    return grant
