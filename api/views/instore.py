"""In the store: the shopper's check-ins and scans, their activity timeline; the marketers' review of them."""
from __future__ import annotations

from datetime import datetime

from marshmallow import fields, pre_dump, validate

from wallet import activity, events, instore, members

from ..auth import current_principal, marketer_required, member_required
from ..blueprints import admin as admin_blp
from ..blueprints import me as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import ListArgs, Money, StrictSchema, Time, decode_cursor, page, page_schema
from ..state import program
from .pos import RewardSchema
from .stores import Latitude, Longitude, Number

ID = validate.Length(1, 32)


def _time_cursor(cursor: str | None, parts: int = 2) -> tuple | None:
    """A (created_at, ..., id) cursor this API gave out."""
    value = decode_cursor(cursor, list)
    if value is None:
        return None
    from wallet.errors import Invalid
    try:
        if len(value) != parts or not all(isinstance(v, str) for v in value):
            raise ValueError
        at = datetime.fromisoformat(value[0])
        if at.tzinfo is None:
            raise ValueError
        return (at, *value[1:])
    except ValueError:
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor",
                      errors={"cursor": ["Unknown cursor."]}) from None


def _by_time(row) -> list[str]:
    return [row.created_at.isoformat(), row.id]


def _by_time_of(column: str):
    """The (time, id) cursor of a list ordered by another time column."""
    return lambda row: [getattr(row, column).isoformat(), row.id]


class StoreBriefSchema(StrictSchema):
    id = fields.String()
    code = fields.String()
    name = fields.String()


# ------------------------------------------------------------------ check-ins


class CheckInInSchema(StrictSchema):
    store_id = fields.String(required=True, validate=ID)
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    accuracy_m = Number(load_default=None, allow_none=True, validate=validate.Range(0, instore.MAX_ACCURACY_M),
                        metadata={"description": "the phone's GPS accuracy in metres; worse than the store's "
                                                 "radius is refused"})


REFUSALS = (instore.TOO_FAR, instore.INACCURATE, instore.COOLDOWN, instore.STORE_INACTIVE, instore.IMPOSSIBLE_TRAVEL)


class CheckInSchema(StrictSchema):
    id = fields.String()
    store_id = fields.String()
    status = fields.String(validate=validate.OneOf(["accepted", "refused"]), metadata={"description": "accepted or refused"})
    reason = fields.String(allow_none=True, validate=validate.OneOf(REFUSALS),
                           metadata={"description": "why a check-in was refused"})
    lat = fields.Float()
    lon = fields.Float()
    accuracy_m = fields.Float(allow_none=True)
    distance_m = fields.Float(metadata={"description": "from the store, in metres"})
    visit_number = fields.Integer(allow_none=True, metadata={"description": "the member's n-th visit to this store"})
    points_awarded = fields.Integer()
    channel = fields.String(validate=validate.OneOf(events.CHANNELS))
    created_at = Time()


class CheckedInSchema(CheckInSchema):
    store = fields.Nested(StoreBriefSchema)
    next_check_in_at = Time(metadata={"description": "when the next check-in here can count"})


class VisitsSchema(StrictSchema):
    day = fields.Integer()
    week = fields.Integer()
    month = fields.Integer()
    year = fields.Integer()
    ever = fields.Integer()


class CheckInResultSchema(StrictSchema):
    check_in = fields.Nested(CheckedInSchema)
    points_awarded = fields.Integer()
    rewards = fields.List(fields.Nested(RewardSchema))
    visits = fields.Nested(VisitsSchema, metadata={"description": "the member's accepted check-ins in the whole "
                                                                  "chain, periods in the store's time zone"})

    @pre_dump
    def _shape(self, result: instore.CheckInResult, **_) -> dict:
        row = {name: getattr(result.check_in, name) for name in CheckInSchema().fields}
        return {"check_in": row | {"store": result.store, "next_check_in_at": result.next_check_in_at},
                "points_awarded": result.points_awarded, "rewards": result.rewards, "visits": result.counts}


class CheckInListArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(["accepted", "refused"]))


