"""The marketers' rules: earning, benefits and surprise-and-delight; dry runs; the audit of grants; the job."""
from __future__ import annotations

from decimal import Decimal

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import benefits, members, rules, triggers
from wallet.db import MAX_BALANCE
from wallet.rules.explain import public_rules

from .. import audit_trail
from ..auth import current_principal, marketer_required
from ..blueprints import admin as blp
from ..blueprints import me as public
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, Money, StoredJSON, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program

REWARD_HELP = ('{"points": 10}, {"points_per_currency_unit": 1} (optionally "basis": "matching_items"), '
               '{"multiplier": 2} (this event), {"multiplier": 2, "purchases": 3} or {"multiplier": 2, "days": 2} '
               '(a benefit on the next purchases), or {"offer_id": "..."}')
CONDITIONS_HELP = ('stores [ids], min_amount "50.00", days_of_week [0=Mon..6], hours {"from","to"} (store timezone), '
                   'categories [..], tiers [..], nth {"n", "period"}, first_scan, side (referral: referrer|referred), '
                   'inactive_days (inactivity), segment (a segment id: only its members, as before the event)')


def _actor() -> str:
    return f"staff:{current_principal().id}"


class RuleSchema(StrictSchema):
    id = fields.String(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(1, 120))
    description = fields.String(load_default="", validate=validate.Length(0, 500))
    trigger = fields.String(required=True, validate=validate.OneOf(rules.TRIGGERS))
    conditions = fields.Dict(load_default=dict, validate=validate.Length(max=20), metadata={"description": CONDITIONS_HELP,
                                                          "example": {"stores": [], "min_amount": "50.00"}})
    reward = fields.Dict(required=True, validate=validate.Length(max=10), metadata={"description": REWARD_HELP,
                                                  "example": {"points_per_currency_unit": 1}})
    probability = fields.Float(load_default=1.0, validate=validate.Range(0, 1, min_inclusive=False), allow_nan=False,
                               metadata={"description": "below 1: surprise and delight, drawn per event"})
    priority = fields.Integer(load_default=0, validate=validate.Range(-1000, 1000))
    stackable = fields.Boolean(load_default=True)
    status = fields.String(load_default="active", validate=validate.OneOf(rules.STATUSES))
    starts_at = Time(load_default=None, allow_none=True)
    ends_at = Time(load_default=None, allow_none=True)
    per_member_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 1_000_000))
    per_member_period_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 3660))
    daily_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 1_000_000_000),
                                 metadata={"description": "grants per day (the programme's timezone), all members"})
    total_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 1_000_000_000),
                                 metadata={"description": "grants over the whole campaign"})
    points_budget = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, MAX_BALANCE))
    points_expiry_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 3660))
    version = fields.Integer(dump_only=True)
    created_at = Time(dump_only=True)
    updated_at = Time(dump_only=True)

    @validates_schema
    def _window(self, data, **_) -> None:
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("ends_at must be after starts_at.", "ends_at")


