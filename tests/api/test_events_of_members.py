"""The shopper's side writes its events: enrolment (member.enrolled and each consent given), a profile change (the
fields' names, never their values, and each consent's change), a check-in and a scan (never coordinates), a claimed
coupon (coupon.issued and the points it cost) and its redemption at the till. Nothing personal in any of them."""
from __future__ import annotations

import json

from tests.outbox import member_events
from wallet.events import Event

from .test_offers import API, add_product, make_offer


def no_personal_data(found: list[Event], *values: str) -> None:
    for event in found:
        text = json.dumps(event.data)
        for value in values:
            assert value not in text, (event.type, value)


def test_enrolment_records_the_member_and_the_consents_given(app, client):
    r = client.post(f"{API}/auth/register", json={"email": "dana@example.com", "password": "a long secret",
                                                  "name": "Dana Levi", "consents": {"marketing_email": True}})
    assert r.status_code == 201, r.get_json()
    member = r.get_json()["member"]
    found = member_events(app, member["id"])
    assert [e.type for e in found][:2] == ["member.enrolled", "consent.changed"]
    enrolled, consent = found[:2]
    assert set(enrolled.data) == {"card_id"} and enrolled.data["card_id"].startswith("crd_")
    assert (enrolled.channel, enrolled.actor) == ("app", f"member:{member['id']}")
    assert consent.data == {"consent": "marketing_email", "granted": True, "source": "enrolment"}
    no_personal_data(found, "dana@example.com", "Dana", "Levi")


def test_a_profile_change_names_its_fields_and_each_consent(app, client, factory):
    member = factory.member()
    before = len(member_events(app, member["id"]))
    r = client.patch(f"{API}/me", json={"name": "Noa Cohen", "phone": "+972501234567",
                                        "consents": {"marketing_sms": True}}, headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    new = member_events(app, member["id"])[before:]
    assert [e.type for e in new] == ["consent.changed", "member.updated"]
    assert new[0].data == {"consent": "marketing_sms", "granted": True, "source": "profile"}
    assert new[1].data == {"fields": ["name", "phone", "consents"]}
    no_personal_data(new, "Noa", "Cohen", "501234567")
    same = client.patch(f"{API}/me", json={"name": "Noa Cohen"}, headers=member["headers"])
    assert same.status_code == 200
    assert len(member_events(app, member["id"])) == before + 2  # nothing changed: nothing said


def test_a_check_in_and_a_scan_record_ids_never_coordinates(app, client, factory):
    store = factory.store()
    add_product(app, barcode="4006381333931")
    member = factory.member()
    before = len(member_events(app, member["id"]))
    r = client.post(f"{API}/me/check-ins", json={"store_id": store["id"], "lat": 32.0753, "lon": 34.7754},
                    headers=member["headers"])
    assert r.status_code == 201, r.get_json()
    scanned = client.post(f"{API}/me/scans", json={"barcode": "4006381333931", "store_id": store["id"]},
                          headers=member["headers"])
    assert scanned.status_code == 201, scanned.get_json()
    new = member_events(app, member["id"])[before:]
    assert [e.type for e in new] == ["check_in.recorded", "scan.recorded"]
    check_in, scan = new
    assert check_in.data == {"check_in_id": r.get_json()["check_in"]["id"], "points_awarded": 0}
    assert check_in.store_id == store["id"] and check_in.channel == "app"
    assert scan.data["barcode"] == "4006381333931" and scan.data["first_scan"] is True
    no_personal_data(new, "32.0753", "34.7754")


def test_a_claimed_coupon_and_its_redemption(app, client, factory):
    marketer = factory.staff("marketer")
    offer = make_offer(client, marketer, points_cost=30)
    member = factory.member()
    factory.earn(member["id"], 100)
    before = len(member_events(app, member["id"]))
    coupon = client.post(f"{API}/me/coupons", json={"offer_id": offer["id"]}, headers=member["headers"]).get_json()
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    r = client.post(f"{API}/pos/redemptions", json={"coupon": coupon["code"], "receipt_id": "R-9"},
                    headers=cashier["headers"])
    assert r.status_code == 201, r.get_json()
    new = member_events(app, member["id"])[before:]
    assert [e.type for e in new] == ["points.spent", "coupon.issued", "coupon.redeemed"]
    spent, issued, redeemed = new
    assert spent.data["points"] == 30 and spent.data["balance_after"] == 70 and spent.data["reason"] == "coupon"
    assert issued.data["coupon_id"] == coupon["id"] and issued.data["points_cost"] == 30
    assert issued.data["source"] == "claim" and issued.channel == "app"
    assert redeemed.data == {"coupon_id": coupon["id"], "offer_id": offer["id"],
                             "redemption_id": r.get_json()["id"], "receipt_id": "R-9"}
    assert (redeemed.channel, redeemed.store_id, redeemed.actor) == ("till", store["id"], f"staff:{cashier['id']}")
    again = client.post(f"{API}/pos/redemptions", json={"coupon": coupon["code"], "receipt_id": "R-10"},
                        headers=cashier["headers"])
    assert again.status_code == 409
    assert len(member_events(app, member["id"])) == before + 3  # a refused redemption says nothing
