"""Uploaded files (the CSV imports): reading the body as UTF-8 text, the row limit, and keeping a report's echoes
of the file spreadsheet-safe. One place for every import view."""
from __future__ import annotations

import csv
import io
import re

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from wallet.csvfiles import spreadsheet_safe
from wallet.errors import Invalid

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
# The default LOYALTY_MAX_IMPORT_BYTES, as the OpenAPI document states an upload's size (a server may be configured
# otherwise: 413 says so).
DOCUMENTED_LIMIT = 20 * 1024 * 1024
FORMULA = re.compile(r"(^|(?<=[\s,'\"(]))([=+\-@\t\r][^\s,]*)")


def safe_message(message: str, cells: set[str]) -> str:
    for cell in sorted(cells, key=len, reverse=True):
        if cell and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell in message:
            message = message.replace(cell, spreadsheet_safe(cell))
    return message


def csv_text() -> tuple[str, str]:
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


def rows_within_limit(text: str, max_rows: int) -> None:
    # Counting newlines over-counts quoted multi-line cells (and blank lines), so count records properly only when
    # the quick count passes the limit.
    if max(text.count("\n"), text.count("\r")) <= max_rows:  # CR-only lines (old Mac files) too
        return
    records = sum(1 for cells in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in cells))
    if records - 1 > max_rows:
        raise Invalid(f"At most {max_rows:,} rows in one file; split the catalogue", code="too_many_rows",
                      errors={"file": [f"{records - 1} rows; at most {max_rows}."]})



__all__ = ["CSV_TYPES", "FORMULA", "csv_text", "rows_within_limit", "safe_message", "spreadsheet_safe"]