class AdminCheckInListArgs(CheckInListArgs):
    member_id = fields.String(validate=ID)
    store_id = fields.String(validate=ID)
    reason = fields.String(validate=validate.OneOf(REFUSALS))


class AdminCheckInSchema(CheckInSchema):
    member_id = fields.String()


CheckInPageSchema = page_schema(CheckInSchema, "CheckInPage")
AdminCheckInPageSchema = page_schema(AdminCheckInSchema, "AdminCheckInPage")


@blp.route("/me/check-ins")
class CheckIns(Resource):
    decorators = [member_required]

    @blp.arguments(CheckInListArgs, location="query")
    @blp.response(200, CheckInPageSchema)
    def get(self, args):
        """The member's check-ins, newest first (refused attempts too, with their reason)."""
        found = instore.list_check_ins(db.session, member_id=current_principal().id, status=args.get("status"),
                                       limit=args["limit"] + 1, before=_time_cursor(args["cursor"]))
        return page(found, args["limit"], _by_time)

    @blp.arguments(CheckInInSchema)
    @blp.response(201, CheckInResultSchema)
    def post(self, data):
        """Check in at a store from where the phone is: within the store's radius, once per cool-down.

        Refusals are 422 with a code: too_far_from_store, location_inaccurate, check_in_cooldown
        (with next_check_in_at) or store_inactive; they earn nothing and are kept for review.
        """
        return instore.check_in(db.session, program(), member_id=current_principal().id, store_id=data["store_id"],
                                lat=data["lat"], lon=data["lon"], accuracy_m=data["accuracy_m"])


@admin_blp.route("/check-ins")
class AdminCheckIns(Resource):
    decorators = [marketer_required]

    @admin_blp.arguments(AdminCheckInListArgs, location="query")
    @admin_blp.response(200, AdminCheckInPageSchema)
    def get(self, args):
        """Check-ins across the chain, newest first; status=refused with a reason is the fraud review."""
        found = instore.list_check_ins(db.session, member_id=args.get("member_id"), store_id=args.get("store_id"),
                                       status=args.get("status"), reason=args.get("reason"),
                                       limit=args["limit"] + 1, before=_time_cursor(args["cursor"]))
        return page(found, args["limit"], _by_time)


# ------------------------------------------------------------------ scans


class ScanInSchema(StrictSchema):
    barcode = fields.String(required=True, validate=validate.Length(1, 32),
                            metadata={"description": "EAN-13, EAN-8 or UPC-A as the camera read it"})
    store_id = fields.String(load_default=None, allow_none=True, validate=ID)


class ScannedProductSchema(StrictSchema):
    id = fields.String()
    sku = fields.String()
    barcode = fields.String()
    name = fields.String()
    description = fields.String()
    category = fields.String()
    price = Money(allow_none=True)
    currency = fields.String()
    image_url = fields.String(allow_none=True)


class ComplementarySchema(ScannedProductSchema):
    source = fields.String(validate=validate.OneOf(["marketer", "bought_together"]),
                           metadata={"description": "marketer (the marketer's list) or bought_together"})
    purchases = fields.Integer(allow_none=True, dump_default=None,
                               metadata={"description": "bought_together: purchases with both products"})

    @pre_dump
    def _flatten(self, suggestion: dict, **_) -> dict:
        product = suggestion["product"]
        return {name: getattr(product, name) for name in ScannedProductSchema().fields} | {
            k: v for k, v in suggestion.items() if k != "product"}


class ScanSchema(StrictSchema):
    id = fields.String()
    product_id = fields.String()
    barcode = fields.String()
    store_id = fields.String(allow_none=True)
    first_scan = fields.Boolean(metadata={"description": "the member's first scan of this product"})
    points_awarded = fields.Integer()
    channel = fields.String(validate=validate.OneOf(events.CHANNELS))
    created_at = Time()


class AdminScanSchema(ScanSchema):
    member_id = fields.String()


