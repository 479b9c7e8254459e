"""A believable demo club: stores with real coordinates, products with valid barcodes, rules, accounts."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import (
    campaigns,
    coupons,
    currencies,
    enrolment,
    instore,
    kpis,
    members,
    purchases,
    returns,
    rules,
    segments,
    social,
    statement,
    tiers,
    till,
)
from .barcodes import gtin_check_digit
from .contests import demo as contest_demo
from .errors import Rejected
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
                                                 name="Dana Demo", consents={"marketing_email": True, "marketing_push": True},
                                                 gender="female", city="Tel Aviv")
                note = f"card {member.card.number}"
            else:
                members.create_staff(session, email=email, password=password, role=role, name=f"Demo {role}",
                                     store_code="TLV-DIZ" if role == "cashier" else None)
        if role == "member" and not note:
            member = session.execute(select(members.Member).where(members.Member.email == email)).scalar_one()
            note = f"card {member.card.number}"
        if role == "cashier":
            note = "store TLV-DIZ"
        if role == "member" and program.welcome_pending and statement.pending_of(session, member.id):
            note += "; the welcome points wait for the first purchase"
        out.append((role, email, password, note))
    out.append(_load_traveller(session, program, stores))
    _load_tiers(session, program, stores)
    out += [(role, email, password, note) for role, email, password, note in TIER_ACCOUNTS]
    session.flush()
    _load_campaigns(session, program)
    out.append(("member", campaigns.DEMO_SHOPPERS[0][0], campaigns.DEMO_PASSWORD,
                f"and {len(campaigns.DEMO_SHOPPERS) - 1} more; campaign '{campaigns.DEMO_CAMPAIGN}' launched"))
    session.flush()
    _load_foreign_store(session, program)
    _load_social(session, program)
    return out


TRAVELLER = ("traveller@demo.club", "demo-traveller-1")


def _load_traveller(session: Session, program: Program, stores: dict) -> tuple[str, str, str, str]:
    """A member who checked in at Dizengoff and, a moment later, at Mamilla (54 km away): the second check-in is
    refused as impossible travel and flagged for review (GET /admin/flags)."""
    email, password = TRAVELLER
    note = "checked in at Tel Aviv, then Jerusalem at once: flagged (GET /api/v1/admin/flags)"
    if members.email_taken(session, email):
        return ("member", email, password, note)
    member = enrolment.register_member(session, program, email=email, password=password, name="Tom Traveller")
    for code in ("TLV-DIZ", "JLM-MAM"):
        store = stores[code]
        try:
            instore.check_in(session, program, member_id=member.id, store_id=store.id, lat=store.lat, lon=store.lon)
        except Rejected:  # impossible travel: the refused check-in and its flag are kept
            pass
    return ("member", email, password, note)


def _load_foreign_store(session: Session, program: Program) -> None:
    """The airport's duty-free shop, selling in dollars (the club's rate: 3.7 shekels), where the traveller bought
    for $40.00 and brought back $10.00 of it (the traveller): a purchase through the rate of its day and a partial return."""
    if session.get(currencies.Currency, "USD") is None:
        currencies.set_rate(session, program, "USD", Decimal("3.7"), create=True)
    store = session.scalar(select(Store).where(Store.code == "TLV-DFS"))
    if store is None:
        store = Store(code="TLV-DFS", name="Duty Free, Ben Gurion Airport", address="Terminal 3, Ben Gurion Airport",
                      lat=32.0055, lon=34.8854, timezone="Asia/Jerusalem", radius_m=300, check_in_cooldown_minutes=240,
                      currency="USD")
        session.add(store)
        session.flush()
    # The traveller shops at the airport (the demo member's welcome points still wait for a first purchase).
    member = session.execute(select(members.Member).where(members.Member.email == TRAVELLER[0])).scalar_one()
    bought = till.record_purchase(session, program, store_id=store.id, card_code=member.card.number,
                                  amount=Decimal("40.00"), currency="USD", receipt_id="DEMO-DFS-1")
    returns.return_part(session, program, bought.purchase.id, refund_id="demo-return-1", store_id=store.id,
                        actor="demo", amount=Decimal("10.00"))


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
    kpis.load_demo(session, program, stores)  # six weeks of shoppers, for the KPIs
    _load_segments(session, program, stores)


# Members with a profile and a purchase history (before the demo's points: no points moved for these), so the
# demo segments hold someone: name, email, gender, city, [(days ago, amount)], referred by (email)
SHOPPERS = [
    ("Shira Levi", "shira@demo.club", "female", "Haifa", [(3, "180.00"), (20, "95.50")], None),
    ("Maya Cohen", "maya@demo.club", "female", "Haifa", [(150, "1250.00"), (200, "640.00")], "shira@demo.club"),
    ("Avi Mizrahi", "avi@demo.club", "male", "Tel Aviv", [(95, "2100.00"), (300, "480.00")], "shira@demo.club"),
    ("Noa Peretz", "noa@demo.club", "female", "Jerusalem", [(1, "60.00")], "maya@demo.club"),
    ("Yossi Ben-David", "yossi@demo.club", "male", "Haifa", [], None),
]
SEGMENTS = [
    ("Lapsed high spenders", "Spent 1,000 or more in the last year, nothing in the last 60 days.",
     {"all": [{"field": "spend_365d", "op": ">=", "value": "1000.00"},
              {"field": "days_since_last_purchase", "op": ">=", "value": 60}]}),
    ("Haifa women", "Women who live in Haifa.",
     {"all": [{"field": "city", "op": "=", "value": "Haifa"}, {"field": "gender", "op": "=", "value": "female"}]}),
    ("Advocates", "Members who brought a friend.", {"field": "referrals", "op": ">=", "value": 1}),
]


def _load_segments(session: Session, program: Program, stores: dict) -> None:
    now = program.now()
    store = stores["HFA-GRN"]
    by_email: dict[str, members.Member] = {}
    for name, email, gender, city, history, referred_by in SHOPPERS:
        member = session.scalar(select(members.Member).where(members.Member.email == email))
        if member is None:
            member = enrolment.register_member(session, program, email=email, password=campaigns.DEMO_PASSWORD,
                                               name=name, gender=gender, city=city)
            if referred_by:
                member.referred_by_id = by_email[referred_by].id
            for n, (days, amount) in enumerate(history):
                session.add(purchases.Purchase(store_id=store.id, member_id=member.id, receipt_id=f"DEMO-{email}-{n}",
                                               amount=Decimal(amount), currency=program.currency, fingerprint="demo",
                                               channel="till", created_at=now - timedelta(days=days)))
        by_email[email] = member
    session.flush()
    taken = set(session.scalars(select(segments.Segment.name)))
    for name, description, criteria in SEGMENTS:
        if name not in taken:
            segments.create_segment(session, program, {"name": name, "description": description,
                                                       "criteria": criteria}, actor="demo")


def _load_campaigns(session: Session, program: Program) -> None:
    """After the demo accounts: shoppers with and without consents, and a campaign launched with a holdout."""
    campaigns.load_demo(session, program)


DEMO_TIERS = [  # code, name, rank, metric, threshold, window days, retain days, description
    ("silver", "Silver", 1, "spend", "500.00", 365, 90, "Spend 500 in a year: double coffee points."),
    ("gold", "Gold", 2, "spend", "2000.00", 365, 180, "Spend 2,000 in a year: a birthday gift and early offers."),
    ("vip", "VIP", 3, "referral_value", "1500.00", 365, 365,
     "Friends you brought spent 1,500 in a year (their friends' spend counts half)."),
]

TIER_ACCOUNTS = [
    ("member", "silver@demo.club", "demo-silver-1", "Silver: three purchases crossed 500"),
    ("member", "gold@demo.club", "demo-gold-1", "Gold: a status match for 90 days"),
    ("member", "friend@demo.club", "demo-friend-1", "joined through member@demo.club's code; the referral qualified"),
]

DEMO_TIER_RULES: list[dict[str, Any]] = [
    {"title": "Silver and Gold: 10 extra points a visit", "trigger": "purchase", "reward": {"points": 10},
     "conditions": {"tiers": ["silver", "gold", "vip"]}},
    {"title": "Thanks for bringing a friend", "trigger": "referral", "conditions": {"side": "referrer"},
     "reward": {"points": 100}},
    {"title": "A welcome gift from your friend", "trigger": "referral", "conditions": {"side": "referred"},
     "reward": {"points": 50}},
]


def _load_tiers(session: Session, program: Program, stores: dict) -> None:
    """Three tiers above Basic, a member in each (Silver by their purchases, Gold by a status match), and a
    referral that qualified with the friend's first purchase. Created once."""
    tiers.ensure_entry_tier(session, program)
    known = {t.code for t in tiers.list_tiers(session)}
    for code, name, rank, metric, threshold, window, retain, description in DEMO_TIERS:
        if code not in known:
            tiers.create_tier(session, program, {"code": code, "name": name, "rank": rank, "retain_days": retain,
                                                 "description": description,
                                                 "qualify": {"metric": metric, "threshold": threshold,
                                                             "window_days": window}})
    existing_titles = set(session.scalars(select(rules.Rule.title)))
    for data in DEMO_TIER_RULES:
        if data["title"] not in existing_titles:
            rules.create_rule(session, program, dict(data), actor="demo")
    if members.email_taken(session, "silver@demo.club"):
        return
    store = stores["TLV-DIZ"]
    noa = enrolment.register_member(session, program, email="silver@demo.club", password="demo-silver-1",
                                    name="Noa Silver")
    for n, amount in enumerate(("180.00", "240.00", "120.00")):  # the third crosses 500: Silver at once
        till.record_purchase(session, program, store_id=store.id, card_code=noa.card.number, amount=Decimal(amount),
                             currency=program.currency, receipt_id=f"DEMO-SILVER-{n}")
    yael = enrolment.register_member(session, program, email="gold@demo.club", password="demo-gold-1",
                                     name="Yael Gold")
    tiers.status_match(session, program, yael.id, code="gold", until=program.now() + timedelta(days=90),
                       reason="Gold at another club: matched for 90 days", actor="demo")
    dana = session.execute(select(members.Member).where(members.Member.email == "member@demo.club")).scalar_one()
    friend = enrolment.register_member(session, program, email="friend@demo.club", password="demo-friend-1",
                                       name="Avi Friend", referral_code=dana.referral_code)
    till.record_purchase(session, program, store_id=store.id, card_code=friend.card.number, amount=Decimal("64.90"),
                         currency=program.currency, receipt_id="DEMO-FRIEND-0")  # the referral qualifies here
