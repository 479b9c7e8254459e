"""Stores and products: where members shop and what they scan; the marketer's catalogue and its CSV import.

Neither is ever deleted: check-ins, scans and purchases point at them. Deleting one archives it: it disappears
from the marketer's lists and from the shopper's app, and its code, SKU and barcode stay reserved.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import String, Text, func, insert, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .barcodes import normalise_barcode
from .db import Base, id_column, new_id, utcnow
from .errors import Conflict, Invalid, NotFound
from .program import Program


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[str] = id_column("sto")
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(240), default="")
    lat: Mapped[float]
    lon: Mapped[float]
    radius_m: Mapped[int] = mapped_column(default=150)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    check_in_cooldown_minutes: Mapped[int] = mapped_column(default=240)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = id_column("prd")
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    # Stored as GTIN-13: a UPC-A code and its EAN-13 form are one product.
    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="", index=True)
    price: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3), default="ILS")
    image_url: Mapped[str | None] = mapped_column(String(500))
    complementary: Mapped[list] = mapped_column(default=list)  # product ids, the marketer's order
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]


# ------------------------------------------------------------------ limits shared by the API, the CLI and the import

STORE_FIELDS = ("code", "name", "address", "lat", "lon", "radius_m", "timezone", "check_in_cooldown_minutes", "active")
PRODUCT_FIELDS = ("sku", "barcode", "name", "description", "category", "price", "currency", "image_url",
                  "complementary", "active")
STORE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
SKU = re.compile(r"^[\x21-\x7e]{1,64}$")  # visible ASCII, no spaces: what a till prints and a scanner types
CURRENCY = re.compile(r"^[A-Z]{3}$")
RADIUS_M = (10, 10_000)
COOLDOWN_MINUTES = (1, 43_200)  # a minute to thirty days
MAX_COMPLEMENTARY = 20
MAX_PRICE = Decimal("9999999999.99")


_NOT_ZONES = {"localtime", "posixrules", "Factory"}  # files in some zoneinfo folders, not IANA zones


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(z for z in available_timezones()
                     if z not in _NOT_ZONES and not z.startswith(("posix/", "right/")))


def valid_timezone(name: Any) -> bool:
    """An IANA zone name this machine knows (``Asia/Jerusalem``); not ``localtime`` or a file path."""
    if not isinstance(name, str) or name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _number_within(value: Any, low: float, high: float) -> bool:
    """A real number (not a bool) in [low, high]; NaN and infinities are outside any range."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _store_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if "code" in data and not (isinstance(data["code"], str) and STORE_CODE.match(data["code"])):
        errors["code"] = ["1 to 32 capital letters, digits, '-' or '_'."]
    if "name" in data and not (isinstance(data["name"], str) and 1 <= len(data["name"].strip()) <= 120):
        errors["name"] = ["1 to 120 characters."]
    if "address" in data and not (isinstance(data["address"], str) and len(data["address"]) <= 240):
        errors["address"] = ["At most 240 characters."]
    if "lat" in data and not _number_within(data["lat"], -90, 90):
        errors["lat"] = ["A latitude from -90 to 90."]
    if "lon" in data and not _number_within(data["lon"], -180, 180):
        errors["lon"] = ["A longitude from -180 to 180."]
    if "radius_m" in data and not (isinstance(data["radius_m"], int) and not isinstance(data["radius_m"], bool)
                                   and RADIUS_M[0] <= data["radius_m"] <= RADIUS_M[1]):
        errors["radius_m"] = [f"Whole metres from {RADIUS_M[0]} to {RADIUS_M[1]}."]
    if "timezone" in data and not valid_timezone(data["timezone"]):
        errors["timezone"] = ["An IANA time zone such as Asia/Jerusalem."]
    minutes = data.get("check_in_cooldown_minutes", COOLDOWN_MINUTES[0])
    if not (isinstance(minutes, int) and not isinstance(minutes, bool)
            and COOLDOWN_MINUTES[0] <= minutes <= COOLDOWN_MINUTES[1]):
        errors["check_in_cooldown_minutes"] = [f"Whole minutes from {COOLDOWN_MINUTES[0]} to {COOLDOWN_MINUTES[1]}."]
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = ["true or false."]
    return errors


# ------------------------------------------------------------------ stores

def get_store(session: Session, store_id: str) -> Store:
    """A store that has not been archived, or NotFound."""
    store = session.get(Store, store_id) if isinstance(store_id, str) else None
    if store is None or store.archived_at is not None:
        raise NotFound("No such store", code="store_not_found")
    return store


