"""The broker stream: the worker publishes every event to NATS JetStream (stream LOYALTY, subjects loyalty.<type>,
Nats-Msg-Id = the event id) in commit order, creating the stream with its duplicate window. Needs NATS with
JetStream at 127.0.0.1:4222 (LOYALTY_TEST_NATS_URL to point elsewhere); skips, saying so, without it."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import sessionmaker

from api.extensions import db
from wallet import events, worker
from wallet.events import EventCursor

from .outbox import settle

NATS_URL = os.environ.get("LOYALTY_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _reachable() -> bool:
    parts = urlsplit(NATS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 4222), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _reachable(), reason=f"no NATS server at {NATS_URL} (start nats-server -js; "
                                                          ".ci/run does)")


async def _stream(action: str, *args):
    import nats
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        if action == "delete":
            try:
                await js.delete_stream("LOYALTY")
            except Exception:  # not there: nothing to delete
                pass
            return None
        if action == "info":
            return await js.stream_info("LOYALTY")
        if action == "get":
            return await js.get_msg("LOYALTY", args[0])
        if action == "add":
            from nats.js.api import StreamConfig
            return await js.add_stream(StreamConfig(name="LOYALTY", subjects=["loyalty.>"], duplicate_window=60))
    finally:
        await nc.close()


def stream(action: str, *args):
    """Run a JetStream call on a loop of its own thread (another test may have left a loop in this one)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(_stream(action, *args))))
    thread.start()
    thread.join(timeout=30)
    assert out, f"the NATS call {action} failed"
    return out[0]


@pytest.fixture
def fresh_stream():
    stream("delete")  # this test owns the stream named LOYALTY on the test server
    yield
    stream("delete")


def emit(session, n: int) -> list[str]:
    ids = [events.emit(session, "points.earned", member_id="mem_1", channel="app", actor="member:mem_1",
                       data={"entry_id": f"led_{i}", "points": i + 1, "balance_after": i + 1},
                       occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC)).id for i in range(n)]
    ids.append(events.emit(session, "coupon.issued", member_id="mem_1", channel="app", actor="member:mem_1",
                           data={"coupon_id": "cpn_1", "offer_id": "off_1"},
                           occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC)).id)
    settle(session)
    return ids


def publish(program, **settings) -> worker.Stats:
    return worker.run(sessionmaker(bind=db.engine), program, once=True,
                      stream=worker.StreamSettings(url=NATS_URL, **settings))


def test_events_are_published_once_in_commit_order(session, program, fresh_stream):
    ids = emit(session, 3)
    assert publish(program).published == 4
    info = stream("info")
    assert info.config.subjects == ["loyalty.>"]
    assert info.config.duplicate_window == 7200
    assert info.state.messages == 4
    messages = [stream("get", seq) for seq in range(1, 5)]
    assert [m.headers["Nats-Msg-Id"] for m in messages] == ids
    assert [m.subject for m in messages] == ["loyalty.points.earned"] * 3 + ["loyalty.coupon.issued"]
    assert json.loads(messages[0].data) == {
        "id": ids[0], "type": "points.earned", "occurred_at": "2026-11-22T10:00:00Z", "member_id": "mem_1",
        "store_id": None, "channel": "app", "actor": "member:mem_1",
        "data": {"entry_id": "led_0", "points": 1, "balance_after": 1}}

    assert publish(program).published == 0  # the cursor moved on: nothing again
    # a worker that lost its cursor (crashed before moving it) publishes again: JetStream drops the duplicates
    session.get(EventCursor, "nats").position = 0
    session.get(EventCursor, "nats").xact_id = 0
    session.commit()
    stats = publish(program)
    assert stats.published == 0
    assert stream("info").state.messages == 4


def test_an_existing_stream_is_checked_and_its_duplicate_window_widened(session, program, fresh_stream):
    stream("add")
    assert stream("info").config.duplicate_window == 60
    emit(session, 1)
    assert publish(program, duplicate_window=3600).published == 2
    info = stream("info")
    assert info.config.duplicate_window == 3600 and info.state.messages == 2


def test_an_unreachable_server_stops_the_worker_at_start(session, program):
    with pytest.raises(Exception):  # noqa: B017  (whatever nats-py raises for a refused connection)
        worker.run(sessionmaker(bind=db.engine), program, once=True,
                   stream=worker.StreamSettings(url="nats://127.0.0.1:1", timeout=1))
