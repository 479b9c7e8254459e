"""Segments and influence for marketers: named groups of members by criteria, their preview and members; members'
influence and the influencers' ranking."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marshmallow import fields, validate

from wallet import influence, segments
from wallet.errors import Invalid
from wallet.segments.criteria import CONSENT_PURPOSES, MAX_CONDITIONS, MAX_DEPTH, OPS

from .. import audit_trail
from ..auth import current_principal, marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, Money, StrictSchema, Time, decode_cursor, encode_cursor, page, page_schema
from ..state import program
from .admin import AdminMemberSchema

FIELD_NAMES = [f.name for f in segments.catalogue()]
CRITERIA_DOC = (
    'Criteria nest {"all": [...]}, {"any": [...]} and {"not": {...}} around conditions {"field", "op", "value"}; '
    f"op is one of {' '.join(OPS)} (in takes a list). At most {MAX_DEPTH} levels and {MAX_CONDITIONS} conditions. "
    "Every comparison with null is false, and not of it is true. Fields (GET /api/v1/admin/segments/fields says "
    "each one's type, source and what null means): " + ", ".join(FIELD_NAMES) + ". consents.<purpose>: "
    + ", ".join(CONSENT_PURPOSES) + ". A bad criterion is 422 with code unknown_field, invalid_operator, "
    "invalid_value, invalid_criteria, criteria_too_deep or criteria_too_large, and errors keyed by its path "
    "(criteria.all[1].op).")
EXAMPLE = {"all": [{"field": "spend_90d", "op": ">=", "value": "500.00"},
                   {"field": "visits_90d", "op": ">=", "value": 2},
                   {"field": "city", "op": "=", "value": "Haifa"}]}


def _criteria_field(**kwargs) -> fields.Dict:
    # A node is {"all": [...]}, {"any": [...]}, {"not": {...}} or a condition {field, op, value}: at most three keys.
    return fields.Dict(metadata={"description": CRITERIA_DOC, "example": EXAMPLE}, validate=validate.Length(max=3),
                       **kwargs)


class SegmentInSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 120))
    description = fields.String(load_default="", validate=validate.Length(0, 500))
    criteria = _criteria_field(required=True)


class SegmentPatchSchema(StrictSchema):
    name = fields.String(validate=validate.Length(1, 120))
    description = fields.String(validate=validate.Length(0, 500))
    criteria = _criteria_field()


class SegmentSchema(StrictSchema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    criteria = _criteria_field()
    created_by = fields.String()
    created_at = Time()
    updated_at = Time()


class PreviewInSchema(StrictSchema):
    criteria = _criteria_field(required=True)


class PreviewSchema(StrictSchema):
    count = fields.Integer(metadata={"description": "members in the segment now"})
    sample = fields.List(fields.Nested(AdminMemberSchema), metadata={"description": "the first few, by id"})


class SegmentFieldSchema(StrictSchema):
    name = fields.String(metadata={"enum": FIELD_NAMES})
    type = fields.String(metadata={"enum": ["decimal", "integer", "string", "enum", "boolean", "tier"],
                                   "description": "decimal: a decimal string"})
    ops = fields.List(fields.String(metadata={"enum": list(OPS)}))
    choices = fields.List(fields.String(), metadata={"description": "the values an enum field takes"})
    source = fields.String()
    null = fields.String(metadata={"description": "when the field has no value, and what that means"})


class SegmentFieldListSchema(StrictSchema):
    items = fields.List(fields.Nested(SegmentFieldSchema))


class InfluenceMemberSchema(StrictSchema):
    id = fields.String()
    name = fields.String()


class InfluenceSchema(StrictSchema):
    referrals = fields.Integer(metadata={"description": "friends referred (ever)"})
    qualified_referrals = fields.Integer(metadata={"description": "of them, friends who have made a purchase"})
    referred_spend = Money(metadata={"description": "the friends' spend in the window"})
    referral_value = Money(metadata={"description": "referred_spend + LOYALTY_INFLUENCE_SECOND_DEGREE x their "
                                                    "friends' spend in the window"})
    own_value = Money(metadata={"description": "the member's own spend in the window"})
    influence = fields.String(metadata={"enum": list(influence.QUADRANTS)})
    window_days = fields.Integer(metadata={"description": "LOYALTY_INFLUENCE_WINDOW_DAYS"})
    as_of = Time(allow_none=True, metadata={"description": "the figures are the worker's summary as of this time "
                                                          "(refreshed hourly); null: computed now"})


class InfluencerSchema(InfluenceSchema):
    member = fields.Nested(InfluenceMemberSchema)


SegmentPageSchema = page_schema(SegmentSchema, "SegmentPage")
SegmentMemberPageSchema = page_schema(AdminMemberSchema, "SegmentMemberPage")
InfluencerPageSchema = page_schema(InfluencerSchema, "InfluencerPage")


def _snapshot(segment: segments.Segment) -> dict:
    return {"name": segment.name, "description": segment.description, "criteria": segment.criteria}


@blp.route("/segments")
class Segments(Resource):
    decorators = [marketer_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, SegmentPageSchema)
    def get(self, args):
        """The segments, by id."""
        found = segments.listed(db.session, after=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda s: s.id)

    @blp.arguments(SegmentInSchema)
    @blp.response(201, SegmentSchema)
    def post(self, data):
        """Name a group of members by criteria (kept as criteria: its members are worked out when asked)."""
        segment = segments.create_segment(db.session, program(), data, actor=f"staff:{current_principal().id}")
        audit_trail.record("create", "segment", segment.id, after=_snapshot(segment))
        return segment


@blp.route("/segments/fields")
class SegmentFields(Resource):
    decorators = [marketer_required]

    @blp.response(200, SegmentFieldListSchema)
    def get(self):
        """Every field a segment's condition may compare: its type, operators, source and what null means."""
        return {"items": [{"name": f.name, "type": f.type, "ops": list(f.ops), "choices": list(f.choices),
                           "source": f.source, "null": f.null} for f in segments.catalogue()]}


