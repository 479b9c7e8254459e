"""Products: what a member scans and a basket holds, by SKU and barcode (EAN-13, EAN-8, UPC-A), with what goes with them."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..barcodes import normalise_barcode
from ..errors import Conflict, Invalid, NotFound
from ..program import Program
from .models import Product

PRODUCT_FIELDS = ("sku", "barcode", "name", "description", "category", "price", "currency", "image_url",
                  "complementary", "active")


SKU = re.compile(r"^[\x21-\x7e]{1,64}$")  # visible ASCII, no spaces: what a till prints and a scanner types


CURRENCY = re.compile(r"^[A-Z]{3}$")


MAX_COMPLEMENTARY = 20


MAX_PRICE = Decimal("9999999999.99")


def product_problems(data: dict[str, Any]) -> dict[str, list[str]]:
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
        exponent = price.as_tuple().exponent if isinstance(price, Decimal) else None  # an int when finite
        if not (isinstance(price, Decimal) and price.is_finite() and 0 <= price <= MAX_PRICE
                and isinstance(exponent, int) and exponent >= -2):
            errors["price"] = ["A non-negative amount with at most two decimal places."]
    if "currency" in data and not (isinstance(data["currency"], str) and CURRENCY.match(data["currency"])):
        errors["currency"] = ["A three-letter ISO 4217 code such as ILS."]
    if "image_url" in data and data["image_url"] is not None and not http_url(data["image_url"]):
        errors["image_url"] = ["An http or https URL of at most 500 characters."]
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = ["true or false."]
    if "complementary" in data and not (isinstance(data["complementary"], list)
                                        and len(data["complementary"]) <= MAX_COMPLEMENTARY
                                        and all(isinstance(i, str) for i in data["complementary"])):
        errors["complementary"] = [f"A list of at most {MAX_COMPLEMENTARY} product ids."]
    return errors


def http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 500 or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def clean_product(data: dict[str, Any]) -> dict[str, Any]:
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


def check_unique(session: Session, product: Product | None, sku: str | None, barcode: str | None) -> None:
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
    data = clean_product(data)
    errors = product_problems(data)
    errors |= {k: ["Required."] for k in ("sku", "barcode", "name") if data.get(k) is None}
    if "barcode" in data and data["barcode"] is not None:
        try:
            data["barcode"] = normalise_barcode(data["barcode"])
        except Invalid as error:
            errors |= error.errors or {}
    if errors:
        raise Invalid("The product is not valid", code="invalid_barcode" if set(errors) == {"barcode"} else None,
                      errors=errors)
    check_unique(session, None, data["sku"], data["barcode"])
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
    changes = clean_product(changes)
    errors = product_problems(changes)
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
    check_unique(session, product, changes.get("sku"), changes.get("barcode"))
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
