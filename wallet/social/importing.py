"""Importing social profiles from the social side: CSV or JSON rows matched to members by email or phone,
applied only to members who share their social data, each bad row reported by its line (CSV) or position (JSON).

A row names ``email`` or ``phone`` (E.164 through ``wallet.phones``), ``network`` and ``handle``; every other
column (JSON: key) is an attribute. Reports never echo a cell: messages name columns (spreadsheet-safe) and lines.
Writes are set-based: members are matched a thousand at a time and profiles upserted in multi-row statements,
so 100,000 rows are a few hundred statements, not a query per row.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from ..csvfiles import read_records, spreadsheet_safe
from ..db import on_postgres
from ..errors import Invalid, NotFound
from ..members import Member, normalise_email
from ..phones import normalise_phone
from ..program import Program
from .consent import shares
from .models import ATTRIBUTE_VALUE_MAX, SocialAttribute, SocialImport, SocialNetwork
from .profile import validate_profile

KEYS = ("email", "phone")
REQUIRED = ("network", "handle")
CELL_MAX = 1000  # a longer cell is a bad row (the limit on what is kept is lower: attributes, handles)
_CHUNK = 5000


@dataclass
class ImportRow:
    row: int  # the CSV line where the row starts (the header is line 1), or the JSON array position from 1
    email: str | None
    phone: str | None
    network: str
    handle: str
    attributes: dict[str, str]


@dataclass
class ImportReport:
    rows: int = 0
    matched: int = 0
    applied: int = 0
    skipped_no_consent: int = 0
    unmatched: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "rows": self.rows, "matched": self.matched, "applied": self.applied,
                "skipped_no_consent": self.skipped_no_consent, "unmatched": self.unmatched,
                "errors": sorted(self.errors, key=lambda e: e["row"])}


def _shown(name: str) -> str:
    name = name if len(name) <= 40 else name[:40] + "…"
    return '"' + spreadsheet_safe(name) + '"'


def _row(values: dict[str, Any], row: int, report: ImportReport) -> ImportRow | None:
    """One row's values as an ImportRow, or None with its error in the report."""
    def fail(message: str) -> ImportRow | None:
        report.errors.append({"row": row, "message": message})
        return None
    for key, value in values.items():
        if isinstance(value, str) and len(value) > CELL_MAX:
            return fail(f"The {_shown(key)} cell holds {len(value):,} characters; at most {CELL_MAX}.")
    email = values.get("email")
    phone = values.get("phone")
    email = email.strip() if isinstance(email, str) and email.strip() else None
    phone = phone.strip() if isinstance(phone, str) and phone.strip() else None
    if email is None and phone is None:
        return fail("The row needs an email or a phone.")
    if email is not None:
        try:
            email = normalise_email(email)
        except Invalid:
            return fail("The email is not a valid email address.")
    if phone is not None:
        phone = normalise_phone(phone)
        if phone is None:
            return fail("The phone is not a phone number.")
    attributes = {k: v for k, v in values.items() if k not in (*KEYS, *REQUIRED)}
    for key in list(attributes):
        if attributes[key] is None or attributes[key] == "":
            del attributes[key]  # an empty cell sets nothing
    try:
        networks, clean = validate_profile([{"network": values.get("network"), "handle": values.get("handle")}],
                                           attributes)
    except Invalid as error:
        fields_ = sorted((error.errors or {}).items())
        parts = []
        for where, messages in fields_:
            where = where.replace("networks[0].", "")
            parts.append(f"{_shown(where)}: {' '.join(messages)}")
        return fail("; ".join(parts) or "The row is not valid.")
    network, handle = networks[0]
    return ImportRow(row, email, phone, network, handle, clean)


