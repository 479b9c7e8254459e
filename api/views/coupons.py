"""Offers, coupons and the rewards catalogue: members claim, tills redeem, marketers define, issue and void."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import coupons
from wallet.db import MAX_POINTS_PER_MOVEMENT

from .. import audit_trail
from ..auth import cashier_required, cashier_store, current_principal, marketer_required, member_required
from ..blueprints import admin, me, pos
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program
from .me import QR_DOC, QrArgs, qr_response

BENEFIT_DOC = {"description": 'what the coupon gives: {"kind": "percent_off", "value": "10"}, '
                              '{"kind": "amount_off", "value": "5.00", "currency": "ILS"} or '
                              '{"kind": "free_item", "sku": "COF-250"}',
               "example": {"kind": "percent_off", "value": "10"}}
CODE = validate.Length(1, 200)
RECEIPT = [validate.Length(1, 64), validate.Regexp(r"^[\x21-\x7e]+$")]


# ------------------------------------------------------------------ schemas

class OfferSchema(StrictSchema):
    id = fields.String(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(1, 120))
    terms = fields.String(load_default="", validate=validate.Length(0, 4000),
                          metadata={"description": "the conditions the shopper sees"})
    image_url = fields.Url(load_default=None, allow_none=True, validate=validate.Length(max=500))
    benefit = fields.Dict(required=True, validate=validate.Length(max=10), metadata=BENEFIT_DOC)
    points_cost = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, MAX_POINTS_PER_MOVEMENT),
                                 metadata={"description": "set: a rewards-catalogue item bought with points"})
    valid_from = Time(load_default=None, allow_none=True)
    valid_until = Time(load_default=None, allow_none=True)
    coupon_valid_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 3660),
                                       metadata={"description": "how long a claimed coupon stays valid "
                                                                "(default: the programme's)"})
    coupon_expires_at = Time(load_default=None, allow_none=True,
                             metadata={"description": "a last day for every coupon of the offer"})
    per_member_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 1000))
    total_limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 100_000_000))
    stores = fields.List(fields.String(validate=validate.Length(1, 32)), load_default=list,
                         validate=validate.Length(max=1000),
                         metadata={"description": "store ids where it can be redeemed; empty: every store"})
    claimable = fields.Boolean(load_default=True,
                               metadata={"description": "members may claim it in the app (false: only rules "
                                                        "and bulk issue give it)"})
    active = fields.Boolean(load_default=True)
    segment_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32),
                               metadata={"description": "only the segment's members see and claim it; null: "
                                                        "every member"})
    issued = fields.Integer(attribute="issued_count", dump_only=True)
    remaining = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "null: no total limit"})
    archived_at = Time(dump_only=True, allow_none=True)
    created_by = fields.String(dump_only=True)
    created_at = Time(dump_only=True)
    updated_at = Time(dump_only=True)

    @validates_schema
    def _window(self, data, **_) -> None:
        if data.get("valid_from") and data.get("valid_until") and data["valid_until"] <= data["valid_from"]:
            raise ValidationError("valid_until must be after valid_from.", "valid_until")


class OfferInSchema(OfferSchema):
    """A new offer as a client sends it: OfferSchema's fields and checks, under its own name in the OpenAPI document so that
    OfferSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class OfferPatchSchema(OfferSchema):
    """Only the fields sent change (loaded with partial=True, so no defaults are filled in)."""


class AdminOfferListArgs(ListArgs):
    include_archived = fields.Boolean(load_default=False)


class OfferStatsSchema(StrictSchema):
    offer_id = fields.String()
    issued = fields.Integer(metadata={"description": "coupons given, not voided"})
    open = fields.Integer(metadata={"description": "issued, not yet used or expired"})
    redeemed = fields.Integer()
    expired = fields.Integer()
    void = fields.Integer()
    redemption_rate = fields.Float(allow_none=True)
    points_spent = fields.Integer()
    rollbacks = fields.Integer()
    remaining = fields.Integer(allow_none=True)


class BulkIssueSchema(StrictSchema):
    member_ids = fields.List(fields.String(validate=validate.Length(1, 32)), validate=validate.Length(1, 10_000))
    all_members = fields.Boolean(load_default=False, metadata={"description": "every active member"})
    batch = fields.String(load_default=None, validate=[validate.Length(1, 64), validate.Regexp(r"^[\x21-\x7e]+$")],
                          metadata={"description": "names the round: a member gets one coupon per batch, so a "
                                                   "repeated run issues nothing twice (default: one round per offer)"})

    @validates_schema
    def _one(self, data, **_) -> None:
        if bool(data.get("member_ids")) == bool(data.get("all_members")):
            raise ValidationError("Send member_ids or all_members: true.", "_schema")


