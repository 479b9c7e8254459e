"""The shopper's own profile, wallet, card and points statement."""
from __future__ import annotations

import unicodedata
from datetime import date

from flask import Response, current_app, request
from marshmallow import ValidationError, fields, post_load, pre_dump, validate

from wallet import benefits, contact, coupons, events, export, ledger, members, qr, referrals, social, statement
from wallet.consents import PURPOSES, TEXT_VERSION_MAX
from wallet.errors import Invalid, InvalidToken, NotFound, Rejected
from wallet.members import CHANNELS, GENDERS
from wallet.rules.explain import statement as statement_lines

from ..auth import current_principal, member_required
from ..blueprints import me as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StoredTime, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program

# Fixed sets of values a member's answers carry (documented as enums; dumping is not validated).
CARD_STATUSES = ("active", "blocked")
MEMBER_STATUSES = ("active", "closed", "erased")


class CardBriefSchema(StrictSchema):
    number = fields.String()
    status = fields.String(validate=validate.OneOf(CARD_STATUSES))


class CardSchema(CardBriefSchema):
    tier = fields.String(attribute="member.tier")


class ConsentSchema(StrictSchema):
    granted = fields.Boolean()
    at = StoredTime(metadata={"description": "when this consent was given or withdrawn"})
    text_version = fields.Function(lambda entry: entry.get("text_version"), allow_none=True,
                                   metadata={"type": "string",
                                             "description": "the version of the consent text the member saw"})


