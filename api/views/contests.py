"""Contests: the marketers' side (create, change, draw), the member's free entry, and the public page anyone can
use to check the draw."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import contests
from wallet.contests.contests import MAX_WINNERS, member_entry
from wallet.errors import NotFound

from .. import audit_trail
from ..auth import current_principal, marketer_required, member_required
from ..blueprints import admin, me
from ..extensions import db
from ..resource import Resource
from ..schemas import MONEY_PATTERN, ListArgs, Money, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program


class EntriesPerPurchaseSchema(StrictSchema):
    min_amount = Money(required=True, metadata={"description": "one more entry per purchase of at least this, made "
                                                               "while the contest is open"})


class ContestInSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(1, 120))
    terms = fields.String(required=True, validate=validate.Length(1, 10_000))
    opens_at = Time(required=True)
    closes_at = Time(required=True)
    draw_at = Time(required=True)
    winners = fields.Integer(required=True, validate=validate.Range(1, MAX_WINNERS))
    prize_offer_id = fields.String(allow_none=True, validate=validate.Length(1, 64),
                                   metadata={"description": "each winner gets a coupon of this offer"})
    entries_per_purchase = fields.Nested(EntriesPerPurchaseSchema, allow_none=True)


class ContestPatchSchema(StrictSchema):
    title = fields.String(validate=validate.Length(1, 120))
    terms = fields.String(validate=validate.Length(1, 10_000))
    opens_at = Time()
    closes_at = Time()
    draw_at = Time()
    winners = fields.Integer(validate=validate.Range(1, MAX_WINNERS))
    prize_offer_id = fields.String(allow_none=True, validate=validate.Length(1, 64))
    entries_per_purchase = fields.Nested(EntriesPerPurchaseSchema, allow_none=True)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Name at least one field to change.", "_schema")


class ContestSchema(StrictSchema):
    id = fields.String()
    title = fields.String()
    terms = fields.String()
    opens_at = Time()
    closes_at = Time()
    draw_at = Time()
    winners = fields.Integer(attribute="winner_count")
    prize_offer_id = fields.String(allow_none=True)
    entries_per_purchase = fields.Method("_extra", allow_none=True, metadata={
        "type": "object", "required": ["min_amount"], "additionalProperties": False,
        "properties": {"min_amount": {"type": "string", "pattern": MONEY_PATTERN, "example": "50.00"}}})
    commitment = fields.String(metadata={"description": "SHA-256 (hex) of the secret seed, fixed at creation"})
    entries_sha256 = fields.String(attribute="entry_list_sha256", allow_none=True)
    drawn_at = Time(allow_none=True)
    winner_aliases = fields.List(fields.String(), allow_none=True)
    winner_member_ids = fields.List(fields.String(), allow_none=True)
    created_at = Time()

    def _extra(self, contest):
        return None if contest.min_amount is None else {"min_amount": f"{contest.min_amount:.2f}"}


ContestPageSchema = page_schema(ContestSchema, "ContestPage")


class PublicContestSchema(StrictSchema):
    id = fields.String()
    title = fields.String()
    terms = fields.String()
    status = fields.String(validate=validate.OneOf(["upcoming", "open", "closed", "drawn"]))
    opens_at = Time()
    closes_at = Time()
    draw_at = Time()
    winner_count = fields.Integer()
    entry_count = fields.Integer(metadata={"description": "entries (with extra entries once closed)"})
    entrants = fields.Integer(metadata={"description": "members who entered"})
    entries_per_purchase = fields.Dict(allow_none=True)
    commitment = fields.String()
    entries = fields.List(fields.String(), allow_none=True,
                          metadata={"description": "from closes_at: the entries' aliases, sorted, one per entry"})
    entries_sha256 = fields.String(allow_none=True, metadata={"description": "SHA-256 of the entries joined by \\n"})
    seed = fields.String(allow_none=True, metadata={"description": "after the draw: the 32-byte seed as hex"})
    drawn_at = Time(allow_none=True)
    winners = fields.List(fields.String(), allow_none=True, metadata={"description": "after the draw: aliases"})


class EntrySchema(StrictSchema):
    contest_id = fields.String()
    alias = fields.String(metadata={"description": "how the public entry list names me"})
    entered_at = Time(attribute="created_at")


def _dump(contest) -> dict:
    return ContestSchema().dump(contest)


@admin.route("/contests")
class Contests(Resource):
    decorators = [marketer_required]

    @admin.arguments(ListArgs, location="query")
    @admin.response(200, ContestPageSchema)
    def get(self, args):
        """The contests, newest first."""
        found = contests.list_contests(db.session, after=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda c: c.id)

    @admin.arguments(ContestInSchema)
    @admin.response(201, ContestSchema)
    def post(self, data):
        """Create a contest; its commitment (sha256 of a secret seed) is public from now on."""
        contest = contests.create_contest(db.session, program(), data, actor=f"staff:{current_principal().id}")
        audit_trail.record("create", "contest", contest.id, after=_dump(contest))
        return contest


@admin.route("/contests/<string:contest_id>")
class AdminContest(Resource):
    decorators = [marketer_required]

    @admin.response(200, ContestSchema)
    def get(self, contest_id):
        """One contest (the seed stays secret until the draw)."""
        return contests.get_contest(db.session, contest_id)

    @admin.arguments(ContestPatchSchema)
    @admin.response(200, ContestSchema)
    def patch(self, changes, contest_id):
        """Change a contest before it opens (from then on, only its title)."""
        before = _dump(contests.get_contest(db.session, contest_id))
        contest = contests.update_contest(db.session, program(), contest_id, changes)
        audit_trail.record("update", "contest", contest.id, before=before, after=_dump(contest))
        return contest


@admin.route("/contests/<string:contest_id>/draw")
class DrawContest(Resource):
    decorators = [marketer_required]

    @admin.response(200, PublicContestSchema)
    def post(self, contest_id):
        """Draw now (the worker draws at draw_at): once only (409 contest_already_drawn), never before closes_at
        (409 contest_not_closed)."""
        contest = contests.draw(db.session, program(), contest_id, actor=f"staff:{current_principal().id}")
        audit_trail.record("draw", "contest", contest.id, after={"winners": contest.winner_aliases,
                                                                 "entries_sha256": contest.entry_list_sha256})
        return contests.public_view(db.session, program(), contest)


@me.route("/me/contests/<string:contest_id>/entries")
class MyEntry(Resource):
    decorators = [member_required]

    @me.response(201, EntrySchema)
    def post(self, contest_id):
        """My free entry (no purchase necessary); a second one is 409 contest_already_entered."""
        return contests.enter(db.session, program(), contest_id, current_principal().id)

    @me.response(200, EntrySchema)
    def get(self, contest_id):
        """My entry, if I entered."""
        contests.get_contest(db.session, contest_id)
        entry = member_entry(db.session, contest_id, current_principal().id)
        if entry is None:
            raise NotFound("You have not entered this contest", code="entry_not_found")
        return entry


@me.route("/contests/<string:contest_id>")
class PublicContest(Resource):
    @me.response(200, PublicContestSchema)
    @me.doc(security=[])
    def get(self, contest_id):
        """Public, no sign-in: terms, entry count and commitment; from closes_at the entry list and its SHA-256;
        after the draw the seed and the winners (aliases, never names)."""
        contest = contests.get_contest(db.session, contest_id)
        return contests.public_view(db.session, program(), contest)
