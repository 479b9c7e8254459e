"""The till: identify what was scanned, record purchases, refund them. Bound to the cashier's store."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import till

from ..auth import cashier_required, cashier_store, cashier_till_required, current_principal, sign_in_read_by_view
from ..blueprints import pos as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import Money, StrictSchema
from ..state import program

CODE = validate.Length(1, 200)


class IdentifySchema(StrictSchema):
    qr = fields.String(validate=CODE)
    card_number = fields.String(validate=validate.Length(1, 32))

    @validates_schema
    def _one(self, data, **_) -> None:
        if len(data) != 1:
            raise ValidationError("Send qr or card_number.", "_schema")


class IdentifiedSchema(StrictSchema):
    kind = fields.String(metadata={"description": "card or coupon"})
    # Always present (a generated client reads every field): the other kind's are null.
    member = fields.Dict(allow_none=True, dump_default=None)
    card = fields.Dict(allow_none=True, dump_default=None)
    coupon = fields.Dict(allow_none=True, dump_default=None)


class ItemSchema(StrictSchema):
    barcode = fields.String(required=True, validate=validate.Length(1, 14))
    quantity = fields.Integer(load_default=1, validate=validate.Range(1, 10_000))
    unit_price = Money(required=True)


class PurchaseInSchema(StrictSchema):
    card = fields.String(required=True, validate=CODE, metadata={"description": "the scanned QR or the card number"})
    amount = Money(required=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    receipt_id = fields.String(required=True, validate=[validate.Length(1, 64), validate.Regexp(r"^[\x21-\x7e]+$")])
    items = fields.List(fields.Nested(ItemSchema), load_default=list, validate=validate.Length(max=500))


class RewardBenefitSchema(StrictSchema):
    id = fields.String()
    multiplier = fields.String(metadata={"example": "2"})
    purchases = fields.Integer(allow_none=True)
    uses_left = fields.Integer(allow_none=True)
    valid_until = fields.String(allow_none=True)
    applied = fields.Boolean(metadata={"description": "true: this reward is a benefit boosting this purchase"})


class RewardSchema(StrictSchema):
    """One rule that granted something for the event: surprise-and-delight included (``surprise``)."""

    rule_id = fields.String()
    title = fields.String()
    points = fields.Integer()
    coupon = fields.Dict(allow_none=True)
    pending = fields.Boolean(metadata={"description": "held for the return window before it can be spent"})
    surprise = fields.Boolean(metadata={"description": "a chance reward (the rule's probability is below 1)"})
    grant_id = fields.String(allow_none=True)
    benefit = fields.Nested(RewardBenefitSchema, allow_none=True, dump_default=None)  # null: no benefit


class PurchaseOutSchema(StrictSchema):
    purchase_id = fields.String(attribute="purchase.id")
    receipt_id = fields.String(attribute="purchase.receipt_id")
    member_id = fields.String(attribute="purchase.member_id")
    amount = Money(attribute="purchase.amount")
    currency = fields.String(attribute="purchase.currency")
    points_awarded = fields.Integer(attribute="purchase.points_awarded")
    balance = fields.Integer()
    rewards = fields.List(fields.Nested(RewardSchema))
    status = fields.String(attribute="purchase.status")


class RefundOutSchema(StrictSchema):
    purchase_id = fields.String(attribute="purchase.id")
    status = fields.String(attribute="purchase.status")
    points_reversed = fields.Integer()
    points_not_reversed = fields.Integer(metadata={"description": "already spent, so not taken back"})
    pending_cancelled = fields.Integer()
    balance = fields.Integer()
    benefit_uses_returned = fields.Integer(metadata={"description": "uses of the member's benefits (\"double points on "
                                                                    "your next 3 purchases\") given back"})
    points_debt = fields.Integer(metadata={"format": "int64", "description": "already spent: the member's points "
                                                                              "debt grew by this (later earning pays it)"})


@blp.route("/identify")
class Identify(Resource):
    decorators = [cashier_required]

    @blp.arguments(IdentifySchema)
    @blp.response(200, IdentifiedSchema)
    def post(self, data):
        """What the scanner read (a card or a coupon), or a typed card number."""
        return till.identify(db.session, program(), data.get("qr") or data["card_number"], store_id=cashier_store())


@blp.route("/purchases")
class Purchases(Resource):
    decorators = [cashier_till_required]

    @blp.arguments(PurchaseInSchema)
    @blp.response(201, PurchaseOutSchema)
    def post(self, data):
        """Record a purchase and award its points; one receipt per store counts once."""
        # The session itself, not Flask-SQLAlchemy's scoped proxy: the hot path calls it a few dozen times.
        return till.record_purchase(db.session(), program(), store_id=cashier_store(), card_code=data["card"],
                                    amount=data["amount"], currency=data["currency"], receipt_id=data["receipt_id"],
                                    items=data["items"], cashier_id=current_principal().id,
                                    sign_in=sign_in_read_by_view())


@blp.route("/purchases/<string:purchase_id>/refund")
class Refund(Resource):
    decorators = [cashier_required]

    @blp.response(200, RefundOutSchema)
    def post(self, purchase_id):
        """Take back the points a purchase earned (reversal entries; what was already spent is reported)."""
        return till.refund_purchase(db.session, program(), purchase_id, store_id=cashier_store(),
                                    actor=f"staff:{current_principal().id}")
