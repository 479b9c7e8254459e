"""The staff audit log for admins: who changed what, before and after."""
from __future__ import annotations

from marshmallow import fields, validate

from wallet import audit, members

from ..auth import admin_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, StrictSchema, Time, decode_cursor, page, page_schema


class AuditActorSchema(StrictSchema):
    id = fields.String(attribute="actor_id")
    email = fields.String(attribute="actor_email", allow_none=True)
    role = fields.String(attribute="actor_role")


class AuditEntrySchema(StrictSchema):
    id = fields.String()
    actor = fields.Function(lambda e: AuditActorSchema().dump(e),
                            metadata={"type": "object", "required": ["id", "email", "role"], "properties": {
                                "id": {"type": "string"}, "email": {"type": ["string", "null"]},
                                "role": {"type": "string", "enum": list(members.ROLES)}}})
    action = fields.String()
    entity = fields.String()
    entity_id = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True, metadata={"description": "personal and secret fields that changed appear "
                                                                  "as \"(changed)\", never with their values"})
    changed = fields.List(fields.String(), metadata={"description": "the names of the fields that changed"})
    at = Time()


AuditPageSchema = page_schema(AuditEntrySchema, "AuditPage")


class AuditArgs(ListArgs):
    actor_id = fields.String(validate=validate.Length(1, 32))
    entity = fields.String(validate=validate.Length(1, 40))
    entity_id = fields.String(validate=validate.Length(1, 64))


@blp.route("/audit")
class AuditLog(Resource):
    decorators = [admin_required]

    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, args):
        """Every staff change, newest first, filterable by actor and entity."""
        found = audit.listed(db.session, actor_id=args.get("actor_id"), entity=args.get("entity"),
                             entity_id=args.get("entity_id"), before=decode_cursor(args["cursor"]),
                             limit=args["limit"] + 1)
        return page(found, args["limit"], lambda e: e.id)
