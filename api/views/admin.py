"""The marketers' side: members and adjustments, staff accounts."""
from __future__ import annotations

import hashlib

from flask import request
from marshmallow import fields, validate

from wallet import accounts, ledger, members, statement
from wallet.db import MAX_POINTS_PER_MOVEMENT, new_id

from .. import audit_trail
from ..auth import admin_required, current_principal, marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import NEW_PASSWORD, ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program
from .me import LedgerEntrySchema, MemberSchema

# ------------------------------------------------------------------ members

class MemberListArgs(ListArgs):
    q = fields.String(validate=validate.Length(1, 120), metadata={"description": "email, name, phone or card number"})


class AdminMemberSchema(MemberSchema):
    balance = fields.Method("_balance", metadata={"type": "integer", "format": "int64"})

    def _balance(self, member) -> int:
        return ledger.balance_of(db.session, member.id).points


class MemberDetailSchema(StrictSchema):
    member = fields.Nested(AdminMemberSchema)
    recent_ledger = fields.List(fields.Nested(LedgerEntrySchema))


MemberPageSchema = page_schema(AdminMemberSchema, "MemberPage")


class AdjustmentSchema(StrictSchema):
    points = fields.Integer(required=True, validate=validate.Range(-MAX_POINTS_PER_MOVEMENT, MAX_POINTS_PER_MOVEMENT))
    reason = fields.String(required=True, validate=validate.Length(3, 200))


class StaffInSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(3, 254))
    password = fields.String(required=True, load_only=True, validate=NEW_PASSWORD)
    name = fields.String(load_default="", validate=validate.Length(0, 120))
    role = fields.String(required=True, validate=validate.OneOf(members.STAFF_ROLES))
    store_id = fields.String(load_default=None, validate=validate.Length(1, 32))


class StaffSchema(StrictSchema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String(validate=validate.OneOf(members.STAFF_ROLES))
    store_id = fields.String(allow_none=True)
    active = fields.Boolean()


@blp.route("/members")
class Members(Resource):
    decorators = [marketer_required]

    @blp.arguments(MemberListArgs, location="query")
    @blp.response(200, MemberPageSchema)
    def get(self, args):
        """Find members by email, name, phone or card number."""
        found = members.search_members(db.session, args.get("q"), after=decode_cursor(args["cursor"]),
                                       limit=args["limit"] + 1)
        return page(found, args["limit"], lambda m: m.id)


@blp.route("/members/<string:member_id>")
class MemberDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, MemberDetailSchema)
    def get(self, member_id):
        """One member: profile, card, balance and the latest points movements."""
        member = members.get_member(db.session, member_id)
        return {"member": member, "recent_ledger": statement.entries(db.session, member.id, limit=20)}


@blp.route("/members/<string:member_id>/adjustments")
class Adjustments(Resource):
    decorators = [marketer_required]

    @blp.arguments(AdjustmentSchema)
    @blp.response(201, LedgerEntrySchema)
    def post(self, data, member_id):
        """A manual credit or debit, kept in the ledger with who made it and why."""
        member = members.get_member(db.session, member_id)
        # The HTTP layer already replays a repeated Idempotency-Key; the ledger key makes it hold below too.
        # Hashed: a client key may be 255 characters, the ledger's column is shorter.
        key = request.headers.get("Idempotency-Key") or new_id("adj")
        key = hashlib.sha256(key.encode()).hexdigest()[:40]
        actor = current_principal()
        entry = ledger.adjust(db.session, program(), member_id=member.id, points=data["points"],
                              reason=data["reason"], idempotency_key=f"adjust:{actor.id}:{key}",
                              actor=f"staff:{actor.id}", description=data["reason"])
        audit_trail.record("adjust_points", "member", member.id, after={"points": data["points"],
                                                                        "reason": data["reason"], "entry_id": entry.id})
        return entry


class AdminCardSchema(StrictSchema):
    id = fields.String(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "blocked"]))
    issued_at = Time(required=True)
    blocked_at = Time(required=True, allow_none=True)
    replaced_by = fields.String(required=True, allow_none=True, attribute="replaced_by_id")


class CardBlockAnswerSchema(StrictSchema):
    card = fields.Nested(AdminCardSchema, required=True)
    changed = fields.Boolean(required=True, metadata={"description": "false: the card was already blocked"})


class CardReplaceAnswerSchema(StrictSchema):
    card = fields.Nested(AdminCardSchema, required=True, metadata={"description": "the new card"})
    replaced = fields.Nested(AdminCardSchema, required=True, metadata={"description": "the old card, now blocked"})


@blp.route("/members/<string:member_id>/card/block")
class CardBlock(Resource):
    decorators = [admin_required]

    @blp.response(200, CardBlockAnswerSchema)
    def post(self, member_id):
        """Block the member's card at every till: its number, its QR codes and its wallet pass codes."""
        card, changed = members.block_card(db.session, program(), member_id, actor=f"staff:{current_principal().id}")
        if changed:
            audit_trail.record("block_card", "member", member_id, after={"card_id": card.id, "status": card.status})
        return {"card": card, "changed": changed}


@blp.route("/members/<string:member_id>/card/replace")
class CardReplace(Resource):
    decorators = [admin_required]

    @blp.response(201, CardReplaceAnswerSchema)
    def post(self, member_id):
        """Block the member's card (if it is not already) and issue a new number; the old codes stop working."""
        old, new = members.replace_card(db.session, program(), member_id, actor=f"staff:{current_principal().id}")
        audit_trail.record("replace_card", "member", member_id, before={"card_id": old.id},
                           after={"card_id": new.id})
        return {"card": new, "replaced": old}


StaffPageSchema = page_schema(StaffSchema, "StaffPage")


@blp.route("/staff")
class StaffAccounts(Resource):
    decorators = [admin_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, StaffPageSchema)
    def get(self, args):
        """The staff accounts, oldest first, active or not."""
        found = accounts.list_staff(db.session, after=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda s: s.id)

    @blp.arguments(StaffInSchema)
    @blp.response(201, StaffSchema)
    def post(self, data):
        """Create a cashier (bound to one store), marketer or admin account."""
        staff = members.create_staff(db.session, email=data["email"], password=data["password"], role=data["role"],
                                     name=data["name"], store_id=data["store_id"])
        audit_trail.record("create", "staff", staff.id, after=staff, schema=StaffSchema)
        return staff
