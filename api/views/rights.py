"""Data rights and the till's missing cases: erasure (by the member, by an admin), partial returns, currencies,
bulk adjustments, and a surprise rule's draws (wins and losses)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import adjustments, currencies, erasure, returns, rules

from .. import audit_trail
from ..auth import admin_required, cashier_required, current_principal, marketer_required, member_required
from ..blueprints import admin, me, pos
from ..extensions import db
from ..resource import Resource
from ..schemas import Money, StrictSchema, Time
from ..state import program

POINTS = {"type": "integer", "format": "int64"}

# ------------------------------------------------------------------ erasure


class EraseSchema(StrictSchema):
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 128))


class ErasedSchema(StrictSchema):
    member_id = fields.String(required=True, attribute="id")
    status = fields.String(required=True, validate=validate.OneOf(["erased"]))
    erased_at = Time(required=True)


@me.route("/me/erase")
class EraseMe(Resource):
    decorators = [member_required]

    @me.arguments(EraseSchema)
    @me.response(202, ErasedSchema)
    def post(self, data):
        """Erase me: my personal data goes, my points are forfeited, every token of mine stops working at once.
        The club keeps its books (amounts and points, with no name attached). The email can enrol again."""
        principal = current_principal()
        return erasure.erase_member(db.session, program(), principal.id, actor=f"member:{principal.id}",
                                    channel="app", password=data["password"])


@admin.route("/members/<string:member_id>/erase")
class EraseMember(Resource):
    decorators = [admin_required]

    @admin.response(202, ErasedSchema)
    def post(self, member_id):
        """Erase a member's personal data (audited: who did it, never what was erased); a second time is 409."""
        member = erasure.erase_member(db.session, program(), member_id, actor=f"staff:{current_principal().id}",
                                      channel="console")
        audit_trail.record("erase", "member", member.id, after={"erased": True})
        return member


# ------------------------------------------------------------------ partial returns


class ReturnItemSchema(StrictSchema):
    barcode = fields.String(required=True, validate=validate.Length(1, 14))
    quantity = fields.Integer(load_default=1, validate=validate.Range(1, 10_000))


class ReturnInSchema(StrictSchema):
    refund_id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$",
                                                                      error="1 to 64 letters, digits, '.', '_', ':' "
                                                                            "or '-'."),
                              metadata={"description": "the till's id of this return: a second request with it "
                                                       "answers the first's answer"})
    amount = Money(metadata={"description": "the amount returned, in the purchase's currency"})
    items = fields.List(fields.Nested(ReturnItemSchema), validate=validate.Length(1, 500),
                        metadata={"description": "the items returned (their prices as bought)"})

    @validates_schema
    def _one(self, data, **_) -> None:
        if ("amount" in data) == ("items" in data):
            raise ValidationError("Send amount or items, not both.", "_schema")


class ReturnOutSchema(StrictSchema):
    return_id = fields.String(required=True, attribute="record.id")
    purchase_id = fields.String(required=True, attribute="purchase.id")
    refund_id = fields.String(required=True, attribute="record.refund_id")
    amount = Money(required=True, attribute="record.amount")
    currency = fields.String(required=True, attribute="purchase.currency")
    remaining_amount = Money(required=True, metadata={"description": "what is left of the purchase to return"})
    status = fields.String(required=True, validate=validate.OneOf(["partly_returned", "refunded"]))
    points_reversed = fields.Integer(required=True, attribute="record.points_reversed", metadata={"format": "int64"})
    points_debt = fields.Integer(required=True, attribute="record.points_debt", metadata={
        "format": "int64", "description": "already spent: added to the member's points debt"})
    pending_cancelled = fields.Integer(required=True, attribute="record.pending_cancelled",
                                       metadata={"format": "int64"})
    rewards_taken_back = fields.List(fields.String(), required=True, attribute="record.rewards_taken_back",
                                     metadata={"description": "rules whose condition the kept part no longer meets"})
    coupons_voided = fields.List(fields.String(), required=True, attribute="record.coupons_voided")
    balance = fields.Integer(required=True, metadata={"format": "int64"})
    debt = fields.Integer(required=True, metadata={"format": "int64", "description": "the member's points debt"})
    replayed = fields.Boolean(required=True, metadata={"description": "true: this refund_id was done before"})


@pos.route("/purchases/<string:purchase_id>/refunds")
class PurchaseReturns(Resource):
    decorators = [cashier_required]

    @pos.arguments(ReturnInSchema)
    @pos.response(201, ReturnOutSchema)
    def post(self, data, purchase_id):
        """A partial return, by amount or by items, once per refund_id: the points it earned taken back in
        proportion (rounded down; the last return takes the rest), a reward whose condition the kept part no longer
        meets taken back, points already spent owed as the member's points debt."""
        principal = current_principal()
        return returns.return_part(db.session, program(), purchase_id, refund_id=data["refund_id"],
                                   store_id=principal.store_id, actor=f"staff:{principal.id}",
                                   amount=data.get("amount"), items=data.get("items"))


# ------------------------------------------------------------------ currencies


def _positive_rate(value) -> None:
    if not value.is_finite() or not 0 < value <= currencies.MAX_RATE:
        raise ValidationError(f"Must be above 0 and at most {currencies.MAX_RATE}.")


class CurrencySchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"),
                         metadata={"description": "ISO 4217", "example": "USD"})
    rate = fields.Decimal(required=True, as_string=True, places=None, validate=_positive_rate,
                          metadata={"type": "string", "format": "decimal", "example": "3.7", "maxLength": 24,
                                    "description": "club-currency units per unit, from today on"})
    created_at = Time(dump_only=True, required=True)
    updated_at = Time(dump_only=True, required=True)


