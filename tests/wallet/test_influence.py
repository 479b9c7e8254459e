"""Influence: own value, referral value two levels deep (and no deeper), qualified referrals, the quadrant by the
medians API.md defines; the window; the ranking with its cursor; and over HTTP."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from wallet import influence

from ..conftest import assert_problem
from .test_segments import NOW, _member, _purchase, _store


@pytest.fixture
def family(session, program, clock):
    """a -> b -> c -> d (each referred the next), a -> e; f alone. Spend in the window: b 100, c 40, d 1000,
    e 0 (bought 400 days ago), a 10, f 500."""
    store = _store(session)
    _member(session, 1)
    _member(session, 2, referred_by_id="mem_T0001")
    _member(session, 3, referred_by_id="mem_T0002")
    _member(session, 4, referred_by_id="mem_T0003")
    _member(session, 5, referred_by_id="mem_T0001")
    _member(session, 6)
    for who, amount, days in ((2, "100.00", 3), (3, "40.00", 10), (4, "1000.00", 1), (5, "77.00", 400),
                              (1, "10.00", 5), (6, "500.00", 2)):
        _purchase(session, store, f"mem_T{who:04d}", amount, NOW - timedelta(days=days))
    _purchase(session, store, "mem_T0002", "999.00", NOW - timedelta(days=1), status="refunded")
    session.flush()
    return store


def test_referral_value_is_two_levels_with_the_second_at_half(session, program, family):
    a = influence.influence_of(session, program, "mem_T0001")
    # friends b (100) and e (0 in the window); friends' friends: c (40); d is three levels down: not counted
    assert (a.referrals, a.qualified_referrals) == (2, 2)  # e bought, if outside the window
    assert a.referred_spend == Decimal("100.00")
    assert a.referral_value == Decimal("120.00")
    assert a.own_value == Decimal("10.00")
    b = influence.influence_of(session, program, "mem_T0002")
    assert (b.referred_spend, b.referral_value, b.own_value) == (Decimal("40.00"), Decimal("540.00"),
                                                                  Decimal("100.00"))


def test_quadrants_use_the_medians(session, program, family):
    # own values of buyers in the window: a 10, b 100, c 40, d 1000, f 500 -> median 100
    # non-zero referral values: a 120, b 540, c 1000 -> median 540
    found = {m: influence.influence_of(session, program, f"mem_T{m:04d}").influence for m in range(1, 7)}
    assert found == {1: "miser", 2: "miser", 3: "advocate", 4: "affluent", 5: "miser", 6: "affluent"}
    session.add(_member(session, 7, referred_by_id="mem_T0006"))
    _purchase(session, family, "mem_T0007", "2000.00", NOW - timedelta(days=1))
    session.flush()  # f now refers someone who spent 2000: above the referral median, and f's own 500 is high
    assert influence.influence_of(session, program, "mem_T0006").influence == "champion"


def test_the_window_moves_with_the_clock(session, program, family, clock):
    clock.advance(days=357)  # b's purchase is 360 days old (in), c's 367 (out), a's own 362 (in)
    a = influence.influence_of(session, program, "mem_T0001")
    assert (a.referral_value, a.own_value) == (Decimal("100.00"), Decimal("10.00"))
    clock.advance(days=20)
    a = influence.influence_of(session, program, "mem_T0001")
    assert (a.referral_value, a.own_value, a.referrals, a.qualified_referrals) == (Decimal("0.00"),
                                                                                    Decimal("0.00"), 2, 2)


def test_the_ranking_pages_by_referral_value(session, program, family):
    first = influence.influencers(session, program, limit=2)
    assert [(i.member_id, i.referral_value) for i in first] == [("mem_T0003", Decimal("1000.00")),
                                                                ("mem_T0002", Decimal("540.00"))]
    rest = influence.influencers(session, program, after=(first[-1].referral_value, first[-1].member_id), limit=5)
    assert [i.member_id for i in rest] == ["mem_T0001"]


def test_the_per_member_select_other_features_use(session, program, family):
    rows = {r.member_id: r for r in session.execute(influence.referral_values(program))}
    assert set(rows) == {"mem_T0001", "mem_T0002", "mem_T0003"}
    assert Decimal(str(rows["mem_T0002"].referral_value)).quantize(Decimal("0.01")) == Decimal("540.00")
    values = influence.referral_values(program).subquery()
    assert session.scalar(select(values.c.referrals).where(values.c.member_id == "mem_T0001")) == 2


def test_unknown_member_is_not_found(session, program, clock):
    with pytest.raises(Exception) as caught:
        influence.influence_of(session, program, "mem_nope")
    assert getattr(caught.value, "code", None) == "not_found"


def test_over_http(client, factory, app):
    marketer = factory.staff("marketer")
    cashier = factory.staff("cashier")
    program = app.extensions["loyalty.program"]
    program.clock = lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    a = factory.member()
    with app.app_context():
        from api.extensions import db
        from wallet.members import Member
        code = db.session.get(Member, a["id"]).referral_code
        db.session.remove()
    b = factory.member(referral_code=code)
    r = client.post("/api/v1/pos/purchases", headers=cashier["headers"],
                    json={"card": b["card_number"], "amount": "250.00", "currency": "ILS", "receipt_id": "inf-1"})
    assert r.status_code == 201, r.get_json()
    body = client.get(f"/api/v1/admin/members/{a['id']}/influence", headers=marketer["headers"]).get_json()
    assert body == {"referrals": 1, "qualified_referrals": 1, "referred_spend": "250.00",
                    "referral_value": "250.00", "own_value": "0.00", "influence": "miser", "window_days": 365,
                    "as_of": None}
    ranked = client.get("/api/v1/admin/influencers?limit=1", headers=marketer["headers"]).get_json()
    assert ranked["items"][0]["member"] == {"id": a["id"], "name": "Member 1"} or \
        ranked["items"][0]["member"]["id"] == a["id"]
    assert ranked["next_cursor"] is None
    assert_problem(client.get("/api/v1/admin/influencers?cursor=WyJ4IiwieSJd", headers=marketer["headers"]), 422,
                   "invalid_cursor")
    assert_problem(client.get("/api/v1/admin/members/mem_nope/influence", headers=marketer["headers"]), 404,
                   "not_found")
    assert_problem(client.get("/api/v1/admin/influencers", headers=b["headers"]), 403, "forbidden")


def test_the_summary_answers_what_was_computed_and_waits_for_the_next_refresh(session, program, family, clock):
    live = {m: influence.influence_of(session, program, f"mem_T{m:04d}") for m in range(1, 7)}
    ranked_live = influence.influencers(session, program)
    assert influence.refresh(session, program) == 5  # all but e bought in the window or referred someone
    summary = {m: influence.influence_of(session, program, f"mem_T{m:04d}") for m in range(1, 7)}
    for m in live:
        assert summary[m].as_of == NOW and live[m].as_of is None
        assert (summary[m].referrals, summary[m].qualified_referrals, summary[m].referred_spend,
                summary[m].referral_value, summary[m].own_value, summary[m].influence) == \
               (live[m].referrals, live[m].qualified_referrals, live[m].referred_spend, live[m].referral_value,
                live[m].own_value, live[m].influence)
    assert [(i.member_id, i.referral_value) for i in influence.influencers(session, program)] == \
        [(i.member_id, i.referral_value) for i in ranked_live]
    _purchase(session, family, "mem_T0002", "500.00", NOW)
    session.flush()
    assert influence.refresh_due(session, program) == 0  # fresh: nothing done
    assert influence.influence_of(session, program, "mem_T0001").referred_spend == Decimal("100.00")
    clock.advance(hours=1)
    assert influence.refresh_due(session, program) == 5
    assert influence.influence_of(session, program, "mem_T0001").referred_spend == Decimal("600.00")
