"""In the store: check-ins and product scans, both earning through the ``check_in`` and ``scan`` rules.

A check-in is accepted only inside the store's radius (great-circle distance), with a believable GPS accuracy,
at an active store, and once per the store's cool-down. Refused attempts are kept with their reason for fraud
review and earn nothing.

Concurrency: a check-in first locks the member's balance row, so one member's check-ins run one at a time and
the second of two simultaneous ones sees the first and is refused by the cool-down. The database holds it too:
an accepted check-in carries the member's visit number at that store, unique per (member, store), so two
transactions that both read "no earlier visit" can't both commit.

A member's first scan of a product is marked (a unique index over the first scans makes "first" hold under
concurrency) so a rule can reward discovery once.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint, case, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import events, fraud, rules
from .barcodes import normalise_barcode
from .clock import iso, utcnow
from .db import Base, Points, descending_page, id_column, new_id
from .errors import Invalid, NotFound, Rejected
from .ledger import Balance
from .program import Program
from .purchases import Purchase, PurchaseItem
from .stores import Product, Store, get_store, products_by_ids

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG): the sphere closest to the WGS84 ellipsoid
PERIODS = ("day", "week", "month", "year", "ever")
MAX_ACCURACY_M = 100_000.0
COMPLEMENTARY_LIMIT = 10
BOUGHT_TOGETHER_RECENT = 1000  # look at this product's latest purchases only: a scan must stay fast

# The refusal codes (also the ``reason`` kept on a refused check-in).
TOO_FAR = "too_far_from_store"
INACCURATE = "location_inaccurate"
COOLDOWN = "check_in_cooldown"
STORE_INACTIVE = "store_inactive"
IMPOSSIBLE_TRAVEL = fraud.IMPOSSIBLE_TRAVEL  # faster from the last check-in than LOYALTY_MAX_TRAVEL_KMH


class CheckIn(Base):
    """A member's check-in at a store: accepted (it may earn) or refused (kept for fraud review)."""

    __tablename__ = "check_ins"
    __table_args__ = (
        # An accepted check-in is the member's n-th visit to this store; two can't both be the n-th.
        UniqueConstraint("member_id", "store_id", "visit_number"),
        Index("ix_check_ins_member_time", "member_id", "created_at"),
        Index("ix_check_ins_store_time", "store_id", "created_at"),
        Index("ix_check_ins_created_at_brin", "created_at", postgresql_using="brin"),  # segments' visits_90d
    )

    id: Mapped[str] = id_column("chk")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    status: Mapped[str] = mapped_column(String(16))  # accepted, refused
    reason: Mapped[str | None] = mapped_column(String(32))  # why it was refused
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)
    visit_number: Mapped[int | None]  # accepted only: the member's n-th accepted check-in at this store
    points_awarded: Mapped[int] = mapped_column(Points, default=0)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Scan(Base):
    """A member scanning a product's barcode in the app to learn about it."""

    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_member_time", "member_id", "created_at"),
        Index("ix_scans_product_time", "product_id", "created_at"),
        # One first scan per member and product, even when two scans race (a partial unique index).
        Index("uq_scans_first_scan", "member_id", "product_id", unique=True,
              sqlite_where=text("first_scan"), postgresql_where=text("first_scan")),
    )

    id: Mapped[str] = id_column("scn")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    barcode: Mapped[str] = mapped_column(String(14))  # the GTIN-13 scanned
    store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"), index=True)
    first_scan: Mapped[bool] = mapped_column(default=False)
    points_awarded: Mapped[int] = mapped_column(Points, default=0)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------ geometry

def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance in metres (haversine; stable for tiny distances, the antimeridian and the poles)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)  # sin² of half the difference wraps across the antimeridian by itself
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    a = min(1.0, max(0.0, a))
    return 2 * EARTH_RADIUS_M * math.atan2(math.sqrt(a), math.sqrt(1 - a))


def within_radius(distance_m: float, radius_m: float) -> bool:
    """On the radius counts as inside. Compared to the centimetre: a phone's GPS is never finer than that."""
    return round(distance_m, 2) <= radius_m


