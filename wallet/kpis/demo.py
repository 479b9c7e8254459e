"""The demo club's history for the KPIs: a few shoppers who joined and bought over the last weeks (a refund, a
check-in, coupons claimed and used), written through the use cases at their own times, so the event log holds what
a live club's would and ``loyalty demo`` has figures to show once the summary job has run."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import coupons, enrolment, instore, till
from ..members import Member
from ..program import Program
from ..stores import Store

SHOPPERS = ("Avi", "Shira", "Omer", "Yael", "Itai", "Noa", "Lior", "Maya")
EMAIL = "shopper{}@demo.club"


def _at(program: Program, moment: datetime) -> Program:
    """The programme with its clock stopped at ``moment``: the use cases write what happened then."""
    return replace(program, clock=lambda: moment)


def load_demo(session: Session, program: Program, stores: dict[str, Store]) -> None:
    """Eight demo shoppers and six weeks of their visits, once (skipped when the first shopper exists)."""
    if session.scalar(select(Member.id).where(Member.email == EMAIL.format(1))) is not None:
        return
    draw = random.Random(15)
    today = program.now().replace(hour=9, minute=0, second=0, microsecond=0)
    till_stores = [s for s in stores.values() if s.active is not False]
    offer = session.scalar(select(coupons.Offer).where(coupons.Offer.title == "10% off your basket"))
    receipt = 0
    for n, name in enumerate(SHOPPERS, start=1):
        joined = today - timedelta(days=44 - 5 * n, hours=draw.randint(0, 9))
        then = _at(program, joined)
        member = enrolment.register_member(session, then, email=EMAIL.format(n), password=f"demo-shopper-{n}",
                                           name=f"{name} Demo", channel="app" if n % 3 else "web")
        day = joined
        while True:
            day += timedelta(days=draw.choice((1, 2, 3, 4, 6)), hours=draw.randint(0, 8), minutes=draw.randint(0, 59))
            if day >= program.now():
                break
            at = _at(program, day)
            store = draw.choice(till_stores)
            if draw.random() < 0.2:
                instore.check_in(session, at, member_id=member.id, store_id=store.id, lat=store.lat, lon=store.lon)
                continue
            receipt += 1
            bought = till.record_purchase(session, at, store_id=store.id, card_code=member.card.number,
                                          amount=Decimal(draw.randint(900, 32000)) / 100, currency=program.currency,
                                          receipt_id=f"DEMO-{receipt:05d}")
            if receipt % 17 == 0:  # a return the next day
                later = _at(program, day + timedelta(days=1))
                till.refund_purchase(session, later, bought.purchase.id, store_id=store.id, actor="demo")
        if offer is not None and n % 2:
            at = _at(program, joined + timedelta(days=1))
            coupon = coupons.claim_coupon(session, at, member_id=member.id, offer_id=offer.id)
            if n % 4 == 1:
                used = _at(program, joined + timedelta(days=3))
                coupons.redeem(session, used, coupon.code, store_id=till_stores[0].id)
    session.flush()
