"""Enrolment and tokens."""
from __future__ import annotations

import re

from flask import current_app, request
from flask_limiter import Limiter
from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import enrolment, members, referrals, social, tokens
from wallet.errors import Invalid, Unauthorized
from wallet.members import CHANNELS

from ..auth import current_principal
from ..blueprints import auth as blp
from ..extensions import db
from ..ratelimits import limits_of
from ..resource import Resource
from ..schemas import NEW_PASSWORD, StrictSchema
from ..state import keyring, program
from .me import GENDER, PHONE, MemberSchema, consents_field, past_birthday, printable_city, printable_name


class RegisterSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(3, 254))
    password = fields.String(required=True, load_only=True, validate=NEW_PASSWORD)
    name = fields.String(required=True, validate=[validate.Length(1, 120), printable_name])
    phone = fields.String(load_default=None, validate=PHONE)
    birthday = fields.Date(load_default=None, validate=past_birthday)
    gender = fields.String(load_default=None, allow_none=True, validate=GENDER,
                           metadata={"description": "female, male or other"})
    city = fields.String(load_default=None, allow_none=True, validate=[validate.Length(1, 80), printable_city])
    referral_code = fields.String(load_default=None, validate=validate.Length(1, 16))
    consents = consents_field(load_default=None)
    preferences = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)), values=fields.Boolean(),
                              load_default=None, validate=validate.Length(max=len(CHANNELS)))



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
    token_type = fields.String(validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(metadata={"description": "seconds"})
    role = fields.String(validate=validate.OneOf(members.ROLES))


class RegisteredSchema(TokenSchema):
    member = fields.Nested(MemberSchema)


_DEVICE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def device_id() -> str | None:
    """The app's X-Device-ID (1 to 128 visible ASCII characters), if it sent one."""
    value = request.headers.get("X-Device-ID")
    if value is None:
        return None
    if not _DEVICE_ID.match(value):
        raise Invalid("X-Device-ID is 1 to 128 visible ASCII characters", code="invalid_device_id",
                      errors={"X-Device-ID": ["1 to 128 visible ASCII characters."]})
    return value


def _tokens(principal: tokens.Principal, refresh: str | None = None) -> dict:
    ring, now = keyring(), program().now()
    if refresh is None:  # a new sign-in (enrolment, password): its own id in every token it gives
        principal = tokens.sign_in(db.session, principal, now)
    return {"access_token": tokens.issue_access_token(ring, principal, now),
            "refresh_token": refresh or tokens.issue_refresh_token(db.session, ring, principal, now),
            "token_type": "Bearer", "expires_in": int(ring.access_ttl.total_seconds()), "role": principal.role}


@blp.route("/register")
class Register(Resource):
    @blp.doc(security=[])
    @blp.arguments(RegisterSchema)
    @blp.response(201, RegisteredSchema)
    def post(self, data):
        """Enrol a member; the loyalty card is issued at once. Apps may send ``X-Device-ID``: enrolments per device
        or address beyond LOYALTY_ENROLMENT_BURST a minute are slowed (429 too_many_enrolments) and flagged."""
        member = enrolment.register_member(db.session, program(), **data, device_id=device_id(),
                                           address=request.remote_addr)
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
        attempts = limits_of(current_app)
        attempts.refuse_sign_in(data["email"])  # before the hash: a closed account costs no CPU
        try:
            account = members.authenticate(db.session, data["email"], data["password"])
        except Unauthorized as error:
            if error.code == "invalid_credentials":
                attempts.sign_in_failed(data["email"])
            raise
        attempts.sign_in_succeeded(data["email"])
        if isinstance(account, members.Member):  # the devices a member uses: a referral between two is refused
            referrals.remember_device(db.session, account.id, request.headers.get("X-Device-ID"), program().now())
        return _tokens(tokens.principal_of(account))


@blp.route("/logout")
class Logout(Resource):
    @blp.response(204)
    def post(self):
        """Sign out: this sign-in's refresh chain is revoked and its access tokens stop working at once."""
        principal = current_principal()
        tokens.sign_out(db.session, principal.session_id, program().now())


def limit_auth(limiter: Limiter) -> None:
    """One budget per client address for all of /auth (sign-in and enrolment alike), on the app's own limiter."""
    limiter.shared_limit(lambda: current_app.config["RATELIMIT_AUTH"], scope="auth")(blp)
