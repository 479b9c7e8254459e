"""Consents per purpose (off until granted, every change kept with its channel, source and text version), contact
rules and push devices, over HTTP."""
from __future__ import annotations

import pytest

from tests.conftest import assert_problem

ME = "/api/v1/me"


def test_consents_are_off_until_granted_and_every_change_is_kept(client, factory, clock):
    member = factory.member()
    h = member["headers"]
    assert client.get(ME, headers=h).get_json()["consents"] == {}
    r = client.patch(ME, json={"consents": {"marketing_email": {"granted": True, "text_version": "2026-11"},
                                            "marketing_sms": False}}, headers=h)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["consents"] == {
        "marketing_email": {"granted": True, "at": "2026-11-22T10:00:00Z", "text_version": "2026-11"},
        "marketing_sms": {"granted": False, "at": "2026-11-22T10:00:00Z", "text_version": None}}
    clock.advance(minutes=1)
    same = client.patch(ME, json={"consents": {"marketing_email": True}}, headers=h)  # a repeat changes nothing
    assert same.get_json()["consents"]["marketing_email"]["at"] == "2026-11-22T10:00:00Z"
    client.patch(ME, json={"consents": {"marketing_email": {"granted": True, "text_version": "2026-12"}}}, headers=h)
    client.patch(ME, json={"consents": {"marketing_email": False}}, headers=h)
    history = client.get(f"{ME}/consents/history", headers=h).get_json()
    assert [(c["purpose"], c["granted"], c["text_version"], c["source"], c["channel"]) for c in history["items"]] == [
        ("marketing_email", False, None, "profile", "app"),
        ("marketing_email", True, "2026-12", "profile", "app"),
        ("marketing_sms", False, None, "profile", "app"),
        ("marketing_email", True, "2026-11", "profile", "app")]
    assert history["items"][0]["at"] == "2026-11-22T10:01:00Z" and history["next_cursor"] is None
    first = client.get(f"{ME}/consents/history", query_string={"limit": 3}, headers=h).get_json()
    rest = client.get(f"{ME}/consents/history", query_string={"cursor": first["next_cursor"]}, headers=h).get_json()
    assert [c["text_version"] for c in first["items"] + rest["items"]] == [None, "2026-12", None, "2026-11"]
    # another member sees none of it
    other = factory.member()
    assert client.get(f"{ME}/consents/history", headers=other["headers"]).get_json()["items"] == []


def test_enrolment_consents_start_the_history(client):
    r = client.post("/api/v1/auth/register", json={"email": "n@example.com", "password": "correct horse",
                                                   "name": "Noa", "consents": {"profiling": {"granted": True,
                                                                                             "text_version": "v3"}}})
    assert r.status_code == 201, r.get_json()
    token = r.get_json()["access_token"]
    items = client.get(f"{ME}/consents/history", headers={"Authorization": f"Bearer {token}"}).get_json()["items"]
    assert [(c["purpose"], c["granted"], c["source"], c["text_version"]) for c in items] == [
        ("profiling", True, "enrolment", "v3")]


@pytest.mark.parametrize("consents,field", [
    ({"marketing": True}, "consents.marketing"),  # not a purpose of the list
    ({"marketing_email": "yes"}, "consents.marketing_email"),
    ({"marketing_email": {"granted": "yes"}}, "consents.marketing_email"),
    ({"marketing_email": {"granted": True, "text_version": ""}}, "consents.marketing_email"),
    ({"marketing_email": {"granted": True, "text_version": "x" * 41}}, "consents.marketing_email"),
    ({"marketing_email": {"granted": True, "text_version": "a\nb"}}, "consents.marketing_email"),
    ({"marketing_email": {"granted": True, "extra": 1}}, "consents.marketing_email"),
])
def test_bad_consents_are_refused_and_change_nothing(client, factory, consents, field):
    member = factory.member(consents={"profiling": True})
    before = client.get(ME, headers=member["headers"]).get_json()
    body = assert_problem(client.patch(ME, json={"consents": consents, "name": "Changed"}, headers=member["headers"]),
                          422, "validation_error")
    assert any(name.startswith(field) for name in body["errors"]), body["errors"]
    assert client.get(ME, headers=member["headers"]).get_json() == before
    r = client.post("/api/v1/auth/register", json={"email": "bad@example.com", "password": "correct horse",
                                                   "name": "B", "consents": consents})
    assert_problem(r, 422, "validation_error")


