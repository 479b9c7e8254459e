"""KPIs from the summaries: exact counts for a known history across club-day boundaries, refunds and expiries; a
series that sums to its period; the summary job idempotent and incremental; the summaries and the events not yet
summarised equal to a direct computation (hypothesis)."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text

from wallet import events, instore, kpis, ledger, till
from wallet.db import table_of
from wallet.errors import Invalid
from wallet.events import Event, EventCursor
from wallet.kpis import KpiActiveChange, KpiDay, KpiMemberDay

JERUSALEM = "Asia/Jerusalem"  # UTC+2 in November: 22:30Z is already the next club day


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def figures(session, program, start: date, end: date, interval: str | None = None) -> dict:
    answer = kpis.kpis(session, program, kpis.period(program, start, end, interval))
    session.commit()
    return answer


def summarise(session, program, batch_size: int = kpis.summary.BATCH) -> int:
    """Run the job until it has caught up, and check that it has: the whole log is summarised."""
    read = kpis.summarise_all(session, program, session.commit, batch_size=batch_size)
    caught_up(session)
    return read


def caught_up(session) -> None:
    last = session.scalar(select(func.max(Event.position))) or 0
    if kpis.position(session)[1] < last:
        held_back(session)
        pytest.fail(f"the job stopped at {kpis.position(session)} before the log's end ({last})")


def held_back(session) -> None:
    """On PostgreSQL the log's readers (webhooks, the stream, this job) see only what every transaction older than
    theirs has finished with, server-wide: another database's long transaction (a bulk COPY) holds them back."""
    if session.get_bind().dialect.name != "postgresql":
        return
    other = session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE backend_xmin IS NOT NULL "
                                "AND datname <> current_database() AND now() - xact_start > interval '2 seconds'"))
    session.commit()
    if other:
        pytest.skip("another database's long transaction holds the server's xmin back, and with it the event "
                    "log's readers")


def tables(session) -> dict:
    """Everything the job writes, as comparable values."""
    return {
        "days": sorted(tuple(r) for r in session.execute(select(*KpiDay.__table__.c)).all()),
        "member_days": sorted(tuple(r) for r in session.execute(select(*KpiMemberDay.__table__.c)).all()),
        "changes": sorted(tuple(r) for r in session.execute(select(*KpiActiveChange.__table__.c)).all()
                          if r.delta != 0),
    }


@pytest.fixture
def club(session, program, clock, factory):
    """A small known history (club days in Asia/Jerusalem):
    22 Nov: A enrols and buys 100.00 (100 points) at 23:30 local;
    23 Nov: B enrols at 00:30 local (22:30Z on the 22nd) and buys 50.50 (50 points); A's purchase is refunded;
            B is credited 30 points that expire on the 24th;
    24 Nov: C enrols;
    25 Nov: B's 30 points expire; C checks in."""
    program.timezone = JERUSALEM
    store = factory.store()
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    clock.now = at("2026-11-22T21:30:00")
    a = factory.member()
    first = till.record_purchase(session, program, store_id=store["id"], card_code=a["card_number"],
                                 amount=Decimal("100.00"), currency="ILS", receipt_id="r1")
    session.commit()
    clock.now = at("2026-11-22T22:30:00")
    b = factory.member()
    till.record_purchase(session, program, store_id=store["id"], card_code=b["card_number"], amount=Decimal("50.50"),
                         currency="ILS", receipt_id="r2")
    session.commit()
    clock.now = at("2026-11-23T10:00:00")
    till.refund_purchase(session, program, first.purchase.id, store_id=store["id"], actor="staff:test")
    ledger.earn(session, program, member_id=b["id"], points=30, reason="manual", idempotency_key="gift",
                description="a gift", expires_at=at("2026-11-24T12:00:00"))
    session.commit()
    clock.now = at("2026-11-24T10:00:00")
    c = factory.member()
    clock.now = at("2026-11-25T10:00:00")
    assert ledger.expire_due(session, program) == 30
    instore.check_in(session, program, member_id=c["id"], store_id=store["id"], lat=store["lat"], lon=store["lon"])
    session.commit()
    return {"a": a, "b": b, "c": c, "store": store}


