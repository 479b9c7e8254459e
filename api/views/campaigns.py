"""Campaigns for marketers: write them (audited), launch them, read their report and messages."""
from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from wallet import campaigns
from wallet.campaigns import templates

from .. import audit_trail
from ..auth import current_principal, marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program

_FIELDS_DOC = "fields: " + ", ".join("{" + f + "}" for f in templates.FIELDS) + " ({coupon_code} needs an offer)"


class MessageInSchema(StrictSchema):
    subject = fields.String(allow_none=True, validate=validate.Length(1, 200),
                            metadata={"description": "required for email; a push message's title"})
    body = fields.String(required=True, validate=validate.Length(1, 20_000), metadata={"description": _FIELDS_DOC})


class CampaignInSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 120))
    segment_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32),
                               metadata={"description": "null: every member"})
    channel = fields.String(required=True, validate=validate.OneOf(campaigns.CHANNELS))
    message = fields.Nested(MessageInSchema, required=True)
    offer_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32),
                             metadata={"description": "each treated member's message carries a coupon of it"})
    send_at = Time(load_default=None, allow_none=True, metadata={"description": "null: at launch"})
    holdout_percent = fields.Integer(load_default=0, validate=validate.Range(0, campaigns.models.MAX_HOLDOUT_PERCENT))
    response_days = fields.Integer(load_default=14, validate=validate.Range(1, 365))


class CampaignPatchSchema(StrictSchema):
    name = fields.String(validate=validate.Length(1, 120))
    segment_id = fields.String(allow_none=True, validate=validate.Length(1, 32))
    channel = fields.String(validate=validate.OneOf(campaigns.CHANNELS))
    message = fields.Nested(MessageInSchema)
    offer_id = fields.String(allow_none=True, validate=validate.Length(1, 32))
    send_at = Time(allow_none=True)
    holdout_percent = fields.Integer(validate=validate.Range(0, campaigns.models.MAX_HOLDOUT_PERCENT))
    response_days = fields.Integer(validate=validate.Range(1, 365))


class MessageSchema(StrictSchema):
    subject = fields.String(allow_none=True)
    body = fields.String()


class CampaignSchema(StrictSchema):
    id = fields.String()
    name = fields.String()
    segment_id = fields.String(allow_none=True)
    channel = fields.String(metadata={"enum": list(campaigns.CHANNELS)})
    message = fields.Nested(MessageSchema)
    offer_id = fields.String(allow_none=True)
    send_at = Time(allow_none=True)
    holdout_percent = fields.Integer()
    response_days = fields.Integer()
    status = fields.String(metadata={"enum": list(campaigns.STATUSES)})
    audience = fields.Integer(allow_none=True, metadata={"description": "fixed at launch"})
    holdout = fields.Integer(allow_none=True)
    seed = fields.String(metadata={"description": "each member's holdout draw is md5(seed || member id)"})
    launched_at = Time(allow_none=True)
    cancelled_at = Time(allow_none=True)
    created_at = Time()
    updated_at = Time()


class CampaignArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(campaigns.STATUSES))


class WindowSchema(StrictSchema):
    from_ = Time(data_key="from", attribute="from")
    to = Time()


_RATE = {"description": "a fraction 0-1; null when nobody is in the group"}


class ReportSchema(StrictSchema):
    campaign_id = fields.String()
    status = fields.String(validate=validate.OneOf(campaigns.STATUSES))
    channel = fields.String(validate=validate.OneOf(campaigns.CHANNELS))
    audience = fields.Integer(metadata={"description": "members in the segment with the channel's preference and "
                                                       "consent at launch"})
    holdout = fields.Integer()
    treated = fields.Integer(metadata={"description": "audience - holdout: everyone assigned a message, sent or not"})
    sent = fields.Integer(metadata={"description": "messages handed to the relay or gateway at least once"})
    delivered = fields.Integer(metadata={"description": "messages the relay or gateway accepted"})
    failed = fields.Integer(metadata={"description": "refused for good (5xx, a 4xx from a gateway) or retried too long"})
    suppressed = fields.Integer(metadata={"description": "stopped at send time: consent withdrawn, preference off, "
                                                         "weekly cap, no address, offer run out"})
    suppressed_by = fields.Dict(keys=fields.String(), values=fields.Integer())
    cancelled = fields.Integer()
    pending = fields.Integer(metadata={"description": "due or being retried"})
    tracked = fields.Integer(metadata={"description": (
        "delivered messages to members who gave the `profiling` consent when it was sent (an SMS only if it has a "
        "link): the denominator of opened and clicked. Other members' links go straight to their target and their "
        "messages are not counted")})
    opened = fields.Integer(allow_none=True, metadata={"description": (
        "tracked messages opened. email: the open pixel loaded or a link clicked (a click is an open); pixels "
        "loaded by privacy proxies (Apple Mail Privacy Protection) count, images blocked do not, so it is an "
        "estimate. push: the app reported it (POST /me/messages/{id}/opened). sms: null, the channel shows no "
        "opens")})
    clicked = fields.Integer(allow_none=True, metadata={"description": (
        "tracked messages with a link followed at least once (through the club's redirect, the first click "
        "counts). email and sms; push: null (its links are the app's)")})
    redeemed = fields.Integer(metadata={"description": "coupons this campaign gave that were redeemed"})
    responders = fields.Integer(metadata={"description": "treated members who bought or redeemed the offer within "
                                                         "response_days of the send"})
    response_rate = fields.Float(allow_none=True, metadata=_RATE)
    holdout_responders = fields.Integer()
    holdout_response_rate = fields.Float(allow_none=True, metadata=_RATE)
    lift = fields.Float(allow_none=True, metadata={"description": "response_rate - holdout_response_rate; null "
                                                                  "without a holdout"})
    lift_ci95 = fields.List(fields.Float(), allow_none=True,
                            metadata={"description": "[lo, hi]: Newcombe's hybrid score interval (95%)"})
    window = fields.Nested(WindowSchema, allow_none=True)