@blp.route("/segments/preview")
class SegmentPreview(Resource):
    decorators = [marketer_required]

    @blp.arguments(PreviewInSchema)
    @blp.response(200, PreviewSchema)
    def post(self, data):
        """How many members the criteria hold now, and the first few; writes nothing."""
        return segments.preview(db.session, program(), data["criteria"])


@blp.route("/segments/<string:segment_id>")
class SegmentDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, SegmentSchema)
    def get(self, segment_id):
        """One segment."""
        return segments.get_segment(db.session, segment_id)

    @blp.arguments(SegmentPatchSchema)
    @blp.response(200, SegmentSchema)
    def patch(self, data, segment_id):
        """Rename it, describe it, or change its criteria."""
        before = _snapshot(segments.get_segment(db.session, segment_id))
        segment = segments.update_segment(db.session, program(), segment_id, data)
        audit_trail.record("update", "segment", segment_id, before=before, after=_snapshot(segment))
        return segment

    @blp.response(204)
    def delete(self, segment_id):
        """Delete a segment no live rule or offer uses (409 segment_in_use names those that do)."""
        segment = segments.delete_segment(db.session, segment_id)
        audit_trail.record("delete", "segment", segment_id, before=_snapshot(segment))
        return None


@blp.route("/segments/<string:segment_id>/members")
class SegmentMembers(Resource):
    decorators = [marketer_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, SegmentMemberPageSchema)
    def get(self, args, segment_id):
        """The members in the segment now, by id (a cursor list)."""
        found = segments.segment_members(db.session, program(), segment_id, after=decode_cursor(args["cursor"]),
                                         limit=args["limit"] + 1)
        return page(found, args["limit"], lambda m: m.id)


def _answer(found: influence.Influence) -> dict:
    return {"referrals": found.referrals, "qualified_referrals": found.qualified_referrals,
            "referred_spend": found.referred_spend, "referral_value": found.referral_value,
            "own_value": found.own_value, "influence": found.influence, "member": found.member,
            "window_days": program().influence_window_days, "as_of": found.as_of}


@blp.route("/members/<string:member_id>/influence")
class MemberInfluence(Resource):
    decorators = [marketer_required]

    @blp.response(200, InfluenceSchema)
    def get(self, member_id):
        """The member's own value, referral value (two levels) and influence quadrant over the window."""
        return _answer(influence.influence_of(db.session, program(), member_id))


def _influencer_cursor(cursor: str | None) -> tuple[Decimal, str] | None:
    value = decode_cursor(cursor, list)
    if value is None:
        return None
    try:
        if len(value) != 2 or not all(isinstance(v, str) for v in value):
            raise ValueError
        number = Decimal(value[0])
        if not number.is_finite():
            raise ValueError
        return number, value[1]
    except (ValueError, InvalidOperation):
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor",
                      errors={"cursor": ["Unknown cursor."]}) from None


@blp.route("/influencers")
class Influencers(Resource):
    decorators = [marketer_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, InfluencerPageSchema)
    def get(self, args):
        """Members who referred someone, highest referral value first (a cursor list)."""
        limit = args["limit"]
        found = influence.influencers(db.session, program(), after=_influencer_cursor(args["cursor"]),
                                      limit=limit + 1)
        answered = page([_answer(f) for f in found], limit, lambda a: None)
        if len(found) > limit:
            last = found[limit - 1]
            answered["next_cursor"] = encode_cursor([str(last.referral_value), last.member_id])
        return answered
