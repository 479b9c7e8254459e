"""Stores and the product catalogue: the marketers' CRUD, the shoppers' store finder, the CSV import command."""
from __future__ import annotations

import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import ValidationError, fields, validate, validates_schema

from wallet import instore, stores

from .. import audit_trail
from ..auth import marketer_required, member_required
from ..blueprints import admin as blp
from ..blueprints import me as me_blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, Money, StrictSchema, Time, decode_cursor, encode_cursor, page, page_schema
from ..state import program


class Number(fields.Float):
    """A JSON number; a string such as "32.1", a boolean, NaN or infinity is refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_nan", False)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Must be a number.")
        return super()._deserialize(value, attr, data, **kwargs)


def Latitude(**kwargs) -> Number:  # noqa: N802 (a field factory reads like a field)
    return Number(validate=validate.Range(-90, 90), metadata={"example": 32.0753}, **kwargs)


def Longitude(**kwargs) -> Number:  # noqa: N802
    return Number(validate=validate.Range(-180, 180), metadata={"example": 34.7754}, **kwargs)


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs):
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)


def _timezone(value: str) -> None:
    if not stores.valid_timezone(value):
        raise ValidationError("An IANA time zone such as Asia/Jerusalem.")


ID = validate.Length(1, 32)

# ------------------------------------------------------------------ stores (marketers)


class StoreSchema(StrictSchema):
    id = fields.String(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
                                                                error="1 to 32 letters, digits, '-' or '_'."),
                         metadata={"description": "short unique code, stored in capitals", "example": "TLV-DIZ"})
    name = fields.String(required=True, validate=validate.Length(1, 120))
    address = fields.String(load_default="", validate=validate.Length(0, 240))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    radius_m = StrictInteger(load_default=150, validate=validate.Range(*stores.RADIUS_M),
                             metadata={"description": "check-ins are accepted within this many metres"})
    timezone = fields.String(load_default="UTC", validate=[validate.Length(1, 64), _timezone],
                             metadata={"example": "Asia/Jerusalem"})
    check_in_cooldown_minutes = StrictInteger(load_default=240, validate=validate.Range(*stores.COOLDOWN_MINUTES),
                                              metadata={"description": "one accepted check-in per member per this "
                                                                       "many minutes (elapsed time)"})
    active = fields.Boolean(load_default=True)
    currency = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"),
                             metadata={"description": "the store's own currency (ISO 4217), earning through the "
                                                      "club's rate of the day; null: the club's currency",
                                       "example": "USD"})
    created_at = Time(dump_only=True)
    updated_at = Time(dump_only=True)


class StoreInSchema(StoreSchema):
    """A new store as a client sends it: StoreSchema's fields and checks, under its own name in the OpenAPI document so that
    StoreSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class StorePatchSchema(StoreSchema):
    """Any subset of a store's fields; what is left out keeps its value (no defaults applied)."""

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class StoreListArgs(ListArgs):
    q = fields.String(validate=validate.Length(1, 120), metadata={"description": "code, name or address contains"})
    active = fields.Boolean()


StorePageSchema = page_schema(StoreSchema, "StorePage")


@blp.route("/stores")
class Stores(Resource):
    decorators = [marketer_required]

    @blp.arguments(StoreListArgs, location="query")
    @blp.response(200, StorePageSchema)
    def get(self, args):
        """The chain's stores, searchable by code, name or address."""
        found = stores.list_stores(db.session, q=args.get("q"), active=args.get("active"),
                                   limit=args["limit"] + 1, after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda s: s.id)

    @blp.arguments(StoreInSchema)
    @blp.response(201, StoreSchema)
    def post(self, data):
        """Open a store: its location and check-in radius, time zone and check-in cool-down."""
        store = stores.create_store(db.session, program(), data)
        audit_trail.record("create", "store", store.id, after=store, schema=StoreSchema)
        return store


@blp.route("/stores/<string:store_id>")
class StoreDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, StoreSchema)
    def get(self, store_id):
        """One store."""
        return stores.get_store(db.session, store_id)

    @blp.arguments(StorePatchSchema)
    @blp.response(200, StoreSchema)
    def patch(self, changes, store_id):
        """Change a store; active=false stops check-ins, scans and purchases there."""
        before = StoreSchema().dump(stores.get_store(db.session, store_id))
        store = stores.update_store(db.session, program(), store_id, changes)
        audit_trail.record("update", "store", store_id, before=before, after=store, schema=StoreSchema)
        return store

    @blp.response(204)
    def delete(self, store_id):
        """Archive a store: it leaves every list; its history stays."""
        before = StoreSchema().dump(stores.get_store(db.session, store_id))
        stores.archive_store(db.session, program(), store_id)
        audit_trail.record("archive", "store", store_id, before=before)


