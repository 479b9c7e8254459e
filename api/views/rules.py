"""The marketers' rules: earning, benefits and surprise-and-delight; dry runs; the audit of grants."""
from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import members, rules

from ..auth import marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, Money, StrictSchema, decode_cursor, page, page_schema
from ..state import program


class RuleSchema(StrictSchema):
    id = fields.String(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(1, 120))
    description = fields.String(load_default="", validate=validate.Length(0, 500))
    trigger = fields.String(required=True, validate=validate.OneOf(rules.TRIGGERS))
    conditions = fields.Dict(load_default=dict, metadata={"example": {"stores": [], "min_amount": "50.00"}})
    reward = fields.Dict(required=True, metadata={"example": {"points_per_currency_unit": 1}})
    probability = fields.Float(load_default=1.0, validate=validate.Range(0, 1, min_inclusive=False), allow_nan=False)
    priority = fields.Integer(load_default=0, validate=validate.Range(-1000, 1000))
    stackable = fields.Boolean(load_default=True)
    status = fields.String(load_default="active", validate=validate.OneOf(["active", "paused"]))
    starts_at = fields.AwareDateTime(load_default=None, allow_none=True)
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True)
    per_member_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1))
    per_member_period_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 3660))
    daily_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1))
    total_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1))
    points_budget = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1))
    points_expiry_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 3660))
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)

    @validates_schema
    def _window(self, data, **_) -> None:
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("ends_at must be after starts_at.", "ends_at")


class RulePatchSchema(RuleSchema):
    class Meta:
        partial = True


RulePageSchema = page_schema(RuleSchema, "RulePage")


class RuleListArgs(ListArgs):
    trigger = fields.String(validate=validate.OneOf(rules.TRIGGERS))


class SimulateItemSchema(StrictSchema):
    barcode = fields.String(required=True)
    quantity = fields.Integer(load_default=1, validate=validate.Range(1, 10_000))
    unit_price = Money(required=True)
    category = fields.String(load_default=None)


class SimulateSchema(StrictSchema):
    trigger = fields.String(required=True, validate=validate.OneOf(rules.TRIGGERS))
    member_id = fields.String(required=True)
    store_id = fields.String(load_default=None)
    amount = Money(load_default=None)
    items = fields.List(fields.Nested(SimulateItemSchema), load_default=list, validate=validate.Length(max=500))
    at = fields.AwareDateTime(load_default=None)
    attributes = fields.Dict(load_default=dict)


class SimulatedGrantSchema(StrictSchema):
    rule_id = fields.String(attribute="rule.id")
    title = fields.String(attribute="rule.title")
    points = fields.Integer()
    offer_id = fields.String(attribute="coupon", allow_none=True)
    probability = fields.Float(attribute="rule.probability")


class SimulationSchema(StrictSchema):
    points_awarded = fields.Integer()
    grants = fields.List(fields.Nested(SimulatedGrantSchema))


class GrantSchema(StrictSchema):
    id = fields.String()
    rule_id = fields.String()
    rule_version = fields.Integer()
    rule_snapshot = fields.Dict()
    member_id = fields.String()
    trigger = fields.String()
    event_source = fields.String()
    event = fields.Dict()
    draw = fields.Float(allow_none=True)
    points = fields.Integer()
    coupon_id = fields.String(allow_none=True)
    granted_at = fields.DateTime()


GrantPageSchema = page_schema(GrantSchema, "GrantPage")


@blp.route("/rules")
class Rules(Resource):
    decorators = [marketer_required]

    @blp.arguments(RuleListArgs, location="query")
    @blp.response(200, RulePageSchema)
    def get(self, args):
        """The rules, oldest first."""
        found = rules.list_rules(db.session, trigger=args.get("trigger"), limit=args["limit"] + 1,
                                 after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda r: r.id)

    @blp.arguments(RuleSchema)
    @blp.response(201, RuleSchema)
    def post(self, data):
        """Create an earning, benefit or surprise-and-delight rule."""
        return rules.create_rule(db.session, program(), data)


@blp.route("/rules/<string:rule_id>")
class RuleDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, RuleSchema)
    def get(self, rule_id):
        """One rule."""
        return rules.get_rule(db.session, rule_id)

    @blp.arguments(RulePatchSchema)
    @blp.response(200, RuleSchema)
    def patch(self, changes, rule_id):
        """Change a rule (pause it with status=paused); its version goes up."""
        return rules.update_rule(db.session, program(), rule_id, changes)

    @blp.response(204)
    def delete(self, rule_id):
        """Retire a rule; its grants stay explainable."""
        rules.archive_rule(db.session, program(), rule_id)


@blp.route("/rules/simulate")
class Simulate(Resource):
    decorators = [marketer_required]

    @blp.arguments(SimulateSchema)
    @blp.response(200, SimulationSchema)
    def post(self, data):
        """What an event would earn now, without writing anything (chances shown, not drawn)."""
        members.get_member(db.session, data["member_id"])
        event = rules.Event(trigger=data["trigger"], member_id=data["member_id"], source="simulation",
                            store_id=data["store_id"], amount=data["amount"] or Decimal(0),
                            items=data["items"], attributes=data["attributes"], occurred_at=data["at"])
        grants = rules.evaluate(db.session, program(), event, dry_run=True)
        db.session.rollback()
        return {"points_awarded": sum(g.points for g in grants), "grants": grants}


@blp.route("/rules/<string:rule_id>/grants")
class RuleGrants(Resource):
    decorators = [marketer_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, GrantPageSchema)
    def get(self, args, rule_id):
        """Every reward this rule granted: who, for which event, the draw, and the rule as it was."""
        rules.get_rule(db.session, rule_id)
        found = rules.grants_of(db.session, rule_id, limit=args["limit"] + 1, after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda g: g.id)