def test_contact_rules_default_to_the_club_timezone_and_validate(client, factory, app):
    member = factory.member()
    h = member["headers"]
    assert client.get(ME, headers=h).get_json()["contact_rules"] == {
        "timezone": app.config["LOYALTY_TIMEZONE"], "quiet_hours": None, "max_messages_per_week": None}
    r = client.patch(ME, json={"contact_rules": {"timezone": "Europe/Paris", "quiet_hours": {"from": "21:00",
                                                                                             "to": "08:00"},
                                                 "max_messages_per_week": 2}}, headers=h)
    assert r.get_json()["contact_rules"] == {"timezone": "Europe/Paris", "quiet_hours": {"from": "21:00", "to": "08:00"},
                                             "max_messages_per_week": 2}
    r = client.patch(ME, json={"contact_rules": {"quiet_hours": None}}, headers=h)  # one rule off, the rest stays
    assert r.get_json()["contact_rules"] == {"timezone": "Europe/Paris", "quiet_hours": None,
                                             "max_messages_per_week": 2}
    for bad, field in [({"timezone": "Mars/Olympus"}, "contact_rules.timezone"),
                       ({"timezone": "localtime"}, "contact_rules.timezone"),  # a zoneinfo file, not a zone
                       ({"timezone": "posix/Asia/Jerusalem"}, "contact_rules.timezone"),
                       ({"quiet_hours": {"from": "25:00", "to": "08:00"}}, "contact_rules.quiet_hours"),
                       ({"quiet_hours": {"from": "08:00", "to": "08:00"}}, "contact_rules.quiet_hours"),
                       ({"quiet_hours": {"from": "08:00"}}, "contact_rules.quiet_hours"),
                       ({"max_messages_per_week": -1}, "contact_rules.max_messages_per_week"),
                       ({"max_messages_per_week": 1000}, "contact_rules.max_messages_per_week"),
                       ({"volume": "loud"}, "contact_rules.volume")]:
        body = assert_problem(client.patch(ME, json={"contact_rules": bad}, headers=h), 422, "validation_error")
        assert any(name.startswith(field) for name in body["errors"]), (bad, body["errors"])
    assert client.get(ME, headers=h).get_json()["contact_rules"]["max_messages_per_week"] == 2


def test_push_devices_register_move_and_are_removed_by_their_member_only(client, factory):
    one, two = factory.member(), factory.member()
    r = client.post(f"{ME}/devices", json={"platform": "android", "token": "tok-" + "x" * 40}, headers=one["headers"])
    assert r.status_code == 201 and r.get_json()["platform"] == "android"
    device = r.get_json()["id"]
    assert [d["id"] for d in client.get(f"{ME}/devices", headers=one["headers"]).get_json()["items"]] == [device]
    assert_problem(client.delete(f"{ME}/devices/{device}", headers=two["headers"]), 404, "not_found")
    # the phone changed hands: the same token registered by the other member is theirs now
    again = client.post(f"{ME}/devices", json={"platform": "android", "token": "tok-" + "x" * 40},
                        headers=two["headers"])
    assert again.status_code == 201 and again.get_json()["id"] == device
    assert client.get(f"{ME}/devices", headers=one["headers"]).get_json()["items"] == []
    assert client.delete(f"{ME}/devices/{device}", headers=two["headers"]).status_code == 204
    assert client.get(f"{ME}/devices", headers=two["headers"]).get_json()["items"] == []
    for bad in ({"platform": "symbian", "token": "x" * 20}, {"platform": "ios", "token": "short"},
                {"platform": "ios", "token": "x" * 600}, {"platform": "ios"}):
        assert_problem(client.post(f"{ME}/devices", json=bad, headers=one["headers"]), 422, "validation_error")
