"""Fraud review: the flags the defences raised (impossible travel, a card at two stores within a minute, bursts of
enrolments or claims), for marketers and admins to look at and mark reviewed."""
from __future__ import annotations

from marshmallow import fields, validate

from wallet import fraud

from ..audit_trail import record
from ..auth import current_principal, marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StoredJSON, StrictSchema, Time, page, page_schema
from ..state import program
from .instore import _by_time_of, _time_cursor

ID = validate.Length(1, 32)


class FlagSchema(StrictSchema):
    id = fields.String()
    kind = fields.String(metadata={"enum": list(fraud.KINDS)})
    subject = fields.String(metadata={"description": "what it is about: member:<id>, device:<X-Device-ID> or "
                                                     "address:<client address>"})
    member_id = fields.String(allow_none=True)
    store_id = fields.String(allow_none=True)
    count = fields.Integer(metadata={"description": "how often it happened in its hour (one flag per kind, subject "
                                                    "and hour)"})
    first_seen_at = Time()
    last_seen_at = Time()
    details = StoredJSON(metadata={"description": "the latest occurrence: ids, distance and speed, counts and limit"})
    status = fields.String(metadata={"enum": list(fraud.flags.STATUSES)})
    reviewed_by = fields.String(allow_none=True)
    reviewed_at = Time(allow_none=True)
    review_note = fields.String(allow_none=True)


FlagPageSchema = page_schema(FlagSchema, "FlagPage")


class FlagListArgs(ListArgs):
    kind = fields.String(validate=validate.OneOf(fraud.KINDS))
    status = fields.String(validate=validate.OneOf(fraud.flags.STATUSES))
    member_id = fields.String(validate=ID)


class ReviewSchema(StrictSchema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    status = fields.String(load_default="reviewed", validate=validate.OneOf(fraud.flags.STATUSES),
                           metadata={"description": "reviewed (the default), or open to undo a review"})


@blp.route("/flags")
class Flags(Resource):
    decorators = [marketer_required]

    @blp.arguments(FlagListArgs, location="query")
    @blp.response(200, FlagPageSchema)
    def get(self, args):
        """What to review, the most recently seen first; filter by kind, status or member."""
        found = fraud.list_flags(db.session, kind=args.get("kind"), status=args.get("status"),
                                 member_id=args.get("member_id"), limit=args["limit"] + 1,
                                 before=_time_cursor(args.get("cursor")))
        return page(found, args["limit"], _by_time_of("last_seen_at"))


@blp.route("/flags/<string:flag_id>")
class FlagDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, FlagSchema)
    def get(self, flag_id):
        """One flag."""
        return fraud.get_flag(db.session, flag_id)


@blp.route("/flags/<string:flag_id>/review")
class FlagReview(Resource):
    decorators = [marketer_required]

    @blp.arguments(ReviewSchema)
    @blp.response(200, FlagSchema)
    def post(self, data, flag_id):
        """Mark a flag reviewed, with a note (or open it again); audited."""
        flag, before = fraud.review_flag(db.session, flag_id, actor=f"staff:{current_principal().id}",
                                         now=program().now(), note=data["note"], status=data["status"])
        record("review_flag", "fraud_flag", flag.id, before=before,
               after={"status": flag.status, "review_note": flag.review_note})
        return flag