class ConsentInput(fields.Field):
    """A consent as sent: ``true``/``false``, or ``{"granted": true, "text_version": "2026-11"}``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).update({"oneOf": [
            {"type": "boolean"},
            {"type": "object", "required": ["granted"], "additionalProperties": False,
             "properties": {"granted": {"type": "boolean"},
                            "text_version": {"type": "string", "minLength": 1, "maxLength": TEXT_VERSION_MAX}}}]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        if isinstance(value, dict) and isinstance(value.get("granted"), bool) and set(value) <= {"granted",
                                                                                                "text_version"}:
            return value  # text_version's length and characters are checked by wallet.consents
        raise ValidationError('true or false, or {"granted": true|false, "text_version": "..."}.')


def consents_field(**kwargs) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Length(1, 40)), values=ConsentInput(),
                       validate=validate.Length(max=len(PURPOSES)),
                       metadata={"description": "by purpose: " + ", ".join(PURPOSES)}, **kwargs)


class QuietHoursSchema(StrictSchema):
    from_ = fields.String(required=True, data_key="from", validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"),
                          metadata={"example": "21:00"})
    to = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"),
                       metadata={"example": "08:00"})

    @post_load
    def _named(self, data, **_):
        return {"from": data["from_"], "to": data["to"]}


class ContactRulesSchema(StrictSchema):
    timezone = fields.String(allow_none=True, validate=validate.Length(1, 64),
                             metadata={"description": "IANA timezone; LOYALTY_TIMEZONE by default"})
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True,
                                metadata={"description": "no marketing message between these local times"})
    max_messages_per_week = fields.Integer(allow_none=True, validate=validate.Range(0, contact.MAX_PER_WEEK),
                                           metadata={"description": "at most this many in any 7 days; null: no cap"})


class MemberSchema(StrictSchema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    birthday = fields.Date(allow_none=True)
    gender = fields.String(allow_none=True, metadata={"enum": [*GENDERS, None]})
    city = fields.String(allow_none=True)
    tier = fields.String()
    status = fields.String(validate=validate.OneOf(MEMBER_STATUSES))
    referral_code = fields.String()
    preferences = fields.Dict(keys=fields.String(), values=fields.Boolean())
    consents = fields.Dict(keys=fields.String(), values=fields.Nested(ConsentSchema),
                           metadata={"description": "by purpose; a purpose not listed was never given"})
    contact_rules = fields.Method("_contact_rules", metadata={  # contact.ContactRules.as_dict: every key, always
        "type": "object", "required": ["timezone", "quiet_hours", "max_messages_per_week"], "properties": {
            "timezone": {"type": "string"},
            "quiet_hours": {"type": ["object", "null"], "required": ["from", "to"],
                            "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
            "max_messages_per_week": {"type": ["integer", "null"]}}})
    card = fields.Nested(CardBriefSchema)
    created_at = Time()

    def _contact_rules(self, member) -> dict:
        return contact.rules_of(member.contact_rules, program().timezone).as_dict()


PHONE = validate.Regexp(r"^\+?[0-9 ()-]{6,20}$", error="Not a phone number.")


def printable_name(value: str) -> None:
    """A name is what a cashier reads aloud: not blank, no control characters."""
    if not value.strip() or any(unicodedata.category(c) == "Cc" for c in value):
        raise ValidationError("Must be a printable name.")


def past_birthday(value: date | None) -> None:
    if value is not None and not (date(1900, 1, 1) <= value <= date.today()):
        raise ValidationError("Must be a date in the past.")


GENDER = validate.OneOf(GENDERS)


def printable_city(value: str | None) -> None:
    """A city is a name: 1 to 80 characters, not blank, no control characters."""
    if value is not None and (not value.strip() or len(value) > 80
                              or any(unicodedata.category(c) in ("Cc", "Cf") for c in value)):
        raise ValidationError("A city's name: 1 to 80 printable characters.")


class MemberPatchSchema(StrictSchema):
    name = fields.String(validate=[validate.Length(1, 120), printable_name])
    phone = fields.String(allow_none=True, validate=PHONE)
    birthday = fields.Date(allow_none=True, validate=past_birthday)
    preferences = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)), values=fields.Boolean(),
                              validate=validate.Length(max=len(CHANNELS)))
    gender = fields.String(allow_none=True, validate=GENDER, metadata={"description": "female, male or other; "
                                                                                      "null: not given"})
    city = fields.String(allow_none=True, validate=[validate.Length(1, 80), printable_city])
    consents = consents_field()
    contact_rules = fields.Nested(ContactRulesSchema)


class ExpiringSchema(StrictSchema):
    points = fields.Integer()
    expires_at = Time()


class PendingSchema(StrictSchema):
    points = fields.Integer()
    available_at = Time(allow_none=True, metadata={"description": "when they become spendable; null while they "
                                                                 "await something (see awaits)"})
    awaits = fields.String(allow_none=True, validate=validate.OneOf([ledger.FIRST_PURCHASE]), metadata={"description": "first_purchase: welcome points, spendable "
                                                                     "from the member's first purchase"})
    description = fields.String()

    @pre_dump
    def _shape(self, held, **_) -> dict:
        return {"points": held.points, "available_at": None if held.awaits else held.available_at,
                "awaits": held.awaits, "description": held.description}


class PointsSchema(StrictSchema):
    balance = fields.Integer()
    debt = fields.Integer(required=True, metadata={
        "description": "points.debt: points a return took back after they were spent; later earning pays it first"})
    pending = fields.List(fields.Nested(PendingSchema))
    pending_total = fields.Integer()
    expiring = fields.List(fields.Nested(ExpiringSchema))


class WalletBenefitSchema(StrictSchema):
    id = fields.String()
    title = fields.Method("_title", metadata={"type": "string", "example": "Points ×2"})
    multiplier = fields.String(metadata={"pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "2"})
    uses_left = fields.Integer(allow_none=True)
    valid_until = Time(allow_none=True)

    def _title(self, benefit) -> str:
        return f"Points ×{benefit.multiplier.normalize()}"


class WalletSchema(StrictSchema):
    card = fields.Nested(CardSchema)
    points = fields.Nested(PointsSchema)
    coupons = fields.List(fields.Dict())
    benefits = fields.List(fields.Nested(WalletBenefitSchema),
                           metadata={"description": "multipliers the member holds for coming purchases"})


class ReferralClaimSchema(StrictSchema):
    referral_code = fields.String(required=True, validate=validate.Length(1, 16))


class ReferralSchema(StrictSchema):
    id = fields.String()
    referrer_id = fields.String()
    created_at = Time()


class CardTokenSchema(StrictSchema):
    token = fields.String()
    expires_at = Time()


class LedgerEntrySchema(StrictSchema):
    id = fields.String()
    delta = fields.Integer()
    kind = fields.String(validate=validate.OneOf(ledger.KINDS))
    reason = fields.String()
    balance_after = fields.Integer()
    created_at = Time()
    expires_at = Time(allow_none=True)
    description = fields.String()
    reverses = fields.String(attribute="reverses_id", allow_none=True)
    channel = fields.String(allow_none=True, validate=validate.OneOf(events.CHANNELS))


class LotSchema(StrictSchema):
    points = fields.Integer(required=True)
    remaining = fields.Integer(required=True, metadata={"format": "int64", "description": "points left in the lot"})
    expires_at = Time(required=True, allow_none=True)
    expiry_days = fields.Integer(required=True, allow_none=True,
                                 metadata={"description": "how long this lot lasts: its own rule's expiry"})


class StatementLineSchema(LedgerEntrySchema):
    rule_id = fields.String(required=True, allow_none=True, metadata={"description": "the rule that gave it"})
    rule_title = fields.String(required=True, allow_none=True)
    cause = fields.String(required=True, metadata={"description": "the rule or action that caused it, in words"})
    lot = fields.Nested(LotSchema, required=True, allow_none=True,
                        metadata={"description": "for a credit: its points, what is left and when they expire"})


class LedgerPageSchema(page_schema(StatementLineSchema, "LedgerPageBase")):  # type: ignore[misc]
    debt = fields.Integer(required=True, metadata={"description": "the member's points debt now (0: none)"})


class QrArgs(StrictSchema):
    format = fields.String(load_default="png", validate=validate.OneOf(["png", "svg"]))


def qr_response(payload: str, fmt: str) -> Response:
    body, mimetype = qr.qr_image(payload, fmt)
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"  # a fresh token every time
    return response


_IMAGE = {"schema": {"type": "string", "format": "binary"}}
QR_DOC = {"responses": {"200": {"description": "QR code image",
                                "content": {"image/png": _IMAGE, "image/svg+xml": _IMAGE}}}}


def _member() -> members.Member:
    try:
        return members.get_member(db.session, current_principal().id)
    except NotFound:
        # A signed token whose member is gone is a wrong token: sign in again.
        raise InvalidToken("The account this token was issued for no longer exists") from None


@blp.route("/me")
class Me(Resource):
    decorators = [member_required]

    @blp.response(200, MemberSchema)
    def get(self):
        """The member's profile, channel preferences and consents."""
        return _member()

    @blp.arguments(MemberPatchSchema)
    @blp.response(200, MemberSchema)
    def patch(self, changes):
        """Change the profile, channel preferences or consents (withdrawing social_data deletes the social
        profile; a profile now complete fires profile_completed)."""
        member = _member()
        shared_before = social.shares(member.consents)
        members.update_member(db.session, program(), member, changes)
        social.after_member_update(db.session, program(), member, shared_before=shared_before,
                                   profile_fields=tuple(current_app.config.get("LOYALTY_PROFILE_FIELDS",
                                                                               social.PROFILE_FIELDS)))
        return member


