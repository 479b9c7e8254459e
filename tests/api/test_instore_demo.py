"""The demo club comes with in-store rules: a check-in and a first scan earn at once."""
from __future__ import annotations

import random

from sqlalchemy import select

from api.extensions import db
from wallet import demo, instore, rules, tokens
from wallet.members import Member
from wallet.stores import Product, Store


class NoLuck(random.Random):
    def random(self) -> float:
        return 0.999999  # no surprise wins: the answer is what the plain rules give


def test_the_demo_club_checks_in_and_scans(app, client, factory, program, clock):
    program.random = NoLuck()
    with app.app_context():
        demo.load(db.session, program)
        demo.load(db.session, program)  # twice: nothing doubles
        db.session.commit()
        titles = list(db.session.scalars(select(rules.Rule.title).where(rules.Rule.trigger.in_(["check_in", "scan"]))))
        assert all(titles.count(r["title"]) == 1 for r in instore.DEMO_RULES), titles
        store = db.session.scalar(select(Store).where(Store.code == "TLV-DIZ"))
        member_id = db.session.scalar(select(Member.id).where(Member.email == "member@demo.club"))
        mug = db.session.scalar(select(Product).where(Product.sku == "MUG-01"))
        store_id, lat, lon, mug_barcode = store.id, store.lat, store.lon, mug.barcode
        db.session.remove()
    headers = factory.headers(tokens.Principal(member_id, "member"))
    r = client.post("/api/v1/me/check-ins", json={"store_id": store_id, "lat": lat, "lon": lon}, headers=headers)
    assert r.status_code == 201 and r.get_json()["points_awarded"] == 10
    r = client.post("/api/v1/me/scans", json={"barcode": mug_barcode, "store_id": store_id}, headers=headers)
    assert r.status_code == 201 and r.get_json()["points_awarded"] == 2
    assert [c["sku"] for c in r.get_json()["complementary"]] == ["COF-250"]