class RuleInSchema(RuleSchema):
    """A new rule as a client sends it: RuleSchema's fields and checks, under its own name in the OpenAPI document so that
    RuleSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class RulePatchSchema(RuleSchema):
    """Every field optional; loaded with partial=True so no default overwrites what the rule has."""


RulePageSchema = page_schema(RuleSchema, "RulePage")


class RuleListArgs(ListArgs):
    trigger = fields.String(validate=validate.OneOf(rules.TRIGGERS))
    status = fields.String(validate=validate.OneOf(rules.STATUSES))


class RuleVersionSchema(StrictSchema):
    version = fields.Integer()
    change = fields.String(validate=validate.OneOf(["created", "updated", "paused", "resumed", "archived"]))
    changed_fields = fields.List(fields.String())
    snapshot = StoredJSON(metadata={"description": "the rule as it was after this change"})
    actor = fields.String()
    changed_at = Time()


class RuleVersionListSchema(StrictSchema):
    items = fields.List(fields.Nested(RuleVersionSchema))


class SimulateItemSchema(StrictSchema):
    barcode = fields.String(required=True, validate=validate.Length(1, 32))
    quantity = fields.Integer(load_default=1, validate=validate.Range(1, 10_000))
    unit_price = Money(required=True)
    category = fields.String(load_default=None, validate=validate.Length(max=64),
                             metadata={"description": "default: the product's category"})


class SimulateSchema(StrictSchema):
    trigger = fields.String(required=True, validate=validate.OneOf(rules.TRIGGERS))
    member_id = fields.String(required=True, validate=validate.Length(1, 32))
    store_id = fields.String(load_default=None, validate=validate.Length(1, 32))
    amount = Money(load_default=None)
    items = fields.List(fields.Nested(SimulateItemSchema), load_default=list, validate=validate.Length(max=500))
    at = Time(load_default=None, metadata={"description": "when the event happens; default now"})
    attributes = fields.Dict(load_default=dict, validate=validate.Length(max=20), metadata={"example": {"side": "referrer"}})
    rule_ids = fields.List(fields.String(validate=validate.Length(1, 32)), load_default=None, validate=validate.Length(1, 100),
                           metadata={"description": "evaluate only these rules, even paused ones (test a draft)"})


class BenefitSchema(StrictSchema):
    id = fields.String()
    rule_id = fields.String()
    grant_id = fields.String()
    kind = fields.String(validate=validate.OneOf([benefits.KIND]))
    multiplier = fields.Decimal(as_string=True, metadata={"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                                          "example": "2.000"})
    purchases = fields.Integer(allow_none=True)
    uses_left = fields.Integer(allow_none=True)
    valid_from = Time()
    valid_until = Time(allow_none=True)
    status = fields.String(validate=validate.OneOf(["active", "revoked"]))
    source = fields.String(metadata={"description": "the event that gave it: <trigger>:<its id>"})
    created_at = Time()


class SimulatedGrantSchema(StrictSchema):
    rule_id = fields.String(attribute="rule.id")
    title = fields.String(attribute="rule.title")
    kind = fields.String(validate=validate.OneOf(["rule", "benefit"]),
                         metadata={"description": "rule: the rule grants; benefit: the member's benefit applies"})
    points = fields.Integer()
    offer_id = fields.String(allow_none=True)
    probability = fields.Float(attribute="rule.probability")
    surprise = fields.Boolean()
    benefit = fields.Method("_benefit", allow_none=True, metadata={"type": "object"})

    def _benefit(self, grant):
        if grant.kind == "benefit":
            return rules.benefit_summary(grant.benefit)
        if benefits.is_benefit(grant.rule.reward):
            return {k: grant.rule.reward.get(k) for k in ("multiplier", "purchases", "days")}
        return None


class SkippedSchema(StrictSchema):
    rule_id = fields.String(attribute="rule.id")
    title = fields.String(attribute="rule.title")
    reason = fields.String(metadata={"description": "condition:<name>, cap:<name>, not_stackable, nothing_to_grant, "
                                                   "draw, already_granted, offer_unavailable"})


class SimulationSchema(StrictSchema):
    points_awarded = fields.Integer(attribute="points")
    grants = fields.List(fields.Nested(SimulatedGrantSchema))
    skipped = fields.List(fields.Nested(SkippedSchema))


class GrantSchema(StrictSchema):
    id = fields.String()
    rule_id = fields.String()
    rule_version = fields.Integer()
    rule_snapshot = StoredJSON(metadata={"description": "the rule as it was when it granted"})
    member_id = fields.String()
    trigger = fields.String(validate=validate.OneOf(rules.TRIGGERS))
    event_source = fields.String(metadata={"description": "the event: <trigger>:<its id>"})
    event = StoredJSON()
    draw = fields.Float(allow_none=True, metadata={"description": "the random draw; it won because it was below "
                                                                  "the probability (null: no chance involved)"})
    probability = fields.Function(lambda g: g.rule_snapshot.get("probability"), metadata={"type": ["number", "null"]})
    points = fields.Integer()
    coupon_id = fields.String(allow_none=True)
    benefit_id = fields.String(allow_none=True)
    entry_id = fields.String(allow_none=True)
    caps = fields.Dict(metadata={"description": "each cap it counted against: used (including it) and limit"})
    day = fields.Date()
    granted_at = Time()
    explanation = fields.Function(rules.explain, metadata={"type": "string"})


GrantPageSchema = page_schema(GrantSchema, "GrantPage")


class GrantListArgs(ListArgs):
    member_id = fields.String(validate=validate.Length(1, 32))


class AllGrantsArgs(GrantListArgs):
    rule_id = fields.String(validate=validate.Length(1, 32))


class BenefitListArgs(StrictSchema):
    all = fields.Boolean(load_default=False, metadata={"description": "include used up, expired and revoked ones"})


class BenefitListSchema(StrictSchema):
    items = fields.List(fields.Nested(BenefitSchema))


@blp.route("/rules")
class Rules(Resource):
    decorators = [marketer_required]

    @blp.arguments(RuleListArgs, location="query")
    @blp.response(200, RulePageSchema)
    def get(self, args):
        """The rules, oldest first."""
        found = rules.list_rules(db.session, trigger=args.get("trigger"), status=args.get("status"),
                                 limit=args["limit"] + 1, after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda r: r.id)

    @blp.arguments(RuleInSchema)
    @blp.response(201, RuleSchema)
    def post(self, data):
        """Create an earning, benefit or surprise-and-delight rule."""
        rule = rules.create_rule(db.session, program(), data, actor=_actor())
        audit_trail.record("create", "rule", rule.id, after=rule, schema=RuleSchema)
        return rule


@blp.route("/rules/<string:rule_id>")
class RuleDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, RuleSchema)
    def get(self, rule_id):
        """One rule."""
        return rules.get_rule(db.session, rule_id)

    @blp.arguments(RulePatchSchema(partial=True))
    @blp.response(200, RuleSchema)
    def patch(self, changes, rule_id):
        """Change a rule (pause it with status=paused); its version goes up and the old one is kept."""
        before = RuleSchema().dump(rules.get_rule(db.session, rule_id))
        rule = rules.update_rule(db.session, program(), rule_id, changes, actor=_actor())
        audit_trail.record("update", "rule", rule_id, before=before, after=rule, schema=RuleSchema)
        return rule

    @blp.response(204)
    def delete(self, rule_id):
        """Retire a rule; its grants stay explainable."""
        before = RuleSchema().dump(rules.get_rule(db.session, rule_id))
        rules.archive_rule(db.session, program(), rule_id, actor=_actor())
        audit_trail.record("archive", "rule", rule_id, before=before)


@blp.route("/rules/<string:rule_id>/pause")
class PauseRule(Resource):
    decorators = [marketer_required]

    @blp.response(200, RuleSchema)
    def post(self, rule_id):
        """Stop a rule granting (until resumed)."""
        rule = rules.pause_rule(db.session, program(), rule_id, actor=_actor())
        audit_trail.record("pause", "rule", rule_id, before={"status": "active"}, after={"status": rule.status})
        return rule


@blp.route("/rules/<string:rule_id>/resume")
class ResumeRule(Resource):
    decorators = [marketer_required]

    @blp.response(200, RuleSchema)
    def post(self, rule_id):
        """Let a paused rule grant again."""
        rule = rules.resume_rule(db.session, program(), rule_id, actor=_actor())
        audit_trail.record("resume", "rule", rule_id, before={"status": "paused"}, after={"status": rule.status})
        return rule


@blp.route("/rules/<string:rule_id>/versions")
class RuleVersions(Resource):
    decorators = [marketer_required]

    @blp.response(200, RuleVersionListSchema)
    def get(self, rule_id):
        """The rule's history, newest first: each version, who changed it, what changed (archived rules too)."""
        rules.get_rule(db.session, rule_id, include_archived=True)
        return {"items": rules.versions_of(db.session, rule_id)}


