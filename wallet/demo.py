"""A believable demo club: stores with real coordinates, products with valid barcodes, rules, accounts."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import coupons, enrolment, instore, members, rules, social
from .barcodes import gtin_check_digit
from .contests import demo as contest_demo
from .program import Program
from .stores import Product, Store

STORES = [
    ("TLV-DIZ", "Dizengoff Center", "Dizengoff St 50, Tel Aviv", 32.0753, 34.7754, "Asia/Jerusalem"),
    ("JLM-MAM", "Mamilla Mall", "Mamilla Ave 11, Jerusalem", 31.7776, 35.2245, "Asia/Jerusalem"),
    ("HFA-GRN", "Grand Canyon Haifa", "Simcha Golan Rd 54, Haifa", 32.7893, 35.0076, "Asia/Jerusalem"),
]

PRODUCTS = [  # sku, barcode body (12 digits), name, category, price, complementary skus
    ("COF-250", "729000123451", "House blend coffee 250 g", "coffee", "24.90", ["MUG-01", "MLK-1L"]),
    ("MUG-01", "729000123452", "Club mug", "homeware", "29.90", ["COF-250"]),
    ("MLK-1L", "729000123453", "Milk 3% 1 L", "dairy", "6.90", ["COF-250"]),
    ("CRS-01", "729000123454", "Butter croissant", "bakery", "8.50", ["COF-250"]),
    ("TEA-20", "729000123455", "Green tea, 20 bags", "tea", "14.90", ["MUG-01"]),
    ("CHO-70", "729000123456", "Dark chocolate 70%", "sweets", "12.90", ["COF-250"]),
]

ACCOUNTS = [
    ("member", "member@demo.club", "demo-member-1"),
    ("cashier", "cashier@demo.club", "demo-cashier-1"),
    ("marketer", "marketer@demo.club", "demo-marketer-1"),
    ("admin", "admin@demo.club", "demo-admin-1"),
]

RULES: list[dict[str, Any]] = [
    {"title": "1 point for every shekel", "trigger": "purchase", "reward": {"points_per_currency_unit": 1}},
    {"title": "Double points on Fridays", "trigger": "purchase", "conditions": {"days_of_week": [4]},
     "reward": {"multiplier": 2}},
    {"title": "Welcome to the club", "trigger": "enrolment", "reward": {"points": 50}},
    {"title": "Coffee lovers' bonus", "trigger": "purchase", "conditions": {"categories": ["coffee"]},
     "reward": {"points": 20}, "per_member_limit": 1, "per_member_period_days": 7},
]


def load(session: Session, program: Program) -> list[tuple[str, str, str, str]]:
    """Create what is missing of the demo club; returns (role, email, password, note) for each demo login."""
    stores = {}
    for code, name, address, lat, lon, tz in STORES:
        store = session.scalar(select(Store).where(Store.code == code))
        if store is None:
            store = Store(code=code, name=name, address=address, lat=lat, lon=lon, timezone=tz, radius_m=200,
                          check_in_cooldown_minutes=240)
            session.add(store)
        stores[code] = store
    session.flush()
    by_sku = {}
    for sku, body, name, category, price, _ in PRODUCTS:
        product = session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            barcode = (body + gtin_check_digit(body)).zfill(13)
            product = Product(sku=sku, barcode=barcode, name=name, category=category, price=Decimal(price),
                              currency=program.currency)
            session.add(product)
        by_sku[sku] = product
    session.flush()
    for sku, *_, complementary in PRODUCTS:
        by_sku[sku].complementary = [by_sku[c].id for c in complementary]
    existing_titles = set(session.scalars(select(rules.Rule.title)))
    for data in RULES:
        if data["title"] not in existing_titles:
            rules.create_rule(session, program, dict(data))
    _load_more(session, program, stores, by_sku)
    out = []
    for role, email, password in ACCOUNTS:
        note = ""
        if not members.email_taken(session, email):
            if role == "member":
                member = enrolment.register_member(session, program, email=email, password=password,
                                                 name="Dana Demo", consents={"marketing": True})
                note = f"card {member.card.number}"
            else:
                members.create_staff(session, email=email, password=password, role=role, name=f"Demo {role}",
                                     store_code="TLV-DIZ" if role == "cashier" else None)
        if role == "member" and not note:
            member = session.execute(select(members.Member).where(members.Member.email == email)).scalar_one()
            note = f"card {member.card.number}"
        if role == "cashier":
            note = "store TLV-DIZ"
        out.append((role, email, password, note))
    session.flush()
    _load_social(session, program)
    return out


FANS = [("noa@demo.club", "Noa Fan"), ("avi@demo.club", "Avi Fan"), ("maya@demo.club", "Maya Fan")]


def _load_social(session: Session, program: Program) -> None:
    """The demo member's linked social profile; a contest open with entries and one drawn with its winners."""
    member = session.execute(select(members.Member).where(members.Member.email == "member@demo.club")).scalar_one()
    social.load_demo(session, program, member)
    entrants = [member.id]
    for email, name in FANS:
        fan = session.scalar(select(members.Member).where(members.Member.email == email))
        if fan is None:
            fan = enrolment.register_member(session, program, email=email, password="demo-fan-1", name=name)
        entrants.append(fan.id)
    contest_demo.load_demo(session, program, entrants)


def _load_more(session: Session, program: Program, stores: dict, products: dict) -> None:
    """Hook for the demo data of later features (offers, check-in rules)."""
    instore.load_demo(session, program)
    rules.load_demo(session, program)  # a surprise on check-in, a birthday gift
    coupons.load_demo(session, program, stores)
