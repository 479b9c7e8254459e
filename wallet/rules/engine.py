"""The engine's entry points: load an event's rules, evaluate them in order, fire or simulate."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnExpressionArgument,
    bindparam,
    exists,
    or_,
    select,
)
from sqlalchemy.orm import Session

from .. import benefits, tiers
from ..barcodes import normalise_barcode
from ..fast_sql import Batch, insert_rows
from ..program import Program
from ..stores import Product
from .caps import admit
from .conditions import first_unmet
from .evaluation import Evaluation, Event, Grant, Prefetched, Run
from .models import Rule, RuleGrant, RuleLosingDraw
from .rewards import apply_benefits, base_points, multiply_points, write_grant

# (revision token, {trigger: the active rules, highest priority first}): the last rules this process loaded.
_cached: tuple[str, dict[str, list[Rule]]] | None = None


def _cached_rules(session: Session, revision: str, trigger: str, now: datetime) -> list[Rule]:
    """The trigger's active rules in their window at ``now``, from the cache if it holds ``revision``.

    The cached rules are transient copies (never in a session), read-only to the engine."""
    global _cached
    cached = _cached
    if cached is None or cached[0] != revision:
        loaded: dict[str, list[Rule]] = {}
        query = (select(*Rule.__table__.columns).where(Rule.status == "active")
                 .order_by(Rule.priority.desc(), Rule.created_at, Rule.id))
        for row in session.execute(query).mappings():
            loaded.setdefault(row["trigger"], []).append(Rule(**row))
        cached = _cached = (revision, loaded)
    return [rule for rule in cached[1].get(trigger, ())
            if (rule.starts_at is None or rule.starts_at <= now) and (rule.ends_at is None or rule.ends_at > now)]


def _rules_query(query: Any, trigger: str | ColumnExpressionArgument[str],
                 now: datetime | ColumnExpressionArgument[datetime], rule_ids: list[str] | None = None) -> Any:
    query = query.where(Rule.trigger == trigger)
    if rule_ids is None:
        query = query.where(Rule.status == "active", or_(Rule.starts_at.is_(None), Rule.starts_at <= now),
                            or_(Rule.ends_at.is_(None), Rule.ends_at > now))
    else:  # a marketer's dry run of chosen rules, paused or outside their window included
        query = query.where(Rule.id.in_(rule_ids), Rule.status != "archived")
    return query.order_by(Rule.priority.desc(), Rule.created_at, Rule.id)


def active_rules(session: Session, trigger: str, now: datetime, rule_ids: list[str] | None = None) -> list[Rule]:
    """The trigger's rules to evaluate, highest priority first."""
    return list(session.scalars(_rules_query(select(Rule), trigger, now, rule_ids)))


def _load_query(with_benefits: bool, with_granted: bool = True, rule_ids: list[str] | None = None) -> Any:
    source: BindParameter[str] = bindparam("source")
    now: BindParameter[datetime] = bindparam("now")
    columns: list[Any] = [Rule]
    if with_granted:
        columns.append(exists().where(RuleGrant.rule_id == Rule.id, RuleGrant.event_source == source))
    if with_benefits:
        columns.append(exists().where(*benefits.usable_where(bindparam("member_id"), now, source)))
    return _rules_query(select(*columns), bindparam("trigger"), now, rule_ids)


# Built once: the hot path (every purchase) binds its values instead of building the expression again.
_LOAD = {(b, g): _load_query(b, g) for b in (True, False) for g in (True, False)}


def _load(run: Run, rule_ids: list[str] | None = None) -> list[Rule]:
    """The event's rules in one round trip, each with whether it already granted for this event's source (unless
    the event is fresh) and, for a purchase, whether the member holds a usable benefit (the usual answer, no,
    costs no second query)."""
    event = run.event
    purchase = event.trigger == "purchase"
    granted = not event.fresh
    query = _LOAD[purchase, granted] if rule_ids is None else _load_query(purchase, granted, rule_ids)
    params = {"trigger": event.trigger, "now": run.now, "source": event.source}
    if purchase:
        params["member_id"] = event.member_id
    rows = run.session.execute(query, params).all()
    run._granted_before = {row[0].id for row in rows if row[1]} if granted else set()
    run.has_benefits = bool(rows and purchase and rows[0][-1])
    return [row[0] for row in rows]


def _evaluate(run: Run, rules: list[Rule]) -> None:
    base = 0
    exclusive = False
    multipliers: list[Rule] = []
    for rule in rules:
        unmet = first_unmet(run, rule)
        if unmet:
            run.skip(rule, f"condition:{unmet}")
            continue
        if "multiplier" in rule.reward and not benefits.is_benefit(rule.reward):
            multipliers.append(rule)
            continue
        if exclusive or (not rule.stackable and run.grants):
            run.skip(rule, "not_stackable")
            continue
        grant = Grant(rule=rule, points=base_points(rule, run.event), offer_id=rule.reward.get("offer_id"))
        if not (grant.points or grant.offer_id or benefits.is_benefit(rule.reward)):
            run.skip(rule, "nothing_to_grant")
            continue
        if _give(run, grant):
            base += grant.points
            exclusive = not rule.stackable
    multiplied = False
    for rule in multipliers:
        if exclusive or (not rule.stackable and multiplied):
            run.skip(rule, "not_stackable")
            continue
        grant = Grant(rule=rule, points=multiply_points(base, rule.reward["multiplier"]))
        if not grant.points:
            run.skip(rule, "nothing_to_grant")
            continue
        if _give(run, grant):
            multiplied = True
            exclusive = not rule.stackable
    if run.event.trigger == "purchase" and base > 0:
        apply_benefits(run, base)


