"""``POST /admin/products/import``: the catalogue's CSV import (``loyalty products import``) over HTTP.

The body is the CSV file itself (``text/csv``) or a ``multipart/form-data`` form with the file in ``file``, up to
``LOYALTY_MAX_IMPORT_BYTES``. Bad rows are reported by their line and skipped; the good ones are saved, in one
transaction with the audit entry. A cell a spreadsheet would run as a formula is never echoed as it was: the
report's ``sku`` and messages quote it with a leading apostrophe (OWASP's CSV injection advice), so a report
pasted into a spreadsheet stays text.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask import request
from marshmallow import fields
from werkzeug.exceptions import UnsupportedMediaType

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

MAX_ROWS = 100_000  # a bigger catalogue goes in several files (or the CLI); one transaction stays bounded
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
_FORMULA = re.compile(r"(^|(?<=[\s,'\"(]))([=+\-@\t\r][^\s,]*)")


def spreadsheet_safe(text: str) -> str:
    """A value a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first), quoted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _safe_message(message: str, cells: set[str]) -> str:
    for cell in sorted(cells, key=len, reverse=True):
        if cell and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell in message:
            message = message.replace(cell, spreadsheet_safe(cell))
    return message


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
                cells |= {m.group(2) for m in _FORMULA.finditer(message)}
        out.append({"line": problem.line, "sku": None if problem.sku is None else spreadsheet_safe(problem.sku),
                    "errors": {k: [_safe_message(m, cells) for m in v] for k, v in problem.errors.items()}})
    return out


def _csv_text() -> tuple[str, str]:
    """The uploaded file's text and name; problem+json (415, 422) for what is not a UTF-8 CSV file."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None or len(request.files) != 1:
            raise Invalid("Send the CSV file in the form field 'file'", code="invalid_csv",
                          errors={"file": ["One file, in the field 'file'."]})
        data, name = upload.read(), upload.filename or "upload.csv"
    elif mimetype in CSV_TYPES:
        data, name = request.get_data(cache=True), "upload.csv"
    else:
        raise UnsupportedMediaType("Send the file as text/csv, or as multipart/form-data with the file in 'file'")
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's byte order mark is not part of the first column's name
    except UnicodeDecodeError as error:
        raise Invalid(f"The file is not UTF-8 text (byte {error.start})", code="invalid_csv",
                      errors={"file": ["Save the file as CSV UTF-8."]}) from None
    if "\x00" in text:
        raise Invalid("The file holds NUL characters: not a CSV text file", code="invalid_csv",
                      errors={"file": ["Not a text file."]})
    return text, name


def _rows_within_limit(text: str) -> None:
    # Counting newlines over-counts quoted multi-line cells (and blank lines), so count records properly only when
    # the quick count passes the limit.
    if max(text.count("\n"), text.count("\r")) <= MAX_ROWS:  # CR-only lines (old Mac files) too
        return
    records = sum(1 for cells in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in cells))
    if records - 1 > MAX_ROWS:
        raise Invalid(f"At most {MAX_ROWS:,} rows in one file; split the catalogue", code="too_many_rows",
                      errors={"file": [f"{records - 1} rows; at most {MAX_ROWS}."]})


# The default LOYALTY_MAX_IMPORT_BYTES, as the document states it (a server may be configured otherwise: 413 says so).
_DOCUMENTED_LIMIT = 20 * 1024 * 1024


@blp.route("/products/import")
class ProductImport(Resource):
    decorators = [marketer_required]
    raw_body = True  # api._guard_bodies: the body is a file, not JSON; LOYALTY_MAX_IMPORT_BYTES is its limit

    @blp.arguments(ImportArgs, location="query")
    @blp.response(200, ImportReportSchema)
    @blp.doc(requestBody={"required": True, "description": "the CSV file: columns " + ", ".join(stores.CSV_COLUMNS)
                          + " (sku, barcode and name required; complementary: SKUs separated by '|')",
                          "content": {
                              "text/csv": {"schema": {"type": "string", "maxLength": _DOCUMENTED_LIMIT}},
                              "multipart/form-data": {"schema": {
                                  "type": "object", "required": ["file"], "maxProperties": 1,
                                  "properties": {"file": {"type": "string", "format": "binary",
                                                          "maxLength": _DOCUMENTED_LIMIT}}}}}})
    def post(self, args):
        """Create or update products from a CSV file, matched by SKU; a per-row report, bad rows skipped."""
        text, name = _csv_text()
        _rows_within_limit(text)
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