EXPECTED = {
    "members": {"total": 3, "new": 3, "active_30d": 3, "active_90d": 3},
    "purchases": {"count": 2, "revenue": "50.50", "per_active_member": "16.83", "refunds": 1, "refunded": "100.00"},
    "points": {"issued": 180, "redeemed": 0, "expired": 30, "adjusted": 0, "reversed": -100, "outstanding": 50,
               "liability": "0.50"},
    "coupons": {"issued": 0, "redeemed": 0, "redemption_rate": None},
    "campaigns": {"sent": 0, "response_rate": None},
    "by_channel": {"app": 4, "till": 3, "web": 0, "console": 0, "api": 0, "job": 0, "import": 0},
}


@pytest.mark.parametrize("summarised", ["nothing", "everything", "part"])
def test_exact_figures_of_a_known_history(session, program, club, summarised):
    if summarised == "everything":
        assert summarise(session, program) > 0
    elif summarised == "part":  # the rest is read from the events after the job's cursor
        if kpis.summarise(session, program, batch_size=7) != 7:
            held_back(session)
        session.commit()
    answer = figures(session, program, date(2026, 11, 22), date(2026, 11, 25))
    assert answer == {"from": date(2026, 11, 22), "to": date(2026, 11, 25), "timezone": JERUSALEM, **EXPECTED}


def test_a_club_day_is_the_club_s_not_utc_s(session, program, club):
    summarise(session, program)
    day_22 = figures(session, program, date(2026, 11, 22), date(2026, 11, 22))
    assert (day_22["members"]["new"], day_22["purchases"]["count"], day_22["purchases"]["revenue"]) == (1, 1, "100.00")
    program.timezone = "UTC"  # the same events, other days: the summaries must be rebuilt (loyalty kpis rebuild)
    kpis.forget(session)
    session.commit()
    summarise(session, program)
    day_22 = figures(session, program, date(2026, 11, 22), date(2026, 11, 22))
    assert (day_22["members"]["new"], day_22["purchases"]["count"], day_22["purchases"]["revenue"]) == (2, 2, "150.50")


def test_a_series_sums_to_its_period_and_ends_with_its_stocks(session, program, club):
    kpis.summarise(session, program, batch_size=10)
    session.commit()
    answer = figures(session, program, date(2026, 11, 21), date(2026, 11, 26), "day")
    series = answer.pop("series")
    assert [item["date"] for item in series] == [date(2026, 11, d) for d in range(21, 27)]
    assert [item["members"]["new"] for item in series] == [0, 1, 1, 1, 0, 0]
    assert [item["members"]["total"] for item in series] == [0, 1, 2, 3, 3, 3]
    assert [item["members"]["active_30d"] for item in series] == [0, 1, 2, 2, 3, 3]
    assert [item["purchases"]["revenue"] for item in series] == ["0.00", "100.00", "-49.50", "0.00", "0.00", "0.00"]
    assert [item["points"]["outstanding"] for item in series] == [0, 100, 80, 80, 50, 50]
    for block in ("purchases", "points", "coupons", "campaigns"):
        for name, value in answer[block].items():
            if isinstance(value, int) and name != "outstanding":
                assert sum(item[block][name] for item in series) == value, (block, name)
    assert sum(Decimal(item["purchases"]["revenue"]) for item in series) == Decimal(answer["purchases"]["revenue"])
    assert {c: sum(i["by_channel"][c] for i in series) for c in answer["by_channel"]} == answer["by_channel"]
    assert series[-1]["members"]["total"] == answer["members"]["total"]
    assert series[-1]["points"]["outstanding"] == answer["points"]["outstanding"]


def test_weeks_and_months_are_cut_to_the_period(session, program, club):
    weeks = figures(session, program, date(2026, 11, 20), date(2026, 12, 2), "week")["series"]
    assert [w["date"] for w in weeks] == [date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 30)]
    assert [w["members"]["new"] for w in weeks] == [1, 2, 0]  # the 23rd is a Monday
    months = figures(session, program, date(2026, 10, 15), date(2027, 1, 3), "month")["series"]
    assert [m["date"] for m in months] == [date(2026, 10, 15), date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)]
    assert [m["purchases"]["count"] for m in months] == [0, 2, 0, 0]