class BulkReportSchema(StrictSchema):
    offer_id = fields.String()
    batch = fields.String()
    issued = fields.Integer()
    skipped = fields.Dict(keys=fields.String(), values=fields.Integer(),
                          metadata={"description": "reason: count (already_issued, limit_reached, offer_exhausted, "
                                                   "unknown_member, member_inactive, duplicate)"})


class MemberOfferSchema(StrictSchema):
    id = fields.String()
    title = fields.String()
    terms = fields.String()
    image_url = fields.String(allow_none=True)
    benefit = fields.Dict(metadata=BENEFIT_DOC)
    points_cost = fields.Integer(allow_none=True)
    valid_from = Time(allow_none=True)
    valid_until = Time(allow_none=True)
    coupon_valid_days = fields.Integer(allow_none=True)
    coupon_expires_at = Time(allow_none=True)
    stores = fields.List(fields.String())
    remaining = fields.Integer(allow_none=True, metadata={"description": "coupons left; null: no limit"})
    per_member_limit = fields.Integer(allow_none=True)
    claimed = fields.Integer(metadata={"description": "coupons of this offer the member holds"})
    member_remaining = fields.Integer(allow_none=True)
    affordable = fields.Boolean(metadata={"description": "the balance pays the points cost"})
    can_claim = fields.Boolean()


class MemberOfferListArgs(ListArgs):
    catalogue = fields.Boolean(metadata={"description": "true: only offers bought with points; false: only free ones"})


class ClaimSchema(StrictSchema):
    offer_id = fields.String(required=True, validate=validate.Length(1, 32))


# Where a coupon was issued: a member's claim in the app, a rule's reward (campaigns and contests too), a bulk issue.
COUPON_CHANNELS = ("app", "rule", "bulk")


class CouponSchema(StrictSchema):
    id = fields.String()
    offer_id = fields.String()
    title = fields.String()
    terms = fields.String()
    image_url = fields.String(allow_none=True)
    benefit = fields.Dict(metadata=BENEFIT_DOC)
    status = fields.String(validate=validate.OneOf(coupons.SHOWN_STATUSES))
    code = fields.String(allow_none=True, metadata={"description": "the code a cashier can type, while usable"})
    token = fields.String(allow_none=True, metadata={"description": "what the QR code carries, while usable"})
    stores = fields.List(fields.String())
    points_cost = fields.Integer()
    issued_at = Time()
    expires_at = Time()
    redeemed_at = Time(allow_none=True)
    voided_at = Time(allow_none=True)


class CouponListArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(coupons.SHOWN_STATUSES))


class AdminCouponSchema(CouponSchema):
    member_id = fields.String()
    source = fields.String(metadata={"description": "claim, rule, bulk:<batch>, ...: what issued it"})
    actor = fields.String()
    channel = fields.String(validate=validate.OneOf(COUPON_CHANNELS))
    redeemed_store_id = fields.String(allow_none=True)
    redemption_id = fields.String(allow_none=True)
    voided_by = fields.String(allow_none=True)
    void_reason = fields.String(allow_none=True)
    spend_entry_id = fields.String(allow_none=True)
    points_refunded = fields.Integer(allow_none=True, dump_default=None,
                                     metadata={"description": "on void: points given back by a ledger reversal"})


class AdminCouponListArgs(CouponListArgs):
    offer_id = fields.String(validate=validate.Length(1, 32))
    member_id = fields.String(validate=validate.Length(1, 32))


class VoidSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(3, 200))


class TillCouponSchema(StrictSchema):
    id = fields.String()
    offer_id = fields.String()
    member_id = fields.String()
    title = fields.String()
    terms = fields.String()
    benefit = fields.Dict(metadata=BENEFIT_DOC)
    status = fields.String(validate=validate.OneOf(coupons.SHOWN_STATUSES))
    issued_at = Time()
    expires_at = Time()
    redeemed_at = Time(allow_none=True)
    stores = fields.List(fields.String())


class RedeemSchema(StrictSchema):
    coupon = fields.String(required=True, validate=CODE,
                           metadata={"description": "the scanned QR (K1-...) or the typed code"})
    receipt_id = fields.String(load_default=None, validate=RECEIPT)
    card = fields.String(load_default=None, validate=CODE,
                         metadata={"description": "the member's card (QR or number): the coupon must be theirs"})


class ValidateSchema(StrictSchema):
    coupon = fields.String(required=True, validate=CODE)
    card = fields.String(load_default=None, validate=CODE)


class RedemptionSchema(StrictSchema):
    id = fields.String(metadata={"description": "the redemption, to roll it back"})
    coupon = fields.Nested(TillCouponSchema)
    benefit = fields.Dict(metadata=BENEFIT_DOC)
    store_id = fields.String()
    receipt_id = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(["redeemed", "rolled_back"]))
    redeemed_at = Time()
    rolled_back_at = Time(allow_none=True)
    rollback_until = Time()


