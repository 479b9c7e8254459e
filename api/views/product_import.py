"""``POST /admin/products/import``: the catalogue's CSV import (``loyalty products import``) over HTTP.

The body is the CSV file itself (``text/csv``) or a ``multipart/form-data`` form with the file in ``file``, up to
``LOYALTY_MAX_IMPORT_BYTES``. Bad rows are reported by their line and skipped; the good ones are saved, in one
transaction with the audit entry. A cell a spreadsheet would run as a formula is never echoed as it was: the
report's ``sku`` and messages quote it with a leading apostrophe (OWASP's CSV injection advice), so a report
pasted into a spreadsheet stays text.
"""
from __future__ import annotations

import io
from typing import Any

from marshmallow import fields

from wallet import stores
from wallet.db import new_id
from wallet.errors import Invalid

from .. import audit_trail
from ..auth import marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema
from ..state import program
from ..uploads import DOCUMENTED_LIMIT, FORMULA, csv_text, rows_within_limit, safe_message, spreadsheet_safe

MAX_ROWS = 100_000  # a bigger catalogue goes in several files (or the CLI); one transaction stays bounded
class ImportArgs(StrictSchema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "check and report; save nothing"})


class ImportProblemSchema(StrictSchema):
    line = fields.Integer(metadata={"description": "the file's line where the row starts (the header is line 1)"})
    sku = fields.String(allow_none=True, metadata={"description": "as the row gave it; a formula-like value "
                                                                  "starts with an apostrophe"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ImportReportSchema(StrictSchema):
    import_id = fields.String(metadata={"description": "names this import in the audit log"})
    dry_run = fields.Boolean()
    rows = fields.Integer(metadata={"description": "rows read (blank lines not counted)"})
    accepted = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    refused = fields.List(fields.Nested(ImportProblemSchema), metadata={"description": "rows not saved, and why"})
    warnings = fields.List(fields.Nested(ImportProblemSchema),
                           metadata={"description": "rows saved with something left out"})


def _problems(found: list[stores.ImportProblem]) -> list[dict[str, Any]]:
    out = []
    for problem in found:
        cells = {problem.sku or ""}
        for messages in problem.errors.values():
            for message in messages:
                cells |= {m.group(2) for m in FORMULA.finditer(message)}
        out.append({"line": problem.line, "sku": None if problem.sku is None else spreadsheet_safe(problem.sku),
                    "errors": {k: [safe_message(m, cells) for m in v] for k, v in problem.errors.items()}})
    return out


@blp.route("/products/import")
class ProductImport(Resource):
    decorators = [marketer_required]
    raw_body = True  # api._guard_bodies: the body is a file, not JSON; LOYALTY_MAX_IMPORT_BYTES is its limit

    @blp.arguments(ImportArgs, location="query")
    @blp.response(200, ImportReportSchema)
    @blp.doc(requestBody={"required": True, "description": "the CSV file: columns " + ", ".join(stores.CSV_COLUMNS)
                          + " (sku, barcode and name required; complementary: SKUs separated by '|')",
                          "content": {
                              "text/csv": {"schema": {"type": "string", "maxLength": DOCUMENTED_LIMIT}},
                              "multipart/form-data": {"schema": {
                                  "type": "object", "required": ["file"], "maxProperties": 1,
                                  "properties": {"file": {"type": "string", "format": "binary",
                                                          "maxLength": DOCUMENTED_LIMIT}}}}}})
    def post(self, args):
        """Create or update products from a CSV file, matched by SKU; a per-row report, bad rows skipped."""
        text, name = csv_text()
        rows_within_limit(text, MAX_ROWS)
        if not text.strip():
            raise Invalid("The file is empty", code="invalid_csv_header", errors={"header": ["The file is empty."]})
        report = stores.import_products(db.session, program(), io.StringIO(text, newline=""),
                                        dry_run=args["dry_run"])
        import_id = new_id("imp")
        answer = {"import_id": import_id, "dry_run": args["dry_run"], "rows": report.rows,
                  "accepted": report.accepted, "created": report.created, "updated": report.updated,
                  "unchanged": report.unchanged, "refused": _problems(report.refused),
                  "warnings": _problems(report.warnings)}
        if args["dry_run"]:
            db.session.rollback()
        else:
            audit_trail.record("import", "product", import_id, after={
                "file": spreadsheet_safe(name[:200]), "bytes": len(text.encode()),
                **{k: answer[k] for k in ("rows", "created", "updated", "unchanged")},
                "refused": len(report.refused), "warnings": len(report.warnings)})
        return answer
