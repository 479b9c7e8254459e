"""Reading an uploaded CSV file, shared by the imports (products, social profiles): the header, then each
non-blank record with the line it starts on, so a report can name the line a person sees in their editor."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

# A cell may be as large as the whole upload: an oversized cell is then one bad row, reported by its line, instead
# of a csv.Error that stops the file (the upload's size is bounded before this: LOYALTY_MAX_IMPORT_BYTES).
FIELD_LIMIT = 256 * 1024 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A value a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first), quoted with an
    apostrophe (OWASP's CSV injection advice), so a report pasted into a spreadsheet stays text."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


Record = dict[str | None, Any]  # {column: cell}; None: the surplus cells past the header's columns


def read_records(lines: Iterable[str]) -> tuple[list[str], Iterator[tuple[int, Record]]]:
    """The header (names trimmed and lower-cased), and (line where the record starts, record) for each
    non-blank record; a short row's missing cells are blank. csv.Error (a broken quote) surfaces while iterating."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]

    def records() -> Iterator[tuple[int, Record]]:
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                record: Record = dict(zip(header, cells, strict=False))
                if len(cells) > len(header):
                    record[None] = cells[len(header):]
                yield start, record
            start = reader.line_num + 1

    return header, records()
