"""The event log: what emit refuses, a rolled-back change leaves no event, reading in commit order with cursors."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.extensions import db
from wallet import events
from wallet.events import Event

from ..outbox import settle

WHEN = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def emit_purchase(session, n: int, member_id: str = "mem_1", **kwargs):
    return events.emit(session, "purchase.recorded", member_id=member_id, store_id="sto_1", channel="till",
                       actor="staff:stf_1", data={"purchase_id": f"pur_{n}", "amount": "10.00", "currency": "ILS",
                                                  "points_awarded": n}, occurred_at=WHEN, **kwargs)


def test_emit_writes_the_envelope_in_the_callers_transaction(session):
    event = emit_purchase(session, 1)
    settle(session)
    assert event.id.startswith("evt_")
    [read] = events.read(session)
    assert events.envelope(read) == {
        "id": event.id, "type": "purchase.recorded", "occurred_at": "2026-11-22T10:00:00Z", "member_id": "mem_1",
        "store_id": "sto_1", "channel": "till", "actor": "staff:stf_1",
        "data": {"purchase_id": "pur_1", "amount": "10.00", "currency": "ILS", "points_awarded": 1}}


def test_a_rolled_back_change_leaves_no_event(session):
    emit_purchase(session, 1)
    session.flush()
    session.rollback()
    assert session.scalar(select(Event)) is None
    assert events.read(session) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"type": "purchase.made"}, "unknown event type"),
    ({"channel": "fax"}, "unknown channel"),
    ({"data": {"purchase_id": "p", "amount": "1.00", "currency": "ILS", "email": "x"}}, "personal data: email"),
    ({"type": "member.updated", "data": {"fields": ["name"], "name": "Noa"}}, "personal data: name"),
    ({"type": "contest.drawn", "data": {"contest_id": "c", "winners": ["noa@example.com"]}},
     "personal data: winners[0]"),
    ({"type": "scan.recorded", "data": {"scan_id": "s", "product_id": "p", "lat": 32.1}}, "personal data: lat"),
    ({"data": {"purchase_id": "p", "amount": "1.00", "currency": "ILS", "shoe_size": 44}}, "no fields ['shoe_size']"),
    ({"data": {"purchase_id": "p", "currency": "ILS"}}, "needs ['amount']"),
    ({"data": {"purchase_id": "p", "amount": 1.5, "currency": "ILS"}}, "wrong JSON type: ['amount']"),
    ({"data": {"purchase_id": "p", "amount": "1.00", "currency": "ILS", "points_awarded": True}},
     "wrong JSON type: ['points_awarded']"),
    ({"occurred_at": datetime(2026, 11, 22, 10, 0)}, "aware"),
    ({"actor": ""}, "actor"),
])
def test_emit_refuses_programming_errors(session, kwargs, message):
    call = {"type": "purchase.recorded", "channel": "till", "actor": "staff:stf_1", "occurred_at": WHEN,
            "data": {"purchase_id": "p", "amount": "1.00", "currency": "ILS"}} | kwargs
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        events.emit(session, call.pop("type"), **call)
    assert not session.new


def test_every_type_has_a_schema_and_the_channel_list_is_the_contracts():
    contract = {"member.enrolled", "member.updated", "member.erased", "consent.changed", "purchase.recorded",
                "purchase.refunded", "points.earned", "points.spent", "points.expired", "points.adjusted",
                "coupon.issued", "coupon.redeemed", "check_in.recorded", "scan.recorded", "reward.granted",
                "tier.changed", "referral.qualified", "message.sent", "contest.drawn"}
    # additions: refused check-ins (kept for review), coupons voided and redemptions rolled back (passes follow them),
    # cards blocked and replaced (passes turn void; the till refuses the old codes), contest entries and wins
    # (the member's timeline), a tracked message's first open and first click (the campaigns' report)
    assert set(events.TYPES) - contract == {"check_in.refused", "coupon.voided", "coupon.redemption_rolled_back",
                                            "card.blocked", "card.replaced", "contest.entered", "contest.won",
                                            "message.opened", "message.clicked"}
    assert contract <= set(events.TYPES)
    assert set(events.TYPES) == set(events.DATA_SCHEMAS)
    assert events.CHANNELS == ("app", "till", "web", "console", "api", "job", "import")
    for schema in events.DATA_SCHEMAS.values():
        assert not set(schema["properties"]) & events.PERSONAL_KEYS
        assert set(schema["required"]) <= set(schema["properties"])


def test_reading_pages_in_order_with_filters(session):
    made = [emit_purchase(session, n, member_id="mem_a" if n % 2 else "mem_b") for n in range(1, 8)]
    events.emit(session, "points.earned", member_id="mem_a", channel="till", actor="system",
                data={"entry_id": "led_1", "points": 5, "balance_after": 5}, occurred_at=WHEN)
    settle(session)
    page1 = events.read(session, limit=3)
    assert [e.id for e in page1] == [e.id for e in made[:3]]
    page2 = events.read(session, page1[-1].cursor, limit=3)
    assert [e.id for e in page2] == [e.id for e in made[3:6]]
    rest = events.read(session, page2[-1].cursor, limit=10)
    assert [e.type for e in rest] == ["purchase.recorded", "points.earned"]
    assert events.read(session, rest[-1].cursor) == []
    assert [e.data["purchase_id"] for e in events.read(session, member_id="mem_b")] == ["pur_2", "pur_4", "pur_6"]
    assert [e.type for e in events.read(session, types=["points.earned"])] == ["points.earned"]
    assert [e.data.get("points_awarded") for e in events.read(session, types=["points.earned", "purchase.recorded"],
                                                               member_id="mem_a")] == [1, 3, 5, 7, None]


@pytest.mark.postgres
def test_postgres_records_the_writing_transaction(session):
    emit_purchase(session, 1)
    emit_purchase(session, 2)
    xact = session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar()
    settle(session)
    assert [e.xact_id for e in events.read(session)] == [xact, xact]


@pytest.mark.postgres
def test_an_event_committed_late_is_not_skipped_by_a_reader_following_the_cursor(app):
    """T1 writes first and commits last; T2 writes later and commits first. A reader following the cursor sees
    nothing of T2 while T1 is open (it would otherwise move past T1's event), then both, T1's first."""
    with app.app_context():
        engine = db.engine
    with Session(engine) as setup:
        first = emit_purchase(setup, 0).id
        settle(setup)
    with Session(engine) as reader, Session(engine) as t1, Session(engine) as t2:
        [seen] = events.read(reader)
        reader.commit()
        assert seen.id == first
        cursor = seen.cursor

        late = emit_purchase(t1, 1)
        t1.flush()  # T1 now has its transaction id, older than T2's
        early = emit_purchase(t2, 2)
        t2.commit()

        assert events.read(reader, cursor) == []  # T2's event waits: an older writer is still open
        reader.commit()
        # what a reader ordering by position alone would have done: moved past T1's event for good
        assert reader.execute(text("SELECT count(*) FROM events")).scalar() == 2
        reader.commit()

        t1.commit()
        settle(reader)
        after = events.read(reader, cursor)
        assert [e.id for e in after] == [late.id, early.id]
        assert events.read(reader, after[-1].cursor) == []


@pytest.mark.postgres
def test_a_rolled_back_writer_holds_nothing_back(app):
    with app.app_context():
        engine = db.engine
    with Session(engine) as reader, Session(engine) as t1, Session(engine) as t2:
        emit_purchase(t1, 1)
        t1.flush()
        kept = emit_purchase(t2, 2)
        t2.commit()
        assert events.read(reader) == []
        reader.commit()
        t1.rollback()
        settle(reader)
        assert [e.id for e in events.read(reader)] == [kept.id]