def store_by_code(session: Session, code: str) -> Store | None:
    return session.scalar(select(Store).where(Store.code == code))


def create_store(session: Session, program: Program, data: dict[str, Any]) -> Store:
    """A new store; its code is unique, its coordinates, radius and time zone are checked."""
    data = {k: v for k, v in data.items() if k in STORE_FIELDS}
    if isinstance(data.get("code"), str):
        data["code"] = data["code"].strip().upper()
    missing = [k for k in ("code", "name", "lat", "lon") if data.get(k) is None]
    errors = _store_problems(data) | {k: ["Required."] for k in missing}
    if errors:
        raise Invalid("The store is not valid", errors=errors)
    if store_by_code(session, data["code"]) is not None:
        raise Conflict(f"A store with the code {data['code']} exists", code="store_code_taken",
                       errors={"code": ["Already taken."]})
    now = program.now()
    store = Store(**data, created_at=now, updated_at=now)
    store.name = store.name.strip()
    session.add(store)
    session.flush()
    return store


def update_store(session: Session, program: Program, store_id: str, changes: dict[str, Any]) -> Store:
    """Change a store; deactivating it stops check-ins, scans and purchases there at once."""
    store = get_store(session, store_id)
    changes = {k: v for k, v in changes.items() if k in STORE_FIELDS}
    if isinstance(changes.get("code"), str):
        changes["code"] = changes["code"].strip().upper()
    errors = _store_problems(changes)
    errors |= {k: ["May not be null."] for k, v in changes.items() if v is None}
    if errors:
        raise Invalid("The store is not valid", errors=errors)
    if "code" in changes and changes["code"] != store.code:
        if store_by_code(session, changes["code"]) is not None:
            raise Conflict(f"A store with the code {changes['code']} exists", code="store_code_taken",
                           errors={"code": ["Already taken."]})
    for key, value in changes.items():
        setattr(store, key, value.strip() if key == "name" else value)
    store.updated_at = program.now()
    session.flush()
    return store


def archive_store(session: Session, program: Program, store_id: str) -> None:
    """Retire a store: kept for the history of check-ins and purchases made there, gone from every list."""
    store = get_store(session, store_id)
    store.active = False
    store.archived_at = store.updated_at = program.now()
    session.flush()


def list_stores(session: Session, *, q: str | None = None, active: bool | None = None, limit: int = 50,
                after: str | None = None) -> list[Store]:
    """Stores by id (the cursor), optionally matching ``q`` in code, name or address."""
    query = select(Store).where(Store.archived_at.is_(None))
    if q:
        needle = q.strip().lower()
        query = query.where(or_(func.lower(Store.code).contains(needle, autoescape=True),
                                func.lower(Store.name).contains(needle, autoescape=True),
                                func.lower(Store.address).contains(needle, autoescape=True)))
    if active is not None:
        query = query.where(Store.active.is_(active))
    if after:
        query = query.where(Store.id > after)
    return list(session.scalars(query.order_by(Store.id).limit(limit)))


# ------------------------------------------------------------------ products

def _product_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    """Value checks a schema can't be trusted with (the import and the CLI have none); barcode not included."""
    errors: dict[str, list[str]] = {}
    if "sku" in data and not (isinstance(data["sku"], str) and SKU.match(data["sku"])):
        errors["sku"] = ["1 to 64 visible characters, no spaces."]
    if "name" in data and not (isinstance(data["name"], str) and 1 <= len(data["name"].strip()) <= 200):
        errors["name"] = ["1 to 200 characters."]
    if "description" in data and not (isinstance(data["description"], str) and len(data["description"]) <= 5000):
        errors["description"] = ["At most 5000 characters."]
    if "category" in data and not (isinstance(data["category"], str) and len(data["category"].strip()) <= 64):
        errors["category"] = ["At most 64 characters."]
    if "price" in data and data["price"] is not None:
        price = data["price"]
        if not (isinstance(price, Decimal) and price.is_finite() and 0 <= price <= MAX_PRICE
                and price.as_tuple().exponent >= -2):
            errors["price"] = ["A non-negative amount with at most two decimal places."]
    if "currency" in data and not (isinstance(data["currency"], str) and CURRENCY.match(data["currency"])):
        errors["currency"] = ["A three-letter ISO 4217 code such as ILS."]
    if "image_url" in data and data["image_url"] is not None and not _http_url(data["image_url"]):
        errors["image_url"] = ["An http or https URL of at most 500 characters."]
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = ["true or false."]
    if "complementary" in data and not (isinstance(data["complementary"], list)
                                        and len(data["complementary"]) <= MAX_COMPLEMENTARY
                                        and all(isinstance(i, str) for i in data["complementary"])):
        errors["complementary"] = [f"A list of at most {MAX_COMPLEMENTARY} product ids."]
    return errors


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 500 or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _clean_product(data: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in data.items() if k in PRODUCT_FIELDS}
    for key in ("sku", "name", "category"):
        if isinstance(data.get(key), str):
            data[key] = data[key].strip()
    return data