def _give(run: Run, grant: Grant) -> bool:
    """Draw, check caps, and (live) write one rule's grant. False, with the reason recorded, if it doesn't."""
    rule = grant.rule
    if run.live and rule.id in run.granted_before():
        run.skip(rule, "already_granted")
        return False
    if not _draw(run, grant):
        run.skip(rule, "draw", grant.draw)
        return False
    cap = admit(run, grant)
    if cap:
        run.skip(rule, f"cap:{cap}")
        return False
    if run.live and not write_grant(run, grant):
        return False
    run.grants.append(grant)
    return True


def _draw(run: Run, grant: Grant) -> bool:
    """Surprise and delight: one draw from the programme's random source, kept with the grant."""
    if grant.rule.probability >= 1:
        return True
    if not run.live:
        return True  # a dry run shows the chance; it doesn't draw
    grant.draw = run.program.random.random()
    if grant.draw < grant.rule.probability:
        return True
    # A loss is counted too (written with the event's rows), so the real win rate can be set against the odds.
    run.rows.append((_losing_draws, {"rule_id": grant.rule.id, "day": run.day, "draw": grant.draw}))
    return False


_losing_draws = RuleLosingDraw.__table__


def fire(session: Session, program: Program, event: Event, *, pending_until: datetime | None = None,
         prefetched: Prefetched | None = None, batch: Batch | None = None, awaits: str | None = None) -> list[Grant]:
    """Evaluate an event and grant what it earns, inside the caller's transaction; returns the grants made.

    ``batch``: the caller writes the grants' audit rows itself, with its own, in one go (``fast_sql.write``) before
    its transaction ends: they are added to the batch instead of written here, and so may be a points credit
    (the ledger puts one off to lead the batch). Until then, what the grants' entries say of the balance is None.
    ``awaits``: points are held until that happens (``"first_purchase"``: the welcome points), not credited.
    """
    run = Run(session, program, event, live=True, pending_until=pending_until, batch=batch, awaits=awaits)
    if prefetched is not None and prefetched.tier is not None:
        run._tier = prefetched.tier
    if prefetched is not None and prefetched.revision is not None and event.fresh:
        rules = _cached_rules(session, prefetched.revision, event.trigger, run.now)
        run._granted_before, run.has_benefits = set(), prefetched.has_benefits
    else:
        rules = _load(run)
    if rules:
        _evaluate(run, rules)
        if batch is not None:
            batch.rows.extend(run.rows)
        else:
            insert_rows(session, run.rows)
        if run.grants:
            session.flush()
    if batch is None:
        _count_for_tiers(session, program, event, run.grants)
    return run.grants


def _count_for_tiers(session: Session, program: Program, event: Event, grants: list[Grant]) -> None:
    """What the event earned (points credited now, not held) and whether it was a visit, into the member's tier
    totals: it may move them up at once, after its own rules ran at the tier they had (the till counts its
    purchases itself, inside its one statement)."""
    points = sum(g.points for g in grants if not g.pending)
    visit = event.trigger == "check_in"
    if points <= 0 and not visit:
        return
    actor = f"member:{event.member_id}" if event.trigger in ("check_in", "scan") else "system"
    tiers.count(session, program, tiers.current(session), event.member_id,
                tiers.Counted(points=max(points, 0), visit=visit), channel=event.channel, cause=actor)


def simulate(session: Session, program: Program, event: Event, *, rule_ids: list[str] | None = None) -> Evaluation:
    """What an event would earn, and why each other rule would not; draws nothing and writes nothing.

    A chance shows as a grant with its probability; caps are checked against the counts so far.
    ``rule_ids`` evaluates just those rules, even paused ones or outside their window (testing a draft).
    """
    run = Run(session, program, event, live=False)
    _evaluate(run, _load(run, rule_ids))
    return Evaluation(run.grants, run.skipped)


def with_categories(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Basket items with each product's category filled in where none was given (a dry run's basket)."""
    items = [dict(i, barcode=normalise_barcode(i["barcode"], field=f"items.{n}.barcode")) for n, i in enumerate(items)]
    missing = {i["barcode"] for i in items if not i.get("category")}
    if missing:
        known = dict(session.execute(select(Product.barcode, Product.category).where(Product.barcode.in_(missing))).all())
        for item in items:
            item["category"] = item.get("category") or known.get(item["barcode"])
    return items


def evaluate(session: Session, program: Program, event: Event) -> list[Grant]:
    """The grants an event would earn (a dry run: nothing drawn or written)."""
    return simulate(session, program, event).grants
