"""Accounts: a member's (or staff member's) password change, the staff list and deactivation, membership closure.
Each takes back the tokens it must at once (:mod:`wallet.accounts`)."""
from __future__ import annotations

from flask import current_app
from marshmallow import fields, validate

from wallet import accounts

from .. import audit_trail
from ..auth import admin_required, current_principal, roles_required
from ..blueprints import admin, me
from ..extensions import db
from ..ratelimits import limits_of
from ..resource import Resource
from ..schemas import NEW_PASSWORD, StrictSchema
from ..state import program
from .admin import AdminMemberSchema, StaffSchema


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(1, 128))
    new_password = fields.String(required=True, load_only=True, validate=NEW_PASSWORD)


@me.route("/me/password")
class Password(Resource):
    decorators = [roles_required("member", "cashier", "marketer", "admin")]

    @me.arguments(PasswordChangeSchema)
    @me.response(204)
    def post(self, data):
        """Change the password: every other token of the account stops working at once (this one goes on)."""
        principal = current_principal()
        account = accounts.account_of(db.session, principal)
        attempts = limits_of(current_app)
        attempts.refuse_sign_in(account.email)  # guessing the current password is slowed as sign-in is
        try:
            accounts.change_password(db.session, program(), principal, current_password=data["current_password"],
                                     new_password=data["new_password"])
        except Exception as error:
            if getattr(error, "code", None) == "wrong_password":
                attempts.sign_in_failed(account.email)
            raise


def _set_active(staff_id: str, active: bool):
    staff, changed = accounts.set_staff_active(db.session, program(), staff_id, active, by=current_principal())
    if changed:
        audit_trail.record("activate" if active else "deactivate", "staff", staff.id,
                           before={"active": not active}, after={"active": active})
    return staff


@admin.route("/staff/<string:staff_id>/deactivate")
class StaffDeactivate(Resource):
    decorators = [admin_required]

    @admin.response(200, StaffSchema)
    def post(self, staff_id):
        """Deactivate a staff account: its tokens stop working at once and it cannot sign in."""
        return _set_active(staff_id, False)


@admin.route("/staff/<string:staff_id>/activate")
class StaffActivate(Resource):
    decorators = [admin_required]

    @admin.response(200, StaffSchema)
    def post(self, staff_id):
        """Activate a deactivated staff account again (it signs in anew)."""
        return _set_active(staff_id, True)


@admin.route("/members/<string:member_id>/close")
class MemberClose(Resource):
    decorators = [admin_required]

    @admin.response(200, AdminMemberSchema)
    def post(self, member_id):
        """Close a membership: the card is blocked at every till, sign-in is refused, its tokens stop at once."""
        member, changed = accounts.close_membership(db.session, program(), member_id,
                                                    actor=f"staff:{current_principal().id}")
        if changed:
            audit_trail.record("close", "member", member.id, before={"status": "active"}, after={"status": "closed"})
        return member
