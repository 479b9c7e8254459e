"""Enrolment and tokens."""
from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import enrolment, members, social, tokens
from wallet.members import CHANNELS

from ..blueprints import auth as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema
from ..state import keyring, program
from .me import PHONE, MemberSchema, past_birthday, printable_name


class RegisterSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(3, 254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 128))
    name = fields.String(required=True, validate=[validate.Length(1, 120), printable_name])
    phone = fields.String(load_default=None, validate=PHONE)
    birthday = fields.Date(load_default=None, validate=past_birthday)
    referral_code = fields.String(load_default=None, validate=validate.Length(1, 16))
    consents = fields.Dict(keys=fields.String(validate=validate.Length(1, 40)), values=fields.Boolean(),
                           load_default=None, validate=validate.Length(max=20))
    preferences = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)), values=fields.Boolean(),
                              load_default=None)



class TokenRequestSchema(StrictSchema):
    email = fields.String(validate=validate.Length(1, 254))
    password = fields.String(load_only=True, validate=validate.Length(1, 128))
    refresh_token = fields.String(validate=validate.Length(1, 4096))

    @validates_schema
    def _one_way(self, data, **_) -> None:
        if "refresh_token" in data and ("email" in data or "password" in data):
            raise ValidationError("Send either email and password, or refresh_token.", "_schema")
        if "refresh_token" not in data and not ("email" in data and "password" in data):
            raise ValidationError("Send email and password, or refresh_token.", "_schema")


class TokenSchema(StrictSchema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "seconds"})
    role = fields.String()


class RegisteredSchema(TokenSchema):
    member = fields.Nested(MemberSchema)


def _tokens(principal: tokens.Principal, refresh: str | None = None) -> dict:
    ring, now = keyring(), program().now()
    return {"access_token": tokens.issue_access_token(ring, principal, now),
            "refresh_token": refresh or tokens.issue_refresh_token(db.session, ring, principal, now),
            "token_type": "Bearer", "expires_in": int(ring.access_ttl.total_seconds()), "role": principal.role}


@blp.route("/register")
class Register(Resource):
    @blp.doc(security=[])
    @blp.arguments(RegisterSchema)
    @blp.response(201, RegisteredSchema)
    def post(self, data):
        """Enrol a member; the loyalty card is issued at once."""
        member = enrolment.register_member(db.session, program(), **data)
        # social_data given at enrolment fires data_shared; a profile complete from the start, profile_completed
        social.after_member_update(db.session, program(), member, shared_before=False,
                                   profile_fields=tuple(current_app.config.get("LOYALTY_PROFILE_FIELDS",
                                                                               social.PROFILE_FIELDS)))
        return {"member": member, **_tokens(tokens.principal_of(member))}


@blp.route("/token")
class Token(Resource):
    @blp.doc(security=[])
    @blp.arguments(TokenRequestSchema)
    @blp.response(200, TokenSchema)
    def post(self, data):
        """Sign in with email and password, or trade a refresh token (rotated: each works once)."""
        if "refresh_token" in data:
            principal, refresh = tokens.rotate_refresh_token(db.session, keyring(), data["refresh_token"],
                                                             program().now())
            return _tokens(principal, refresh)
        account = members.authenticate(db.session, data["email"], data["password"])
        return _tokens(tokens.principal_of(account))


def limit_auth(limiter: Limiter) -> None:
    """One budget per client address for all of /auth (sign-in and enrolment alike), on the app's own limiter."""
    limiter.shared_limit(lambda: current_app.config["RATELIMIT_AUTH"], scope="auth")(blp)