class CurrencyInSchema(CurrencySchema):
    """A new currency as a client sends it: CurrencySchema's fields and checks, under its own name in the OpenAPI document so that
    CurrencySchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class CurrencyPatchSchema(StrictSchema):
    rate = CurrencySchema._declared_fields["rate"]


class CurrencyListSchema(StrictSchema):
    items = fields.List(fields.Nested(CurrencySchema), required=True)
    club_currency = fields.String(required=True)


@admin.route("/currencies")
class Currencies(Resource):
    decorators = [marketer_required]

    @admin.response(200, CurrencyListSchema)
    def get(self):
        """The currencies the club takes, with today's rates."""
        return {"items": currencies.list_currencies(db.session), "club_currency": program().currency}

    @admin.arguments(CurrencyInSchema)
    @admin.response(201, CurrencySchema)
    def post(self, data):
        """Take a currency: stores in it earn through this rate (club-currency units per unit) from today on."""
        currency, _ = currencies.set_rate(db.session, program(), data["code"], data["rate"], create=True)
        audit_trail.record("create", "currency", currency.code, after=currency, schema=CurrencySchema)
        return currency


@admin.route("/currencies/<string:code>")
class CurrencyDetail(Resource):
    decorators = [marketer_required]

    @admin.response(200, CurrencySchema)
    def get(self, code):
        """One currency and today's rate."""
        return currencies.get_currency(db.session, code)

    @admin.arguments(CurrencyPatchSchema)
    @admin.response(200, CurrencySchema)
    def patch(self, data, code):
        """A new rate from today on; purchases already made keep the rate they earned at."""
        before = CurrencySchema().dump(currencies.get_currency(db.session, code))
        currency, _ = currencies.set_rate(db.session, program(), code, data["rate"], create=False)
        audit_trail.record("update", "currency", currency.code, before=before, after=currency, schema=CurrencySchema)
        return currency


# ------------------------------------------------------------------ bulk adjustments


class BulkAdjustmentSchema(StrictSchema):
    member_ids = fields.List(fields.String(validate=validate.Length(1, 32)), validate=validate.Length(1, 100_000))
    segment_id = fields.String(validate=validate.Length(1, 32))
    points = fields.Integer(required=True, strict=True, validate=validate.Range(-adjustments.MAX_POINTS,
                                                                                 adjustments.MAX_POINTS),
                            metadata={"format": "int64", "description": "a credit (positive) or a debit (negative); "
                                                                         "a debit takes what each member has"})
    reason = fields.String(required=True, validate=validate.Length(3, 200))
    batch = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$"),
                          metadata={"description": "the batch's name: once per batch"})

    @validates_schema
    def _one(self, data, **_) -> None:
        if ("member_ids" in data) == ("segment_id" in data):
            raise ValidationError("Send member_ids or segment_id, not both.", "_schema")
        if data.get("points") == 0:
            raise ValidationError("An adjustment of zero points changes nothing.", "points")


class BulkAdjustmentOutSchema(StrictSchema):
    batch = fields.String(required=True)
    points = fields.Integer(required=True, metadata={"format": "int64"})
    members = fields.Integer(required=True, metadata={"description": "members in the list or segment"})
    adjusted = fields.Integer(required=True)
    skipped = fields.Integer(required=True, metadata={"description": "a debit from members with no points"})
    short = fields.Integer(required=True, metadata={"description": "debited less than asked: they had less"})
    points_moved = fields.Integer(required=True, metadata={"format": "int64"})
    replayed = fields.Boolean(required=True)


@admin.route("/adjustments")
class BulkAdjustments(Resource):
    decorators = [marketer_required]

    @admin.arguments(BulkAdjustmentSchema)
    @admin.response(201, BulkAdjustmentOutSchema)
    def post(self, data):
        """Credit or debit many members at once (a list, or a segment), once per batch; audited. A debit takes what
        each member has, never below zero."""
        principal = current_principal()
        result, replayed = adjustments.adjust_many(
            db.session, program(), batch=data["batch"], points=data["points"], reason=data["reason"],
            actor=f"staff:{principal.id}", member_ids=data.get("member_ids"), segment_id=data.get("segment_id"))
        if not replayed:
            audit_trail.record("bulk_adjust_points", "adjustment_batch", data["batch"], after=dict(
                result, reason=data["reason"], segment_id=data.get("segment_id")))
        return result | {"replayed": replayed}


# ------------------------------------------------------------------ surprise draws


class DrawArgs(StrictSchema):
    since = fields.Date(load_default=None, metadata={"description": "from this day (inclusive, the club's timezone)"})
    until = fields.Date(load_default=None)


class DrawStatsSchema(StrictSchema):
    rule_id = fields.String(required=True)
    probability = fields.Float(required=True)
    draws = fields.Integer(required=True, metadata={"format": "int64"})
    wins = fields.Integer(required=True, metadata={"format": "int64"})
    losses = fields.Integer(required=True, metadata={"format": "int64"})
    win_rate = fields.Float(required=True, allow_none=True, metadata={"description": "wins / draws; null: none yet"})


@admin.route("/rules/<string:rule_id>/draws")
class RuleDraws(Resource):
    decorators = [marketer_required]

    @admin.arguments(DrawArgs, location="query")
    @admin.response(200, DrawStatsSchema)
    def get(self, args, rule_id):
        """A surprise rule's draws: won and lost, and the real win rate beside its probability."""
        rule = rules.get_rule(db.session, rule_id, include_archived=True)
        return rules.draw_stats(db.session, rule, since=args["since"], until=args["until"])