def _check_complementary(session: Session, ids: list[str], own_id: str | None) -> list[str]:
    """The marketer's list, in their order, without repeats; every id an existing product other than this one."""
    ordered = list(dict.fromkeys(ids))
    if own_id is not None and own_id in ordered:
        raise Invalid("A product does not complement itself", code="invalid_complementary",
                      errors={"complementary": ["A product does not complement itself."]})
    known = set(session.scalars(select(Product.id).where(Product.id.in_(ordered), Product.archived_at.is_(None))))
    unknown = [i for i in ordered if i not in known]
    if unknown:
        raise Invalid("Some complementary products do not exist", code="invalid_complementary",
                      errors={"complementary": [f"No such product: {', '.join(unknown[:5])}."]})
    return ordered


def _check_unique(session: Session, product: Product | None, sku: str | None, barcode: str | None) -> None:
    own = product.id if product is not None else None
    if sku is not None:
        other = session.scalar(select(Product.id).where(Product.sku == sku))
        if other is not None and other != own:
            raise Conflict(f"Another product has the SKU {sku}", code="sku_taken", errors={"sku": ["Already taken."]})
    if barcode is not None:
        other = session.scalar(select(Product.id).where(Product.barcode == barcode))
        if other is not None and other != own:
            raise Conflict(f"Another product has the barcode {barcode}", code="barcode_taken",
                           errors={"barcode": ["Another product has this barcode."]})


def create_product(session: Session, program: Program, data: dict[str, Any]) -> Product:
    """A new product; the barcode's check digit is validated and stored as a 13-digit GTIN."""
    data = _clean_product(data)
    errors = _product_problems(data)
    errors |= {k: ["Required."] for k in ("sku", "barcode", "name") if data.get(k) is None}
    if "barcode" in data and data["barcode"] is not None:
        try:
            data["barcode"] = normalise_barcode(data["barcode"])
        except Invalid as error:
            errors |= error.errors or {}
    if errors:
        raise Invalid("The product is not valid", code="invalid_barcode" if set(errors) == {"barcode"} else None,
                      errors=errors)
    _check_unique(session, None, data["sku"], data["barcode"])
    data["complementary"] = _check_complementary(session, data.get("complementary") or [], None)
    data.setdefault("currency", program.currency)
    now = program.now()
    product = Product(**data, created_at=now, updated_at=now)
    session.add(product)
    session.flush()
    return product


def update_product(session: Session, program: Program, product_id: str, changes: dict[str, Any]) -> Product:
    """Change a product; a new barcode is validated like a new product's."""
    product = get_product(session, product_id)
    changes = _clean_product(changes)
    errors = _product_problems(changes)
    errors |= {k: ["May not be null."] for k, v in changes.items()
               if v is None and k not in ("price", "image_url")}
    if changes.get("barcode") is not None:
        try:
            changes["barcode"] = normalise_barcode(changes["barcode"])
        except Invalid as error:
            errors |= error.errors or {}
    if errors:
        raise Invalid("The product is not valid", code="invalid_barcode" if set(errors) == {"barcode"} else None,
                      errors=errors)
    _check_unique(session, product, changes.get("sku"), changes.get("barcode"))
    if "complementary" in changes:
        changes["complementary"] = _check_complementary(session, changes["complementary"], product.id)
    for key, value in changes.items():
        setattr(product, key, value)
    product.updated_at = program.now()
    session.flush()
    return product


def get_product(session: Session, product_id: str) -> Product:
    """A product that has not been archived, or NotFound."""
    product = session.get(Product, product_id) if isinstance(product_id, str) else None
    if product is None or product.archived_at is not None:
        raise NotFound("No such product", code="product_not_found")
    return product


def archive_product(session: Session, program: Program, product_id: str) -> None:
    """Retire a product: gone from lists and scans; its SKU and barcode stay reserved (a CSV import revives it)."""
    product = get_product(session, product_id)
    product.active = False
    product.archived_at = product.updated_at = program.now()
    session.flush()


def product_by_barcode(session: Session, code: str) -> Product:
    """The active product with this barcode (any of EAN-13, EAN-8, UPC-A); Invalid if the code is malformed."""
    barcode = normalise_barcode(code)
    product = session.scalar(select(Product).where(Product.barcode == barcode, Product.archived_at.is_(None),
                                                   Product.active.is_(True)))
    if product is None:
        raise NotFound("No product has this barcode", code="product_not_found")
    return product