class ValidationSchema(StrictSchema):
    redeemable = fields.Boolean()
    code = fields.String(allow_none=True, metadata={"description": "why not: the code a redemption would answer"})
    detail = fields.String(allow_none=True)
    coupon = fields.Nested(TillCouponSchema)
    benefit = fields.Dict(metadata=BENEFIT_DOC)


OfferPageSchema = page_schema(OfferSchema, "OfferPage")
MemberOfferPageSchema = page_schema(MemberOfferSchema, "MemberOfferPage")
CouponPageSchema = page_schema(CouponSchema, "CouponPage")
AdminCouponPageSchema = page_schema(AdminCouponSchema, "AdminCouponPage")


def _actor() -> str:
    principal = current_principal()
    return f"staff:{principal.id}" if principal.role != "member" else f"member:{principal.id}"


# ------------------------------------------------------------------ the shopper

@me.route("/offers")
class Offers(Resource):
    decorators = [member_required]

    @me.arguments(MemberOfferListArgs, location="query")
    @me.response(200, MemberOfferPageSchema)
    def get(self, args):
        """The offers this member can claim now (free coupons and the rewards catalogue), with what is left."""
        found = coupons.visible_offers(db.session, program(), current_principal().id, limit=args["limit"] + 1,
                                       after=decode_cursor(args["cursor"]), catalogue=args.get("catalogue"))
        return page(found, args["limit"], lambda o: o["id"])


@me.route("/offers/<string:offer_id>")
class MemberOffer(Resource):
    decorators = [member_required]

    @me.response(200, MemberOfferSchema)
    def get(self, offer_id):
        """One offer the member can claim now."""
        return coupons.member_offer(db.session, program(), current_principal().id, offer_id)


@me.route("/me/coupons")
class MyCoupons(Resource):
    decorators = [member_required]

    @me.arguments(CouponListArgs, location="query")
    @me.response(200, CouponPageSchema)
    def get(self, args):
        """The member's coupons with their status, newest first."""
        found = coupons.member_coupons(db.session, program(), current_principal().id, status=args.get("status"),
                                       limit=args["limit"] + 1, before=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda c: c["id"])

    @me.arguments(ClaimSchema)
    @me.response(201, CouponSchema)
    def post(self, data):
        """Claim a coupon of an offer; an offer with a points cost spends the points in the same step."""
        member_id, prog = current_principal().id, program()
        coupon = coupons.claim_coupon(db.session, prog, member_id=member_id, offer_id=data["offer_id"])
        return coupons.member_coupon(db.session, prog, member_id, coupon.id)


@me.route("/me/coupons/<string:coupon_id>")
class MyCoupon(Resource):
    decorators = [member_required]

    @me.response(200, CouponSchema)
    def get(self, coupon_id):
        """One of the member's coupons."""
        return coupons.member_coupon(db.session, program(), current_principal().id, coupon_id)


@me.route("/me/coupons/<string:coupon_id>/qr")
class MyCouponQr(Resource):
    decorators = [member_required]

    @me.arguments(QrArgs, location="query")
    @me.doc(**QR_DOC)
    def get(self, args, coupon_id):
        """The coupon's QR code (PNG, or SVG with ?format=svg): a signed token naming the coupon."""
        token = coupons.coupon_qr_payload(db.session, program(), current_principal().id, coupon_id)
        return qr_response(token, args["format"])


# ------------------------------------------------------------------ the till

@pos.route("/redemptions")
class Redemptions(Resource):
    decorators = [cashier_required]

    @pos.arguments(RedeemSchema)
    @pos.response(201, RedemptionSchema)
    def post(self, data):
        """Redeem a coupon (scanned or typed) in this store: once, ever. A second try is 409."""
        return coupons.redeem(db.session, program(), data["coupon"], store_id=cashier_store(),
                              cashier_id=current_principal().id, receipt_id=data["receipt_id"], card=data["card"])


@pos.route("/redemptions/validate")
class ValidateRedemption(Resource):
    decorators = [cashier_required]

    @pos.arguments(ValidateSchema)
    @pos.response(200, ValidationSchema)
    def post(self, data):
        """Whether redeeming this coupon here now would succeed, and why not; redeems nothing."""
        return coupons.check_redemption(db.session, program(), data["coupon"], store_id=cashier_store(), card=data["card"])


@pos.route("/redemptions/<string:redemption_id>/rollback")
class RollbackRedemption(Resource):
    decorators = [cashier_required]

    @pos.response(200, RedemptionSchema)
    def post(self, redemption_id):
        """Undo a redemption of this store (the purchase was cancelled) within the window; the coupon is usable again."""
        return coupons.rollback_redemption(db.session, program(), redemption_id, store_id=cashier_store(), actor=_actor())