def _check_position(lat: Any, lon: Any, accuracy_m: Any) -> None:
    errors: dict[str, list[str]] = {}

    def number(value: Any) -> bool:
        # No math.isfinite: a huge int would overflow it. NaN and infinities fail the range checks below.
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not (number(lat) and -90 <= lat <= 90):
        errors["lat"] = ["A latitude from -90 to 90."]
    if not (number(lon) and -180 <= lon <= 180):
        errors["lon"] = ["A longitude from -180 to 180."]
    if accuracy_m is not None and not (number(accuracy_m) and 0 <= accuracy_m <= MAX_ACCURACY_M):
        errors["accuracy_m"] = [f"Metres from 0 to {MAX_ACCURACY_M:.0f}."]
    if errors:
        raise Invalid("The position is not valid", code="invalid_position", errors=errors)


# ------------------------------------------------------------------ periods in the store's time zone

def period_starts(now: datetime, tz: ZoneInfo) -> dict[str, datetime | None]:
    """When the current day, week (from Monday), month and year began in ``tz``, as UTC instants."""
    today = now.astimezone(tz).date()

    def start(day: date) -> datetime:
        # Midnight may not exist (a DST jump at 00:00): zoneinfo then gives the instant the day really began.
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(now.tzinfo)

    return {"day": start(today), "week": start(today - timedelta(days=today.weekday())),
            "month": start(today.replace(day=1)), "year": start(today.replace(month=1, day=1)), "ever": None}


