"""The member's social profile (``/me/social``) and the import from the social side (``/admin/social/import``)."""
from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from marshmallow import fields, validate
from werkzeug.exceptions import UnsupportedMediaType

from wallet import social
from wallet.db import new_id
from wallet.errors import Invalid
from wallet.social.models import ATTRIBUTE_VALUE_MAX, ATTRIBUTES_MAX, HANDLE_MAX, NETWORKS

from .. import audit_trail
from ..auth import current_principal, marketer_required, member_required
from ..blueprints import admin, me
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema, Time
from ..state import program
from ..uploads import CSV_TYPES, DOCUMENTED_LIMIT, csv_text, rows_within_limit, spreadsheet_safe
from .me import _member

IMPORT_MAX_ROWS = 1_000_000


def profile_fields() -> tuple[str, ...]:
    return tuple(current_app.config.get("LOYALTY_PROFILE_FIELDS", social.PROFILE_FIELDS))


class NetworkSchema(StrictSchema):
    network = fields.String(required=True, validate=validate.OneOf(NETWORKS))
    handle = fields.String(required=True, validate=validate.Length(1, HANDLE_MAX + 1),
                           metadata={"description": "letters (any script), digits, _ . -; an '@' first is dropped"})


class NetworkInSchema(NetworkSchema):
    """A network handle as a client sends it: NetworkSchema's fields and checks, under its own name in the OpenAPI document so that
    NetworkSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class SocialProfileSchema(StrictSchema):
    networks = fields.List(fields.Nested(NetworkInSchema), load_default=list, validate=validate.Length(max=len(NETWORKS)))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(1, 40)), load_default=dict,
                             metadata={"description": "a flat map: keys a-z0-9_ (at most 40), values a text of at "
                                                      f"most {ATTRIBUTE_VALUE_MAX} characters, a number or a boolean "
                                                      "(kept as text)", "maxProperties": ATTRIBUTES_MAX})
    share_consent = fields.Boolean(truthy={True}, falsy={False}, metadata={"description": "the social_data consent; false withdraws it and deletes "
                                                            "the social data; absent: unchanged"})


class SocialProfileOutSchema(StrictSchema):
    networks = fields.List(fields.Nested(NetworkSchema))
    attributes = fields.Dict(keys=fields.String(), values=fields.String())
    share_consent = fields.Boolean()


@me.route("/me/social")
class MySocialProfile(Resource):
    decorators = [member_required]

    @me.response(200, SocialProfileOutSchema)
    def get(self):
        """My social profile; empty unless I share my social data (the social_data consent)."""
        return social.get_profile(db.session, _member())

    @me.arguments(SocialProfileSchema)
    @me.response(200, SocialProfileOutSchema)
    def put(self, data):
        """Replace my social profile (networks and attributes need share_consent); granting the consent the first
        time fires data_shared."""
        return social.put_profile(db.session, program(), _member(), data, profile_fields=profile_fields())

    @me.response(204)
    def delete(self):
        """Forget my social profile and withdraw the social_data consent."""
        social.delete_profile(db.session, program(), _member())


# ---------------------------------------------------------------- import

class SocialImportArgs(StrictSchema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "check and report; write nothing"})


class RowErrorSchema(StrictSchema):
    row = fields.Integer(metadata={"description": "CSV: the line where the row starts (the header is line 1); "
                                                  "JSON: the row's position in the array, from 1"})
    message = fields.String(metadata={"description": "never echoes a cell; column names spreadsheet-safe"})


class SocialImportReportSchema(StrictSchema):
    import_id = fields.String()
    dry_run = fields.Boolean()
    rows = fields.Integer()
    matched = fields.Integer()
    applied = fields.Integer()
    skipped_no_consent = fields.Integer()
    unmatched = fields.Integer()
    errors = fields.List(fields.Nested(RowErrorSchema))


class SocialImportQueuedSchema(StrictSchema):
    import_id = fields.String()
    status = fields.String(validate=validate.OneOf(["queued"]))
    dry_run = fields.Boolean()
    report_url = fields.String()


class SocialImportStatusSchema(StrictSchema):
    import_id = fields.String(attribute="id")
    status = fields.String(validate=validate.OneOf(["queued", "running", "done", "failed"]))
    created_at = Time()
    finished_at = Time(allow_none=True)
    report = fields.Dict(allow_none=True, metadata={"description": "the report (as a small import answers), once done"})


def _body() -> tuple[str, str, str]:
    """(text, kind, name) of the upload: CSV (text/csv or a form's file) or a JSON array."""
    if request.mimetype == "application/json":
        data = request.get_data(cache=True)
        try:
            return data.decode("utf-8-sig"), "json", "upload.json"
        except UnicodeDecodeError:
            raise Invalid("The body is not UTF-8 text", code="invalid_json", errors={"_body": ["Not UTF-8."]}) from None
    if request.mimetype not in (*CSV_TYPES, "multipart/form-data"):
        raise UnsupportedMediaType("Send a CSV file (text/csv, or multipart/form-data with the file in 'file') or a "
                                   "JSON array (application/json)")
    text, name = csv_text()
    rows_within_limit(text, IMPORT_MAX_ROWS)
    return text, "csv", name


@admin.route("/social/import")
class SocialImport(Resource):
    decorators = [marketer_required]
    raw_body = True  # api._guard_bodies: the body is a file; LOYALTY_MAX_IMPORT_BYTES is its limit

    @admin.arguments(SocialImportArgs, location="query")
    @admin.response(200, SocialImportReportSchema)
    @admin.alt_response(202, schema=SocialImportQueuedSchema, description="a large file: the worker imports it; "
                                                                            "the report is at report_url")
    @admin.doc(requestBody={"required": True, "description": "CSV: columns email or phone, network, handle, and "
                            "any attribute columns; JSON: an array of objects with the same keys",
                            "content": {"text/csv": {"schema": {"type": "string", "maxLength": DOCUMENTED_LIMIT}},
                                        "application/json": {"schema": {
                                            "type": "array", "maxItems": 1_000_000,
                                            "items": {"type": "object", "maxProperties": 64}}},
                                        "multipart/form-data": {"schema": {
                                            "type": "object", "required": ["file"], "maxProperties": 1,
                                            "properties": {"file": {"type": "string", "format": "binary",
                                                                    "maxLength": DOCUMENTED_LIMIT}}}}}})
    def post(self, args):
        """Import social profiles, matched by email (any case) or phone (E.164); applied only to members who share
        their social data; each bad row reported, good rows kept."""
        text, kind, name = _body()
        if not text.strip():
            raise Invalid("The file is empty", code="invalid_csv_header", errors={"header": ["The file is empty."]})
        actor = current_principal().id
        size = len(text.encode())
        if size > current_app.config.get("LOYALTY_SOCIAL_IMPORT_SYNC_BYTES", 2 * 1024 * 1024):
            job = social.queue_import(db.session, program(), text, kind, dry_run=args["dry_run"],
                                      actor=f"staff:{actor}")
            audit_trail.record("import", "social_profile", job.id, after={
                "file": spreadsheet_safe(name[:200]), "bytes": size, "queued": True, "dry_run": args["dry_run"]})
            url = url_for("admin.SocialImportStatus", import_id=job.id)
            answer = jsonify(SocialImportQueuedSchema().dump({"import_id": job.id, "status": job.status,
                                                              "dry_run": args["dry_run"], "report_url": url}))
            answer.status_code, answer.headers["Location"] = 202, url
            return answer
        report = social.run_import(db.session, program(), text, kind, dry_run=args["dry_run"])
        import_id = new_id("simp")
        answer = {"import_id": import_id, **report.as_dict()}
        if args["dry_run"]:
            db.session.rollback()
        else:
            audit_trail.record("import", "social_profile", import_id, after={
                "file": spreadsheet_safe(name[:200]), "bytes": size,
                **{k: answer[k] for k in ("rows", "matched", "applied", "skipped_no_consent", "unmatched")},
                "errors": len(report.errors)})
        return answer


@admin.route("/social/imports/<string:import_id>")
class SocialImportStatus(Resource):
    decorators = [marketer_required]

    @admin.response(200, SocialImportStatusSchema)
    def get(self, import_id):
        """A background import: queued, then done with its report (or failed, with why)."""
        return social.get_import(db.session, import_id)