class ScanResultSchema(StrictSchema):
    scan = fields.Nested(ScanSchema)
    product = fields.Nested(ScannedProductSchema)
    complementary = fields.List(fields.Nested(ComplementarySchema),
                                metadata={"description": "the marketer's suggestions first, then what is often "
                                                         "bought with it"})
    points_awarded = fields.Integer()
    rewards = fields.List(fields.Nested(RewardSchema))


class AdminScanListArgs(ListArgs):
    member_id = fields.String(validate=ID)
    product_id = fields.String(validate=ID)
    store_id = fields.String(validate=ID)
    first_scan = fields.Boolean()


ScanPageSchema = page_schema(ScanSchema, "ScanPage")
AdminScanPageSchema = page_schema(AdminScanSchema, "AdminScanPage")


@blp.route("/me/scans")
class Scans(Resource):
    decorators = [member_required]

    @blp.arguments(ListArgs, location="query")
    @blp.response(200, ScanPageSchema)
    def get(self, args):
        """The member's scans, newest first."""
        found = instore.list_scans(db.session, member_id=current_principal().id, limit=args["limit"] + 1,
                                   before=_time_cursor(args["cursor"]))
        return page(found, args["limit"], _by_time)

    @blp.arguments(ScanInSchema)
    @blp.response(201, ScanResultSchema)
    def post(self, data):
        """Scan a product: what it is, what goes with it, and what scanning it earned. Unknown barcode: 404."""
        return instore.scan(db.session, program(), member_id=current_principal().id, barcode=data["barcode"],
                            store_id=data["store_id"])


@admin_blp.route("/scans")
class AdminScans(Resource):
    decorators = [marketer_required]

    @admin_blp.arguments(AdminScanListArgs, location="query")
    @admin_blp.response(200, AdminScanPageSchema)
    def get(self, args):
        """Scans across the chain, newest first: what members look at, and what they discover."""
        found = instore.list_scans(db.session, member_id=args.get("member_id"), product_id=args.get("product_id"),
                                   store_id=args.get("store_id"), first_scan=args.get("first_scan"),
                                   limit=args["limit"] + 1, before=_time_cursor(args["cursor"]))
        return page(found, args["limit"], _by_time)


# ------------------------------------------------------------------ the activity timeline


class ActivityArgs(ListArgs):
    kind = fields.List(fields.String(validate=validate.OneOf(activity.KINDS)), validate=validate.Length(max=20),
                       metadata={"description": "only these kinds (repeat the parameter for several)"})
    # documented as the channels there are; any other value is still accepted (and finds nothing), as before
    channel = fields.String(validate=validate.Length(1, 16), metadata={"enum": list(events.CHANNELS)})


class ActivityItemSchema(StrictSchema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(activity.KINDS))
    occurred_at = Time()
    channel = fields.String(allow_none=True, validate=validate.OneOf(events.CHANNELS))
    summary = fields.String()
    points = fields.Integer(allow_none=True, metadata={"description": "points earned (events) or moved (points)"})
    store = fields.Nested(StoreBriefSchema, allow_none=True)
    details = fields.Dict()


ActivityPageSchema = page_schema(ActivityItemSchema, "ActivityPage")


def _timeline(member_id: str, args: dict) -> dict:
    found = activity.timeline(db.session, member_id, limit=args["limit"] + 1,
                              cursor=_time_cursor(args["cursor"], parts=3), kinds=args.get("kind"),
                              channel=args.get("channel"))
    return page(found, args["limit"], lambda item: item.cursor)


@blp.route("/me/activity")
class Activity(Resource):
    decorators = [member_required]

    @blp.arguments(ActivityArgs, location="query")
    @blp.response(200, ActivityPageSchema)
    def get(self, args):
        """One timeline of purchases, check-ins, scans, coupons and point movements, newest first."""
        return _timeline(current_principal().id, args)


@admin_blp.route("/members/<string:member_id>/activity")
class MemberActivity(Resource):
    decorators = [marketer_required]

    @admin_blp.arguments(ActivityArgs, location="query")
    @admin_blp.response(200, ActivityPageSchema)
    def get(self, args, member_id):
        """One member's timeline across channels, newest first."""
        members.get_member(db.session, member_id)
        return _timeline(member_id, args)
