"""Tiers: the marketers' ladder, status matches by hand, and a member's own tier in plain words; referrals."""
from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError, fields, validate

from wallet import members, referrals, tiers
from wallet.errors import Invalid

from .. import audit_trail
from ..auth import current_principal, marketer_required, member_required
from ..blueprints import admin as blp
from ..blueprints import me as me_blp
from ..extensions import db
from ..resource import Resource
from ..schemas import MONEY_PATTERN, ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program
from .me import printable_name
from .stores import StrictInteger

_NUMBER_OR_MONEY = {"oneOf": [{"type": "integer", "format": "int64"}, {"type": "string", "pattern": MONEY_PATTERN}]}


class Amount(fields.Field):
    """A qualifying amount: an integer for points_earned and visits, a decimal string ("1000.00") for spend and
    referral_value. Read as sent (the metric decides which is right, and a wrong one is 422 naming it)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).update(_NUMBER_OR_MONEY)
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None or isinstance(value, int):
            return value
        return str(Decimal(value).quantize(Decimal("0.01")))

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and len(value) > 20):
            raise ValidationError('A whole number (points, visits) or a decimal string such as "1000.00" (money).')
        return value


class QualifySchema(StrictSchema):
    metric = fields.String(required=True, validate=validate.OneOf(tiers.METRICS))
    threshold = Amount(required=True, metadata={"description": "an integer for points_earned and visits, a decimal "
                                                               "string for spend and referral_value; 0 at rank 0"})
    window_days = StrictInteger(load_default=365, validate=validate.Range(1, 3650),
                                metadata={"description": "the rolling window the metric is counted over"})


class QualifyInSchema(QualifySchema):
    """A tier's qualification as a client sends it: QualifySchema's fields and checks, under its own name in the OpenAPI document so that
    QualifySchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class TierSchema(StrictSchema):
    id = fields.String(dump_only=True)
    code = fields.String(required=True, validate=validate.Length(1, 32),
                         metadata={"description": "lower-case, kept for good (rules' conditions.tiers and the wallet's "
                                                  "card.tier name it)", "example": "gold"})
    name = fields.String(required=True, validate=[validate.Length(1, 80), printable_name])
    rank = StrictInteger(required=True, validate=validate.Range(0, 1000),
                         metadata={"description": "0 is the entry tier; one tier per rank"})
    qualify = fields.Nested(QualifySchema, required=True)
    retain_days = StrictInteger(load_default=365, validate=validate.Range(0, 3650),
                                metadata={"description": "a member keeps the tier at least this long after they last "
                                                         "qualified; the review moves nobody down before"})
    description = fields.String(load_default="", validate=validate.Length(0, 500))
    created_at = Time(dump_only=True)
    updated_at = Time(dump_only=True)


class TierInSchema(TierSchema):
    """A new tier as a client sends it: TierSchema's fields and checks, under its own name in the OpenAPI document so that
    TierSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""
    qualify = fields.Nested(QualifyInSchema, required=True)


class TierPatchSchema(TierInSchema):
    """Any subset of a tier's fields (the code stays)."""

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


TierListSchema = page_schema(TierSchema, "TierList")


def _audit_view(tier: tiers.Tier) -> dict:
    return TierSchema().dump(tier)


@blp.route("/tiers")
class Tiers(Resource):
    decorators = [marketer_required]

    @blp.response(200, TierListSchema)
    def get(self):
        """The ladder, lowest rank first."""
        return {"items": tiers.list_tiers(db.session), "next_cursor": None}

    @blp.arguments(TierInSchema)
    @blp.response(201, TierSchema)
    def post(self, data):
        """Add a tier: its rank, and the metric, threshold and window that qualify for it."""
        tier = tiers.create_tier(db.session, program(), data)
        audit_trail.record("create", "tier", tier.id, after=_audit_view(tier))
        return tier


@blp.route("/tiers/<string:tier_id>")
class TierDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, TierSchema)
    def get(self, tier_id):
        """One tier."""
        return tiers.get_tier(db.session, tier_id)

    @blp.arguments(TierPatchSchema)
    @blp.response(200, TierSchema)
    def patch(self, changes, tier_id):
        """Change a tier (the ladder is checked again); members move by it at their next event or the review."""
        before = _audit_view(tiers.get_tier(db.session, tier_id))
        tier = tiers.update_tier(db.session, program(), tier_id, changes)
        audit_trail.record("update", "tier", tier.id, before=before, after=_audit_view(tier))
        return tier

    @blp.response(204)
    def delete(self, tier_id):
        """Remove a tier that no member holds; the entry tier (rank 0) stays."""
        before = _audit_view(tiers.get_tier(db.session, tier_id))
        tiers.delete_tier(db.session, program(), tier_id)
        audit_trail.record("delete", "tier", tier_id, before=before)


# ------------------------------------------------------------------ a member's standing


class TierBriefSchema(StrictSchema):
    code = fields.String()
    name = fields.String()


class CurrentTierSchema(TierBriefSchema):
    rank = fields.Integer()


class NextTierSchema(TierBriefSchema):
    remaining = Amount(metadata={"description": "what the next tier still needs over its window"})