def test_active_members_leave_the_window_on_the_right_day(session, program, club):
    summarise(session, program)
    # A was active on the 22nd (counts to 21 Dec), B on the 23rd (to 22 Dec), C on the 25th (to 24 Dec).
    counts = [figures(session, program, d, d)["members"]["active_30d"]
              for d in (date(2026, 12, 21), date(2026, 12, 22), date(2026, 12, 23), date(2026, 12, 24),
                        date(2026, 12, 25))]
    assert counts == [3, 2, 1, 1, 0]
    assert figures(session, program, date(2027, 2, 21), date(2027, 2, 21))["members"]["active_90d"] == 1  # C, to 22 Feb
    assert figures(session, program, date(2027, 2, 23), date(2027, 2, 23))["members"]["active_90d"] == 0


def test_the_job_is_idempotent_and_incremental(session, program, club, clock, factory):
    summarise(session, program, batch_size=3)
    once = tables(session)
    assert summarise(session, program) == 0  # nothing new: nothing changes
    assert tables(session) == once
    # More history, partly on days already summarised and for a member already active.
    clock.now = at("2026-11-26T09:00:00")
    till.record_purchase(session, program, store_id=club["store"]["id"], card_code=club["a"]["card_number"],
                         amount=Decimal("10.00"), currency="ILS", receipt_id="r3")
    session.commit()
    summarise(session, program, batch_size=2)
    incremental = tables(session)
    kpis.forget(session)
    session.commit()
    summarise(session, program)
    assert tables(session) == incremental
    assert incremental != once


def test_two_summarisers_count_each_batch_once(session, program, club, app, is_postgres):
    """A second summariser meets the cursor's lease (or its row lock) and does nothing twice."""
    if kpis.summarise(session, program, batch_size=5, owner="one") != 5:
        held_back(session)
    # "one" holds nothing now (released with the batch); "two" goes on from where "one" stopped.
    session.commit()
    kpis.summarise(session, program, batch_size=1000, owner="two")
    session.commit()
    caught_up(session)
    summarised = tables(session)
    kpis.forget(session)
    session.commit()
    summarise(session, program)
    assert tables(session) == summarised


def test_bad_periods_name_the_field(program):
    cases = [((date(2026, 5, 2), date(2026, 5, 1), None), "from"),
             ((date(2024, 1, 1), date(2026, 12, 31), None), "to"),
             ((date(2026, 1, 1), date(2026, 2, 1), "hour"), "interval"),
             ((date(1900, 1, 1), date(1900, 1, 2), None), "from"),
             ((date(2026, 1, 1), date(9999, 12, 31), None), "to")]
    for args, field in cases:
        with pytest.raises(Invalid) as caught:
            kpis.period(program, *args)
        assert list(caught.value.errors) == [field]


def test_the_default_period_is_the_last_30_days(program, clock):
    program.timezone = JERUSALEM
    clock.now = at("2026-11-22T22:30:00")  # the 23rd in Jerusalem
    assert kpis.period(program, None, None, None) == kpis.Period(date(2026, 10, 25), date(2026, 11, 23))
    assert kpis.period(program, date(2026, 11, 1), None, None).end == date(2026, 11, 23)
    assert kpis.period(program, None, date(2026, 6, 30), None).start == date(2026, 6, 1)


# ------------------------------------------------------------------ against a direct computation

START = at("2026-03-20T00:00:00")  # Jerusalem's summer time begins on 27 March: the days cross it
histories = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 24 * 60), st.sampled_from(["buy", "visit", "join"]),
                               st.integers(1, 50_000)), min_size=1, max_size=40)


def _clear(session) -> None:
    for table in (Event, KpiDay, KpiMemberDay, KpiActiveChange):
        session.execute(delete(table_of(table)))
    session.execute(delete(table_of(EventCursor)))
    session.commit()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories, split=st.integers(0, 40), batches=st.integers(1, 4), first=st.integers(0, 20),
       length=st.integers(1, 30))
