"""GET/PUT/DELETE /me/social: the social profile under the social_data consent; data_shared and
profile_completed fire once per member ever."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem
from wallet import social
from wallet.events import Event
from wallet.ledger import LedgerEntry
from wallet.triggers import LifeEvent

SOCIAL = "/api/v1/me/social"


@pytest.fixture
def member(factory):
    return factory.member()


def _count(app, model, *where) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.remove()
        return n


def test_without_consent_nothing_is_stored(client, member, app):
    assert client.get(SOCIAL, headers=member["headers"]).get_json() == {
        "networks": [], "attributes": {}, "share_consent": False}
    r = client.put(SOCIAL, json={"networks": [{"network": "instagram", "handle": "noa"}]}, headers=member["headers"])
    body = assert_problem(r, 422, "social_consent_required")
    assert "share_consent" in body["errors"]
    assert _count(app, social.SocialNetwork) == 0


def test_consent_stores_the_profile_and_fires_data_shared_once_ever(client, member, app, factory):
    factory.rule(title="Thanks for sharing", trigger="data_shared", reward={"points": 50})
    profile = {"networks": [{"network": "instagram", "handle": "@noa.levi"}, {"network": "tiktok", "handle": "נועה_1"}],
               "attributes": {"favourite_team": "Maccabi <b>TA</b>", "followers": 1200, "verified": True},
               "share_consent": True}
    r = client.put(SOCIAL, json=profile, headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"networks": [{"network": "instagram", "handle": "noa.levi"},
                                         {"network": "tiktok", "handle": "נועה_1"}],
                            "attributes": {"favourite_team": "Maccabi <b>TA</b>", "followers": "1200",
                                           "verified": "true"},
                            "share_consent": True}
    assert client.get(SOCIAL, headers=member["headers"]).get_json() == r.get_json()
    assert factory.balance(member["id"]) == 50
    # withdraw (deletes everything), grant again: no second reward
    assert client.delete(SOCIAL, headers=member["headers"]).status_code == 204
    assert _count(app, social.SocialNetwork) == 0 and _count(app, social.SocialAttribute) == 0
    assert client.get(SOCIAL, headers=member["headers"]).get_json()["share_consent"] is False
    assert client.put(SOCIAL, json=profile, headers=member["headers"]).status_code == 200
    assert factory.balance(member["id"]) == 50
    assert _count(app, LifeEvent, LifeEvent.trigger == "data_shared") == 1
    with app.app_context():
        changes = [e.data for e in db.session.scalars(select(Event).where(Event.type == "consent.changed")
                                                      .order_by(Event.id))]
        db.session.remove()
    assert [(c["consent"], c["granted"]) for c in changes] == [("social_data", True), ("social_data", False),
                                                               ("social_data", True)]


def test_withdrawing_through_patch_me_deletes_the_social_data(client, member, app):
    client.put(SOCIAL, json={"networks": [{"network": "x", "handle": "noa"}], "attributes": {"team": "a"},
                             "share_consent": True}, headers=member["headers"])
    assert _count(app, social.SocialAttribute) == 1
    r = client.patch("/api/v1/me", json={"consents": {"social_data": False}}, headers=member["headers"])
    assert r.status_code == 200, r.get_json()
    assert _count(app, social.SocialNetwork) == 0 and _count(app, social.SocialAttribute) == 0


def test_put_false_withdraws_and_forgets(client, member, app):
    client.put(SOCIAL, json={"networks": [{"network": "x", "handle": "noa"}], "share_consent": True},
               headers=member["headers"])
    r = client.put(SOCIAL, json={"share_consent": False}, headers=member["headers"])
    assert r.get_json() == {"networks": [], "attributes": {}, "share_consent": False}
    assert _count(app, social.SocialNetwork) == 0


@pytest.mark.parametrize("body, field", [
    ({"networks": [{"network": "myspace", "handle": "noa"}]}, "networks"),
    ({"networks": [{"network": "x", "handle": "no a"}]}, "networks.0.handle"),
    ({"networks": [{"network": "x", "handle": "a" * 65}]}, "networks.0.handle"),
    ({"networks": [{"network": "x", "handle": "a"}, {"network": "x", "handle": "b"}]}, "networks[1].network"),
    ({"attributes": {"Bad Key": "x"}}, "attributes"),
    ({"attributes": {"team": {"nested": 1}}}, "attributes.team"),
    ({"attributes": {"team": ["a"]}}, "attributes.team"),
    ({"attributes": {"team": "x" * 201}}, "attributes.team"),
    ({"attributes": {"team": "a\u0000b"}}, "attributes.team"),
    ({"attributes": {f"k{i}": "v" for i in range(51)}}, "attributes"),
    ({"share_consent": "yes"}, "share_consent"),
    ({"unknown": 1}, "unknown"),
])
def test_bad_profiles_are_refused_and_change_nothing(client, member, app, body, field):
    r = client.put(SOCIAL, json={"share_consent": True, **body}, headers=member["headers"])
    assert r.status_code in (400, 422), r.get_json()
    assert r.mimetype == "application/problem+json"
    errors = r.get_json().get("errors") or {}
    assert any(k.startswith(field.split(".")[0].split("[")[0]) for k in errors), errors
    assert _count(app, social.SocialNetwork) == 0
    assert client.get(SOCIAL, headers=member["headers"]).get_json()["share_consent"] is False


def test_another_role_cannot_use_it(client, factory):
    marketer = factory.staff("marketer")
    assert client.get(SOCIAL, headers=marketer["headers"]).status_code == 403
    assert client.get(SOCIAL).status_code == 401


def test_profile_completed_fires_once_when_the_fields_are_filled(client, factory, app):
    factory.rule(title="Profile complete", trigger="profile_completed", reward={"points": 30})
    member = factory.member(phone="054-123-4567")
    app.config["LOYALTY_PROFILE_FIELDS"] = ("name", "birthday", "phone", "social")
    try:
        client.patch("/api/v1/me", json={"birthday": "1990-05-01"}, headers=member["headers"])
        assert factory.balance(member["id"]) == 0  # no linked network yet
        client.put(SOCIAL, json={"networks": [{"network": "x", "handle": "noa"}], "share_consent": True},
                   headers=member["headers"])
        assert factory.balance(member["id"]) == 30
        client.patch("/api/v1/me", json={"name": "Noa L"}, headers=member["headers"])
        client.delete(SOCIAL, headers=member["headers"])
        client.put(SOCIAL, json={"networks": [{"network": "x", "handle": "noa"}], "share_consent": True},
                   headers=member["headers"])
        assert factory.balance(member["id"]) == 30
        assert _count(app, LedgerEntry, LedgerEntry.member_id == member["id"]) == 1
    finally:
        app.config["LOYALTY_PROFILE_FIELDS"] = social.PROFILE_FIELDS


def test_phones_are_stored_in_e164(client, factory, app):
    member = factory.member(phone="054-123-4567")
    with app.app_context():
        from wallet.members import Member
        assert db.session.get(Member, member["id"]).phone == "+972541234567"
        db.session.remove()
    client.patch("/api/v1/me", json={"phone": "+1 (212) 555-0100"}, headers=member["headers"])
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["phone"] == "+12125550100"


def test_social_data_given_at_enrolment_fires_data_shared(client, factory, app):
    factory.rule(title="Thanks for sharing", trigger="data_shared", reward={"points": 50})
    r = client.post("/api/v1/auth/register", json={"email": "new@example.com", "password": "correct horse battery",
                                                   "name": "New", "consents": {"social_data": True}})
    assert r.status_code == 201, r.get_json()
    assert factory.balance(r.get_json()["member"]["id"]) == 50


def test_the_export_carries_the_social_profile(client, factory):
    member = factory.member()
    h = member["headers"]
    r = client.put("/api/v1/me/social", headers=h, json={"networks": [{"network": "instagram", "handle": "dana.tlv"}],
                                                          "attributes": {"team": "Maccabi"}, "share_consent": True})
    assert r.status_code == 200, r.get_json()
    social = client.get("/api/v1/me/export", headers=h).get_json()["social"]
    assert social == {"networks": [{"network": "instagram", "handle": "dana.tlv"}], "attributes": {"team": "Maccabi"},
                      "share_consent": True}
