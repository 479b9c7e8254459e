"""Campaign messages sent by the worker for real: email to a real SMTP server on 127.0.0.1 (aiosmtpd), SMS and push
to real HTTP gateways on 127.0.0.1 whose signatures ``standardwebhooks`` checks; every way the relay and gateways
fail; the rules checked at send time (consent, quiet hours, weekly cap); a worker killed mid-campaign."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks
from flask import g
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.extensions import db
from wallet import campaigns, coupons, events, members, tokens, webhooks, worker
from wallet.campaigns import CampaignMessage, unsubscribe
from wallet.coupons import Coupon

from .receivers import ok, receiver, status
from .smtp import smtp_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOOKS = webhooks.Settings(allow_private=True, timeout=2.0, lease=timedelta(seconds=10))
SECRET = webhooks.new_secret()


def settings(smtp=None, sms=None, push=None, **kw) -> campaigns.MessageSettings:
    return campaigns.MessageSettings(smtp_url=smtp, sms_gateway_url=sms, push_gateway_url=push, gateway_secret=SECRET,
                                     timeout=kw.pop("timeout", 1.0), lease=kw.pop("lease", timedelta(seconds=60)),
                                     **kw)


def work(program, messages: campaigns.MessageSettings, **kw) -> worker.Stats:
    db.session.commit()
    return worker.run(sessionmaker(bind=db.engine), program, settings=HOOKS, once=True, messages=messages, **kw)


def member(factory, consents=("marketing_email",), **kw) -> dict:
    return factory.member(consents={c: True for c in consents}, **kw)


def patch_me(client, factory, who: dict, body: dict):
    """PATCH /me as ``who``. These tests hold an app context (the session fixture), which the test client's requests
    share, and with it ``g``: forget the previous request's caller first."""
    g.pop("principal", None)
    response = client.patch("/api/v1/me", json=body, headers=factory.headers(tokens.Principal(who["id"], "member")))
    g.pop("principal", None)
    return response


def campaign(session, program, **data) -> campaigns.Campaign:
    data = {"name": "Winter", "channel": "email", "subject": "Hello {first_name}",
            "body": "Dear {name}, come in."} | data
    made = campaigns.create_campaign(session, program, data, actor="staff:stf_test")
    session.commit()
    return made


def launch(session, program, made) -> campaigns.Campaign:
    launched = campaigns.launch(session, program, made.id, actor="staff:stf_test")
    session.commit()
    return launched


def rows(session, campaign_id: str) -> dict[str, CampaignMessage]:
    session.commit()
    session.expire_all()
    return {m.member_id: m for m in session.scalars(select(CampaignMessage)
                                                   .where(CampaignMessage.campaign_id == campaign_id))}


def test_email_goes_out_with_rfc_8058_headers_a_stable_message_id_and_escaped_personalisation(session, program,
                                                                                             factory, clock):
    marketer_offer = coupons.create_offer(session, program, {"title": "Coffee", "benefit": {"kind": "percent_off",
                                                                                            "value": "10"}})
    session.commit()
    dana = member(factory, name="Dana <b>& Co</b>")
    member(factory, consents=())  # no consent: not in the audience
    made = campaign(session, program, offer_id=marketer_offer.id, body="Hi {name}! Your code: {coupon_code}")
    launch(session, program, made)
    with smtp_server() as smtp:
        stats = work(program, settings(smtp=smtp.url))
        assert stats.messages["sent"] == 1
        [mail] = smtp.received
    message = mail.message
    key = f"{made.id}.{dana['id']}"
    assert mail.rcpt_tos == [dana["email"]] and mail.mail_from == "club@127.0.0.1"
    assert message["Message-ID"].strip() == f"<{key}@127.0.0.1>"
    assert message["Subject"] == "Hello Dana"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip().strip("<>")
    assert link.startswith("http://127.0.0.1:5000/api/v1/unsubscribe/" + made.id)
    assert unsubscribe.read(program, link.rsplit("/", 1)[1]).member_id == dana["id"]
    [coupon] = session.scalars(select(Coupon).where(Coupon.member_id == dana["id"])).all()
    code = "-".join(coupon.code[i:i + 4] for i in range(0, 12, 4))
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"Hi Dana <b>& Co</b>! Your code: {code}" in text
    assert f"Hi Dana &lt;b&gt;&amp; Co&lt;/b&gt;! Your code: {code}" in html and "<b>" not in html
    row = rows(session, made.id)[dana["id"]]
    assert (row.status, row.attempts, row.coupon_id, row.lease_owner) == ("sent", 1, coupon.id, None)
    [sent] = [e for e in session.scalars(select(events.Event).where(events.Event.type == "message.sent"))]
    assert (sent.member_id, sent.data) == (dana["id"], {"message_id": key, "campaign_id": made.id, "medium": "email",
                                                        "attempts": 1, "coupon_id": coupon.id})
    assert work(program, settings(smtp=smtp.url)).messages["sent"] == 0  # nothing is sent twice


