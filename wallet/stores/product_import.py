"""Importing products from a CSV file: each row checked and reported by its line, good rows kept."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..barcodes import normalise_barcode
from ..csvfiles import read_records
from ..db import new_id
from ..errors import Invalid
from ..program import Program
from .models import Product
from .products import MAX_COMPLEMENTARY, product_problems

CSV_COLUMNS = ("sku", "barcode", "name", "description", "category", "price", "currency", "image_url",
               "complementary", "active")


CSV_REQUIRED = ("sku", "barcode", "name")


_TRUE = {"", "1", "true", "yes", "y", "t"}


_FALSE = {"0", "false", "no", "n", "f"}


_BATCH = 1000


@dataclass
class ImportProblem:
    line: int
    sku: str | None
    errors: dict[str, list[str]]

    def __str__(self) -> str:
        fields_ = "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())
        return f"line {self.line}{f' ({self.sku})' if self.sku else ''}: {fields_}"


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[ImportProblem] = field(default_factory=list)
    warnings: list[ImportProblem] = field(default_factory=list)
    dry_run: bool = False

    @property
    def accepted(self) -> int:
        return self.created + self.updated + self.unchanged


@dataclass
class _Row:
    line: int
    values: dict[str, Any]
    complementary_skus: list[str] | None  # None: the file has no complementary column


def _parse_row(raw: dict[str | None, Any], line: int, currency: str,
               columns: set[str]) -> _Row | ImportProblem:
    """A row's values, only for the file's columns: a column the file leaves out is left alone on update; or
    what is wrong with the row."""
    sku = (raw.get("sku") or "").strip() or None
    if raw.get(None):  # surplus cells
        return ImportProblem(line, sku, {"_row": ["More cells than the first line names."]})
    cells = {k: (v if isinstance(v, str) else "") for k, v in raw.items() if k is not None}
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {
        "sku": cells.get("sku", "").strip(), "name": cells.get("name", "").strip(),
        "description": cells.get("description", "").strip(), "category": cells.get("category", "").strip(),
        "currency": cells.get("currency", "").strip().upper() or currency,
        "image_url": cells.get("image_url", "").strip() or None,
    }
    for key in CSV_REQUIRED:
        if not cells.get(key, "").strip():
            errors[key] = ["Required."]
    try:
        values["barcode"] = normalise_barcode(cells.get("barcode", ""))
    except Invalid as error:
        if "barcode" not in errors:
            errors |= error.errors or {}
    price = cells.get("price", "").strip()
    if price:
        try:
            values["price"] = Decimal(price)
        except InvalidOperation:
            values["price"] = price  # reported below as not a decimal
    else:
        values["price"] = None
    active = cells.get("active", "").strip().lower()
    if active in _TRUE or active in _FALSE:
        values["active"] = active in _TRUE
    else:
        errors["active"] = ["true or false (also 1/0, yes/no)."]
    for key, messages in product_problems({k: v for k, v in values.items() if k not in errors}).items():
        if not (key in ("sku", "name") and key in errors):
            errors[key] = messages
    skus = [s.strip() for s in re.split(r"[|;]", cells.get("complementary", "")) if s.strip()]
    if len(skus) > MAX_COMPLEMENTARY:
        errors["complementary"] = [f"At most {MAX_COMPLEMENTARY} SKUs, separated by '|'."]
    if errors:
        return ImportProblem(line, sku, errors)
    values = {k: v for k, v in values.items() if k in CSV_REQUIRED or k in columns}
    linked = list(dict.fromkeys(s for s in skus if s != values["sku"])) if "complementary" in columns else None
    return _Row(line, values, linked)


def _open(lines: Iterable[str]) -> tuple[list[str], Iterator[tuple[int, dict[str | None, Any]]]]:
    """The header, and (line number where the record starts, {column: cell}) for each non-blank record."""
    header, records = read_records(lines)
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if not header or unknown or missing or len(set(header)) != len(header):
        problems = []
        if not header:
            problems.append("The file is empty.")
        if unknown:
            problems.append(f"Unknown columns: {', '.join(repr(h) for h in unknown)}.")
        if missing and header:
            problems.append(f"Missing columns: {', '.join(missing)}.")
        if len(set(header)) != len(header):
            problems.append("A column appears twice.")
        raise Invalid("The file's first line must name the columns: " + ", ".join(CSV_COLUMNS),
                      code="invalid_csv_header", errors={"header": problems})
    return header, records


def import_products(session: Session, program: Program, lines: Iterable[str], *,
                    dry_run: bool = False) -> ImportReport:
    """Create or update products from CSV lines, matched by SKU; each bad row is reported, the good ones kept.

    The caller commits (or, for a dry run, rolls back). Complementary products are named by SKU, separated by
    ``|``; they may point at rows further down the file. An archived product named again is revived. Rows are
    taken in file order: a barcode a row gives up can be taken by a later row, not by an earlier one.
    """
    run = _ImportRun(session, program)
    run.report.dry_run = dry_run
    try:
        header, records = _open(lines)
        run.columns = set(header)
        rows = run.parse(records)
    except csv.Error as error:
        raise Invalid(f"Not a readable CSV file: {error}", code="invalid_csv") from None
    run.plan(rows)
    run.link_complementary()
    run.write()
    return run.report


def chunks(items: list, size: int = _BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class _ImportRun:
    """The whole file is read and checked first, so every product is written once, complementary ids included."""

    def __init__(self, session: Session, program: Program) -> None:
        self.session, self.program = session, program
        self.report = ImportReport()
        self.columns: set[str] = set(CSV_COLUMNS)
        self.ids: dict[str, str] = {}  # sku -> product id (new ones are given theirs before the insert)
        self.creates: dict[str, dict[str, Any]] = {}  # sku -> the new product's column values
        self.updates: dict[str, tuple[Product, dict[str, Any]]] = {}  # sku -> (product, changes)
        self.links: list[tuple[int, str, list[str]]] = []  # (line, sku, complementary SKUs)

    def parse(self, records: Iterator[tuple[int, dict]]) -> list[_Row]:
        rows: list[_Row] = []
        for line, raw in records:
            self.report.rows += 1
            parsed = _parse_row(raw, line, self.program.currency, self.columns)
            if isinstance(parsed, ImportProblem):
                self.report.refused.append(parsed)
            else:
                rows.append(parsed)
        return rows

    def plan(self, rows: list[_Row]) -> None:
        """Decide, in file order, what each good row creates or changes; refuse SKU and barcode clashes."""
        existing: dict[str, Product] = {}
        owner: dict[str, str] = {}  # barcode -> sku, as it will be after the rows so far
        for chunk in chunks(rows):
            existing |= {p.sku: p for p in self.session.scalars(
                select(Product).where(Product.sku.in_({r.values["sku"] for r in chunk})))}
            owner |= dict(self.session.execute(select(Product.barcode, Product.sku).where(
                Product.barcode.in_({r.values["barcode"] for r in chunk}))).all())
        for known in existing.values():
            owner.setdefault(known.barcode, known.sku)
        seen: dict[str, int] = {}  # sku -> line
        now = self.program.now()
        for row in rows:
            values, sku, barcode = row.values, row.values["sku"], row.values["barcode"]
            if sku in seen:
                self._refuse(row, "sku", f"Already on line {seen[sku]} of this file.")
                continue
            holder = owner.get(barcode)
            if holder is not None and holder != sku:
                self._refuse(row, "barcode", f"The product {holder} has this barcode.")
                continue
            seen[sku] = row.line
            product = existing.get(sku)
            if product is None:
                self.creates[sku] = {"id": new_id("prd"), "description": "", "category": "", "price": None,
                                     "currency": self.program.currency, "image_url": None, "active": True,
                                     "complementary": [], "archived_at": None, "created_at": now,
                                     "updated_at": now} | values
                self.ids[sku] = self.creates[sku]["id"]
            else:
                changes = {k: v for k, v in values.items() if getattr(product, k) != v}
                if product.archived_at is not None:
                    changes["archived_at"] = None
                if "barcode" in changes and owner.get(product.barcode) == sku:
                    del owner[product.barcode]
                self.updates[sku] = (product, changes)
                self.ids[sku] = product.id
            owner[barcode] = sku
            if row.complementary_skus is not None:
                self.links.append((row.line, sku, row.complementary_skus))

    def _refuse(self, row: _Row, key: str, message: str) -> None:
        self.report.refused.append(ImportProblem(row.line, row.values["sku"], {key: [message]}))

    def link_complementary(self) -> None:
        """Complementary SKUs become product ids (rows of this file or products already there); unknown: a warning."""
        known = dict(self.ids)
        wanted = list({s for _, _, skus in self.links for s in skus} - set(known))
        for chunk in chunks(wanted):
            known |= dict(self.session.execute(select(Product.sku, Product.id).where(
                Product.sku.in_(chunk), Product.archived_at.is_(None))).all())
        for line, sku, skus in self.links:
            unknown = [s for s in skus if s not in known]
            if unknown:
                self.report.warnings.append(ImportProblem(line, sku, {"complementary": [
                    f"No product with the SKU {', '.join(unknown)}; left out."]}))
            complementary = [known[s] for s in skus if s in known]
            if sku in self.creates:
                self.creates[sku]["complementary"] = complementary
            else:
                product, changes = self.updates[sku]
                if product.complementary != complementary:
                    changes["complementary"] = complementary

    def write(self) -> None:
        """Changes first, in file order (a barcode given up is free for a later row), then the new products in bulk."""
        now = self.program.now()
        for product, changes in self.updates.values():
            if not changes:
                self.report.unchanged += 1
                continue
            for key, value in changes.items():
                setattr(product, key, value)
            product.updated_at = now
            self.report.updated += 1
            if "barcode" in changes:
                self.session.flush()  # free the old barcode before another row takes it
        self.session.flush()
        for chunk in chunks(list(self.creates.values())):
            self.session.execute(insert(Product), chunk)
        self.report.created += len(self.creates)
