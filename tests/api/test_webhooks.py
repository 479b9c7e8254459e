"""Webhooks over HTTP (admin only): subscribe, the secret shown once, the SSRF guard, pause and resume, rotation,
the delivery list and a manual retry, with a real receiver on 127.0.0.1 and the worker in between."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from sqlalchemy.orm import sessionmaker

from api.extensions import db
from wallet import events, webhooks, worker

from ..conftest import assert_problem
from ..outbox import settle
from ..receivers import receiver, status

BASE = "/api/v1/admin/webhooks"
SETTINGS = webhooks.Settings(allow_private=True, timeout=2, lease=timedelta(seconds=10))


@pytest.fixture
def admin(factory):
    return factory.staff("admin")


@pytest.fixture
def allow_private(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOYALTY_WEBHOOK_ALLOW_PRIVATE", True)


def emit_and_deliver(app, program, n: int = 1) -> None:
    with app.app_context():
        for i in range(n):
            events.emit(db.session, "coupon.redeemed", member_id="mem_1", store_id="sto_1", channel="till",
                        actor="staff:stf_1", data={"coupon_id": f"cpn_{i}", "offer_id": "off_1"},
                        occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
        settle(db.session)
        worker.run(sessionmaker(bind=db.engine), program, settings=SETTINGS, once=True)
        db.session.remove()


def test_only_admins_use_webhooks(client, factory):
    for role in ("marketer", "cashier"):
        headers = factory.staff(role)["headers"]
        assert_problem(client.get(BASE, headers=headers), 403, "forbidden")
        assert_problem(client.post(BASE, headers=headers, json={"url": "https://8.8.8.8/", "events": ["*"]}),
                       403, "forbidden")
    assert_problem(client.get(BASE, headers=factory.member()["headers"]), 403, "forbidden")
    assert_problem(client.get(BASE), 401, "unauthorized")
    assert_problem(client.get("/api/v1/admin/events", headers=factory.staff("marketer")["headers"]), 403, "forbidden")
    assert_problem(client.get("/api/v1/admin/audit", headers=factory.staff("marketer")["headers"]), 403, "forbidden")


def test_subscribe_shows_the_secret_once(client, admin):
    r = client.post(BASE, headers=admin["headers"], json={"url": "https://8.8.8.8/hooks", "events": ["purchase.recorded",
                                                                                                     "coupon.redeemed"],
                                                          "description": "the CRM"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["id"].startswith("whk_") and body["status"] == "active"
    assert body["events"] == ["purchase.recorded", "coupon.redeemed"] and body["description"] == "the CRM"
    assert body["secret"].startswith("whsec_")
    standardwebhooks.Webhook(body["secret"])  # a secret the receivers' library reads
    assert len(__import__("base64").b64decode(body["secret"][6:])) >= 24
    shown = client.get(f"{BASE}/{body['id']}", headers=admin["headers"]).get_json()
    assert "secret" not in shown and shown["url"] == "https://8.8.8.8/hooks"
    listed = client.get(BASE, headers=admin["headers"]).get_json()
    assert [w["id"] for w in listed["items"]] == [body["id"]] and "secret" not in listed["items"][0]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/", "http://100.64.0.1/", "http://[fe80::1]/", "http://[fc00::1]/",
])
def test_private_loopback_and_link_local_targets_are_refused(client, admin, url):
    r = client.post(BASE, headers=admin["headers"], json={"url": url, "events": ["*"]})
    body = assert_problem(r, 422, "webhook_url_not_allowed")
    assert "url" in body["errors"]


def test_private_targets_are_allowed_when_configured(client, admin, allow_private):
    r = client.post(BASE, headers=admin["headers"], json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    assert r.status_code == 201


@pytest.mark.parametrize(("payload", "field"), [
    ({"url": "ftp://8.8.8.8/", "events": ["*"]}, "url"),
    ({"url": "https://user:pw@8.8.8.8/", "events": ["*"]}, "url"),
    ({"url": "https://8.8.8.8/", "events": ["purchase.made"]}, "events.0"),
    ({"url": "https://8.8.8.8/", "events": []}, "events"),
    ({"url": "https://8.8.8.8/"}, "events"),
    ({"url": "https://8.8.8.8/", "events": ["*"], "secret": "mine"}, "secret"),
])
def test_bad_subscriptions_are_refused(client, admin, payload, field):
    body = assert_problem(client.post(BASE, headers=admin["headers"], json=payload), 422, "validation_error")
    assert field in body["errors"], body


def test_an_unresolvable_host_is_refused(client, admin):
    r = client.post(BASE, headers=admin["headers"], json={"url": "https://no-such-host.invalid/", "events": ["*"]})
    assert_problem(r, 422, "webhook_url_unresolvable")


def test_patch_pause_resume_delete(client, admin):
    hook = client.post(BASE, headers=admin["headers"], json={"url": "https://8.8.8.8/", "events": ["*"]}).get_json()
    url = f"{BASE}/{hook['id']}"
    r = client.patch(url, headers=admin["headers"], json={"status": "paused", "events": ["member.enrolled"]})
    assert r.status_code == 200 and (r.get_json()["status"], r.get_json()["events"]) == ("paused", ["member.enrolled"])
    assert_problem(client.patch(url, headers=admin["headers"], json={"status": "asleep"}), 422, "validation_error")
    assert_problem(client.patch(url, headers=admin["headers"], json={"url": "http://127.0.0.1/"}), 422,
                   "webhook_url_not_allowed")
    assert client.patch(url, headers=admin["headers"], json={"status": "active"}).get_json()["status"] == "active"
    assert client.delete(url, headers=admin["headers"]).status_code == 204
    assert_problem(client.get(url, headers=admin["headers"]), 404, "not_found")
    assert_problem(client.delete(url, headers=admin["headers"]), 404, "not_found")


def test_deliveries_rotation_and_retry_end_to_end(app, client, admin, program, allow_private):
    with receiver(status(500)) as hook:
        created = client.post(BASE, headers=admin["headers"], json={"url": hook.url, "events": ["coupon.redeemed"]})
        created = created.get_json()
        emit_and_deliver(app, program)
        deliveries = client.get(f"{BASE}/{created['id']}/deliveries", headers=admin["headers"]).get_json()
        [d] = deliveries["items"]
        assert {k: d[k] for k in ("type", "status", "attempts", "last_status_code")} == \
            {"type": "coupon.redeemed", "status": "pending", "attempts": 1, "last_status_code": 500}
        assert d["event_id"] == hook.received[0].headers["webhook-id"] and d["next_attempt_at"].endswith("Z")
        standardwebhooks.Webhook(created["secret"]).verify(hook.received[0].body, hook.received[0].headers)

        rotated = client.post(f"{BASE}/{created['id']}/rotate-secret", headers=admin["headers"])
        assert rotated.status_code == 200
        new_secret = rotated.get_json()["secret"]
        assert new_secret != created["secret"] and rotated.get_json()["previous_secret_until"]

        hook.answer = status(204)
        r = client.post(f"{BASE}/{created['id']}/deliveries/{d['id']}/retry", headers=admin["headers"])
        assert r.status_code == 202 and r.get_json()["status"] == "pending"
        emit_and_deliver(app, program, 0)
        got = hook.received[-1]
        for secret in (created["secret"], new_secret):  # both sign for 24 hours
            standardwebhooks.Webhook(secret).verify(got.body, got.headers)
        [d] = client.get(f"{BASE}/{created['id']}/deliveries?status=delivered", headers=admin["headers"]).get_json()[
            "items"]
        assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 2, 204)
        assert client.get(f"{BASE}/{created['id']}/deliveries?status=pending",
                          headers=admin["headers"]).get_json()["items"] == []
        assert_problem(client.post(f"{BASE}/{created['id']}/deliveries/whd_nope/retry", headers=admin["headers"]),
                       404, "not_found")


def test_a_410_shows_as_disabled(app, client, admin, program, allow_private):
    with receiver(status(410)) as hook:
        created = client.post(BASE, headers=admin["headers"], json={"url": hook.url, "events": ["*"]}).get_json()
        emit_and_deliver(app, program)
        shown = client.get(f"{BASE}/{created['id']}", headers=admin["headers"]).get_json()
        assert (shown["status"], shown["disabled_reason"]) == ("disabled", "the receiver answered 410 Gone")
        [d] = client.get(f"{BASE}/{created['id']}/deliveries", headers=admin["headers"]).get_json()["items"]
        assert (d["status"], d["last_status_code"]) == ("failed", 410)


def test_delivery_list_pages(app, client, admin, program, allow_private):
    with receiver() as hook:
        created = client.post(BASE, headers=admin["headers"], json={"url": hook.url, "events": ["*"]}).get_json()
        emit_and_deliver(app, program, 5)
        url = f"{BASE}/{created['id']}/deliveries?limit=2"
        seen, cursor = [], None
        while True:
            page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=admin["headers"]).get_json()
            seen += [d["id"] for d in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 5 == len(set(seen)) and seen == sorted(seen, reverse=True)


def test_webhook_changes_are_audited(client, admin):
    created = client.post(BASE, headers=admin["headers"], json={"url": "https://8.8.8.8/", "events": ["*"]}).get_json()
    client.patch(f"{BASE}/{created['id']}", headers=admin["headers"], json={"status": "paused"})
    client.post(f"{BASE}/{created['id']}/rotate-secret", headers=admin["headers"])
    client.delete(f"{BASE}/{created['id']}", headers=admin["headers"])
    items = client.get(f"/api/v1/admin/audit?entity=webhook&entity_id={created['id']}",
                       headers=admin["headers"]).get_json()["items"]
    assert [i["action"] for i in items] == ["delete", "rotate_secret", "update", "create"]
    assert items[0]["actor"] == {"id": admin["id"], "email": admin["email"], "role": "admin"}
    assert items[1]["before"] == {"secret": "(changed)"} and items[1]["after"] == {"secret": "(changed)"}
    assert items[2]["changed"] == ["status"]
    assert (items[2]["before"]["status"], items[2]["after"]["status"]) == ("active", "paused")
    assert created["secret"] not in str(items)
