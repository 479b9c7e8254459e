"""Campaigns over HTTP: written and checked (audited), launched once, cancelled, reported; the unsubscribe link's
pages (RFC 8058)."""
from __future__ import annotations

import re

import pytest

from tests.conftest import assert_problem
from wallet import campaigns, tokens
from wallet.campaigns import unsubscribe

API = "/api/v1/admin"
BODY = {"name": "Winter coffee", "channel": "email", "message": {"subject": "Hi {first_name}", "body": "Dear {name}"}}


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")


def create(client, marketer, **data):
    r = client.post(f"{API}/campaigns", json=BODY | data, headers=marketer["headers"])
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_create_read_change_delete_and_the_audit_log(client, factory, marketer, clock):
    admin = factory.staff("admin")
    made = create(client, marketer, holdout_percent=10, send_at="2026-11-23T08:00:00Z")
    assert (made["status"], made["holdout_percent"], made["response_days"], made["segment_id"], made["audience"]) == \
        ("draft", 10, 14, None, None)
    assert made["message"] == {"subject": "Hi {first_name}", "body": "Dear {name}"}
    assert client.get(f"{API}/campaigns/{made['id']}", headers=marketer["headers"]).get_json() == made
    r = client.patch(f"{API}/campaigns/{made['id']}", json={"name": "Renamed", "holdout_percent": 20},
                     headers=marketer["headers"])
    assert (r.get_json()["name"], r.get_json()["holdout_percent"]) == ("Renamed", 20)
    listed = client.get(f"{API}/campaigns", headers=marketer["headers"]).get_json()
    assert [c["id"] for c in listed["items"]] == [made["id"]]
    assert client.delete(f"{API}/campaigns/{made['id']}", headers=marketer["headers"]).status_code == 204
    assert_problem(client.get(f"{API}/campaigns/{made['id']}", headers=marketer["headers"]), 404,
                   "campaign_not_found")
    entries = client.get(f"{API}/audit", query_string={"entity": "campaign"}, headers=admin["headers"]).get_json()
    assert [e["action"] for e in entries["items"]] == ["delete", "update", "create"]
    assert entries["items"][1]["before"]["name"] == "Winter coffee" and entries["items"][1]["after"]["name"] == "Renamed"


@pytest.mark.parametrize("data,status,code,field", [
    ({"message": {"subject": "x", "body": "Hello {surname}"}}, 422, "unknown_template_field", "message.body"),
    ({"message": {"subject": "Hi {nickname}", "body": "x"}}, 422, "unknown_template_field", "message.subject"),
    ({"message": {"subject": "x", "body": "Your code {coupon_code}"}}, 422, "unknown_template_field", "message.body"),
    ({"message": {"subject": "x", "body": "Unclosed {name"}}, 422, "invalid_template", "message.body"),
    ({"message": {"subject": "x", "body": "{name!r}"}}, 422, "invalid_template", "message.body"),
    ({"message": {"body": "No subject"}}, 422, "validation_error", "message.subject"),
    ({"message": {"subject": "two\nlines", "body": "x"}}, 422, "validation_error", "message.subject"),
    ({"channel": "fax"}, 422, "validation_error", "channel"),
    ({"channel": "sms", "message": {"body": "x" * 1601}}, 422, "validation_error", "message.body"),
    ({"holdout_percent": 51}, 422, "validation_error", "holdout_percent"),
    ({"holdout_percent": -1}, 422, "validation_error", "holdout_percent"),
    ({"response_days": 0}, 422, "validation_error", "response_days"),
    ({"send_at": "2026-11-22T09:59:00Z"}, 422, "send_at_in_the_past", "send_at"),
    ({"send_at": "2026-11-23T08:00:00"}, 422, "validation_error", "send_at"),
    ({"offer_id": "off_nope"}, 422, "offer_not_found", "offer_id"),
    ({"segment_id": "seg_1"}, 422, "unknown_segment", "segment_id"),
    ({"name": ""}, 422, "validation_error", "name"),
    ({"colour": "red"}, 422, "validation_error", "colour"),
])
def test_bad_campaigns_are_refused_naming_the_field(client, marketer, clock, data, status, code, field):
    body = assert_problem(client.post(f"{API}/campaigns", json=BODY | data, headers=marketer["headers"]), status, code)
    assert any(name.startswith(field) for name in body.get("errors", {})), body
    assert client.get(f"{API}/campaigns", headers=marketer["headers"]).get_json()["items"] == []


