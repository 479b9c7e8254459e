"""Check-ins in the domain: the radius (great-circle), the GPS accuracy, the cool-down in real time across local
midnight and DST changes, refused attempts kept, the n-th visit in a period of the store's time zone."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from wallet import enrolment, instore, ledger, rules
from wallet.errors import Invalid, NotFound, Rejected
from wallet.instore import CheckIn, great_circle_m
from wallet.ledger import LedgerEntry
from wallet.stores import Store

TLV = (32.0753, 34.7754)
JERUSALEM = (31.7776, 35.2245)


# ------------------------------------------------------------------ helpers (imported by the other in-store tests)

def destination(lat: float, lon: float, metres: float, bearing_deg: float) -> tuple[float, float]:
    """The point ``metres`` away on the same sphere, along ``bearing_deg`` (the direct geodesic problem)."""
    delta = metres / instore.EARTH_RADIUS_M
    theta, phi1, lmb1 = math.radians(bearing_deg), math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta))
    lmb2 = lmb1 + math.atan2(math.sin(theta) * math.sin(delta) * math.cos(phi1),
                             math.cos(delta) - math.sin(phi1) * math.sin(phi2))
    lon2 = (math.degrees(lmb2) + 540) % 360 - 180
    return math.degrees(phi2), lon2


def make_store(session, **overrides) -> Store:
    data = {"code": f"S{session.scalar(select(func.count()).select_from(Store)) + 1:03d}", "name": "Dizengoff",
            "lat": TLV[0], "lon": TLV[1], "radius_m": 200, "timezone": "Asia/Jerusalem",
            "check_in_cooldown_minutes": 240} | overrides
    store = Store(**data)
    session.add(store)
    session.flush()
    return store


_n = iter(range(1, 10**6))


def make_member(session, program) -> str:
    return enrolment.register_member(session, program, email=f"shopper{next(_n)}@example.com",
                                   password="correct horse", name="Shopper").id


def make_rule(session, program, **data) -> rules.Rule:
    return rules.create_rule(session, program, {"title": "Check-in bonus", "trigger": "check_in",
                                                "reward": {"points": 10}} | data)


def check_in_at(session, program, member_id, store, lat=None, lon=None, **kwargs):
    return instore.check_in(session, program, member_id=member_id, store_id=store.id,
                            lat=store.lat if lat is None else lat, lon=store.lon if lon is None else lon, **kwargs)


def refusal(session, program, member_id, store, lat=None, lon=None, **kwargs) -> Rejected:
    with pytest.raises(Rejected) as caught:
        check_in_at(session, program, member_id, store, lat, lon, **kwargs)
    assert caught.value.commit  # the refusal is recorded, so the request layer commits it
    return caught.value


def rows(session, **where) -> list[CheckIn]:
    return list(session.scalars(select(CheckIn).filter_by(**where).order_by(CheckIn.created_at, CheckIn.id)))


def points(session, member_id) -> int:
    return ledger.balance_of(session, member_id).points


@pytest.fixture
def member(session, program, clock):
    return make_member(session, program)


# ------------------------------------------------------------------ the great-circle distance

def test_distance_matches_known_values():
    one_degree = instore.EARTH_RADIUS_M * math.pi / 180
    assert great_circle_m(0, 0, 1, 0) == pytest.approx(one_degree, rel=1e-12)
    assert great_circle_m(0, 0, 0, 1) == pytest.approx(one_degree, rel=1e-12)
    assert great_circle_m(*TLV, *TLV) == 0
    # Tel Aviv to Jerusalem: about 54 km as the crow flies.
    assert great_circle_m(*TLV, *JERUSALEM) == pytest.approx(54_000, rel=0.01)
    # Antipodes: half the circumference, no NaN from rounding.
    assert great_circle_m(10, 20, -10, -160) == pytest.approx(math.pi * instore.EARTH_RADIUS_M, abs=1)
    assert great_circle_m(90, 0, -90, 0) == pytest.approx(math.pi * instore.EARTH_RADIUS_M, abs=1)


@pytest.mark.parametrize("bearing", [0, 45, 90, 135, 180, 270])
def test_distance_is_symmetric_and_matches_the_destination(bearing):
    lat, lon = destination(*TLV, 200, bearing)
    assert great_circle_m(*TLV, lat, lon) == pytest.approx(200, abs=1e-6)
    assert great_circle_m(lat, lon, *TLV) == pytest.approx(200, abs=1e-6)


def test_distance_across_the_antimeridian_is_short():
    # 0.001° of longitude at the equator either side of 180°: about 111 m, not 40,000 km.
    assert great_circle_m(0, 179.9995, 0, -179.9995) == pytest.approx(111.19, abs=0.02)
    assert great_circle_m(0, 180, 0, -180) == pytest.approx(0, abs=1e-6)
    assert great_circle_m(-16.5, 179.99, -16.5, -179.99) == pytest.approx(2132.6, abs=0.5)  # Fiji


def test_distance_near_the_poles():
    # At 89.9999° opposite meridians are only 2 × 0.0001° of latitude apart, over the pole.
    assert great_circle_m(89.9999, 0, 89.9999, 180) == pytest.approx(22.24, abs=0.01)
    # At the pole itself the longitude means nothing.
    assert great_circle_m(90, 0, 90, 123) == pytest.approx(0, abs=1e-6)
    assert great_circle_m(-90, 45, -89.999, -135) == pytest.approx(111.19, abs=0.02)


# ------------------------------------------------------------------ the radius


@pytest.mark.parametrize("bearing", [0, 90, 225])
def test_inside_and_on_the_radius_are_accepted(session, program, member, bearing):
    store = make_store(session, radius_m=200)
    make_rule(session, program)
    inside = check_in_at(session, program, member, store, *destination(store.lat, store.lon, 199.9, bearing))
    assert inside.check_in.status == "accepted" and inside.points_awarded == 10
    assert inside.check_in.distance_m == pytest.approx(199.9, abs=0.01)
    store.check_in_cooldown_minutes = 1
    program.clock.advance(minutes=1)
    on = check_in_at(session, program, member, store, *destination(store.lat, store.lon, 200, bearing))
    assert on.check_in.status == "accepted"
    assert on.check_in.distance_m == 200.0
    assert points(session, member) == 20


@pytest.mark.parametrize("bearing", [0, 90, 225])
def test_just_outside_the_radius_is_refused_and_recorded(session, program, member, bearing):
    store = make_store(session, radius_m=200)
    make_rule(session, program)
    error = refusal(session, program, member, store, *destination(store.lat, store.lon, 200.02, bearing))
    assert error.code == "too_far_from_store"
    assert error.extra["distance_m"] == pytest.approx(200.02, abs=0.005)
    assert error.extra["radius_m"] == 200
    [row] = rows(session, member_id=member)
    assert (row.status, row.reason, row.visit_number, row.points_awarded) == ("refused", "too_far_from_store", None, 0)
    assert row.id == error.extra["check_in_id"]
    assert points(session, member) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_check_in_across_the_antimeridian(session, program, member):
    store = make_store(session, lat=-16.5, lon=179.9995, radius_m=150, timezone="Pacific/Fiji")
    accepted = check_in_at(session, program, member, store, lat=-16.5, lon=-179.9995)
    assert accepted.check_in.status == "accepted"
    assert accepted.check_in.distance_m == pytest.approx(106.6, abs=0.1)
    # A naive |lon1 - lon2| would call the same spot 359.999° away; the far side of the island is refused.
    error = refusal(session, program, member, store, lat=-16.5, lon=-179.99)
    assert error.code == "too_far_from_store"


def test_check_in_near_the_poles(session, program, member):
    program.max_travel_kmh = float("inf")  # pole to pole in no time: geometry here, impossible travel elsewhere
    north = make_store(session, lat=89.9999, lon=0, radius_m=50, timezone="UTC")  # a research station
    assert check_in_at(session, program, member, north, lat=89.9999, lon=180).check_in.status == "accepted"
    south = make_store(session, lat=-90, lon=0, radius_m=120, timezone="Antarctica/McMurdo")
    assert check_in_at(session, program, member, south, lat=-89.999, lon=-135).check_in.distance_m == \
        pytest.approx(111.19, abs=0.02)
    far = make_store(session, lat=89.99, lon=0, radius_m=100, timezone="UTC")
    assert refusal(session, program, member, far, lat=89.99, lon=90).code == "too_far_from_store"


# ------------------------------------------------------------------ accuracy, inactive stores, bad input


def test_a_vague_location_is_refused(session, program, member):
    store = make_store(session, radius_m=100)
    error = refusal(session, program, member, store, accuracy_m=100.5)
    assert error.code == "location_inaccurate"
    assert rows(session, member_id=member)[0].accuracy_m == 100.5
    # An accuracy as good as the radius is believed.
    assert check_in_at(session, program, member, store, accuracy_m=100).check_in.status == "accepted"


def test_an_inactive_store_refuses_check_ins(session, program, member):
    store = make_store(session, active=False)
    make_rule(session, program)
    assert refusal(session, program, member, store).code == "store_inactive"
    assert [r.reason for r in rows(session)] == ["store_inactive"]
    assert points(session, member) == 0


def test_an_archived_or_unknown_store_is_not_found_and_nothing_is_written(session, program, member):
    store = make_store(session, archived_at=program.now(), active=False)
    for store_id in (store.id, "sto_nope", ""):
        with pytest.raises(NotFound) as caught:
            instore.check_in(session, program, member_id=member, store_id=store_id, lat=TLV[0], lon=TLV[1])
        assert caught.value.code == "store_not_found"
    assert rows(session) == []


@pytest.mark.parametrize("lat, lon, accuracy", [
    (90.0001, 0, None), (-91, 0, None), (0, 180.0001, None), (0, -181, None), (math.nan, 0, None),
    (0, math.inf, None), (True, 0, None), ("32.07", 34.77, None), (None, 0, None), (0, 0, -1), (0, 0, math.nan),
    (10**400, 0, None), (0, -(10**400), None), (0, 0, 10**400),
])
def test_malformed_positions_are_invalid_and_write_nothing(session, program, member, lat, lon, accuracy):
    store = make_store(session)
    with pytest.raises(Invalid) as caught:
        instore.check_in(session, program, member_id=member, store_id=store.id, lat=lat, lon=lon, accuracy_m=accuracy)
    assert caught.value.code == "invalid_position"
    assert rows(session) == []


# ------------------------------------------------------------------ the cool-down


def test_the_cool_down_is_per_store_and_counts_from_the_last_accepted_check_in(session, program, member, clock):
    tlv = make_store(session, check_in_cooldown_minutes=60)
    jlm = make_store(session, lat=JERUSALEM[0], lon=JERUSALEM[1], check_in_cooldown_minutes=60)
    make_rule(session, program)
    first = check_in_at(session, program, member, tlv)
    assert first.next_check_in_at == clock.now + timedelta(minutes=60)
    clock.advance(minutes=20)  # Tel Aviv to Jerusalem (54 km) by car: any sooner is impossible travel
    assert check_in_at(session, program, member, jlm).check_in.status == "accepted"  # another store: its own
    clock.advance(minutes=30)
    error = refusal(session, program, member, tlv)
    assert error.code == "check_in_cooldown"
    assert error.extra["next_check_in_at"] == "2026-11-22T11:00:00Z"
    assert error.extra["next_check_in_local"] == "2026-11-22T13:00:00+02:00"
    clock.advance(minutes=10)  # exactly the cool-down later: counts
    again = check_in_at(session, program, member, tlv)
    assert again.check_in.visit_number == 2
    assert points(session, member) == 30
    assert [(r.status, r.visit_number) for r in rows(session, store_id=tlv.id)] == \
        [("accepted", 1), ("refused", None), ("accepted", 2)]


def test_the_cool_down_runs_across_local_midnight(session, program, member, clock):
    store = make_store(session, timezone="Asia/Jerusalem", check_in_cooldown_minutes=240)
    clock.now = datetime(2026, 11, 22, 20, 30, tzinfo=UTC)  # 22:30 in Tel Aviv
    check_in_at(session, program, member, store)
    clock.now = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 00:30 the next local day: a new day, same cool-down
    error = refusal(session, program, member, store)
    assert error.code == "check_in_cooldown"
    assert error.extra["next_check_in_local"] == "2026-11-23T02:30:00+02:00"
    clock.now = datetime(2026, 11, 23, 0, 29, tzinfo=UTC)
    assert refusal(session, program, member, store).code == "check_in_cooldown"
    clock.now = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # 02:30 local: four real hours later
    assert check_in_at(session, program, member, store).check_in.visit_number == 2


def test_the_cool_down_is_real_time_when_the_clocks_spring_forward(session, program, member, clock):
    # New York, 8 March 2026: at 02:00 EST the clocks jump to 03:00 EDT.
    store = make_store(session, timezone="America/New_York", lat=40.7505, lon=-73.9934, check_in_cooldown_minutes=180)
    clock.now = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    check_in_at(session, program, member, store)
    clock.now = datetime(2026, 3, 8, 9, 29, tzinfo=UTC)  # 05:29 EDT: four hours on the wall, 2h59 in reality
    error = refusal(session, program, member, store)
    assert error.extra["next_check_in_local"] == "2026-03-08T05:30:00-04:00"
    clock.now = datetime(2026, 3, 8, 9, 30, tzinfo=UTC)  # 05:30 EDT: three real hours
    assert check_in_at(session, program, member, store).check_in.status == "accepted"


def test_the_cool_down_is_real_time_when_the_clocks_fall_back(session, program, member, clock):
    # Jerusalem, 25 October 2026: at 02:00 IDT the clocks go back to 01:00 IST; 01:30 happens twice.
    store = make_store(session, timezone="Asia/Jerusalem", check_in_cooldown_minutes=60)
    clock.now = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # the first 01:30 (IDT, +03:00)
    check_in_at(session, program, member, store)
    clock.now = datetime(2026, 10, 24, 23, 29, tzinfo=UTC)  # 01:29 IST (+02:00): earlier on the wall, 59 min later
    error = refusal(session, program, member, store)
    assert error.extra["next_check_in_local"] == "2026-10-25T01:30:00+02:00"
    clock.now = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # the second 01:30: one real hour later
    assert check_in_at(session, program, member, store).check_in.status == "accepted"


def test_refused_attempts_do_not_start_a_cool_down(session, program, member, clock):
    store = make_store(session, check_in_cooldown_minutes=60)
    far = destination(store.lat, store.lon, 5_000, 0)
    assert refusal(session, program, member, store, lat=far[0], lon=far[1]).code == "too_far_from_store"
    clock.advance(minutes=1)
    assert check_in_at(session, program, member, store).check_in.visit_number == 1


def test_the_database_refuses_a_second_nth_visit(session, program, member):
    """What stops two racing check-ins when the row lock is missing: (member, store, visit_number) is unique."""
    from sqlalchemy.exc import IntegrityError
    store = make_store(session)
    for _ in range(2):
        session.add(CheckIn(member_id=member, store_id=store.id, status="accepted", lat=0, lon=0, distance_m=0,
                            visit_number=1, created_at=program.now()))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


# ------------------------------------------------------------------ rules: stores, the n-th visit


def test_store_conditions(session, program, member, clock):
    tlv = make_store(session, check_in_cooldown_minutes=1)
    jlm = make_store(session, lat=JERUSALEM[0], lon=JERUSALEM[1])
    make_rule(session, program, title="Dizengoff only", conditions={"stores": [tlv.id]}, reward={"points": 7})
    assert check_in_at(session, program, member, tlv).rewards[0]["title"] == "Dizengoff only"
    clock.advance(hours=1)  # the drive to Jerusalem
    assert check_in_at(session, program, member, jlm).points_awarded == 0


def test_the_nth_visit_this_month_counts_accepted_check_ins_across_the_chain(session, program, member, clock):
    tlv = make_store(session, check_in_cooldown_minutes=240)
    jlm = make_store(session, lat=JERUSALEM[0], lon=JERUSALEM[1], check_in_cooldown_minutes=240)
    make_rule(session, program, title="3rd visit this month", conditions={"nth": {"n": 3, "period": "month"}},
              reward={"points": 50})
    clock.now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    results = [check_in_at(session, program, member, tlv)]
    clock.advance(hours=1)
    refusal(session, program, member, tlv)  # inside the cool-down: not a visit
    results.append(check_in_at(session, program, member, jlm))
    clock.advance(days=3)
    results.append(check_in_at(session, program, member, tlv))
    clock.advance(days=3)
    results.append(check_in_at(session, program, member, jlm))
    assert [r.points_awarded for r in results] == [0, 0, 50, 0]
    assert [r.counts["month"] for r in results] == [1, 2, 3, 4]
    assert results[-1].counts == {"day": 1, "week": 4, "month": 4, "year": 4, "ever": 4}  # Mon 2 to Sun 8 Nov
    assert points(session, member) == 50


def test_periods_begin_at_midnight_in_the_store_time_zone(session, program, member, clock):
    store = make_store(session, timezone="Asia/Jerusalem", check_in_cooldown_minutes=60)
    make_rule(session, program, title="First visit of the month", conditions={"nth": {"n": 1, "period": "month"}},
              reward={"points": 5})
    clock.now = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 22:00 on 30 November in Tel Aviv
    assert check_in_at(session, program, member, store).points_awarded == 5
    clock.now = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)  # 00:30 on 1 December in Tel Aviv, still November in UTC
    december = check_in_at(session, program, member, store)
    assert december.points_awarded == 5
    assert december.counts == {"day": 1, "week": 2, "month": 1, "year": 2, "ever": 2}


def test_weeks_begin_on_monday_and_days_follow_dst(session, program, member, clock):
    store = make_store(session, timezone="America/New_York", lat=40.7505, lon=-73.9934, check_in_cooldown_minutes=1)
    make_rule(session, program, title="2nd visit today", conditions={"nth": {"n": 2, "period": "day"}},
              reward={"points": 3})
    clock.now = datetime(2026, 3, 8, 5, 30, tzinfo=UTC)  # Sunday 00:30 EST, the day the clocks spring forward
    assert check_in_at(session, program, member, store).counts["day"] == 1
    clock.now = datetime(2026, 3, 9, 3, 59, tzinfo=UTC)  # Sunday 23:59 EDT: a 23-hour day, still Sunday
    sunday = check_in_at(session, program, member, store)
    assert (sunday.counts["day"], sunday.counts["week"], sunday.points_awarded) == (2, 2, 3)
    clock.now = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # Monday 00:00 EDT: a new day and a new week
    monday = check_in_at(session, program, member, store)
    assert (monday.counts["day"], monday.counts["week"], monday.counts["month"]) == (1, 1, 3)


def test_period_starts_when_midnight_does_not_exist():
    from zoneinfo import ZoneInfo
    # Santiago, 6 September 2026: the clocks jump from 00:00 to 01:00, so the day begins at 01:00 (04:00 UTC).
    now = datetime(2026, 9, 6, 12, 0, tzinfo=UTC)
    assert instore.period_starts(now, ZoneInfo("America/Santiago"))["day"] == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)


def test_check_in_grants_are_recorded_with_the_event(session, program, member):
    store = make_store(session)
    rule = make_rule(session, program)
    result = check_in_at(session, program, member, store)
    grant = session.scalar(select(rules.RuleGrant).where(rules.RuleGrant.rule_id == rule.id))
    assert grant.event_source == f"check_in:{result.check_in.id}"
    assert grant.event["store_id"] == store.id and grant.event["visit_number"] == 1
    [entry] = session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member)).all()
    assert (entry.delta, entry.reason, entry.channel, entry.source) == (10, "check_in", "app",
                                                                        f"check_in:{result.check_in.id}")
