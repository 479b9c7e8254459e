"""The worker and webhook delivery against real HTTP receivers on 127.0.0.1: signatures checked by the
``standardwebhooks`` package as a receiver would, every way a receiver can fail, a worker killed mid-delivery,
two workers racing, scheduled jobs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import standardwebhooks
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.extensions import db
from wallet import events, webhooks, worker
from wallet.clock import utcnow
from wallet.webhooks import Delivery, Subscription

from .conftest import run_together
from .outbox import settle
from .receivers import ok, receiver, status

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SETTINGS = webhooks.Settings(allow_private=True, timeout=2.0, lease=timedelta(seconds=10))


def subscribe(session, program, url: str, types=("*",)) -> webhooks.Created:
    created = webhooks.create(session, url=url, events=list(types), allow_private=True, now=program.now())
    session.commit()
    return created


def emit(session, n: int = 1, type_: str = "points.earned") -> list[str]:
    ids = []
    for i in range(n):
        data = ({"entry_id": f"led_{i}", "points": 10 + i, "balance_after": 10 + i} if type_ == "points.earned"
                else {"coupon_id": f"cpn_{i}", "offer_id": "off_1"})
        ids.append(events.emit(session, type_, member_id="mem_1", channel="till", actor="staff:stf_1", data=data,
                               occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC)).id)
    session.commit()
    return ids


def work(program, settings=SETTINGS, **kwargs) -> worker.Stats:
    """One ``--once`` run on the test database, once what was committed is readable."""
    settle(db.session)
    return worker.run(sessionmaker(bind=db.engine), program, settings=settings, once=True, **kwargs)


def deliveries(session) -> list[Delivery]:
    session.commit()
    session.expire_all()
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_delivery_is_signed_as_standard_webhooks_says(session, program):
    with receiver() as hook:
        created = subscribe(session, program, hook.url)
        [event_id] = emit(session)
        stats = work(program)
        assert (stats.fanned_out, stats.delivered, stats.retrying, stats.failed) == (1, 1, 0, 0)
        [got] = hook.received
        payload = standardwebhooks.Webhook(created.secret).verify(got.body, got.headers)
        assert got.headers["webhook-id"] == event_id
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
        assert got.headers["content-type"] == "application/json"
        assert payload == {"type": "points.earned", "timestamp": "2026-11-22T10:00:00Z", "data": {
            "id": event_id, "type": "points.earned", "occurred_at": "2026-11-22T10:00:00Z", "member_id": "mem_1",
            "store_id": None, "channel": "till", "actor": "staff:stf_1",
            "data": {"entry_id": "led_0", "points": 10, "balance_after": 10}}}
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(webhooks.new_secret()).verify(got.body, got.headers)
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code, d.lease_owner, d.event_id) == \
            ("delivered", 1, 200, None, event_id)
        assert work(program).delivered == 0  # nothing is sent twice
        assert len(hook.received) == 1


def test_only_subscribed_types_are_delivered(session, program):
    with receiver() as coupons, receiver() as everything:
        subscribe(session, program, coupons.url, types=["coupon.issued", "coupon.redeemed"])
        subscribe(session, program, everything.url)
        emit(session, 2)
        [coupon] = emit(session, 1, "coupon.issued")
        assert work(program).delivered == 4
        assert [r.headers["webhook-id"] for r in coupons.received] == [coupon]
        assert len(everything.received) == 3


def test_rotation_signs_with_both_secrets_for_24_hours(session, program, clock):
    with receiver() as hook:
        old = subscribe(session, program, hook.url)
        new = webhooks.rotate_secret(session, old.subscription.id, now=clock.now)
        session.commit()
        assert new.secret != old.secret and new.secret.startswith("whsec_")
        emit(session)
        work(program)
        got = hook.received[-1]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        for secret in (old.secret, new.secret):
            standardwebhooks.Webhook(secret).verify(got.body, got.headers)

        clock.advance(hours=24, seconds=1)
        emit(session)
        work(program)
        got = hook.received[-1]
        assert len(got.headers["webhook-signature"].split(" ")) == 1
        standardwebhooks.Webhook(new.secret).verify(got.body, got.headers)
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(old.secret).verify(got.body, got.headers)


def test_a_500_is_retried_with_backoff_then_delivered(session, program, clock):
    with receiver(status(500)) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        assert work(program).retrying == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("pending", 1, 500, "HTTP 500")
        # the first retry waits half to all of 5 seconds (jitter)
        assert clock.now + timedelta(seconds=2.5) <= d.next_attempt_at <= clock.now + timedelta(seconds=5)
        assert work(program).retrying == 0  # not due yet
        clock.advance(seconds=5)
        assert work(program).retrying == 1
        [d] = deliveries(session)
        assert d.attempts == 2
        assert clock.now + timedelta(seconds=5) <= d.next_attempt_at <= clock.now + timedelta(seconds=10)
        hook.answer = ok
        clock.advance(seconds=10)
        assert work(program).delivered == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code) == ("delivered", 3, 200)
        assert len({r.headers["webhook-id"] for r in hook.received}) == 1 and len(hook.received) == 3


def test_failing_for_24_hours_fails_the_delivery(session, program, clock):
    with receiver(status(500)) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        work(program)
        clock.advance(hours=23, minutes=59)
        work(program)
        assert deliveries(session)[0].status == "pending"
        clock.advance(minutes=2)
        assert work(program).failed == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code) == ("failed", 3, 500)
        clock.advance(days=2)
        work(program)
        assert len(hook.received) == 3


def test_410_disables_the_subscription(session, program):
    with receiver(status(410)) as hook:
        created = subscribe(session, program, hook.url)
        emit(session, 1)
        assert work(program).failed == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code) == ("failed", 1, 410)
        subscription = session.get(Subscription, created.subscription.id)
        assert (subscription.status, subscription.disabled_reason) == ("disabled", "the receiver answered 410 Gone")
        emit(session, 1)
        assert work(program).delivered + work(program).failed == 0
        assert len(hook.received) == 1
        assert len(deliveries(session)) == 1  # a disabled subscription gets no new deliveries


@pytest.mark.parametrize(("code", "retry_after", "wait"), [(429, "7", 7), (503, "120", 120), (429, "0", 1)])
def test_429_and_503_wait_for_retry_after(session, program, clock, code, retry_after, wait):
    with receiver(status(code, {"Retry-After": retry_after})) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        assert work(program).retrying == 1
        [d] = deliveries(session)
        assert (d.status, d.last_status_code, d.next_attempt_at) == ("pending", code, clock.now + timedelta(seconds=wait))
        assert len(hook.received) == 1


def test_a_redirect_is_not_followed(session, program):
    with receiver() as target, receiver(status(302, {"Location": "x"})) as hook:
        hook.answer = status(302, {"Location": target.url})
        subscribe(session, program, hook.url)
        emit(session)
        assert work(program).retrying == 1
        [d] = deliveries(session)
        assert (d.status, d.last_status_code) == ("pending", 302)
        assert target.received == []


def test_a_receiver_that_hangs_times_out(session, program):
    def hang(handler, received):
        hook.release.wait(30)
    with receiver(hang) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        settings = webhooks.Settings(allow_private=True, timeout=0.5, lease=timedelta(seconds=5))
        started = time.monotonic()
        assert work(program, settings).retrying == 1
        assert time.monotonic() - started < 5
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("pending", 1, None, "timeout after 0.5 s")


def test_a_20_mb_answer_is_not_read_whole(session, program):
    size = 20 * 1024 * 1024

    def huge(handler, received):
        handler.send_response(200)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        chunk, sent = b"x" * 65536, 0
        try:
            while sent < size:
                handler.wfile.write(chunk)
                sent += len(chunk)
        finally:
            hook.bytes_sent.append(sent)
    with receiver(huge) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        started = time.monotonic()
        assert work(program).delivered == 1
        assert time.monotonic() - started < 10
        deadline = time.monotonic() + 10
        while not hook.bytes_sent and time.monotonic() < deadline:
            time.sleep(0.05)
        # the sender read 64 KiB and closed: the receiver could not push the 20 MB (only what socket buffers took)
        assert hook.bytes_sent and hook.bytes_sent[0] < size
    answer = webhooks.http.post(hook.url, b"{}", {}, timeout=1, max_body=1000, allow_private=True)
    assert answer.status is None  # the receiver is gone


def test_webhook_http_reads_at_most_max_body(program):
    def big(handler, received):
        ok(handler, received, 200, body=b"y" * 300_000)
    with receiver(big) as hook:
        answer = webhooks.http.post(hook.url, b"{}", {}, timeout=2, max_body=1000, allow_private=True)
        assert (answer.status, answer.body_read, answer.error) == (200, 1000, None)


def test_the_ssrf_guard_holds_at_delivery_too(session, program):
    with receiver() as hook:
        subscribe(session, program, hook.url)  # allowed when it was made
        emit(session)
        strict = webhooks.Settings(allow_private=False, timeout=2, lease=timedelta(seconds=10))
        assert work(program, strict).retrying == 1
        [d] = deliveries(session)
        assert d.status == "pending" and d.last_status_code is None
        assert d.last_error.startswith("webhook_url_not_allowed")
        assert hook.received == []


def test_paused_waits_and_resume_delivers(session, program):
    with receiver() as hook:
        created = subscribe(session, program, hook.url)
        webhooks.update(session, created.subscription.id, {"status": "paused"}, allow_private=True, now=program.now())
        session.commit()
        emit(session, 2)
        assert work(program).delivered == 0
        assert [d.status for d in deliveries(session)] == ["pending", "pending"]
        webhooks.update(session, created.subscription.id, {"status": "active"}, allow_private=True, now=program.now())
        session.commit()
        assert work(program).delivered == 2
        assert len(hook.received) == 2


def test_a_manual_retry_sends_a_failed_delivery_again_once(session, program, clock):
    with receiver(status(410)) as hook:
        created = subscribe(session, program, hook.url)
        emit(session)
        work(program)
        [d] = deliveries(session)
        assert d.status == "failed"
        webhooks.update(session, created.subscription.id, {"status": "active"}, allow_private=True, now=clock.now)
        webhooks.retry(session, created.subscription.id, d.id, now=clock.now)
        session.commit()
        hook.answer = status(500)
        assert work(program).failed == 1  # one attempt, then failed again
        hook.answer = ok
        webhooks.retry(session, created.subscription.id, d.id, now=clock.now)
        session.commit()
        assert work(program).delivered == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code) == ("delivered", 3, 200)


def test_stopping_finishes_the_delivery_in_flight_and_gives_back_the_rest(session, program):
    stop = threading.Event()

    def slow(handler, received):
        stop.set()  # SIGTERM arrives while this delivery is in flight
        time.sleep(0.3)
        ok(handler, received)
    with receiver(slow) as hook:
        subscribe(session, program, hook.url)
        emit(session, 3)
        settle(session)
        one_at_a_time = webhooks.Settings(allow_private=True, timeout=2, lease=timedelta(seconds=10), concurrency=1)
        stats = worker.run(sessionmaker(bind=db.engine), program, settings=one_at_a_time, stop_event=stop)
        assert (stats.delivered, stats.retrying) == (1, 0)
        assert len(hook.received) == 1
        rows = deliveries(session)
        assert sorted((d.status, d.attempts, d.lease_owner) for d in rows) == [
            ("delivered", 1, None), ("pending", 0, None), ("pending", 0, None)]


def test_a_lease_held_by_another_worker_is_respected_until_it_ends(session, program, clock):
    with receiver() as hook:
        subscribe(session, program, hook.url)
        emit(session)
        settle(session)
        with Session(db.engine) as other:
            webhooks.fan_out(other, SETTINGS, owner="other", now=clock.now)
            [job] = webhooks.claim(other, SETTINGS, owner="other", now=clock.now)
            other.commit()
        assert work(program).delivered == 0
        clock.advance(seconds=11)  # the other worker died: its lease ran out
        assert work(program).delivered == 1
        # the late answer of the dead worker changes nothing
        with Session(db.engine) as other:
            assert webhooks.record(other, "other", [(job, webhooks.http.Answer(500))], SETTINGS, clock.now,
                                   program.random) == {"delivered": 0, "pending": 0, "failed": 0}
            other.commit()
        [d] = deliveries(session)
        assert (d.status, d.attempts) == ("delivered", 2)


def _worker_env(app) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LOYALTY_"))}
    return env | {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "LOYALTY_SECRET_KEY": "worker-test-secret-0123456789-abcdefgh",
                  "LOYALTY_WEBHOOK_ALLOW_PRIVATE": "1", "LOYALTY_WEBHOOK_TIMEOUT_SECONDS": "2",
                  "LOYALTY_WEBHOOK_LEASE_SECONDS": "4", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_is_taken_over_after_its_lease(app, session, program, tmp_path):
    def hold(handler, received):
        hook.release.wait(30)
    with receiver(hold) as hook:
        subscribe(session, program, hook.url)
        [event_id] = emit(session)
        settle(session)
        log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115  (closed below)
        proc = subprocess.Popen([str(BIN / "loyalty"), "worker"], cwd=tmp_path, env=_worker_env(app), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            if not hook.arrived.wait(60):
                log.seek(0)
                pytest.fail(f"the worker sent nothing:\n{log.read()}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        [d] = deliveries(session)
        assert (d.status, d.attempts) == ("pending", 1)
        assert d.lease_owner and d.lease_until > utcnow()
        hook.answer = ok
        assert work(program).delivered == 0  # still leased to the dead worker
        time.sleep(max(0.0, (d.lease_until - utcnow()).total_seconds()) + 0.2)
        assert work(program).delivered == 1
        [d] = deliveries(session)
        assert (d.status, d.attempts, d.last_status_code, d.lease_owner) == ("delivered", 2, 200, None)
        assert [r.headers["webhook-id"] for r in hook.received] == [event_id, event_id]


@pytest.mark.slow
def test_loyalty_worker_once_drains_and_exits(app, session, program, tmp_path):
    with receiver() as hook:
        subscribe(session, program, hook.url)
        emit(session, 3)
        settle(session)
        done = subprocess.run([str(BIN / "loyalty"), "worker", "--once"], cwd=tmp_path, env=_worker_env(app),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "fanned out 3 events, delivered 3, retrying 0, failed 0, published 0" in done.stdout
        assert len(hook.received) == 3


@pytest.mark.postgres
def test_two_workers_racing_for_one_delivery_on_postgres(session, program, clock):
    with receiver() as hook:
        subscribe(session, program, hook.url)
        emit(session)
        settle(session)
        with Session(db.engine) as s:
            webhooks.fan_out(s, SETTINGS, owner="fan", now=clock.now)
            s.commit()

        engine = db.engine

        def race(i):
            with Session(engine) as s:
                jobs = webhooks.claim(s, SETTINGS, owner=f"w{i}", now=clock.now)
                time.sleep(0.2)  # hold the claim's locks a moment: the other worker must skip, not wait and take
                s.commit()
                return [j.delivery_id for j in jobs]
        claims = run_together(2, race)
        assert sorted(len(c) for c in claims) == [0, 1]


@pytest.mark.postgres
def test_two_workers_share_a_backlog_without_sending_anything_twice(session, program):
    with receiver() as hook:
        subscribe(session, program, hook.url)
        ids = emit(session, 200)
        settle(session)
        small = webhooks.Settings(allow_private=True, timeout=2, lease=timedelta(seconds=10), batch=10, concurrency=4)
        factory = sessionmaker(bind=db.engine)
        stats = run_together(2, lambda i: worker.run(factory, program, settings=small, once=True, owner=f"w{i}"))
        for _ in range(20):  # a worker may have stopped while the other still fanned out
            if len(hook.received) == 200:
                break
            work(program, small)
        assert sorted(r.headers["webhook-id"] for r in hook.received) == sorted(ids)
        assert sum(s.delivered for s in stats) <= 200 and all(s.failed == 0 for s in stats)
        assert {d.status for d in deliveries(session)} == {"delivered"}


def test_periodic_jobs_run_once_per_period_across_workers(session, program, clock):
    calls = []

    def job(s, p):
        calls.append(p.now())
        return 0 if len(calls) % 2 == 0 else 5  # one batch of work, then nothing left
    hourly = worker.PeriodicJob("test-job", timedelta(hours=1), job)
    assert work(program, jobs=[hourly]).jobs == {"test-job": 5}
    assert len(calls) == 2
    assert work(program, jobs=[hourly], owner="another").jobs == {}  # not due again yet
    clock.advance(minutes=61)
    assert work(program, jobs=[hourly]).jobs == {"test-job": 5}
    assert len(calls) == 4


def test_settings_refuse_a_lease_shorter_than_two_timeouts():
    with pytest.raises(ValueError, match="lease"):
        webhooks.Settings(timeout=10, lease=timedelta(seconds=15))


def test_the_body_is_the_same_on_every_retry(session, program, clock):
    with receiver(status(500)) as hook:
        subscribe(session, program, hook.url)
        emit(session)
        work(program)
        clock.advance(minutes=1)
        work(program)
        first, second = hook.received
        assert first.body == second.body and json.loads(first.body)["type"] == "points.earned"
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