def test_only_marketers_and_admins(client, factory):
    member, cashier = factory.member(), factory.staff("cashier")
    for who in (member, cashier):
        assert_problem(client.post(f"{API}/campaigns", json=BODY, headers=who["headers"]), 403, "forbidden")
        assert_problem(client.get(f"{API}/campaigns", headers=who["headers"]), 403, "forbidden")
    assert_problem(client.get(f"{API}/campaigns"), 401, "unauthorized")
    admin = factory.staff("admin")
    assert client.post(f"{API}/campaigns", json=BODY, headers=admin["headers"]).status_code == 201


def test_launch_fixes_the_audience_once_and_a_launched_campaign_only_cancels(client, factory, marketer, clock):
    reached = [factory.member(consents={"marketing_email": True}) for _ in range(10)]
    factory.member(consents={"marketing_sms": True})  # another channel's consent
    factory.member(consents={"marketing_email": True}, preferences={"email": False})  # the channel turned off
    factory.member()  # never consented
    made = create(client, marketer, holdout_percent=30)
    r = client.post(f"{API}/campaigns/{made['id']}/launch", headers=marketer["headers"])
    assert r.status_code == 200, r.get_json()
    launched = r.get_json()
    h = sum(campaigns.draw(launched["seed"], m["id"]) < (30 << 60) // 100 for m in reached)
    assert (launched["status"], launched["audience"], launched["holdout"]) == ("launched", 10, h)
    assert launched["launched_at"] == "2026-11-22T10:00:00Z"
    assert_problem(client.post(f"{API}/campaigns/{made['id']}/launch", headers=marketer["headers"]), 409,
                   "campaign_already_launched")
    assert_problem(client.patch(f"{API}/campaigns/{made['id']}", json={"name": "x"}, headers=marketer["headers"]),
                   409, "campaign_not_draft")
    messages = client.get(f"{API}/campaigns/{made['id']}/messages", query_string={"limit": 200},
                          headers=marketer["headers"]).get_json()["items"]
    assert sorted(m["member_id"] for m in messages) == sorted(m["id"] for m in reached)
    assert sorted(m["status"] for m in messages) == ["holdout"] * h + ["pending"] * (10 - h)
    # cancelling: what was not sent is not sent; the campaign and its report stay
    assert client.delete(f"{API}/campaigns/{made['id']}", headers=marketer["headers"]).status_code == 204
    after = client.get(f"{API}/campaigns/{made['id']}", headers=marketer["headers"]).get_json()
    assert after["status"] == "cancelled"
    report = client.get(f"{API}/campaigns/{made['id']}/report", headers=marketer["headers"]).get_json()
    assert (report["audience"], report["holdout"], report["treated"], report["cancelled"], report["sent"]) == \
        (10, h, 10 - h, 10 - h, 0)
    assert_problem(client.post(f"{API}/campaigns/{made['id']}/launch", headers=marketer["headers"]), 409,
                   "campaign_already_launched")
    assert_problem(client.post(f"{API}/campaigns/cmp_nope/launch", headers=marketer["headers"]), 404,
                   "campaign_not_found")


def test_the_report_counts_responders_and_the_lift_with_its_interval(app, client, factory, marketer, clock):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    people = [factory.member(consents={"marketing_email": True}) for _ in range(20)]
    made = create(client, marketer, holdout_percent=50, response_days=7)
    _seed_for_an_even_split(app, made["id"], [p["id"] for p in people])
    client.post(f"{API}/campaigns/{made['id']}/launch", headers=marketer["headers"])
    messages = client.get(f"{API}/campaigns/{made['id']}/messages", query_string={"limit": 200},
                          headers=marketer["headers"]).get_json()["items"]
    held = {m["member_id"] for m in messages if m["holdout"]}
    treated = [p for p in people if p["id"] not in held]
    holdout = [p for p in people if p["id"] in held]
    clock.advance(days=1)
    cashier["headers"] = factory.headers(tokens.Principal(cashier["id"], "cashier", store["id"]))
    buyers = treated[:6] + holdout[:2]
    for i, person in enumerate(buyers):
        r = client.post("/api/v1/pos/purchases", headers=cashier["headers"], json={
            "card": person["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": f"r{i}"})
        assert r.status_code == 201, r.get_json()
    clock.advance(days=7)  # after the window: not a response
    cashier["headers"] = factory.headers(tokens.Principal(cashier["id"], "cashier", store["id"]))
    client.post("/api/v1/pos/purchases", headers=cashier["headers"], json={
        "card": treated[9]["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "late"})
    marketer["headers"] = factory.headers(tokens.Principal(marketer["id"], "marketer"))
    report = client.get(f"{API}/campaigns/{made['id']}/report", headers=marketer["headers"]).get_json()
    assert (report["audience"], report["holdout"], report["treated"]) == (20, 10, 10)
    assert (report["responders"], report["holdout_responders"]) == (6, 2)
    assert report["response_rate"] == 0.6 and report["holdout_response_rate"] == 0.2
    assert report["lift"] == pytest.approx(0.4)
    lo, hi = report["lift_ci95"]
    assert (round(lo, 4), round(hi, 4)) == (-0.0226, 0.6725) == tuple(round(x, 4) for x in campaigns.newcombe(6, 10, 2, 10))
    # nothing was sent (no worker ran): an email's opens and clicks are counted, and are none
    assert (report["tracked"], report["opened"], report["clicked"]) == (0, 0, 0)
    assert report["window"] == {"from": "2026-11-22T10:00:00Z", "to": "2026-11-29T10:00:00Z"}


def _seed_for_an_even_split(app, campaign_id: str, member_ids: list[str]) -> None:
    """A seed whose Bernoulli draws hold out exactly half of these members (so the figures below are fixed)."""
    import os

    from api.extensions import db
    from wallet.campaigns import Campaign
    from wallet.campaigns.audience import threshold
    while True:
        seed = os.urandom(16).hex()
        if sum(campaigns.draw(seed, m) < threshold(50) for m in member_ids) == len(member_ids) // 2:
            break
    with app.app_context():
        db.session.get(Campaign, campaign_id).seed = seed
        db.session.commit()
        db.session.remove()


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339
    lo, hi = campaigns.newcombe(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_no_holdout_no_lift(client, factory, marketer):
    factory.member(consents={"marketing_email": True})
    made = create(client, marketer)
    client.post(f"{API}/campaigns/{made['id']}/launch", headers=marketer["headers"])
    report = client.get(f"{API}/campaigns/{made['id']}/report", headers=marketer["headers"]).get_json()
    assert (report["treated"], report["holdout"], report["lift"], report["lift_ci95"],
            report["holdout_response_rate"]) == (1, 0, None, None, None)


# ------------------------------------------------------------------ unsubscribe (RFC 8058)


def _link(app, member_id: str, channel: str = "email") -> str:
    return "/api/v1/unsubscribe/" + unsubscribe.token(app.extensions["loyalty.program"], "cmp_" + "0" * 26, member_id,
                                                      channel)


def test_get_confirms_and_changes_nothing_post_withdraws_once(app, client, factory):
    member = factory.member(consents={"marketing_email": True, "marketing_sms": True})
    link = _link(app, member["id"])
    page = client.get(link)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"] and "<script" not in page.get_data(True)
    assert 'name="List-Unsubscribe" value="One-Click"' in page.get_data(True)
    me = client.get("/api/v1/me", headers=member["headers"]).get_json()
    assert me["consents"]["marketing_email"]["granted"] is True
    done = client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "unsubscribed" in done.get_data(True)
    consents = client.get("/api/v1/me", headers=member["headers"]).get_json()["consents"]
    assert (consents["marketing_email"]["granted"], consents["marketing_sms"]["granted"]) == (False, True)
    again = client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and "already" in again.get_data(True)
    history = client.get("/api/v1/me/consents/history", headers=member["headers"]).get_json()["items"]
    assert [(h["purpose"], h["granted"], h["source"], h["channel"]) for h in history[:1]] == [
        ("marketing_email", False, "unsubscribe", "web")]
    assert len([h for h in history if h["source"] == "unsubscribe"]) == 1


def test_forged_altered_and_wrong_bodies_change_nothing(app, client, factory):
    member = factory.member(consents={"marketing_email": True})
    link = _link(app, member["id"])
    other = factory.member(consents={"marketing_email": True})
    forged = re.sub(r"mem_[0-9A-Z]+", other["id"], link)  # someone else's id with this link's signature
    for bad in (forged, link[:-1] + ("A" if link[-1] != "A" else "B"), "/api/v1/unsubscribe/garbage",
                "/api/v1/unsubscribe/" + "x" * 500):
        for method in ("get", "post"):
            r = getattr(client, method)(bad, data={"List-Unsubscribe": "One-Click"} if method == "post" else None)
            assert r.status_code == 404 and "not valid" in r.get_data(True), (bad, method)
    assert client.post(link, data={"List-Unsubscribe": "Yes"}).status_code == 400
    assert client.post(link, json={"List-Unsubscribe": "One-Click"}).status_code == 400
    for who in (member, other):
        me = client.get("/api/v1/me", headers=who["headers"]).get_json()
        assert me["consents"]["marketing_email"]["granted"] is True


def test_a_closed_membership_gets_a_clear_answer(app, client, factory):
    from api.extensions import db
    from wallet.members import Member
    member = factory.member(consents={"marketing_email": True})
    with app.app_context():
        db.session.get(Member, member["id"]).status = "closed"
        db.session.commit()
        db.session.remove()
    link = _link(app, member["id"])
    assert client.get(link).status_code == 410
    assert client.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 410