@blp.route("/rules/simulate")
class Simulate(Resource):
    decorators = [marketer_required]

    @blp.arguments(SimulateSchema)
    @blp.response(200, SimulationSchema)
    def post(self, data):
        """What an event would earn now, and why each other rule would not; writes nothing, draws nothing."""
        members.get_member(db.session, data["member_id"])
        amount = data["amount"] if data["amount"] is not None else (Decimal(0) if data["trigger"] == "purchase"
                                                                     else None)
        event = rules.Event(trigger=data["trigger"], member_id=data["member_id"], source="simulation",
                            store_id=data["store_id"], amount=amount,
                            items=rules.with_categories(db.session, data["items"]), attributes=data["attributes"],
                            occurred_at=data["at"])
        return rules.simulate(db.session, program(), event, rule_ids=data["rule_ids"])


@blp.route("/rules/<string:rule_id>/grants")
class RuleGrants(Resource):
    decorators = [marketer_required]

    @blp.arguments(GrantListArgs, location="query")
    @blp.response(200, GrantPageSchema)
    def get(self, args, rule_id):
        """Every reward this rule granted, newest first: who, for which event, the draw, the caps, the rule as it was.
        An archived rule's grants stay readable."""
        rules.get_rule(db.session, rule_id, include_archived=True)
        found = rules.grants_of(db.session, rule_id, member_id=args.get("member_id"), limit=args["limit"] + 1,
                                after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda g: g.id)