def parse_csv(text: str, report: ImportReport) -> list[ImportRow]:
    """Rows of a CSV file (BOM already gone: ``utf-8-sig``; CRLF or CR or LF lines); 422 for a header without
    ``network``, ``handle`` and ``email`` or ``phone``; a column that can't be an attribute is reported (row 1)
    and ignored; each bad row reported by its line."""
    header, records = read_records(io.StringIO(text, newline=""))
    problems = []
    if not header:
        problems.append("The file is empty.")
    missing = [c for c in REQUIRED if c not in header]
    if header and missing:
        problems.append(f"Missing columns: {', '.join(missing)}.")
    if header and not any(k in header for k in KEYS):
        problems.append("Name members by an email or a phone column.")
    if len(set(header)) != len(header):
        problems.append("A column appears twice.")
    if problems:
        raise Invalid("The file's first line must name the columns: email or phone, network, handle, and any "
                      "attributes", code="invalid_csv_header", errors={"header": problems})
    ignored = set()
    for name in header:
        if name in (*KEYS, *REQUIRED):
            continue
        try:
            validate_profile([], {name: ""})
        except Invalid:
            ignored.add(name)
            report.errors.append({"row": 1, "message": f"Column {_shown(name)} ignored: an attribute's name is 1 "
                                                       "to 40 of a-z, 0-9 and _, starting with a letter."})
    rows = []
    try:
        for line, record in records:
            report.rows += 1
            if record.get(None):
                report.errors.append({"row": line, "message": "More cells than the first line names."})
                continue
            values = {k: v for k, v in record.items() if k is not None and k not in ignored}
            parsed = _row(values, line, report)
            if parsed is not None:
                rows.append(parsed)
    except csv.Error as error:
        raise Invalid(f"Not a readable CSV file: {error}", code="invalid_csv") from None
    return rows


