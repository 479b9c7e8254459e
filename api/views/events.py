"""The event log for admins: ``GET /admin/events`` in commit order, and each type's ``data`` schema in the OpenAPI
document."""
from __future__ import annotations

from marshmallow import fields, validate
from webargs.fields import DelimitedList

from wallet import events
from wallet.errors import Invalid

from ..auth import admin_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema, Time, decode_cursor, encode_cursor, page_schema

DATA_REF = "#/components/schemas/EventData.{}"


def _register_data_schemas(state) -> None:
    """Each type's ``data`` schema as a component of this app's OpenAPI document."""
    spec = state.app.extensions["loyalty.api"].spec
    for type_, schema in events.DATA_SCHEMAS.items():
        spec.components.schema(f"EventData.{type_}", {**schema, "title": type_})


blp.record_once(_register_data_schemas)


class EventSchema(StrictSchema):
    id = fields.String()
    type = fields.String(metadata={"enum": list(events.TYPES)})
    occurred_at = Time()
    member_id = fields.String(allow_none=True)
    store_id = fields.String(allow_none=True)
    channel = fields.String(metadata={"enum": list(events.CHANNELS)})
    actor = fields.String(metadata={"description": "who made the change: member:<id>, staff:<id>, job:<name>, ..."})
    data = fields.Dict(metadata={"description": "ids, codes, amounts and points, never personal data; the schema "
                                                "of each type is EventData.<type>",
                                 "anyOf": [{"$ref": DATA_REF.format(t)} for t in events.TYPES]})


EventPageSchema = page_schema(EventSchema, "EventPage")


class EventArgs(StrictSchema):
    after = fields.String(load_default=None, validate=validate.Length(max=200),
                          metadata={"description": "next_cursor of the page before; absent: from the start"})
    cursor = fields.String(load_default=None, validate=validate.Length(max=200), metadata={"description": "= after"})
    type = DelimitedList(fields.String(validate=validate.OneOf(events.TYPES)), validate=validate.Length(max=100),
                         metadata={"description": "comma-separated event types"})
    member_id = fields.String(load_default=None, validate=validate.Length(1, 32))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


def decode_position(cursor: str | None) -> tuple[int, int] | None:
    """An event cursor: [transaction id, position]."""
    value = decode_cursor(cursor, list)
    if value is None:
        return None
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor", errors={"after": ["Unknown cursor."]})
    return (value[0], value[1])


@blp.route("/events")
class Events(Resource):
    decorators = [admin_required]

    @blp.arguments(EventArgs, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, args):
        """The event log in commit order; follow ``next_cursor`` with ``after`` (an empty page: nothing new yet)."""
        after = decode_position(args["after"] or args["cursor"])
        found = events.read(db.session, after, limit=args["limit"], types=args.get("type"), member_id=args["member_id"])
        return {"items": found,
                "next_cursor": encode_cursor(list(found[-1].cursor)) if found else None}