@blp.route("/grants")
class Grants(Resource):
    decorators = [marketer_required]

    @blp.arguments(AllGrantsArgs, location="query")
    @blp.response(200, GrantPageSchema)
    def get(self, args):
        """Rule grants of every rule, newest first; filter by member_id to see why a member won what they won."""
        found = rules.grants_of(db.session, args.get("rule_id"), member_id=args.get("member_id"),
                                limit=args["limit"] + 1, after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda g: g.id)


@blp.route("/grants/<string:grant_id>")
class GrantDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, GrantSchema)
    def get(self, grant_id):
        """One grant, with its explanation."""
        return rules.get_grant(db.session, grant_id)


@blp.route("/members/<string:member_id>/benefits")
class MemberBenefits(Resource):
    decorators = [marketer_required]

    @blp.arguments(BenefitListArgs, location="query")
    @blp.response(200, BenefitListSchema)
    def get(self, args, member_id):
        """A member's points-multiplier benefits: those still usable, or all with ?all=true."""
        members.get_member(db.session, member_id)
        return {"items": benefits.benefits_of(db.session, member_id, include_finished=args["all"],
                                              now=program().now())}


@blp.route("/benefits/<string:benefit_id>/revoke")
class RevokeBenefit(Resource):
    decorators = [marketer_required]

    @blp.response(200, BenefitSchema)
    def post(self, benefit_id):
        """Withdraw a benefit granted by mistake; what it already added stays in the ledger."""
        return benefits.revoke(db.session, benefit_id, program().now())


# ---------------------------------------------------------------- the job

def register_cli(app: Flask) -> None:
    """``loyalty triggers run``: birthdays and inactivity, safe to run often and from several hosts."""
    group = click.Group("triggers", help="Time-based rule triggers: birthdays and inactivity.")

    @group.command("run")
    @click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="celebrate the birthdays of this day (default: today in the programme's timezone)")
    @click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
    @with_appcontext
    def run(day, batch_size):
        """Fire the birthday and inactivity rules due now. Idempotent: a second run the same day does nothing."""
        summary = triggers.run(db.session, program(), day=day.date() if day else None, batch_size=batch_size,
                               commit=db.session.commit)
        for name, tally in summary.items():
            click.echo(f"{name}: {tally.events} events, {tally.grants} rewards, {tally.points} points")

    app.cli.add_command(group)


# ------------------------------------------------------------------ the terms, public

class RuleTermsSchema(StrictSchema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    terms = fields.String(required=True, metadata={"description": "the rule's terms in the member's words"})
    trigger = fields.String(required=True, validate=validate.OneOf(rules.TRIGGERS))
    reward = fields.String(required=True, metadata={"description": "what the rule gives, in the member's words"})


class RuleTermsListSchema(StrictSchema):
    items = fields.List(fields.Nested(RuleTermsSchema), required=True)


@public.route("/rules")
class PublicRules(Resource):
    @public.response(200, RuleTermsListSchema)
    @public.doc(security=[])
    def get(self):
        """Every active rule's terms in the member's words: what it gives, for what, when and how long points last."""
        prog = program()
        return {"items": public_rules(db.session, prog, prog.now())}