def parse_json(text: str, report: ImportReport) -> list[ImportRow]:
    """Rows of a JSON array of objects; each bad element reported by its position (from 1)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise Invalid("Not a JSON document", code="invalid_json", errors={"_body": ["Not JSON."]}) from None
    if not isinstance(data, list):
        raise Invalid("Send a JSON array of rows", code="invalid_json", errors={"_body": ["An array of objects."]})
    rows = []
    for i, item in enumerate(data, start=1):
        report.rows += 1
        if not isinstance(item, dict):
            report.errors.append({"row": i, "message": "A row is an object."})
            continue
        if any(isinstance(v, (dict, list)) for v in item.values()):
            report.errors.append({"row": i, "message": "Values are texts, numbers or true/false."})
            continue
        parsed = _row(item, i, report)
        if parsed is not None:
            rows.append(parsed)
    return rows


def _chunks(items: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _match(session: Session, rows: list[ImportRow]) -> tuple[dict[str, tuple[str, bool]], dict[str, tuple[str, bool]]]:
    """Members by email and by phone: (id, shares social data)."""
    by_email: dict[str, tuple[str, bool]] = {}
    by_phone: dict[str, tuple[str, bool]] = {}
    emails = sorted({r.email for r in rows if r.email})
    phones = sorted({r.phone for r in rows if r.phone and not r.email})
    for chunk in _chunks(emails):
        for id_, email, consents in session.execute(select(Member.id, Member.email, Member.consents)
                                                    .where(Member.email.in_(chunk), Member.status == "active")):
            by_email[email] = (id_, shares(consents))
    for chunk in _chunks(phones):
        for id_, phone, consents in session.execute(select(Member.id, Member.phone, Member.consents)
                                                    .where(Member.phone.in_(chunk), Member.status == "active")
                                                    .order_by(Member.id)):
            by_phone.setdefault(phone, (id_, shares(consents)))
    return by_email, by_phone


_UPSERTS = {  # PostgreSQL: one statement per chunk, the rows passed as arrays (unnest), truly set-based
    "social_networks": "INSERT INTO social_networks (member_id, network, handle, linked_at) "
                       "SELECT * FROM unnest(CAST(:member_id AS text[]), CAST(:network AS text[]), "
                       "CAST(:handle AS text[]), CAST(:linked_at AS timestamp[])) "
                       "ON CONFLICT (member_id, network) DO UPDATE SET handle = excluded.handle, "
                       "linked_at = excluded.linked_at",
    "social_attributes": "INSERT INTO social_attributes (member_id, key, value) "
                         "SELECT * FROM unnest(CAST(:member_id AS text[]), CAST(:key AS text[]), "
                         "CAST(:value AS text[])) "
                         "ON CONFLICT (member_id, key) DO UPDATE SET value = excluded.value",
}


def _upsert(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str], updated: list[str]) -> None:
    """Insert or update many rows: on PostgreSQL one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO
    UPDATE`` per 20,000 rows; elsewhere one executemany of the same upsert."""
    connection = session.connection()
    if on_postgres(session):
        columns = list(rows[0])
        for chunk in _chunks(rows, 20_000):
            params = {c: [r[c] if c != "linked_at" else r[c].astimezone(UTC).replace(tzinfo=None) for r in chunk]
                      for c in columns}
            connection.execute(text(_UPSERTS[model.__tablename__]), params)
        return
    stmt = sqlite.insert(model.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in updated})
    for chunk in _chunks(rows, 10_000):
        connection.execute(stmt, chunk)


def import_rows(session: Session, program: Program, rows: list[ImportRow], report: ImportReport, *,
                dry_run: bool = False) -> ImportReport:
    """Match the rows and apply them to the members who share their social data (the caller commits, or rolls
    back a dry run; a dry run writes nothing here either). A second row for the same member and network is
    reported and skipped; attributes of one member's rows are merged, a later row's value winning."""
    report.dry_run = dry_run
    by_email, by_phone = _match(session, rows)
    now = program.now()
    networks: dict[tuple[str, str], dict[str, Any]] = {}
    seen: dict[tuple[str, str], int] = {}
    attributes: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        found = by_email.get(row.email) if row.email else by_phone.get(row.phone or "")
        if found is None:
            report.unmatched += 1
            continue
        member_id, consented = found
        if (member_id, row.network) in seen:
            report.errors.append({"row": row.row, "message": f"The same member and network as row "
                                                             f"{seen[(member_id, row.network)]}: skipped."})
            continue
        seen[(member_id, row.network)] = row.row
        report.matched += 1
        if not consented:
            report.skipped_no_consent += 1
            continue
        report.applied += 1
        networks[(member_id, row.network)] = {"member_id": member_id, "network": row.network, "handle": row.handle,
                                              "linked_at": now}
        for key, value in row.attributes.items():
            attributes[(member_id, key)] = {"member_id": member_id, "key": key, "value": value[:ATTRIBUTE_VALUE_MAX]}
    if not dry_run:
        if networks:
            _upsert(session, SocialNetwork, list(networks.values()), ["member_id", "network"], ["handle", "linked_at"])
        if attributes:
            _upsert(session, SocialAttribute, list(attributes.values()), ["member_id", "key"], ["value"])
    return report


def run_import(session: Session, program: Program, text: str, kind: str, *, dry_run: bool = False) -> ImportReport:
    """Parse and import a whole file (``kind``: csv or json)."""
    report = ImportReport(dry_run=dry_run)
    rows = parse_csv(text, report) if kind == "csv" else parse_json(text, report)
    return import_rows(session, program, rows, report, dry_run=dry_run)


def queue_import(session: Session, program: Program, text: str, kind: str, *, dry_run: bool,
                 actor: str) -> SocialImport:
    """Keep a large file for the worker (checked first: a header the worker would refuse is refused now)."""
    if kind == "csv":
        header, _ = read_records(io.StringIO(text[:65536], newline=""))
        if not all(c in header for c in REQUIRED) or not any(k in header for k in KEYS):
            parse_csv(text.split("\n", 1)[0], ImportReport())  # raises the header's 422
    job = SocialImport(status="queued", kind=kind, body=text, report={"dry_run": dry_run}, actor=actor[:64],
                       created_at=program.now())
    session.add(job)
    session.flush()
    return job


def get_import(session: Session, import_id: str) -> SocialImport:
    """A queued or finished import, or NotFound."""
    job = session.get(SocialImport, import_id)
    if job is None:
        raise NotFound("No such import", code="import_not_found")
    return job


def run_queued(session: Session, program: Program) -> int:
    """The worker's job: import one queued file (1), or nothing is queued (0). Its report replaces the file."""
    query = select(SocialImport).where(SocialImport.status == "queued").order_by(SocialImport.created_at).limit(1)
    if on_postgres(session):
        query = query.with_for_update(skip_locked=True)
    job = session.scalar(query)
    if job is None:
        return 0
    dry_run = bool((job.report or {}).get("dry_run"))
    finished: datetime = program.now()
    try:
        savepoint = session.begin_nested()
        report = run_import(session, program, job.body or "", job.kind, dry_run=dry_run)
        if dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
        job.status, job.report = "done", report.as_dict()
    except Invalid as error:
        savepoint.rollback()
        job.status, job.report = "failed", {"dry_run": dry_run, "code": error.code, "detail": error.detail,
                                            "errors": error.errors}
    job.body, job.finished_at = None, finished
    session.flush()
    return 1
