"""Webhooks for admins: subscriptions, their secrets, their deliveries and manual retries."""
from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import fields, validate

from wallet import audit, events, webhooks
from wallet.webhooks import subscriptions

from ..auth import admin_required, current_principal
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program

EVENT_TYPES = ["*", *events.TYPES]


class WebhookInSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(1, 2048),
                        metadata={"example": "https://hooks.example.com/loyalty"})
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), required=True,
                         validate=validate.Length(1, len(EVENT_TYPES)),
                         metadata={"description": 'event types, or ["*"] for all'})
    description = fields.String(load_default="", validate=validate.Length(0, 240))


class WebhookPatchSchema(StrictSchema):
    url = fields.String(validate=validate.Length(1, 2048))
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), validate=validate.Length(1, 64))
    description = fields.String(validate=validate.Length(0, 240))
    status = fields.String(validate=validate.OneOf(subscriptions.STATUSES),
                           metadata={"description": "active, paused (deliveries wait) or disabled"})


class WebhookSchema(StrictSchema):
    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)))
    description = fields.String()
    status = fields.String(metadata={"enum": list(subscriptions.STATUSES)})
    disabled_reason = fields.String(allow_none=True)
    previous_secret_until = Time(allow_none=True, metadata={"description": "until then deliveries are signed with "
                                                                           "the previous secret too"})
    created_at = Time()
    updated_at = Time()


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "whsec_ and base64: shown only in this answer"})


class DeliverySchema(StrictSchema):
    id = fields.String()
    event_id = fields.String()
    type = fields.String(validate=validate.OneOf(events.TYPES))
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = Time()
    created_at = Time()
    delivered_at = Time(allow_none=True)


class DeliveryArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(("pending", "delivered", "failed")))


WebhookPageSchema = page_schema(WebhookSchema, "WebhookPage")
DeliveryPageSchema = page_schema(DeliverySchema, "DeliveryPage")


def _allow_private() -> bool:
    return bool(current_app.config.get("LOYALTY_WEBHOOK_ALLOW_PRIVATE"))


def _snapshot(subscription: webhooks.Subscription) -> dict[str, Any]:
    return {"url": subscription.url, "events": list(subscription.events), "description": subscription.description,
            "status": subscription.status}


def _with_secret(created: webhooks.Created) -> dict[str, Any]:
    """The subscription's fields and, this once, its secret (the response schema dumps it)."""
    return {**{name: getattr(created.subscription, name) for name in WebhookSchema().fields},
            "secret": created.secret}


@blp.route("/webhooks")
class Webhooks(Resource):
    decorators = [admin_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, WebhookPageSchema)
    def get(self, args):
        """The webhook subscriptions (their secrets are never shown again)."""
        found = subscriptions.listed(db.session, after=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda s: s.id)

    @blp.arguments(WebhookInSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, data):
        """Subscribe a URL to event types; the answer holds its signing secret, shown only here."""
        created = webhooks.create(db.session, url=data["url"], events=data["events"], description=data["description"],
                                  allow_private=_allow_private(), now=program().now())
        audit.record(db.session, current_principal(), "create", "webhook", created.subscription.id, None,
                     _snapshot(created.subscription) | {"secret": "new"})
        return _with_secret(created)


@blp.route("/webhooks/<string:webhook_id>")
class WebhookDetail(Resource):
    decorators = [admin_required]

    @blp.response(200, WebhookSchema)
    def get(self, webhook_id):
        """One subscription."""
        return webhooks.get(db.session, webhook_id)

    @blp.arguments(WebhookPatchSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, data, webhook_id):
        """Change the URL, event types or description; pause, resume or re-enable with ``status``."""
        before = _snapshot(webhooks.get(db.session, webhook_id))
        subscription = webhooks.update(db.session, webhook_id, data, allow_private=_allow_private(),
                                       now=program().now())
        audit.record(db.session, current_principal(), "update", "webhook", webhook_id, before, _snapshot(subscription))
        return subscription

    @blp.response(204)
    def delete(self, webhook_id):
        """Delete a subscription and its deliveries."""
        subscription = webhooks.remove_subscription(db.session, webhook_id)
        audit.record(db.session, current_principal(), "delete", "webhook", webhook_id, _snapshot(subscription), None)
        return None


@blp.route("/webhooks/<string:webhook_id>/rotate-secret")
class RotateSecret(Resource):
    decorators = [admin_required]

    @blp.response(200, WebhookWithSecretSchema)
    def post(self, webhook_id):
        """A new signing secret (shown only here); for 24 hours deliveries carry signatures by both."""
        created = webhooks.rotate_secret(db.session, webhook_id, now=program().now())
        audit.record(db.session, current_principal(), "rotate_secret", "webhook", webhook_id, {"secret": "old"},
                     {"secret": "new"})
        return _with_secret(created)


@blp.route("/webhooks/<string:webhook_id>/deliveries")
class Deliveries(Resource):
    decorators = [admin_required]

    @blp.arguments(DeliveryArgs, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args, webhook_id):
        """The subscription's deliveries, newest first."""
        found = webhooks.listed(db.session, webhook_id, status=args.get("status"),
                                before=decode_cursor(args["cursor"]), limit=args["limit"] + 1)
        return page(found, args["limit"], lambda d: d.id)


@blp.route("/webhooks/<string:webhook_id>/deliveries/<string:delivery_id>/retry")
class RetryDelivery(Resource):
    decorators = [admin_required]

    @blp.response(202, DeliverySchema)
    def post(self, webhook_id, delivery_id):
        """Send a delivery again now (once; the worker sends it)."""
        delivery = webhooks.retry(db.session, webhook_id, delivery_id, now=program().now())
        audit.record(db.session, current_principal(), "retry", "webhook_delivery", delivery_id, None,
                     {"webhook_id": webhook_id, "event_id": delivery.event_id})
        return delivery