class QualifyingSchema(StrictSchema):
    metric = fields.String(validate=validate.OneOf(tiers.METRICS))
    value = Amount(metadata={"description": "counted over the window: what was earned, spent or visited"})
    window_days = fields.Integer()


class MatchSchema(TierBriefSchema):
    until = Time()
    reason = fields.String(allow_none=True)


class StandingSchema(StrictSchema):
    tier = fields.Nested(CurrentTierSchema)
    next_tier = fields.Nested(NextTierSchema, allow_none=True)
    qualifying = fields.Nested(QualifyingSchema)
    keeps_until = Time(allow_none=True, metadata={"description": "the tier is kept at least until then"})
    status_match = fields.Nested(MatchSchema, allow_none=True)
    summary = fields.String(metadata={"description": "the same in plain words"})


class TierChangeSchema(StrictSchema):
    id = fields.String()
    from_ = fields.String(attribute="from_code", data_key="from", allow_none=True)
    to = fields.String(attribute="to_code")
    reason = fields.String(validate=validate.OneOf(["qualified", "review_up", "review_down", "status_match",
                                                    "tier_removed"]))
    detail = fields.String()
    at = Time(attribute="created_at")


class StaffTierChangeSchema(TierChangeSchema):
    actor = fields.String()


TierHistorySchema = page_schema(TierChangeSchema, "TierHistory")
StaffTierHistorySchema = page_schema(StaffTierChangeSchema, "StaffTierHistory")


class MemberTierSchema(StrictSchema):
    standing = fields.Nested(StandingSchema)
    history = fields.List(fields.Nested(StaffTierChangeSchema))


class StatusMatchInSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(1, 32))
    until = Time(required=True)
    reason = fields.String(required=True, validate=validate.Length(3, 200))


class TierCodeSchema(StrictSchema):
    code = fields.String()


class MatchGivenSchema(StrictSchema):
    code = fields.String()
    until = Time()
    reason = fields.String()


class StatusMatchOutSchema(StrictSchema):
    member_id = fields.String()
    tier = fields.Nested(TierCodeSchema)
    status_match = fields.Nested(MatchGivenSchema)
    changed = fields.Boolean()
    change_id = fields.String(allow_none=True)


@blp.route("/members/<string:member_id>/tier")
class MemberTier(Resource):
    decorators = [marketer_required]

    @blp.response(200, MemberTierSchema)
    def get(self, member_id):
        """A member's tier standing and their tier history (with who or what moved them)."""
        return {"standing": tiers.standing(db.session, program(), member_id),
                "history": tiers.history(db.session, member_id, limit=50)}

    @blp.arguments(StatusMatchInSchema)
    @blp.response(201, StatusMatchOutSchema)
    def post(self, data, member_id):
        """A status match: the member has at least this tier until `until` (up now if it is above theirs)."""
        actor = current_principal()
        members.get_member(db.session, member_id)
        answer = tiers.status_match(db.session, program(), member_id, code=data["code"], until=data["until"],
                                    reason=data["reason"], actor=f"staff:{actor.id}")
        audit_trail.record("status_match", "member_tier", member_id,
                           after={"code": answer["status_match"]["code"], "until": data["until"].isoformat(),
                                  "reason": data["reason"], "changed": answer["changed"]})
        return answer


@me_blp.route("/me/tier")
class MyTier(Resource):
    decorators = [member_required]

    @me_blp.response(200, StandingSchema)
    def get(self):
        """My tier, what the next one needs and over which window, and how long I keep mine; in plain words."""
        return tiers.standing(db.session, program(), current_principal().id)


@me_blp.route("/me/tier/history")
class MyTierHistory(Resource):
    decorators = [member_required]

    @me_blp.arguments(ListArgs, location="query")
    @me_blp.response(200, TierHistorySchema)
    def get(self, args):
        """My tier changes, newest first: from what to what, why and when."""
        before = decode_cursor(args["cursor"])
        if before is not None and not before.startswith("tch_"):
            raise Invalid("Not a cursor this API gave out", code="invalid_cursor", errors={"cursor": ["Unknown cursor."]})
        found = tiers.history(db.session, current_principal().id, limit=args["limit"] + 1, before=before)
        return page(found, args["limit"], lambda change: change.id)


# ------------------------------------------------------------------ referrals


class FriendSchema(StrictSchema):
    friend = fields.String(metadata={"description": "first name and initial only"})
    joined_at = Time()
    status = fields.String(validate=validate.OneOf(["pending", "qualified"]),
                           metadata={"description": "pending until their first purchase, then qualified"})
    qualified_at = Time(allow_none=True)
    points_earned = fields.Integer(metadata={"description": "what this friend's referral earned me"})


class MyReferralsSchema(StrictSchema):
    referral_code = fields.String()
    link = fields.String()
    friends = fields.List(fields.Nested(FriendSchema))
    qualified = fields.Integer()
    points_earned = fields.Integer()


@me_blp.route("/me/referrals")
class MyReferrals(Resource):
    decorators = [member_required]

    @me_blp.response(200, MyReferralsSchema)
    def get(self):
        """My referral code and link, the friends I brought (first name and initial) and what each earned me."""
        return referrals.my_referrals(db.session, program(), current_principal().id)