# ------------------------------------------------------------------ the marketers

@admin.route("/offers")
class AdminOffers(Resource):
    decorators = [marketer_required]

    @admin.arguments(AdminOfferListArgs, location="query")
    @admin.response(200, OfferPageSchema)
    def get(self, args):
        """The offers, oldest first."""
        found = coupons.list_offers(db.session, limit=args["limit"] + 1, after=decode_cursor(args["cursor"]),
                                    include_archived=args["include_archived"])
        return page(found, args["limit"], lambda o: o.id)

    @admin.arguments(OfferInSchema)
    @admin.response(201, OfferSchema)
    def post(self, data):
        """Create an offer: a free coupon, or a rewards-catalogue item with a points cost."""
        offer = coupons.create_offer(db.session, program(), data, actor=_actor())
        audit_trail.record("create", "offer", offer.id, after=offer, schema=OfferSchema)
        return offer


@admin.route("/offers/<string:offer_id>")
class AdminOffer(Resource):
    decorators = [marketer_required]

    @admin.response(200, OfferSchema)
    def get(self, offer_id):
        """One offer (archived ones too)."""
        return coupons.get_offer(db.session, offer_id, include_archived=True)

    @admin.arguments(OfferPatchSchema(partial=True))
    @admin.response(200, OfferSchema)
    def patch(self, changes, offer_id):
        """Change an offer; its benefit is fixed once members hold coupons of it."""
        before = OfferSchema().dump(coupons.get_offer(db.session, offer_id, include_archived=True))
        offer = coupons.update_offer(db.session, program(), offer_id, changes)
        audit_trail.record("update", "offer", offer_id, before=before, after=offer, schema=OfferSchema)
        return offer

    @admin.response(204)
    def delete(self, offer_id):
        """Retire an offer: no new coupons; coupons already held stay valid."""
        before = OfferSchema().dump(coupons.get_offer(db.session, offer_id, include_archived=True))
        coupons.archive_offer(db.session, program(), offer_id)
        audit_trail.record("archive", "offer", offer_id, before=before)


@admin.route("/offers/<string:offer_id>/stats")
class AdminOfferStats(Resource):
    decorators = [marketer_required]

    @admin.response(200, OfferStatsSchema)
    def get(self, offer_id):
        """How the offer is doing: coupons by status, the redemption rate, points spent on it."""
        return coupons.offer_stats(db.session, program(), offer_id)


@admin.route("/offers/<string:offer_id>/issue")
class BulkIssue(Resource):
    decorators = [marketer_required]

    @admin.arguments(BulkIssueSchema)
    @admin.response(200, BulkReportSchema)
    def post(self, data, offer_id):
        """Give a coupon to many members at once (a list, or every active member); idempotent per batch."""
        report = coupons.bulk_issue(db.session, program(), offer_id, member_ids=data.get("member_ids"),
                                    all_members=data["all_members"], batch=data["batch"], actor=_actor())
        audit_trail.record("bulk_issue", "offer", offer_id, after={"batch": report["batch"], "issued": report["issued"],
                                                                    "all_members": data["all_members"]})
        return report


@admin.route("/coupons")
class AdminCoupons(Resource):
    decorators = [marketer_required]

    @admin.arguments(AdminCouponListArgs, location="query")
    @admin.response(200, AdminCouponPageSchema)
    def get(self, args):
        """Find coupons by offer, member and status, newest first."""
        found = coupons.admin_coupons(db.session, program(), offer_id=args.get("offer_id"),
                                      member_id=args.get("member_id"), status=args.get("status"),
                                      limit=args["limit"] + 1, before=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda c: c["id"])


@admin.route("/coupons/<string:coupon_id>")
class AdminCoupon(Resource):
    decorators = [marketer_required]

    @admin.response(200, AdminCouponSchema)
    def get(self, coupon_id):
        """One coupon, with where it came from and where it was used."""
        return coupons.admin_coupon(db.session, program(), coupon_id)


@admin.route("/coupons/<string:coupon_id>/void")
class VoidCoupon(Resource):
    decorators = [marketer_required]

    @admin.arguments(VoidSchema)
    @admin.response(200, AdminCouponSchema)
    def post(self, data, coupon_id):
        """Cancel a coupon not yet redeemed; the points it cost go back to the member (a ledger reversal)."""
        voided = coupons.void_coupon(db.session, program(), coupon_id, actor=_actor(), reason=data["reason"])
        audit_trail.record("void", "coupon", coupon_id, after={"status": "void", "reason": data["reason"]})
        return voided