class CampaignMessageSchema(StrictSchema):
    member_id = fields.String()
    holdout = fields.Boolean()
    status = fields.String(metadata={"enum": list(campaigns.MESSAGE_STATUSES)})
    reason = fields.String(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = Time(allow_none=True)
    sent_at = Time(allow_none=True)
    last_error = fields.String(allow_none=True)
    coupon_id = fields.String(allow_none=True)


class MessageArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(campaigns.MESSAGE_STATUSES))


CampaignPageSchema = page_schema(CampaignSchema, "CampaignPage")
CampaignMessagePageSchema = page_schema(CampaignMessageSchema, "CampaignMessagePage")


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    message = data.pop("message", None)
    if message is not None:
        data["subject"] = message.get("subject")
        data["body"] = message["body"]
    return data


def _actor() -> str:
    return f"staff:{current_principal().id}"


@blp.route("/campaigns")
class Campaigns(Resource):
    decorators = [marketer_required]

    @blp.arguments(CampaignArgs, location="query")
    @blp.response(200, CampaignPageSchema)
    def get(self, args):
        """Campaigns, newest first."""
        found = campaigns.list_campaigns(db.session, status=args.get("status"), before=decode_cursor(args["cursor"]),
                                         limit=args["limit"] + 1)
        return page(found, args["limit"], lambda c: c.id)

    @blp.arguments(CampaignInSchema)
    @blp.response(201, CampaignSchema)
    def post(self, data):
        """A draft campaign: checked now (channel, message fields, offer, holdout, send time)."""
        campaign = campaigns.create_campaign(db.session, program(), _flat(data), actor=_actor())
        audit_trail.record("create", "campaign", campaign.id, after=campaign, schema=CampaignSchema)
        return campaign


@blp.route("/campaigns/<string:campaign_id>")
class CampaignDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, CampaignSchema)
    def get(self, campaign_id):
        """One campaign."""
        return campaigns.get_campaign(db.session, campaign_id)

    @blp.arguments(CampaignPatchSchema)
    @blp.response(200, CampaignSchema)
    def patch(self, data, campaign_id):
        """Change a draft (a launched campaign is 409)."""
        before = CampaignSchema().dump(campaigns.get_campaign(db.session, campaign_id))
        campaign = campaigns.update_campaign(db.session, program(), campaign_id, _flat(data))
        audit_trail.record("update", "campaign", campaign_id, before=before, after=campaign, schema=CampaignSchema)
        return campaign

    @blp.response(204)
    def delete(self, campaign_id):
        """Delete a draft; a launched campaign is cancelled instead (messages not yet sent are not sent; its report
        stays)."""
        before = CampaignSchema().dump(campaigns.get_campaign(db.session, campaign_id))
        campaign, deleted = campaigns.delete_campaign(db.session, program(), campaign_id)
        audit_trail.record("delete" if deleted else "cancel", "campaign", campaign_id, before=before,
                           after=None if deleted else CampaignSchema().dump(campaign))
        return None


@blp.route("/campaigns/<string:campaign_id>/launch")
class Launch(Resource):
    decorators = [marketer_required]

    @blp.response(200, CampaignSchema)
    def post(self, campaign_id):
        """Fix the audience now (the segment's members with the channel's preference and consent) and hold
        ``holdout_percent`` of them out at random; the worker sends the rest at ``send_at`` (or now)."""
        campaign = campaigns.launch(db.session, program(), campaign_id, actor=_actor())
        audit_trail.record("launch", "campaign", campaign_id, after=campaign, schema=CampaignSchema)
        return campaign


@blp.route("/campaigns/<string:campaign_id>/report")
class Report(Resource):
    decorators = [marketer_required]

    @blp.response(200, ReportSchema)
    def get(self, campaign_id):
        """The campaign's counts, response rates and lift over the holdout with its 95% interval."""
        return campaigns.report(db.session, campaign_id)


@blp.route("/campaigns/<string:campaign_id>/messages")
class Messages(Resource):
    decorators = [marketer_required]

    @blp.arguments(MessageArgs, location="query")
    @blp.response(200, CampaignMessagePageSchema)
    def get(self, args, campaign_id):
        """The campaign's audience, one row per member: held out, or their message and how it went."""
        found = campaigns.messages_of(db.session, campaign_id, status=args.get("status"),
                                      after=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda m: m.member_id)
