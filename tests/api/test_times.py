"""Every time the API answers is ISO 8601 in UTC with ``Z`` (API.md: ``2026-11-22T10:00:00Z``), never ``+00:00``:
schema fields, times the domain writes into dicts, problem details, stored JSON, and the JSON provider's fallback."""
from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from flask import json
from marshmallow import ValidationError

from api.schemas import Time, zulu
from wallet.clock import iso

from ..conftest import assert_problem
from ..wallet.test_instore_checkins import destination
from .test_offers import API, make_offer

OLD_STYLE = re.compile(r"\+00:00")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def instant(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------ the helper and the field

def test_iso_writes_z_and_keeps_what_isoformat_gives():
    assert iso(datetime(2026, 11, 22, 10, 0, tzinfo=UTC)) == "2026-11-22T10:00:00Z"
    assert iso(datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)) == "2026-11-22T10:00:00.123456Z"
    assert iso(datetime(2026, 11, 22, 10, 0, 0, 500, tzinfo=UTC)) == "2026-11-22T10:00:00.000500Z"
    # another zone: the same instant, in UTC
    assert iso(datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-22T10:00:00Z"
    assert iso(datetime(2026, 11, 22, 10, 0, tzinfo=timezone(timedelta(0)))) == "2026-11-22T10:00:00Z"
    assert iso(None) is None
    with pytest.raises(ValueError):
        iso(datetime(2026, 11, 22, 10, 0))  # naive: no instant to write


def test_time_field_writes_z_and_reads_z_and_offsets():
    field = Time(allow_none=True)
    assert field.serialize("t", {"t": datetime(2026, 11, 22, 10, 0, tzinfo=UTC)}) == "2026-11-22T10:00:00Z"
    assert field.serialize("t", {"t": None}) is None
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert field.deserialize("2026-11-22T10:00:00Z") == at
    assert field.deserialize("2026-11-22T10:00:00+00:00") == at
    assert field.deserialize("2026-11-22T12:00:00+02:00") == at
    with pytest.raises(ValidationError):
        field.deserialize("2026-11-22T10:00:00")  # no offset: which instant?


def test_zulu_rewrites_only_utc_offset_times():
    assert zulu({"at": "2026-11-22T10:00:00+00:00", "n": [1, "2026-11-22T10:00:00.5+00:00"], "x": "+00:00",
                 "local": "2026-11-22T12:00:00+02:00", "day": "2026-11-22", "t": True}) == {
        "at": "2026-11-22T10:00:00Z", "n": [1, "2026-11-22T10:00:00.5Z"], "x": "+00:00",
        "local": "2026-11-22T12:00:00+02:00", "day": "2026-11-22", "t": True}


def test_a_stray_datetime_is_written_as_iso_z_not_as_an_http_date(app):
    with app.app_context():
        text = json.dumps({"at": datetime(2026, 11, 22, 10, 0, tzinfo=UTC), "day": date(2026, 11, 22), "b": 2,
                           "a": 1})
    assert text == '{"at": "2026-11-22T10:00:00Z", "day": "2026-11-22", "b": 2, "a": 1}'  # keys not sorted


# ------------------------------------------------------------------ exact strings over HTTP

@pytest.fixture
def club(client, factory, clock, program):
    program.random = random.Random(5)
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    member = factory.member()
    r = client.post(f"{API}/admin/rules", headers=marketer["headers"], json={
        "title": "A point a shekel", "trigger": "purchase", "reward": {"points_per_currency_unit": 1},
        "starts_at": "2026-11-01T00:00:00+02:00", "ends_at": "2027-01-01T00:00:00Z"})
    assert r.status_code == 201, r.get_json()
    rule = r.get_json()
    r = client.post(f"{API}/admin/rules", headers=marketer["headers"], json={
        "title": "Double next time", "trigger": "purchase", "reward": {"multiplier": 2, "purchases": 1, "days": 7},
        "per_member_limit": 1})
    assert r.status_code == 201, r.get_json()
    offer = make_offer(client, marketer, valid_from="2026-11-01T00:00:00Z", valid_until="2027-01-01T00:00:00+02:00",
                       coupon_valid_days=10)
    later = make_offer(client, marketer, title="Later", valid_from="2026-12-01T08:30:00+02:00")
    coupon = client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"])
    assert coupon.status_code == 201, coupon.get_json()
    purchase = client.post(f"{API}/pos/purchases", headers=cashier["headers"], json={
        "card": member["card_number"], "amount": "42.00", "currency": "ILS", "receipt_id": "R-1"})
    assert purchase.status_code == 201, purchase.get_json()
    lat, lon = destination(store["lat"], store["lon"], 50, 45)
    check_in = client.post(f"{API}/me/check-ins", json={"store_id": store["id"], "lat": lat, "lon": lon},
                           headers=member["headers"])
    assert check_in.status_code == 201, check_in.get_json()
    redemption = client.post(f"{API}/pos/redemptions", json={"coupon": coupon.get_json()["token"]},
                             headers=cashier["headers"])
    assert redemption.status_code == 201, redemption.get_json()
    adjust = client.post(f"{API}/admin/members/{member['id']}/adjustments", headers=marketer["headers"],
                         json={"points": 5, "reason": "goodwill"})
    assert adjust.status_code in (200, 201), adjust.get_json()
    return {"store": store, "cashier": cashier, "marketer": marketer, "member": member, "rule": rule,
            "offer": offer, "later": later, "coupon": coupon.get_json(), "purchase": purchase.get_json(),
            "redemption": redemption.get_json()}


def test_exact_times(client, club):
    member, marketer = club["member"]["headers"], club["marketer"]["headers"]
    me = client.get(f"{API}/me", headers=member).get_json()
    assert me["created_at"] == "2026-11-22T10:00:00Z"
    assert {c["at"] for c in me["consents"].values()} <= {"2026-11-22T10:00:00Z"}

    assert club["coupon"]["expires_at"] == "2026-12-02T10:00:00Z"
    assert club["coupon"]["issued_at"] == "2026-11-22T10:00:00Z"
    assert club["redemption"]["redeemed_at"] == "2026-11-22T10:00:00Z"
    assert club["redemption"]["rollback_until"] == "2026-11-22T10:30:00Z"

    offer = client.get(f"{API}/admin/offers/{club['offer']['id']}", headers=marketer).get_json()
    assert (offer["valid_from"], offer["valid_until"]) == ("2026-11-01T00:00:00Z", "2026-12-31T22:00:00Z")
    assert offer["created_at"] == offer["updated_at"] == "2026-11-22T10:00:00Z"
    later = client.get(f"{API}/admin/offers/{club['later']['id']}", headers=marketer).get_json()
    assert later["valid_from"] == "2026-12-01T06:30:00Z"  # sent as 08:30+02:00
    member_offer = client.get(f"{API}/offers/{club['offer']['id']}", headers=member).get_json()
    assert member_offer["valid_until"] == "2026-12-31T22:00:00Z"

    rule = club["rule"]
    assert (rule["starts_at"], rule["ends_at"]) == ("2026-10-31T22:00:00Z", "2027-01-01T00:00:00Z")
    grants = client.get(f"{API}/admin/rules/{rule['id']}/grants", headers=marketer).get_json()["items"]
    [grant] = [g for g in grants if g["event_source"] == f"purchase:{club['purchase']['purchase_id']}"]
    assert grant["granted_at"] == "2026-11-22T10:00:00Z"
    assert grant["event"]["occurred_at"] == "2026-11-22T10:00:00Z"
    assert grant["rule_snapshot"]["starts_at"] == "2026-10-31T22:00:00Z"
    assert grant["explanation"].count("at 2026-11-22T10:00:00Z") == 1
    versions = client.get(f"{API}/admin/rules/{rule['id']}/versions", headers=marketer).get_json()["items"]
    assert versions[0]["changed_at"] == "2026-11-22T10:00:00Z"
    assert versions[0]["snapshot"]["ends_at"] == "2027-01-01T00:00:00Z"

    wallet = client.get(f"{API}/me/wallet", headers=member).get_json()
    assert [b["valid_until"] for b in wallet["benefits"]] == ["2026-11-29T10:00:00Z"]

    admin_member = client.get(f"{API}/admin/members/{club['member']['id']}", headers=marketer).get_json()
    lines = admin_member["recent_ledger"]
    assert lines and {line["created_at"] for line in lines} == {"2026-11-22T10:00:00Z"}
    statement = client.get(f"{API}/me/ledger", headers=member).get_json()["items"]
    assert {line["created_at"] for line in statement} == {"2026-11-22T10:00:00Z"}
    for text in (me["created_at"], grant["granted_at"], offer["valid_until"], statement[0]["created_at"]):
        assert instant(text) in (datetime(2026, 11, 22, 10, 0, tzinfo=UTC), datetime(2026, 12, 31, 22, 0, tzinfo=UTC))


def test_problem_details_carry_z_times(client, club, factory, clock):
    member = club["member"]["headers"]
    problem = assert_problem(client.post(f"{API}/me/coupons", json={"offer_id": club["later"]["id"]},
                                         headers=member), 422, "offer_not_active")
    assert problem["starts_at"] == "2026-12-01T06:30:00Z"
    assert instant(problem["starts_at"]) == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    again = assert_problem(client.post(f"{API}/pos/redemptions", json={"coupon": club["coupon"]["token"]},
                                       headers=club["cashier"]["headers"]), 409, "coupon_already_redeemed")
    assert again["redeemed_at"] == "2026-11-22T10:00:00Z"


def test_stored_times_from_before_are_answered_with_z(app, client, club):
    """Consents and a grant's event kept as JSON when the API still wrote ``+00:00``."""
    from api.extensions import db
    from wallet import members, rules
    with app.app_context():
        member = db.session.get(members.Member, club["member"]["id"])
        member.consents = {"marketing": {"granted": True, "at": "2026-11-20T08:00:00+00:00"}}
        grant = db.session.scalars(db.select(rules.RuleGrant).where(rules.RuleGrant.rule_id == club["rule"]["id"])
                                   ).one()
        grant.event = grant.event | {"occurred_at": "2026-11-22T10:00:00.250000+00:00"}
        db.session.commit()
        grant_id = grant.id
        db.session.remove()
    me = client.get(f"{API}/me", headers=club["member"]["headers"]).get_json()
    assert me["consents"] == {"marketing": {"granted": True, "at": "2026-11-20T08:00:00Z", "text_version": None}}
    got = client.get(f"{API}/admin/grants/{grant_id}", headers=club["marketer"]["headers"]).get_json()
    assert got["event"]["occurred_at"] == "2026-11-22T10:00:00.250000Z"


# ------------------------------------------------------------------ the sweep

def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def test_no_answer_says_plus_zero_zero(client, club):
    member, marketer = club["member"]["headers"], club["marketer"]["headers"]
    m = club["member"]["id"]
    gets = [
        ("/me", member), ("/me/wallet", member), ("/me/ledger", member), ("/me/coupons", member),
        (f"/me/coupons/{club['coupon']['id']}", member), ("/me/activity", member), ("/me/check-ins", member),
        ("/me/card/token", member), ("/offers", member), (f"/offers/{club['offer']['id']}", member),
        ("/stores", member),
        ("/admin/members", marketer), (f"/admin/members/{m}", marketer), (f"/admin/members/{m}/activity", marketer),
        (f"/admin/members/{m}/benefits", marketer), ("/admin/offers", marketer),
        (f"/admin/offers/{club['offer']['id']}", marketer), (f"/admin/offers/{club['offer']['id']}/stats", marketer),
        ("/admin/coupons", marketer), (f"/admin/coupons/{club['coupon']['id']}", marketer),
        ("/admin/rules", marketer), (f"/admin/rules/{club['rule']['id']}", marketer),
        (f"/admin/rules/{club['rule']['id']}/grants", marketer), (f"/admin/rules/{club['rule']['id']}/versions",
                                                                  marketer),
        ("/admin/grants", marketer), ("/admin/check-ins", marketer), ("/admin/stores", marketer),
        (f"/admin/stores/{club['store']['id']}", marketer),
    ]
    times = 0
    for path, headers in gets:
        r = client.get(f"{API}{path}", headers=headers)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True))
        for text in strings(r.get_json()):
            assert not OLD_STYLE.search(text), (path, text)
            if LOOKS_LIKE_A_TIME.match(text) and len(text) < 40:
                assert text.endswith("Z"), (path, text)
                times += 1
    assert times > 50
