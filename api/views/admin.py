"""The marketers' side: members and adjustments, staff accounts."""
from __future__ import annotations

import hashlib

from flask import request
from marshmallow import fields, validate
from sqlalchemy import func, or_, select

from wallet import ledger, members
from wallet.db import new_id
from wallet.members import Member

from .. import audit_trail
from ..auth import admin_required, current_principal, marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, decode_cursor, page, page_schema
from ..state import program
from .me import LedgerEntrySchema, MemberSchema

# ------------------------------------------------------------------ members

class MemberListArgs(ListArgs):
    q = fields.String(validate=validate.Length(1, 120), metadata={"description": "email, name, phone or card number"})


class AdminMemberSchema(MemberSchema):
    balance = fields.Method("_balance")

    def _balance(self, member) -> int:
        return ledger.balance_of(db.session, member.id).points


class MemberDetailSchema(StrictSchema):
    member = fields.Nested(AdminMemberSchema)
    recent_ledger = fields.List(fields.Nested(LedgerEntrySchema))


MemberPageSchema = page_schema(AdminMemberSchema, "MemberPage")


class AdjustmentSchema(StrictSchema):
    points = fields.Integer(required=True, validate=validate.Range(-1_000_000, 1_000_000))
    reason = fields.String(required=True, validate=validate.Length(3, 200))


class StaffInSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(3, 254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 128))
    name = fields.String(load_default="", validate=validate.Length(0, 120))
    role = fields.String(required=True, validate=validate.OneOf(members.STAFF_ROLES))
    store_id = fields.String(load_default=None)


class StaffSchema(StrictSchema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    store_id = fields.String(allow_none=True)
    active = fields.Boolean()


@blp.route("/members")
class Members(Resource):
    decorators = [marketer_required]

    @blp.arguments(MemberListArgs, location="query")
    @blp.response(200, MemberPageSchema)
    def get(self, args):
        """Find members by email, name, phone or card number."""
        query = select(Member).order_by(Member.id)
        if args.get("q"):
            q = args["q"].strip()
            # contains(autoescape): a % or _ typed in the search box is a character, not a wildcard
            query = query.join(members.Card).where(or_(Member.email.contains(q.lower(), autoescape=True),
                                                       func.lower(Member.name).contains(q.lower(), autoescape=True),
                                                       Member.phone == q, members.Card.number == q))
        after = decode_cursor(args["cursor"])
        if after:
            query = query.where(Member.id > after)
        found = list(db.session.scalars(query.limit(args["limit"] + 1)))
        return page(found, args["limit"], lambda m: m.id)


@blp.route("/members/<string:member_id>")
class MemberDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, MemberDetailSchema)
    def get(self, member_id):
        """One member: profile, card, balance and the latest points movements."""
        member = members.get_member(db.session, member_id)
        return {"member": member, "recent_ledger": ledger.statement(db.session, member.id, limit=20)}


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


@blp.route("/staff")
class StaffAccounts(Resource):
    decorators = [admin_required]

    @blp.arguments(StaffInSchema)
    @blp.response(201, StaffSchema)
    def post(self, data):
        """Create a cashier (bound to one store), marketer or admin account."""
        staff = members.create_staff(db.session, email=data["email"], password=data["password"], role=data["role"],
                                     name=data["name"], store_id=data["store_id"])
        audit_trail.record("create", "staff", staff.id, after=staff, schema=StaffSchema)
        return staff