def _counts(session: Session, column_at, where: list, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    starts = period_starts(now, tz)
    sums = [func.coalesce(func.sum(case((column_at >= at, 1), else_=0)), 0) for p, at in starts.items() if at]
    row = session.execute(select(func.count(), *sums).where(*where, column_at <= now)).one()
    ever, *rest = row
    return dict(zip([p for p, at in starts.items() if at], map(int, rest), strict=True)) | {"ever": int(ever)}


def check_in_counts(session: Session, member_id: str, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The member's accepted check-ins anywhere in the chain this day/week/month/year (in ``tz``) and ever."""
    return _counts(session, CheckIn.created_at, [CheckIn.member_id == member_id, CheckIn.status == "accepted"],
                   now, tz)


def scan_counts(session: Session, member_id: str, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The member's scans this day/week/month/year (in ``tz``) and ever."""
    return _counts(session, Scan.created_at, [Scan.member_id == member_id], now, tz)


# ------------------------------------------------------------------ check-ins

@dataclass
class CheckInResult:
    check_in: CheckIn
    store: Store
    next_check_in_at: datetime
    points_awarded: int = 0
    rewards: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _last_visit(session: Session, member_id: str, store_id: str) -> CheckIn | None:
    return session.scalar(select(CheckIn).where(CheckIn.member_id == member_id, CheckIn.store_id == store_id,
                                                CheckIn.visit_number.is_not(None))
                          .order_by(CheckIn.visit_number.desc()).limit(1))


def check_in(session: Session, program: Program, *, member_id: str, store_id: str, lat: float, lon: float,
             accuracy_m: float | None = None, channel: str = "app") -> CheckInResult:
    """Check a member in at a store and fire the ``check_in`` rules; a refusal is recorded, then raised."""
    _check_position(lat, lon, accuracy_m)
    store = get_store(session, store_id)
    # One member's check-ins, one at a time (PostgreSQL row lock; SQLite writers are serial already).
    if session.execute(select(Balance.member_id).where(Balance.member_id == member_id).with_for_update()).first() is None:
        raise NotFound("No such member")
    now = program.now()
    distance = great_circle_m(store.lat, store.lon, lat, lon)
    attempt = CheckIn(id=new_id("chk"), member_id=member_id, store_id=store.id, lat=float(lat), lon=float(lon),
                      accuracy_m=None if accuracy_m is None else float(accuracy_m), distance_m=round(distance, 2),
                      channel=channel, created_at=now)
    cooldown = timedelta(minutes=store.check_in_cooldown_minutes)
    last = _last_visit(session, member_id, store.id)
    if not store.active:
        _refuse(session, attempt, STORE_INACTIVE, "This store is closed for check-ins")
    if accuracy_m is not None and accuracy_m > store.radius_m:
        _refuse(session, attempt, INACCURATE,
                f"The location is only known to {accuracy_m:.0f} m; this store needs {store.radius_m} m",
                accuracy_m=float(accuracy_m), radius_m=store.radius_m)
    if not within_radius(distance, store.radius_m):
        _refuse(session, attempt, TOO_FAR,
                f"You are {distance:.0f} m from {store.name}; check in within {store.radius_m} m",
                distance_m=round(distance, 2), radius_m=store.radius_m)
    _check_travel(session, program, attempt, store, now)
    if last is not None and now < last.created_at + cooldown:
        next_at = last.created_at + cooldown
        local = next_at.astimezone(store.tz)
        _refuse(session, attempt, COOLDOWN,
                f"You checked in here at {last.created_at.astimezone(store.tz):%H:%M}; "
                f"the next check-in counts from {local:%Y-%m-%d %H:%M} store time",
                next_check_in_at=iso(next_at), next_check_in_local=local.isoformat())
    attempt.status = "accepted"
    last_number = last.visit_number if last is not None else None  # _last_visit reads numbered visits only
    attempt.visit_number = (last_number or 0) + 1
    session.add(attempt)
    session.flush()  # the (member, store, visit_number) constraint speaks here, before any points move
    counts = check_in_counts(session, member_id, now, store.tz)
    event = rules.Event(trigger="check_in", member_id=member_id, source=f"check_in:{attempt.id}", channel=channel,
                        store_id=store.id, occurred_at=now,
                        attributes={"nth_counts": counts, "visit_number": attempt.visit_number,
                                    "store_code": store.code})
    grants = rules.fire(session, program, event)
    attempt.points_awarded = sum(g.points for g in grants)
    events.emit(session, "check_in.recorded", member_id=member_id, store_id=store.id, channel=events.channel_of(channel, "app"),
                actor=f"member:{member_id}", occurred_at=now,
                data={"check_in_id": attempt.id, "points_awarded": attempt.points_awarded})
    session.flush()
    return CheckInResult(attempt, store, now + cooldown, attempt.points_awarded, [g.as_reward() for g in grants],
                         counts)


def _check_travel(session: Session, program: Program, attempt: CheckIn, store: Store, now: datetime) -> None:
    """Refuse (and flag) a check-in the member could not have reached from their last accepted one in time: faster
    than LOYALTY_MAX_TRAVEL_KMH, allowing for both stores' radii."""
    previous = session.execute(
        select(CheckIn.id, CheckIn.store_id, CheckIn.lat, CheckIn.lon, CheckIn.created_at, Store.radius_m)
        .join(Store, Store.id == CheckIn.store_id)
        .where(CheckIn.member_id == attempt.member_id, CheckIn.status == "accepted", CheckIn.created_at <= now)
        .order_by(CheckIn.created_at.desc()).limit(1)).first()
    if previous is None:
        return
    travel = fraud.travel_from_last(
        previous_check_in_id=previous.id, previous_store_id=previous.store_id, previous_at=previous.created_at,
        distance_m=great_circle_m(previous.lat, previous.lon, attempt.lat, attempt.lon),
        slack_m=previous.radius_m + store.radius_m, now=now, max_kmh=program.max_travel_kmh)
    if not travel.impossible:
        return
    fraud.raise_flag(session, kind=fraud.IMPOSSIBLE_TRAVEL, subject=f"member:{attempt.member_id}", at=now,
                     member_id=attempt.member_id, store_id=store.id,
                     details={"check_in_id": attempt.id, **travel.details()})
    _refuse(session, attempt, IMPOSSIBLE_TRAVEL,
            f"Your last check-in was {travel.distance_km:.1f} km away {travel.seconds:.0f} s ago: faster than "
            f"{program.max_travel_kmh:.0f} km/h", **{k: v for k, v in travel.details().items() if v is not None})


def _refuse(session: Session, attempt: CheckIn, reason: str, detail: str, **extra: Any) -> None:
    attempt.status, attempt.reason = "refused", reason
    session.add(attempt)
    session.flush()
    events.emit(session, "check_in.refused", member_id=attempt.member_id, store_id=attempt.store_id,
                channel=events.channel_of(attempt.channel, "app"), actor=f"member:{attempt.member_id}", occurred_at=attempt.created_at,
                data={"check_in_id": attempt.id, "reason": reason})
    # commit=True: the refusal is kept (fraud review) although the request fails.
    raise Rejected(detail, code=reason, commit=True, check_in_id=attempt.id, **extra)


def list_check_ins(session: Session, *, member_id: str | None = None, store_id: str | None = None,
                   status: str | None = None, reason: str | None = None, limit: int = 50,
                   before: tuple[datetime, str] | None = None) -> list[CheckIn]:
    """Check-ins newest first, filtered; ``before`` is the (created_at, id) cursor."""
    query = select(CheckIn)
    if member_id:
        query = query.where(CheckIn.member_id == member_id)
    if store_id:
        query = query.where(CheckIn.store_id == store_id)
    if status:
        query = query.where(CheckIn.status == status)
    if reason:
        query = query.where(CheckIn.reason == reason)
    return list(session.scalars(descending_page(query, CheckIn.created_at, CheckIn.id, before, limit)))


def nearby_stores(session: Session, lat: float, lon: float, *, within_m: float = 50_000,
                  limit: int = 50) -> list[tuple[Store, float]]:
    """Active stores within ``within_m`` of a point, nearest first, with their distance in metres."""
    _check_position(lat, lon, None)
    query = select(Store).where(Store.active.is_(True), Store.archived_at.is_(None))
    # A box around the point narrows the search; near a pole or the antimeridian every longitude is kept.
    dlat = math.degrees(within_m / EARTH_RADIUS_M)
    query = query.where(Store.lat.between(lat - dlat, lat + dlat))
    cos_lat = math.cos(math.radians(lat))
    if cos_lat > 1e-9:
        dlon = dlat / cos_lat
        if lon - dlon >= -180 and lon + dlon <= 180 and abs(lat) + dlat < 90:
            query = query.where(Store.lon.between(lon - dlon, lon + dlon))
    found = [(store, great_circle_m(lat, lon, store.lat, store.lon)) for store in session.scalars(query)]
    found = [(store, round(d, 2)) for store, d in found if d <= within_m]
    return sorted(found, key=lambda pair: (pair[1], pair[0].id))[:limit]


# ------------------------------------------------------------------ scans

@dataclass
class ScanResult:
    scan: Scan
    product: Product
    complementary: list[dict[str, Any]]
    points_awarded: int = 0
    rewards: list[dict[str, Any]] = field(default_factory=list)


def scan(session: Session, program: Program, *, member_id: str, barcode: str, store_id: str | None = None,
         channel: str = "app") -> ScanResult:
    """A member scanned a barcode: the product and what goes with it; records the scan and fires ``scan`` rules."""
    code = normalise_barcode(barcode)
    store = None
    if store_id is not None:
        store = get_store(session, store_id)
        if not store.active:
            raise Rejected("This store is closed", code=STORE_INACTIVE)
    product = session.scalar(select(Product).where(Product.barcode == code, Product.archived_at.is_(None),
                                                   Product.active.is_(True)))
    if product is None:
        raise NotFound("No product has this barcode", code="product_not_found")
    now = program.now()
    seen = session.scalar(select(Scan.id).where(Scan.member_id == member_id, Scan.product_id == product.id,
                                                Scan.first_scan.is_(True)).limit(1))
    record = _record_scan(session, member_id=member_id, product=product, store_id=store.id if store else None,
                          first=seen is None, channel=channel, now=now)
    tz = store.tz if store is not None else program.tz
    attributes = {"product_id": product.id, "sku": product.sku, "barcode": product.barcode,
                  "category": product.category or None, "first_scan": record.first_scan,
                  "nth_counts": scan_counts(session, member_id, now, tz)}
    grants = rules.fire(session, program, rules.Event(
        trigger="scan", member_id=member_id, source=f"scan:{record.id}", channel=channel,
        store_id=record.store_id, attributes=attributes, occurred_at=now))
    record.points_awarded = sum(g.points for g in grants)
    events.emit(session, "scan.recorded", member_id=member_id, store_id=record.store_id, channel=events.channel_of(channel, "app"),
                actor=f"member:{member_id}", occurred_at=now,
                data={"scan_id": record.id, "product_id": product.id, "barcode": product.barcode,
                      "first_scan": record.first_scan, "points_awarded": record.points_awarded})
    session.flush()
    return ScanResult(record, product, complementary_products(session, product), record.points_awarded,
                      [g.as_reward() for g in grants])


def _record_scan(session: Session, *, member_id: str, product: Product, store_id: str | None, first: bool,
                 channel: str, now: datetime) -> Scan:
    def make(first_scan: bool) -> Scan:
        return Scan(member_id=member_id, product_id=product.id, barcode=product.barcode, store_id=store_id,
                    first_scan=first_scan, channel=channel, created_at=now)

    if first:
        try:
            with session.begin_nested():  # a concurrent first scan wins the unique index: then this is a repeat
                record = make(True)
                session.add(record)
                session.flush()
            return record
        except IntegrityError:
            pass
    record = make(False)
    session.add(record)
    session.flush()
    return record


def complementary_products(session: Session, product: Product,
                           limit: int = COMPLEMENTARY_LIMIT) -> list[dict[str, Any]]:
    """The marketer's complementary products first, then the products most often bought with this one."""
    chosen: list[dict[str, Any]] = [{"product": p, "source": "marketer"}
              for p in products_by_ids(session, [i for i in product.complementary if i != product.id])][:limit]
    room = limit - len(chosen)
    if room > 0:
        exclude = {product.id, *(c["product"].id for c in chosen)}
        chosen += [{"product": p, "source": "bought_together", "purchases": n}
                   for p, n in bought_together(session, product, exclude=exclude, limit=room)]
    return chosen


def bought_together(session: Session, product: Product, *, exclude: Collection[str] = frozenset(),
                    limit: int = COMPLEMENTARY_LIMIT) -> list[tuple[Product, int]]:
    """Active products found in the same (not refunded) purchases as this one, most purchases first."""
    recent = (select(PurchaseItem.purchase_id).join(Purchase, Purchase.id == PurchaseItem.purchase_id)
              .where(PurchaseItem.barcode == product.barcode, Purchase.status != "refunded")
              .order_by(Purchase.created_at.desc()).limit(BOUGHT_TOGETHER_RECENT))
    together = func.count(func.distinct(PurchaseItem.purchase_id)).label("together")
    rows = session.execute(
        select(Product.id, together).join(PurchaseItem, PurchaseItem.barcode == Product.barcode)
        .where(PurchaseItem.purchase_id.in_(recent.scalar_subquery()), Product.id.not_in(exclude),
               Product.active.is_(True), Product.archived_at.is_(None))
        .group_by(Product.id).order_by(together.desc(), Product.id).limit(limit)
    ).all()
    products = {p.id: p for p in products_by_ids(session, [r.id for r in rows])}
    return [(products[r.id], int(r.together)) for r in rows if r.id in products]


def list_scans(session: Session, *, member_id: str | None = None, product_id: str | None = None,
               store_id: str | None = None, first_scan: bool | None = None, limit: int = 50,
               before: tuple[datetime, str] | None = None) -> list[Scan]:
    """Scans newest first, filtered; ``before`` is the (created_at, id) cursor."""
    query = select(Scan)
    if member_id:
        query = query.where(Scan.member_id == member_id)
    if product_id:
        query = query.where(Scan.product_id == product_id)
    if store_id:
        query = query.where(Scan.store_id == store_id)
    if first_scan is not None:
        query = query.where(Scan.first_scan.is_(first_scan))
    return list(session.scalars(descending_page(query, Scan.created_at, Scan.id, before, limit)))


# ------------------------------------------------------------------ the demo club's in-store rules

DEMO_RULES: list[dict[str, Any]] = [
    {"title": "Thanks for dropping by", "trigger": "check_in", "reward": {"points": 10}},
    {"title": "5th visit this month", "trigger": "check_in", "conditions": {"nth": {"n": 5, "period": "month"}},
     "reward": {"points": 50}},
    {"title": "Discover a product", "trigger": "scan", "conditions": {"first_scan": True}, "reward": {"points": 2},
     "per_member_limit": 5, "per_member_period_days": 1},
    {"title": "Coffee corner surprise", "trigger": "scan", "conditions": {"categories": ["coffee"]},
     "reward": {"points": 15}, "probability": 0.2, "per_member_limit": 1, "per_member_period_days": 7},
]


def load_demo(session: Session, program: Program) -> None:
    """Add the in-store demo rules that are missing (by title); safe to repeat."""
    existing = set(session.scalars(select(rules.Rule.title)))
    for data in DEMO_RULES:
        if data["title"] not in existing:
            rules.create_rule(session, program, dict(data))