# ------------------------------------------------------------------ the shoppers' store finder


class PublicStoreSchema(StrictSchema):
    id = fields.String()
    code = fields.String()
    name = fields.String()
    address = fields.String()
    lat = fields.Float()
    lon = fields.Float()
    radius_m = fields.Integer()
    timezone = fields.String()
    check_in_cooldown_minutes = fields.Integer()
    distance_m = fields.Float(allow_none=True, metadata={"description": "from the point asked about"})


PublicStorePageSchema = page_schema(PublicStoreSchema, "PublicStorePage")


class StoreFinderArgs(ListArgs):
    lat = fields.Float(validate=validate.Range(-90, 90), allow_nan=False)
    lon = fields.Float(validate=validate.Range(-180, 180), allow_nan=False)
    within_m = fields.Float(load_default=50_000, validate=validate.Range(1, 20_100_000), allow_nan=False)

    @validates_schema
    def _both(self, data, **_) -> None:
        if ("lat" in data) != ("lon" in data):
            raise ValidationError("Send lat and lon together.", "lat" if "lat" not in data else "lon")


def _public(store: stores.Store, distance: float | None = None) -> dict:
    return {k: getattr(store, k) for k in ("id", "code", "name", "address", "lat", "lon", "radius_m", "timezone",
                                           "check_in_cooldown_minutes")} | {"distance_m": distance}


@me_blp.route("/stores")
class StoreFinder(Resource):
    decorators = [member_required]

    @me_blp.arguments(StoreFinderArgs, location="query")
    @me_blp.response(200, PublicStorePageSchema)
    def get(self, args):
        """The open stores; with lat and lon, those within within_m metres, nearest first."""
        if "lat" in args:
            offset = decode_cursor(args["cursor"], int) or 0
            found = instore.nearby_stores(db.session, args["lat"], args["lon"], within_m=args["within_m"],
                                          limit=offset + args["limit"] + 1)[offset:]
            more = len(found) > args["limit"]
            return {"items": [_public(s, d) for s, d in found[:args["limit"]]],
                    "next_cursor": encode_cursor(offset + args["limit"]) if more else None}
        found = stores.list_stores(db.session, active=True, limit=args["limit"] + 1,
                                   after=decode_cursor(args["cursor"]))
        result = page(found, args["limit"], lambda s: s.id)
        return result | {"items": [_public(s) for s in result["items"]]}


# ------------------------------------------------------------------ products (marketers)


class ProductSchema(StrictSchema):
    id = fields.String(dump_only=True)
    sku = fields.String(required=True, validate=[validate.Length(1, 64),
                                                 validate.Regexp(r"^[\x21-\x7e]+$", error="No spaces.")])
    barcode = fields.String(required=True, validate=validate.Length(1, 32),
                            metadata={"description": "EAN-13, EAN-8 or UPC-A with a valid check digit; "
                                                     "returned as a 13-digit GTIN", "example": "7290001234518"})
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(0, 5000))
    category = fields.String(load_default="", validate=validate.Length(0, 64), metadata={"example": "coffee"})
    price = Money(load_default=None, allow_none=True)
    currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$", error="A three-letter ISO 4217 code."),
                             metadata={"description": "the club's currency when left out"})
    image_url = fields.Url(load_default=None, allow_none=True, schemes={"http", "https"},
                           validate=validate.Length(max=500))
    complementary = fields.List(fields.String(validate=ID), load_default=list,
                                validate=validate.Length(max=stores.MAX_COMPLEMENTARY),
                                metadata={"description": "ids of products to suggest with this one, in order"})
    active = fields.Boolean(load_default=True)
    created_at = Time(dump_only=True)
    updated_at = Time(dump_only=True)


class ProductInSchema(ProductSchema):
    """A new product as a client sends it: ProductSchema's fields and checks, under its own name in the OpenAPI document so that
    ProductSchema, only ever answered, can list every field it writes as ``required`` (api.contract)."""