@blp.route("/me/wallet")
class Wallet(Resource):
    decorators = [member_required]

    @blp.response(200, WalletSchema)
    def get(self):
        """The card, the points (with what expires soon and what is pending) and the coupons."""
        member, session, prog = _member(), db.session, program()
        pending = statement.pending_of(session, member.id)
        return {
            "card": member.card,
            "points": {"balance": (balance := ledger.balance_of(session, member.id)).points, "debt": balance.debt,
                       "pending": pending, "pending_total": sum(p.points for p in pending),
                       "expiring": statement.expiring(session, member.id, prog.now())},
            "coupons": coupons.wallet_coupons(session, prog, member.id),
            "benefits": benefits.benefits_of(session, member.id, now=prog.now()),
        }


def _card_token():
    member, prog = _member(), program()
    if member.card.status != "active":  # the till would refuse it: say so here, where the member can act on it
        raise Rejected("This card is blocked", code="card_inactive")
    return qr.card_token(prog.secret, member.card.id, prog.now(), prog.card_token_ttl)


@blp.route("/me/card/token")
class CardToken(Resource):
    decorators = [member_required]

    @blp.response(200, CardTokenSchema)
    def get(self):
        """The short-lived signed token that the card's QR code carries."""
        return _card_token()


@blp.route("/me/card/qr")
class CardQr(Resource):
    decorators = [member_required]

    @blp.arguments(QrArgs, location="query")
    @blp.doc(**QR_DOC)
    def get(self, args):
        """The card's QR code (PNG, or SVG with ?format=svg), encoding a fresh token."""
        return qr_response(_card_token().token, args["format"])