def test_summaries_equal_a_direct_computation(session, program, history, split, batches, first, length):
    """Events in any order of time, summarised in a few batches of any size, the rest read from the log."""
    _clear(session)
    program.timezone = JERUSALEM
    made = []
    for member, minutes, kind, cents in history:
        moment = START + timedelta(minutes=minutes * 30)  # up to 30 days on
        member_id = f"mem_{member}"
        if kind == "buy":
            events.emit(session, "purchase.recorded", member_id=member_id, channel="till", actor="till",
                        occurred_at=moment, data={"purchase_id": f"pur_{len(made)}",
                                                  "amount": str(Decimal(cents) / 100), "currency": "ILS"})
        elif kind == "visit":
            events.emit(session, "check_in.recorded", member_id=member_id, channel="app", actor="app",
                        occurred_at=moment, data={"check_in_id": f"chk_{len(made)}"})
        else:
            events.emit(session, "member.enrolled", member_id=member_id, channel="web", actor="web",
                        occurred_at=moment, data={"card_id": f"crd_{len(made)}"})
        made.append((member_id, moment, kind, cents))
        session.commit()  # one transaction each, as the use cases write them
    for _ in range(batches if split else 0):
        kpis.summarise(session, program, batch_size=split)
        session.commit()
    start = date(2026, 3, 20) + timedelta(days=first)
    end = start + timedelta(days=length - 1)
    answer = figures(session, program, start, end)

    def day(moment: datetime) -> date:
        return kpis.days.of_number(kpis.days.local_day(moment, JERUSALEM))

    inside = [m for m in made if start <= day(m[1]) <= end]
    buys = [m for m in inside if m[2] == "buy"]
    assert answer["purchases"]["count"] == len(buys)
    assert Decimal(answer["purchases"]["revenue"]) == sum((Decimal(m[3]) / 100 for m in buys), Decimal(0))
    assert answer["members"]["new"] == sum(1 for m in inside if m[2] == "join")
    assert answer["members"]["total"] == sum(1 for m in made if m[2] == "join" and day(m[1]) <= end)
    for n in (30, 90):
        active = {m[0] for m in made if m[2] != "join" and end - timedelta(days=n - 1) <= day(m[1]) <= end}
        assert answer["members"][f"active_{n}d"] == len(active)
    assert answer["by_channel"]["till"] == len(buys)
    assert answer["by_channel"]["app"] == sum(1 for m in inside if m[2] == "visit")


def test_coupons_their_rollbacks_and_the_rate_of_a_period_s_coupons(session, program, clock, factory):
    from wallet import coupons
    from wallet.coupons import Coupon
    program.timezone = "UTC"
    store = factory.store()
    clock.now = at("2026-11-01T10:00:00")
    offer = coupons.create_offer(session, program, {"title": "10% off", "benefit": {"kind": "percent_off",
                                                                                      "value": "10"}})
    claimed = [coupons.claim_coupon(session, program, member_id=factory.member()["id"], offer_id=offer.id)
               for _ in range(3)]
    session.commit()
    clock.now = at("2026-11-02T10:00:00")
    for coupon in claimed[:2]:
        coupons.redeem(session, program, coupon.code, store_id=store["id"])
    session.commit()
    second = session.get(Coupon, claimed[1].id).redemption_id
    coupons.rollback_redemption(session, program, second, store_id=store["id"], actor="staff:test")
    session.commit()
    clock.now = at("2026-11-25T10:00:00")
    coupons.redeem(session, program, claimed[2].code, store_id=store["id"])
    session.commit()
    kpis.summarise(session, program, batch_size=9)  # part summarised, part read from the log
    session.commit()
    early = figures(session, program, date(2026, 11, 1), date(2026, 11, 20))
    # Issued then: 3; redeemed then: 2, one rolled back; of those 3 coupons, 2 are redeemed by now (one on the 25th).
    assert early["coupons"] == {"issued": 3, "redeemed": 1, "redemption_rate": 0.6667}
    later = figures(session, program, date(2026, 11, 25), date(2026, 11, 25))
    assert later["coupons"] == {"issued": 0, "redeemed": 1, "redemption_rate": None}
    assert later["by_channel"]["till"] == 1  # the redemption; the coupon's issue is not an action of its own


@pytest.mark.postgres
def test_concurrent_summarisers_count_every_event_once(app, session, program, club):
    """Four threads run the job at once, each with its own connection: the cursor's row lock and lease let one
    batch through at a time, and the tables end as one run from the start makes them."""
    from sqlalchemy.orm import Session as OwnSession

    from api.extensions import db
    from tests.conftest import run_together

    def work(i: int) -> int:
        with app.app_context(), OwnSession(db.engine) as own:
            return kpis.summarise_all(own, program, own.commit, batch_size=3)

    read = run_together(4, work)
    caught_up(session)
    assert sum(read) == session.scalar(select(func.count()).select_from(Event))
    together = tables(session)
    kpis.forget(session)
    session.commit()
    summarise(session, program)
    assert tables(session) == together