class ProductPatchSchema(ProductSchema):
    """Any subset of a product's fields; what is left out keeps its value (no defaults applied)."""

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class ProductListArgs(ListArgs):
    q = fields.String(validate=validate.Length(1, 200),
                      metadata={"description": "name, SKU or description contains; or a barcode in any form"})
    category = fields.String(validate=validate.Length(0, 64))
    active = fields.Boolean()


ProductPageSchema = page_schema(ProductSchema, "ProductPage")


@blp.route("/products")
class Products(Resource):
    decorators = [marketer_required]

    @blp.arguments(ProductListArgs, location="query")
    @blp.response(200, ProductPageSchema)
    def get(self, args):
        """Search the catalogue."""
        found = stores.list_products(db.session, q=args.get("q"), category=args.get("category"),
                                     active=args.get("active"), limit=args["limit"] + 1,
                                     after=decode_cursor(args["cursor"]))
        return page(found, args["limit"], lambda p: p.id)

    @blp.arguments(ProductInSchema)
    @blp.response(201, ProductSchema)
    def post(self, data):
        """Add a product; its barcode's check digit is validated (UPC-A and its EAN-13 form are one product)."""
        product = stores.create_product(db.session, program(), data)
        audit_trail.record("create", "product", product.id, after=product, schema=ProductSchema)
        return product


@blp.route("/products/<string:product_id>")
class ProductDetail(Resource):
    decorators = [marketer_required]

    @blp.response(200, ProductSchema)
    def get(self, product_id):
        """One product."""
        return stores.get_product(db.session, product_id)

    @blp.arguments(ProductPatchSchema)
    @blp.response(200, ProductSchema)
    def patch(self, changes, product_id):
        """Change a product."""
        before = ProductSchema().dump(stores.get_product(db.session, product_id))
        product = stores.update_product(db.session, program(), product_id, changes)
        audit_trail.record("update", "product", product_id, before=before, after=product, schema=ProductSchema)
        return product

    @blp.response(204)
    def delete(self, product_id):
        """Archive a product: no longer listed or scannable; its SKU and barcode stay reserved."""
        before = ProductSchema().dump(stores.get_product(db.session, product_id))
        stores.archive_product(db.session, program(), product_id)
        audit_trail.record("archive", "product", product_id, before=before)


# ------------------------------------------------------------------ `loyalty products import FILE`


def register_products_cli(app: Flask) -> None:
    """Add the ``products`` command group (the catalogue's CSV import) to the app's CLI."""
    group = click.Group("products", help="The product catalogue.")

    @group.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="check the file and report, change nothing")
    @with_appcontext
    def products_import(file: Path, dry_run: bool) -> None:
        """Create or update products from a CSV file, matched by SKU.

        Columns (first line): sku, barcode, name, and optionally description, category, price, currency,
        image_url, complementary (SKUs separated by '|'), active (true/false). Bad rows are reported and
        skipped; the good ones are saved. Exits with status 1 if any row was refused.
        """
        from wallet.errors import DomainError

        started = time.perf_counter()
        try:
            with file.open(encoding="utf-8-sig", newline="") as lines:
                report = stores.import_products(db.session, program(), lines, dry_run=dry_run)
            if dry_run:
                db.session.rollback()
            else:
                db.session.commit()
        except DomainError as error:
            db.session.rollback()
            raise click.ClickException(f"{error.code}: {error.detail} {error.errors or ''}".strip()) from None
        except UnicodeDecodeError as error:
            db.session.rollback()
            raise click.ClickException(f"invalid_csv: the file is not UTF-8 ({error.reason})") from None
        elapsed = time.perf_counter() - started
        for problem in report.refused:
            click.echo(f"refused {problem}", err=True)
        for problem in report.warnings:
            click.echo(f"warning {problem}", err=True)
        verb = "checked (dry run, nothing saved)" if dry_run else "imported"
        click.echo(f"{verb} {file.name}: {report.rows} rows, {report.created} created, {report.updated} updated, "
                   f"{report.unchanged} unchanged, {len(report.refused)} refused, {len(report.warnings)} warnings "
                   f"in {elapsed:.2f} s ({report.rows / max(elapsed, 1e-9):.0f} rows/s)")
        if report.refused:
            raise SystemExit(1)

    app.cli.add_command(group)