@blp.route("/me/ledger")
class Statement(Resource):
    decorators = [member_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, LedgerPageSchema)
    def get(self, args):
        """The points statement, newest first."""
        before = decode_cursor(args["cursor"], int)
        if before is not None and not 0 < before < 2**62:  # a seq is a positive 64-bit integer
            raise Invalid("Not a cursor this API gave out", code="invalid_cursor", errors={"cursor": ["Unknown cursor."]})
        lines = statement_lines(db.session, current_principal().id, limit=args["limit"] + 1, before_seq=before)
        return page(lines, args["limit"], lambda line: line["seq"]) | {
            "debt": ledger.balance_of(db.session, current_principal().id).debt}


@blp.route("/me/referral")
class Referral(Resource):
    decorators = [member_required]

    @blp.arguments(ReferralClaimSchema)
    @blp.response(201, ReferralSchema)
    def post(self, data):
        """Name the member who referred you: before your first purchase (within 30 days of joining), once. Both sides'
        referral rewards pay when you make your first purchase."""
        return referrals.claim_referral(db.session, program(), current_principal().id, data["referral_code"],
                                        device_id=request.headers.get("X-Device-ID"))


_RECORDS = fields.List(fields.Dict(keys=fields.String()), required=True)


class ExportSchema(StrictSchema):
    """Everything held about the member; each list is every record of its kind, oldest first."""

    profile = fields.Dict(keys=fields.String(), required=True,
                          metadata={"description": "the member's profile, points balance and cards (replaced ones too)"})
    consents = fields.Dict(keys=fields.String(), required=True)
    consent_history = fields.List(fields.Dict(keys=fields.String()), required=True,
                                  metadata={"description": "every consent given or withdrawn: {consent, granted, "
                                                           "source, channel, at}"})
    ledger = _RECORDS
    purchases = _RECORDS
    coupons = _RECORDS
    check_ins = _RECORDS
    scans = _RECORDS
    referrals = _RECORDS
    grants = _RECORDS
    messages = _RECORDS
    social = fields.Dict(keys=fields.String(), required=True,
                         metadata={"description": "the social profile (GET /me/social's shape; empty without consent)"})
    tiers = fields.List(fields.Dict(keys=fields.String()), required=True,
                        metadata={"description": "every tier change: from, to, why, when"})
    contest_entries = _RECORDS


@blp.route("/me/export")
class Export(Resource):
    decorators = [member_required]

    @blp.response(200, ExportSchema)
    def get(self):
        """Everything held about me, as JSON: profile, consents and their history, points, purchases, coupons, visits,
        scans, referrals, rewards and messages."""
        return export.member_export(db.session, _member().id), 200, {"Cache-Control": "no-store"}