def test_a_holdout_gets_nothing_and_the_audience_is_fixed_at_launch(session, program, factory):
    everyone = [member(factory) for _ in range(20)]
    made = launch(session, program, campaign(session, program, holdout_percent=25))
    member(factory)  # joined after the launch: not in it
    found = rows(session, made.id)
    assert set(found) == {m["id"] for m in everyone}
    # each member's draw is md5(seed || id); those below a quarter of 2^60 are held out, recomputably
    held = {m["id"] for m in everyone if campaigns.draw(made.seed, m["id"]) < (1 << 60) // 4}
    assert {m.member_id for m in found.values() if m.holdout} == held
    assert all(m.draw == campaigns.draw(made.seed, m.member_id) for m in found.values())
    assert (made.audience, made.holdout) == (20, len(held))
    with smtp_server() as smtp:
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 20 - len(held)
        assert {m.rcpt_tos[0] for m in smtp.received} == {m["email"] for m in everyone
                                                          if not found[m["id"]].holdout}
    report = campaigns.report(session, made.id)
    n = 20 - len(held)
    assert {k: report[k] for k in ("audience", "holdout", "treated", "sent", "delivered", "failed", "suppressed")} == \
        {"audience": 20, "holdout": len(held), "treated": n, "sent": n, "delivered": n, "failed": 0, "suppressed": 0}


def test_a_5xx_fails_at_once_and_a_4xx_is_retried(session, program, factory, clock):
    refused, later = member(factory, email="refused@example.com"), member(factory, email="later@example.com")
    made = launch(session, program, campaign(session, program))
    answers = {"refused@example.com": "550 5.1.1 no such mailbox", "later@example.com": "451 4.3.0 try later"}
    with smtp_server(lambda mail: answers[mail.rcpt_tos[0]]) as smtp:
        stats = work(program, settings(smtp=smtp.url))
        assert (stats.messages["failed"], stats.messages["retry"]) == (1, 1)
        found = rows(session, made.id)
        assert (found[refused["id"]].status, found[refused["id"]].attempts) == ("failed", 1)
        assert found[refused["id"]].last_error.startswith("550")
        retry = found[later["id"]]
        assert (retry.status, retry.attempts, retry.last_error[:3]) == ("pending", 1, "451")
        assert clock.now + timedelta(seconds=2.5) <= retry.next_attempt_at <= clock.now + timedelta(seconds=5)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 0  # not due yet
        answers["later@example.com"] = "250 OK"
        clock.advance(seconds=5)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 1
        assert [m.rcpt_tos[0] for m in smtp.received].count("refused@example.com") == 1  # never again
        ids = [m.message["Message-ID"] for m in smtp.received if m.rcpt_tos == ["later@example.com"]]
        assert len(ids) == 2 and len(set(ids)) == 1
    assert rows(session, made.id)[later["id"]].status == "sent"


def test_a_server_that_hangs_times_out_and_the_message_is_retried(session, program, factory, clock):
    one = member(factory)
    made = launch(session, program, campaign(session, program))
    with smtp_server(lambda mail: "hang") as smtp:
        started = time.monotonic()
        assert work(program, settings(smtp=smtp.url, timeout=0.5, lease=timedelta(seconds=5))).messages["retry"] == 1
        assert time.monotonic() - started < 5
        row = rows(session, made.id)[one["id"]]
        assert (row.status, row.attempts) == ("pending", 1) and "timed out" in row.last_error.lower()
        smtp.answer = None
        smtp.release.set()
        clock.advance(seconds=5)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 1
    assert rows(session, made.id)[one["id"]].status == "sent"


def test_a_connection_dropped_mid_message_is_retried_with_the_same_message_id(session, program, factory, clock):
    a, b = member(factory), member(factory)
    made = launch(session, program, campaign(session, program))
    dropped = []

    def drop_once(mail):
        if not dropped:
            dropped.append(mail.rcpt_tos[0])
            return "drop"
        return "250 OK"
    with smtp_server(drop_once) as smtp:
        stats = work(program, settings(smtp=smtp.url))
        assert (stats.messages["sent"], stats.messages["retry"]) == (1, 1)  # the other one on a new connection
        clock.advance(seconds=5)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 1
        by_rcpt: dict[str, list[str]] = {}
        for mail in smtp.received:
            by_rcpt.setdefault(mail.rcpt_tos[0], []).append(mail.message["Message-ID"])
    # the server had the first copy (its acceptance was lost): the second carries the same Message-ID
    assert len(by_rcpt[dropped[0]]) == 2 and len(set(by_rcpt[dropped[0]])) == 1
    assert sorted(len(v) for v in by_rcpt.values()) == [1, 2]
    assert {r.status for r in rows(session, made.id).values()} == {"sent"}
    _ = (a, b)


def test_an_unreachable_relay_leaves_every_message_for_later(session, program, factory):
    for _ in range(3):
        member(factory)
    made = launch(session, program, campaign(session, program))
    stats = work(program, settings(smtp="smtp://127.0.0.1:1"))
    assert stats.messages["retry"] == 3
    assert {(r.status, r.attempts) for r in rows(session, made.id).values()} == {("pending", 1)}


def test_sms_and_push_go_to_gateways_signed_with_an_idempotency_key_and_a_500_is_retried(session, program, factory,
                                                                                        clock, client):
    texter = member(factory, consents=("marketing_sms",), phone="+972501234567", preferences={"sms": True})
    pusher = member(factory, consents=("marketing_push",))
    g.pop("principal", None)
    assert client.post("/api/v1/me/devices", json={"platform": "ios", "token": "a" * 64},
                       headers=pusher["headers"]).status_code == 201
    g.pop("principal", None)
    sms = launch(session, program, campaign(session, program, channel="sms", subject=None, body="Hi {first_name}"))
    push = launch(session, program, campaign(session, program, channel="push", subject="News", body="For {name}"))
    with receiver(status(500)) as sms_gw, receiver() as push_gw:
        stats = work(program, settings(sms=sms_gw.url, push=push_gw.url))
        assert (stats.messages["sent"], stats.messages["retry"]) == (1, 1)
        sms_gw.answer = ok
        clock.advance(seconds=5)
        assert work(program, settings(sms=sms_gw.url, push=push_gw.url)).messages["sent"] == 1
        first, second = sms_gw.received
        [pushed] = push_gw.received
    verify = standardwebhooks.Webhook(SECRET)
    body = verify.verify(second.body, second.headers)
    assert body == {"id": f"{sms.id}.{texter['id']}", "type": "message.sms", "campaign_id": sms.id,
                    "to": "+972501234567", "text": "Hi Member"}
    assert first.body == second.body and first.headers["idempotency-key"] == second.headers["idempotency-key"] == \
        f"{sms.id}.{texter['id']}" == second.headers["webhook-id"]
    assert verify.verify(pushed.body, pushed.headers) == {
        "id": f"{push.id}.{pusher['id']}", "type": "message.push", "campaign_id": push.id,
        "to": [{"platform": "ios", "token": "a" * 64}], "title": "News", "body": f"For Member {pusher['email'][6:-12]}"}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(webhooks.new_secret()).verify(pushed.body, pushed.headers)


def test_a_gateway_4xx_fails_the_message_for_good(session, program, factory):
    texter = member(factory, consents=("marketing_sms",), phone="+972501234567", preferences={"sms": True})
    made = launch(session, program, campaign(session, program, channel="sms", subject=None, body="Hi"))
    with receiver(status(400)) as gw:
        assert work(program, settings(sms=gw.url)).messages["failed"] == 1
        assert len(gw.received) == 1
    row = rows(session, made.id)[texter["id"]]
    assert (row.status, row.last_error) == ("failed", "HTTP 400")


def test_rules_at_send_time_consent_withdrawn_weekly_cap_quiet_hours(session, program, factory, clock, client):
    withdrawn, capped, quiet, fine, no_pref = (member(factory) for _ in range(5))
    launch(session, program, campaign(session, program))
    with smtp_server() as smtp:
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 5
        # the member's rules, set after the first campaign and before the second
        assert patch_me(client, factory, withdrawn, {"consents": {"marketing_email": False}}).status_code == 200
        assert patch_me(client, factory, capped, {"contact_rules": {"max_messages_per_week": 1}}).status_code == 200
        # 12:00 in Jerusalem now: quiet from 11:00 to 13:00 there
        assert patch_me(client, factory, quiet, {"contact_rules": {"quiet_hours": {"from": "11:00", "to": "13:00"}}}).status_code == 200
        second = campaign(session, program, name="Second")
        launch(session, program, second)
        assert patch_me(client, factory, no_pref, {"preferences": {"email": False}}).status_code == 200
        stats = work(program, settings(smtp=smtp.url))
        assert (stats.messages["sent"], stats.messages["suppressed"], stats.messages["delayed"]) == (1, 2, 1)
        found = rows(session, second.id)
        assert found[capped["id"]].reason == "weekly_cap" and found[no_pref["id"]].reason == "preference_off"
        assert withdrawn["id"] not in found  # not in the audience at all: consent was withdrawn before launch
        assert found[quiet["id"]].status == "pending" and found[quiet["id"]].attempts == 0
        assert found[quiet["id"]].next_attempt_at.isoformat() == "2026-11-22T11:00:00+00:00"  # 13:00 in Jerusalem
        clock.advance(hours=1)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 1
        assert [m.rcpt_tos[0] for m in smtp.received][-2:] == [fine["email"], quiet["email"]]
        # a consent withdrawn after the launch stops the message too
        third = launch(session, program, campaign(session, program, name="Third"))
        assert patch_me(client, factory, fine, {"consents": {"marketing_email": False}}).status_code == 200
        work(program, settings(smtp=smtp.url))
        assert rows(session, third.id)[fine["id"]].reason == "consent_withdrawn"
    report = campaigns.report(session, second.id)
    assert (report["suppressed"], report["suppressed_by"]) == (2, {"preference_off": 1, "weekly_cap": 1})


def test_stopping_finishes_the_message_in_flight_and_gives_back_the_rest(session, program, factory):
    import threading
    for _ in range(3):
        member(factory)
    made = launch(session, program, campaign(session, program))
    stop = threading.Event()

    def slow(mail):
        stop.set()  # SIGTERM arrives while this message is on the wire
        return "250 OK"
    with smtp_server(slow) as smtp:
        db.session.commit()
        stats = worker.run(sessionmaker(bind=db.engine), program, settings=HOOKS, messages=settings(smtp=smtp.url),
                           stop_event=stop)
        assert stats.messages["sent"] == 1 and len(smtp.received) == 1
    found = rows(session, made.id).values()
    assert sorted((r.status, r.attempts, r.lease_owner) for r in found) == [
        ("pending", 0, None), ("pending", 0, None), ("sent", 1, None)]


def _worker_env(app, smtp_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LOYALTY_"))}
    return env | {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "LOYALTY_SECRET_KEY": "worker-test-secret-0123456789abcdef",
                  "LOYALTY_SMTP_URL": smtp_url, "LOYALTY_MESSAGE_TIMEOUT_SECONDS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_a_worker_killed_mid_campaign_skips_nobody_and_resends_only_what_was_in_flight(app, session, program,
                                                                                      factory, tmp_path):
    everyone = [member(factory) for _ in range(6)]
    made = launch(session, program, campaign(session, program))
    held = []

    def third_hangs(mail):
        if len(smtp.received) == 3 and not held:
            held.append(mail.rcpt_tos[0])
            return "hang"  # the worker is killed while the relay holds the third message
        return "250 OK"
    with smtp_server(third_hangs) as smtp:
        log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115  (closed below)
        proc = subprocess.Popen([str(BIN / "loyalty"), "worker"], cwd=tmp_path, env=_worker_env(app, smtp.url),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not held and time.monotonic() < deadline:
                time.sleep(0.05)
            if not held:
                log.seek(0)
                pytest.fail(f"the worker sent nothing:\n{log.read()}")
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        found = rows(session, made.id)
        assert sorted(r.status for r in found.values()) == ["pending"] * 4 + ["sent"] * 2
        leased = [r for r in found.values() if r.status == "pending"]
        assert all(r.lease_owner for r in leased)
        smtp.answer = None
        # the lease (60 s at least) ends; a new worker takes the four up
        from datetime import UTC, datetime
        program.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 4
        counts: dict[str, int] = {}
        for mail in smtp.received:
            counts[mail.rcpt_tos[0]] = counts.get(mail.rcpt_tos[0], 0) + 1
    assert set(counts) == {m["email"] for m in everyone}  # nobody skipped
    assert {e: n for e, n in counts.items() if n > 1} == {held[0]: 2}  # only the one in flight went twice
    assert {r.status for r in rows(session, made.id).values()} == {"sent"}
    _ = (members, json)


def test_a_message_that_cannot_be_written_fails_alone(session, program, factory):
    bad, good = member(factory), member(factory)
    with session.begin_nested():
        session.get(members.Member, bad["id"]).name = "Eve\r\nBcc: everyone@example.com"  # stored before any check
    session.commit()
    made = launch(session, program, campaign(session, program, subject="For {name}"))
    with smtp_server() as smtp:
        stats = work(program, settings(smtp=smtp.url))
        assert (stats.messages["sent"], stats.messages["failed"]) == (1, 1)
        assert [m.rcpt_tos for m in smtp.received] == [[good["email"]]]
    row = rows(session, made.id)[bad["id"]]
    assert (row.status, row.attempts) == ("failed", 1) and row.last_error.startswith("unwritable")


@pytest.mark.postgres
def test_two_workers_share_a_campaign_and_nobody_gets_two(session, program, factory):
    from .conftest import run_together
    everyone = [member(factory) for _ in range(60)]
    launch(session, program, campaign(session, program))
    with smtp_server() as smtp:
        small = settings(smtp=smtp.url, batch=7)
        db.session.commit()
        factory_ = sessionmaker(bind=db.engine)
        stats = run_together(2, lambda i: worker.run(factory_, program, settings=HOOKS, once=True, messages=small,
                                                     owner=f"w{i}"))
        assert sum(s.messages["sent"] for s in stats) == 60
        assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(m["email"] for m in everyone)


@pytest.mark.postgres
def test_two_launches_at_once_fix_one_audience(session, program, factory):
    from .conftest import run_together
    for _ in range(5):
        member(factory)
    made_id = campaign(session, program).id
    make = sessionmaker(bind=db.engine)

    def go(i):
        with make() as s:
            try:
                campaigns.launch(s, program, made_id, actor=f"staff:{i}")
                s.commit()
                return "launched"
            except Exception as error:  # the second one: 409
                s.rollback()
                return getattr(error, "code", repr(error))
    assert sorted(run_together(2, go)) == ["campaign_already_launched", "launched"]
    assert len(rows(session, made_id)) == 5
