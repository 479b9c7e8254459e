"""The member's consent history, push devices, and the push messages they opened."""
from __future__ import annotations

from marshmallow import fields, validate

from wallet import consents, contact, events
from wallet.campaigns import tracking

from ..auth import current_principal, member_required
from ..blueprints import me as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program


class ConsentChangeSchema(StrictSchema):
    purpose = fields.String(metadata={"enum": list(consents.PURPOSES)})
    granted = fields.Boolean()
    at = Time()
    channel = fields.String(validate=validate.OneOf(events.CHANNELS),
                            metadata={"description": "where the change was made"})
    source = fields.String(validate=validate.OneOf(consents.SOURCES))
    text_version = fields.String(allow_none=True)


ConsentHistoryPageSchema = page_schema(ConsentChangeSchema, "ConsentHistoryPage")


class DeviceInSchema(StrictSchema):
    platform = fields.String(required=True, validate=validate.OneOf(contact.PLATFORMS))
    token = fields.String(required=True, validate=validate.Length(8, 512))


class DeviceSchema(StrictSchema):
    id = fields.String()
    platform = fields.String(validate=validate.OneOf(contact.PLATFORMS))
    token = fields.String()
    created_at = Time()


DevicePageSchema = page_schema(DeviceSchema, "DevicePage")


@blp.route("/me/consents/history")
class ConsentHistory(Resource):
    decorators = [member_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, ConsentHistoryPageSchema)
    def get(self, args):
        """Every consent I gave or withdrew, newest first: when, through which channel, from where, which text."""
        found = consents.history(db.session, current_principal().id, limit=args["limit"] + 1,
                                 before=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda c: c.id)


@blp.route("/me/devices")
class Devices(Resource):
    decorators = [member_required]

    @blp.response(200, DevicePageSchema)
    def get(self):
        """My push devices."""
        return {"items": contact.devices_of(db.session, current_principal().id), "next_cursor": None}

    @blp.arguments(DeviceInSchema)
    @blp.response(201, DeviceSchema)
    def post(self, data):
        """Register a push token (again: it is this member's device now)."""
        return contact.register_device(db.session, current_principal().id, platform=data["platform"],
                                       token=data["token"], now=program().now())


@blp.route("/me/devices/<string:device_id>")
class Device(Resource):
    decorators = [member_required]

    @blp.response(204)
    def delete(self, device_id):
        """Forget a push device."""
        contact.remove_device(db.session, current_principal().id, device_id)
        return None


@blp.route("/me/messages/<string:message_id>/opened")
class MessageOpened(Resource):
    decorators = [member_required]

    @blp.response(204)
    def post(self, message_id):
        """The app says I opened this push message (``message_id``: the push's ``id``, ``<campaign>.<member>``).
        Counted once, in the campaign report's ``opened``, and only if I give the ``profiling`` consent; saying
        it again changes nothing. Another member's message, or one that is not a push sent to me: 404
        ``message_not_found``."""
        tracking.opened_in_app(db.session, program(), current_principal().id, message_id)