def list_products(session: Session, *, q: str | None = None, category: str | None = None,
                  active: bool | None = None, limit: int = 50, after: str | None = None) -> list[Product]:
    """Search the catalogue: ``q`` matches the name, SKU or description, or a barcode in any of its forms."""
    query = select(Product).where(Product.archived_at.is_(None))
    if q:
        needle = q.strip()
        matches = [func.lower(Product.name).contains(needle.lower(), autoescape=True),
                   func.lower(Product.sku).contains(needle.lower(), autoescape=True),
                   func.lower(Product.description).contains(needle.lower(), autoescape=True)]
        if needle.isdigit():
            try:
                matches.append(Product.barcode == normalise_barcode(needle))
            except Invalid:
                matches.append(Product.barcode.contains(needle, autoescape=True))
        query = query.where(or_(*matches))
    if category is not None:
        query = query.where(Product.category == category.strip())
    if active is not None:
        query = query.where(Product.active.is_(active))
    if after:
        query = query.where(Product.id > after)
    return list(session.scalars(query.order_by(Product.id).limit(limit)))


def products_by_ids(session: Session, ids: list[str]) -> list[Product]:
    """Active products among ``ids``, in the order given."""
    if not ids:
        return []
    found = {p.id: p for p in session.scalars(select(Product).where(
        Product.id.in_(ids), Product.active.is_(True), Product.archived_at.is_(None)))}
    return [found[i] for i in ids if i in found]


# ------------------------------------------------------------------ the catalogue's CSV import

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
               columns: set[str]) -> tuple[_Row | None, ImportProblem | None]:
    """A row's values, only for the file's columns: a column the file leaves out is left alone on update."""
    sku = (raw.get("sku") or "").strip() or None
    if raw.get(None):  # surplus cells
        return None, ImportProblem(line, sku, {"_row": ["More cells than the first line names."]})
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
    for key, messages in _product_problems({k: v for k, v in values.items() if k not in errors}).items():
        if not (key in ("sku", "name") and key in errors):
            errors[key] = messages
    skus = [s.strip() for s in re.split(r"[|;]", cells.get("complementary", "")) if s.strip()]
    if len(skus) > MAX_COMPLEMENTARY:
        errors["complementary"] = [f"At most {MAX_COMPLEMENTARY} SKUs, separated by '|'."]
    if errors:
        return None, ImportProblem(line, sku, errors)
    values = {k: v for k, v in values.items() if k in CSV_REQUIRED or k in columns}
    linked = list(dict.fromkeys(s for s in skus if s != values["sku"])) if "complementary" in columns else None
    return _Row(line, values, linked), None


def _open(lines: Iterable[str]) -> tuple[list[str], Iterator[tuple[int, dict[str | None, Any]]]]:
    """The header, and (line number where the record starts, {column: cell}) for each non-blank record."""
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]
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

    def records() -> Iterator[tuple[int, dict[str | None, Any]]]:
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                record: dict[str | None, Any] = dict(zip(header, cells, strict=False))  # short rows: blanks
                if len(cells) > len(header):
                    record[None] = cells[len(header):]
                yield start, record
            start = reader.line_num + 1

    return header, records()


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


def _chunks(items: list, size: int = _BATCH) -> Iterator[list]:
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
        rows = []
        for line, raw in records:
            self.report.rows += 1
            row, problem = _parse_row(raw, line, self.program.currency, self.columns)
            if problem is not None:
                self.report.refused.append(problem)
            else:
                rows.append(row)
        return rows

    def plan(self, rows: list[_Row]) -> None:
        """Decide, in file order, what each good row creates or changes; refuse SKU and barcode clashes."""
        existing: dict[str, Product] = {}
        owner: dict[str, str] = {}  # barcode -> sku, as it will be after the rows so far
        for chunk in _chunks(rows):
            existing |= {p.sku: p for p in self.session.scalars(
                select(Product).where(Product.sku.in_({r.values["sku"] for r in chunk})))}
            owner |= dict(self.session.execute(select(Product.barcode, Product.sku).where(
                Product.barcode.in_({r.values["barcode"] for r in chunk}))).all())
        for product in existing.values():
            owner.setdefault(product.barcode, product.sku)
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
        for chunk in _chunks(wanted):
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
        for chunk in _chunks(list(self.creates.values())):
            self.session.execute(insert(Product), chunk)
        self.report.created += len(self.creates)
