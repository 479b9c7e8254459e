"""Apple's PassKit web service as an iPhone uses it (Apple's paths, status codes and bodies, never problem+json),
and the way a change reaches the phone: the event log's points, tier and coupon events move the pass's update tag
and the worker pushes (a recording APNs sender here) and updates Google Wallet (a recording client)."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from api.extensions import db
from wallet import events, passes
from wallet.passes import updates, webservice
from wallet.passes.apple import authentication_token
from wallet.passes.models import PassDevice, PassRegistration, WalletPass

from .. import wallet_keys
from ..wallet_keys import PASS_TYPE_ID, RecordingGoogle, RecordingSender, make_apple_pki, verify_pkpass
from .test_coupons import claim
from .test_offers import make_offer

# The wallet's shared fixtures (tests/wallet_keys.py), used here by name.
apple_on = wallet_keys.apple_on
apple_pki = wallet_keys.apple_pki
google_account = wallet_keys.google_account
google_on = wallet_keys.google_on

API = "/api/v1"
BASE = "/api/passkit/v1"
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "ab" * 32  # an APNs device token: 64 hex characters


@pytest.fixture
def held(client, clock, apple_on, factory):
    """A member whose card pass was downloaded (so the pass exists), and what a phone knows of it."""
    member = factory.member(name="Yael")
    factory.earn(member["id"], 100)
    r = client.get(f"{API}/me/card/pass.pkpass", headers=member["headers"])
    assert r.status_code == 200
    serial = member["card_id"]
    program = client.application.extensions["loyalty.program"]
    token = authentication_token(program.secret, serial)
    return {"member": member, "serial": serial, "auth": {"Authorization": f"ApplePass {token}"},
            "last_modified": r.headers["Last-Modified"], "apple": apple_on}


def register(client, held, device=DEVICE, token=TOKEN, auth=None, pass_type=PASS_TYPE_ID, serial=None):
    return client.post(f"{BASE}/devices/{device}/registrations/{pass_type}/{serial or held['serial']}",
                       json={"pushToken": token}, headers=held["auth"] if auth is None else auth)


def serials(client, device=DEVICE, since=None, pass_type=PASS_TYPE_ID):
    query = f"?passesUpdatedSince={since}" if since is not None else ""
    return client.get(f"{BASE}/devices/{device}/registrations/{pass_type}{query}")


def plain(response, status: int):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype != "application/problem+json"


def test_register_201_then_200_and_a_wrong_token_401(client, held):
    plain(register(client, held), 201)
    plain(register(client, held), 200)
    plain(register(client, held, token="cd" * 32), 200)  # a new push token replaces the old one
    with client.application.app_context():
        assert db.session.get(PassDevice, DEVICE).push_token == "cd" * 32
    plain(register(client, held, device="other", auth={"Authorization": "ApplePass " + "A" * 32}), 401)
    plain(register(client, held, device="other", auth={}), 401)
    plain(register(client, held, device="other", auth={"Authorization": "Bearer " + held["auth"]["Authorization"]}),
          401)


def test_a_wrong_pass_type_in_the_path_is_404(client, held):
    plain(register(client, held, pass_type="pass.club.example.other"), 404)
    plain(serials(client, pass_type="pass.club.example.other"), 404)
    plain(client.get(f"{BASE}/passes/pass.club.example.other/{held['serial']}", headers=held["auth"]), 404)


def test_bad_push_tokens_are_refused(client, held):
    plain(register(client, held, token="not hex"), 400)
    plain(register(client, held, token="ab" * 101), 400)
    huge = client.post(f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{held['serial']}",
                       data=b'{"pushToken": "' + b"a" * (5 * 1024 * 1024) + b'"}',
                       headers=held["auth"] | {"Content-Type": "application/json"})
    plain(huge, 413)  # the body limit, before anything is parsed or stored
    plain(client.post(f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{held['serial']}", json=["x"],
                      headers=held["auth"]), 400)
    with client.application.app_context():
        assert db.session.query(PassDevice).count() == 0


@pytest.mark.slow
def test_a_device_registering_ten_thousand_passes_stops_at_the_cap(app, client, held, program):
    """One device, a pass for each of 10,000 serials: the first MAX_PASSES_PER_DEVICE are registered, every other
    one is refused with 403 and a reason, and nothing past the cap is written."""
    with app.app_context():
        db.session.execute(WalletPass.__table__.insert(), [
            {"serial": f"crd_X{i:07d}", "kind": "card", "member_id": held["member"]["id"], "apple": True,
             "google": False, "modified": 0, "push_due": False, "google_due": False,
             "created_at": datetime.now(UTC)} for i in range(10_000)])
        db.session.commit()
        outcomes = {201: 0, 403: 0}
        for i in range(10_000):
            serial = f"crd_X{i:07d}"
            token = authentication_token(program.secret, serial)
            try:
                outcomes[webservice.register(db.session, program, device_id="greedy", pass_type_id=PASS_TYPE_ID,
                                             serial=serial, body={"pushToken": TOKEN},
                                             authorization=f"ApplePass {token}")] += 1
            except webservice.Refused as refused:
                assert refused.status == 403 and "the most it may" in refused.message
                outcomes[403] += 1
        db.session.commit()
        assert outcomes[201] == webservice.MAX_PASSES_PER_DEVICE
        assert outcomes[403] == 10_000 - webservice.MAX_PASSES_PER_DEVICE
        assert db.session.query(PassRegistration).filter_by(device_id="greedy").count() == \
            webservice.MAX_PASSES_PER_DEVICE
    over = f"crd_X{9_999:07d}"
    auth = {"Authorization": "ApplePass " + authentication_token(program.secret, over)}
    response = register(client, held, device="greedy", serial=over, auth=auth)
    plain(response, 403)
    assert "the most it may" in response.get_data(as_text=True)


def test_a_pass_registered_on_too_many_devices_is_refused(client, held):
    for i in range(webservice.MAX_DEVICES_PER_PASS):
        plain(register(client, held, device=f"device{i}"), 201)
    plain(register(client, held, device="one-more"), 403)


def test_updated_serials_204_then_the_changed_pass_with_a_tag(app, client, held, clock, program):
    plain(serials(client), 204)  # no registrations yet
    plain(register(client, held), 201)
    first = serials(client)
    assert first.status_code == 200 and first.get_json()["serialNumbers"] == [held["serial"]]
    clock.advance(minutes=10)
    # the first answer came within the margin of the pass's change: its tag was held back, so the pass comes again
    again = serials(client, since=first.get_json()["lastUpdated"])
    assert again.status_code == 200 and again.get_json()["serialNumbers"] == [held["serial"]]
    tag = again.get_json()["lastUpdated"]
    plain(serials(client, since=tag), 204)
    with app.app_context():
        assert passes.changed(db.session, program, held["member"]["id"]) == 1
        db.session.commit()
    changed = serials(client, since=tag)
    assert changed.status_code == 200 and changed.get_json()["serialNumbers"] == [held["serial"]]
    newer = changed.get_json()["lastUpdated"]
    assert int(newer) > int(tag)
    # within the margin the same pass may come again (harmless); past it, nothing is new
    clock.advance(seconds=webservice.TAG_MARGIN_SECONDS + 1)
    plain(serials(client, since=serials(client, since=newer).get_json()["lastUpdated"]), 204)
    plain(serials(client, since="not-a-tag"), 400)


def test_latest_pass_with_last_modified_and_304(app, client, held, clock, program, apple_pki, tmp_path):
    path = f"{BASE}/passes/{PASS_TYPE_ID}/{held['serial']}"
    plain(client.get(path), 401)
    r = client.get(path, headers=held["auth"])
    assert r.status_code == 200 and r.mimetype == "application/vnd.apple.pkpass"
    assert r.headers["Last-Modified"] == held["last_modified"]
    verify_pkpass(r.data, apple_pki.root, tmp_path)
    plain(client.get(path, headers=held["auth"] | {"If-Modified-Since": r.headers["Last-Modified"]}), 304)
    # points move: the same request now gets the new pass, with a later Last-Modified
    clock.advance(seconds=5)
    with app.app_context():
        from wallet import ledger
        ledger.earn(db.session, program, member_id=held["member"]["id"], points=7, reason="manual",
                    idempotency_key="t:7", description="test")
        db.session.commit()
    fresh = client.get(path, headers=held["auth"] | {"If-Modified-Since": r.headers["Last-Modified"]})
    assert fresh.status_code == 200 and fresh.headers["Last-Modified"] != r.headers["Last-Modified"]
    assert verify_pkpass(fresh.data, apple_pki.root, tmp_path / "2").pass_json["storeCard"]["headerFields"][0][
        "value"] == 107
    plain(client.get(f"{BASE}/passes/{PASS_TYPE_ID}/crd_NOSUCH",
                     headers={"Authorization": "ApplePass " + authentication_token(program.secret, "crd_NOSUCH")}),
          404)


def test_unregister_and_log(app, client, held):
    plain(register(client, held), 201)
    url = f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{held['serial']}"
    plain(client.delete(url), 401)
    plain(client.delete(url, headers=held["auth"]), 200)
    plain(client.delete(url, headers=held["auth"]), 200)
    with app.app_context():
        assert db.session.query(PassRegistration).count() == 0 and db.session.get(PassDevice, DEVICE) is None
    plain(client.post(f"{BASE}/log", json={"logs": ["Web service error for pass.x: 500", 7]}), 200)
    plain(client.post(f"{BASE}/log", json={"nope": 1}), 400)


def test_unconfigured_the_web_service_is_404_plain(client, program):
    assert program.apple_wallet is None
    response = client.get(f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}")
    plain(response, 404)
    plain(client.get(f"{BASE}/passes/{PASS_TYPE_ID}/crd_X"), 404)


def test_an_expired_certificate_at_start_up_logs_once_and_answers_404(make_app, tmp_path, caplog, factory):
    expired = make_apple_pki(tmp_path, expired=True)
    with caplog.at_level(logging.ERROR, "loyalty.passes"):
        other = make_app(**expired.config(), LOYALTY_PUBLIC_URL="https://club.example")
    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.passes"]
    assert len(lines) == 1 and "Apple Wallet passes are OFF" in lines[0] and "expired on" in lines[0]
    member = factory.member()
    client = other.test_client()
    r = client.get(f"{API}/me/card/pass.pkpass", headers=member["headers"])
    assert r.status_code == 404 and r.get_json()["code"] == "wallet_pass_unavailable"
    plain(client.get(f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"), 404)
    assert client.get(f"{API}/me/wallet", headers=member["headers"]).status_code == 200


def test_configured_from_the_environment(make_app, apple_pki, google_account, factory):
    other = make_app(**apple_pki.config(), LOYALTY_GOOGLE_ISSUER_ID="3388000000012345678",
                     LOYALTY_GOOGLE_SERVICE_ACCOUNT=str(google_account), LOYALTY_PUBLIC_URL="https://club.example")
    program = other.extensions["loyalty.program"]
    assert program.apple_wallet.pass_type_id == PASS_TYPE_ID and program.google_wallet.issuer_id == "3388000000012345678"
    assert program.public_url == "https://club.example"
    member = factory.member()
    assert other.test_client().get(f"{API}/me/card/pass.pkpass", headers=member["headers"]).status_code == 200


# ------------------------------------------------------------------ a change reaches the phone


def _worker_round(app, program, sender=None, google=None) -> None:
    with app.app_context():
        while updates.follow_events(db.session, program):
            db.session.commit()
        db.session.commit()
        if sender is not None:
            passes.push_due(db.session, program, sender)
            db.session.commit()
        if google is not None:
            passes.sync_google(db.session, program, google)
            db.session.commit()


@pytest.fixture(autouse=True)
def _no_backoff():
    updates._backoff.clear()
    updates._classes_sent.clear()
    yield
    updates._backoff.clear()
    updates._classes_sent.clear()


def test_points_from_a_purchase_reach_the_registered_phone(app, client, held, clock, program, factory):
    _worker_round(app, program, RecordingSender())  # the worker has caught up with the points earned before
    plain(register(client, held), 201)
    plain(register(client, held, device="ipad", token="ef" * 32), 201)
    tag = serials(client).get_json()["lastUpdated"]
    sender = RecordingSender()
    _worker_round(app, program, sender)
    assert sender.sent == []  # nothing changed yet
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1})
    clock.advance(minutes=5)
    r = client.post(f"{API}/pos/purchases", headers=cashier["headers"],
                    json={"card": held["member"]["card_number"], "amount": "30.00", "currency": "ILS",
                          "receipt_id": "R-1"})
    assert r.status_code == 201 and r.get_json()["points_awarded"] == 30
    _worker_round(app, program, sender)
    assert sorted(sender.sent) == [(PASS_TYPE_ID, "ab" * 32), (PASS_TYPE_ID, "ef" * 32)]
    assert serials(client, since=tag).get_json()["serialNumbers"] == [held["serial"]]
    sender.sent.clear()
    _worker_round(app, program, sender)
    assert sender.sent == []  # told once


def test_a_dead_token_forgets_the_device_and_an_unreachable_one_is_tried_again(app, client, held, clock, program):
    plain(register(client, held), 201)
    plain(register(client, held, device="old-phone", token="ef" * 32), 201)
    with app.app_context():
        passes.changed(db.session, program, held["member"]["id"])
        db.session.commit()
    sender = RecordingSender(answers={"ef" * 32: "gone", "ab" * 32: "retry"})
    _worker_round(app, program, sender)
    with app.app_context():
        assert db.session.get(PassDevice, "old-phone") is None
        assert db.session.get(WalletPass, held["serial"]).push_due is True
    sender = RecordingSender()
    _worker_round(app, program, sender)
    assert sender.sent == []  # waiting before trying APNs again
    updates._backoff.clear()
    _worker_round(app, program, sender)
    assert sender.sent == [(PASS_TYPE_ID, "ab" * 32)]
    with app.app_context():
        assert db.session.get(WalletPass, held["serial"]).push_due is False


def test_a_redeemed_coupon_and_a_tier_change_reach_their_passes(app, client, held, clock, program, factory, google_on):
    marketer = factory.staff("marketer")
    member = held["member"]
    coupon = claim(client, member, make_offer(client, marketer)["id"]).get_json()
    assert client.get(f"{API}/me/coupons/{coupon['id']}/pass.pkpass", headers=member["headers"]).status_code == 200
    assert client.get(f"{API}/me/card/google-wallet", headers=member["headers"]).status_code == 200
    _worker_round(app, program, RecordingSender(), RecordingGoogle())  # what is there so far
    with app.app_context():
        before = {row.serial: row.modified for row in db.session.query(WalletPass)}
    clock.advance(minutes=1)
    with app.app_context():
        events.emit(db.session, "coupon.redeemed", member_id=member["id"], channel="till", actor="test",
                    data={"coupon_id": coupon["id"], "offer_id": coupon["offer_id"]}, occurred_at=clock.now)
        events.emit(db.session, "tier.changed", member_id=member["id"], channel="job", actor="test",
                    data={"from": "basic", "to": "gold"}, occurred_at=clock.now)
        db.session.commit()
    google = RecordingGoogle()
    _worker_round(app, program, RecordingSender(), google)
    with app.app_context():
        after = {row.serial: row.modified for row in db.session.query(WalletPass)}
    assert after[coupon["id"]] > before[coupon["id"]] and after[held["serial"]] > before[held["serial"]]
    [loyalty] = google.objects("loyaltyObject")
    assert loyalty["id"].endswith(held["serial"]) and loyalty["loyaltyPoints"]["balance"] == {"int": 100}


def test_a_voided_coupon_and_a_rolled_back_redemption_reach_the_coupons_pass(app, client, held, clock, program,
                                                                           factory):
    marketer = factory.staff("marketer")
    member = held["member"]
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    offer = make_offer(client, marketer)["id"]
    used, dropped = (claim(client, member, offer).get_json() for _ in range(2))
    for coupon in (used, dropped):
        assert client.get(f"{API}/me/coupons/{coupon['id']}/pass.pkpass", headers=member["headers"]).status_code == 200
    _worker_round(app, program, RecordingSender())
    with app.app_context():
        before = {row.serial: row.modified for row in db.session.query(WalletPass)}
    clock.advance(minutes=1)
    redeemed = client.post(f"{API}/pos/redemptions", json={"coupon": used["code"]}, headers=cashier["headers"])
    assert redeemed.status_code == 201, redeemed.get_json()
    _worker_round(app, program, RecordingSender())
    clock.advance(minutes=1)
    with app.app_context():
        middle = {row.serial: row.modified for row in db.session.query(WalletPass)}
    back = client.post(f"{API}/pos/redemptions/{redeemed.get_json()['id']}/rollback", headers=cashier["headers"])
    assert back.status_code == 200, back.get_json()
    voided = client.post(f"{API}/admin/coupons/{dropped['id']}/void", json={"reason": "sent by mistake"},
                         headers=marketer["headers"])
    assert voided.status_code == 200, voided.get_json()
    _worker_round(app, program, RecordingSender())
    with app.app_context():
        after = {row.serial: row.modified for row in db.session.query(WalletPass)}
        kinds = [e.type for e in db.session.scalars(select(events.Event).where(
            events.Event.type.in_(["coupon.voided", "coupon.redemption_rolled_back"])).order_by(events.Event.position))]
    assert kinds == ["coupon.redemption_rolled_back", "coupon.voided"]
    assert before[used["id"]] < middle[used["id"]] < after[used["id"]]  # redeemed, then usable again
    assert after[dropped["id"]] > before[dropped["id"]]


def test_balance_changes_patch_the_saved_google_object(app, client, clock, program, factory, google_on):
    member = factory.member()
    assert client.get(f"{API}/me/card/google-wallet", headers=member["headers"]).status_code == 200
    google = RecordingGoogle()
    _worker_round(app, program, google=google)
    assert google.calls == []  # saved as it is: nothing to update
    factory.earn(member["id"], 40)
    google.fail = True
    _worker_round(app, program, google=google)
    with app.app_context():
        assert db.session.get(WalletPass, member["card_id"]).google_due is True  # kept for the next try
    google.fail = False
    updates._backoff.clear()
    _worker_round(app, program, google=google)
    assert [r for r, _ in google.calls] == ["loyaltyClass", "loyaltyObject"]
    assert google.objects("loyaltyObject")[0]["loyaltyPoints"]["balance"] == {"int": 40}
    with app.app_context():
        assert db.session.get(WalletPass, member["card_id"]).google_due is False


def test_a_change_made_while_the_push_was_out_stays_due(app, client, held, clock, program):
    plain(register(client, held), 201)
    with app.app_context():
        passes.changed(db.session, program, held["member"]["id"])
        db.session.commit()

    class ChangingSender(RecordingSender):
        def send(self, topic, tokens):
            with app.app_context():
                passes.changed(db.session, program, held["member"]["id"])
                db.session.commit()
            return super().send(topic, tokens)

    _worker_round(app, program, ChangingSender())
    with app.app_context():
        assert db.session.get(WalletPass, held["serial"]).push_due is True



def test_the_apps_own_guards_answer_plainly_here_too(client, held):
    url = f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{held['serial']}"
    plain(client.post(url, data="pushToken=ab", headers=held["auth"] | {"Content-Type": "text/plain"}), 415)
    plain(client.post(url, json={"pushToken": "ab\u0000"}, headers=held["auth"]), 422)


def test_the_worker_runs_the_wallet_jobs(app, client, held, clock, program, google_on):
    """``loyalty worker`` has the wallet's jobs when a wallet is configured (none otherwise), and one run of the
    worker with them turns a points event into a push."""
    from datetime import timedelta

    from sqlalchemy.orm import sessionmaker

    from api import wallet_passes
    from wallet import worker

    with app.test_request_context():
        assert [job.name for job in wallet_passes.jobs()] == ["passes-follow-events", "passes-purge", "passes-apns",
                                                              "passes-google"]
        program.apple_wallet = program.google_wallet = None
        assert wallet_passes.jobs() == []
    program.apple_wallet = held["apple"]
    plain(register(client, held), 201)
    sender = RecordingSender()
    every = timedelta(minutes=1)  # due once at the test's fixed clock: the second round finds nothing and ends
    jobs = [worker.PeriodicJob("passes-follow-events", every, passes.follow_events),
            worker.PeriodicJob("passes-apns", every, lambda s, p: passes.push_due(s, p, sender))]
    with app.app_context():
        factory_session = sessionmaker(bind=db.engine)
        worker.run(factory_session, program, jobs=jobs, once=True, poll=0.01)
    assert sender.sent == [(PASS_TYPE_ID, TOKEN)]  # the 100 points earned before the pass was registered
