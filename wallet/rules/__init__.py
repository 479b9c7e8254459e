"""The rules engine: earning rules, benefits and surprise-and-delight, one concept.

A rule listens to a trigger, checks its conditions against the event, draws against its probability, checks
its caps, and grants points, a coupon, or a benefit (a multiplier on the member's next purchases). Every grant
is recorded (``rule_grants``) with the rule as it was then, the event, the draw and the caps it counted
against, so a marketer can see why a member won. Every change of a rule is kept in ``rule_versions``.

Order of evaluation: the trigger's active rules by priority (highest first). Rules that give points, coupons
or benefits come first; then plain multipliers (``{"multiplier": 2}``) multiply what those granted; then, on
a purchase, the member's benefits add theirs. A rule that is not ``stackable`` takes the event alone: it only
grants if nothing granted before it, and nothing after it grants (a non-stackable multiplier likewise
excludes the other multipliers). The member's own benefits always apply: they were promised.

Caps and concurrency. Per-member caps (``per_member_limit`` in ``per_member_period_days``) are counted while
holding the member's balance row lock (``SELECT ... FOR UPDATE``): grants for one member serialise, grants
for different members don't. Caps shared by everyone (``daily_limit``, ``total_limit``, ``points_budget``)
live in ``rule_counters`` rows bumped with a conditional UPDATE (``... WHERE grants < limit``), which is
atomic on PostgreSQL and costs one statement instead of a COUNT that grows with the campaign. Locks are
always taken member first, then counters in rule order, so two events can't deadlock. Only rules with caps
pay for any of this; the hot path (a purchase with a plain earning rule) takes no extra lock.

Where each part lives: ``models`` (the tables), ``validation``, ``evaluation`` (an event and one run over it),
``conditions``, ``caps``, ``rewards``, ``engine`` (fire, simulate), ``editing`` (the marketers' changes) and
``explain``. This package sits above the entities (ledger, coupons, benefits, members, stores, purchases) and
below the use cases (the till, check-ins, scans, enrolment, triggers) that fire events into it.
"""
from .editing import (
    DEMO_RULES,
    archive_rule,
    create_rule,
    get_grant,
    get_rule,
    grants_of,
    list_rules,
    load_demo,
    pause_rule,
    resume_rule,
    update_rule,
    versions_of,
)
from .engine import active_rules, evaluate, fire, simulate, with_categories
from .evaluation import Evaluation, Event, Grant, Prefetched, Skip, benefit_summary
from .explain import explain
from .models import (
    RULE_FIELDS,
    SCHEDULED_TRIGGERS,
    SNAPSHOT_FIELDS,
    STATUSES,
    TRIGGERS,
    Rule,
    RuleCounter,
    RuleGrant,
    RuleLosingDraw,
    RulesRevision,
    RuleVersion,
    revision_column,
)
from .stats import draw_stats
from .validation import validate_rule

__all__ = [
    "DEMO_RULES", "RULE_FIELDS", "SCHEDULED_TRIGGERS", "SNAPSHOT_FIELDS", "STATUSES", "TRIGGERS", "Evaluation",
    "Event", "Grant", "Prefetched", "Rule", "RuleCounter", "RuleGrant", "RuleLosingDraw", "RuleVersion", "RulesRevision", "Skip",
    "active_rules", "archive_rule", "benefit_summary", "create_rule", "draw_stats", "evaluate", "explain", "fire", "get_grant",
    "get_rule", "grants_of", "list_rules", "load_demo", "pause_rule", "resume_rule", "revision_column", "simulate",
    "update_rule", "validate_rule", "versions_of", "with_categories",
]
