"""Segments in the domain: the criteria language's checks, its SQL against a plain Python reference over random
small clubs (hypothesis), null semantics, one member's test, and nothing loaded into Python to filter."""
from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from wallet import segments
from wallet.errors import Invalid
from wallet.instore import CheckIn
from wallet.ledger import Balance
from wallet.members import Card, Member
from wallet.purchases import Purchase
from wallet.segments.criteria import MAX_CONDITIONS, MAX_DEPTH
from wallet.stores import Store

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CITIES = ["Haifa", "Tel Aviv", "Eilat", None]


def _member(session, i: int, **fields) -> Member:
    member = Member(id=f"mem_T{i:04d}", email=f"s{i}@example.com", password_hash="x", name=f"Member {i}",
                    referral_code=f"SEG{i:05d}", created_at=fields.pop("created_at", NOW - timedelta(days=400)),
                    **fields)
    session.add(member)
    session.flush()
    session.add(Card(member_id=member.id, number=f"{i:016d}", issued_at=member.created_at))
    session.add(Balance(member_id=member.id, points=fields.get("points", 0)))
    return member


def _store(session) -> Store:
    store = Store(code=f"S{random.randrange(10**6)}", name="Store", lat=32.0, lon=34.8)
    session.add(store)
    session.flush()
    return store


def _purchase(session, store, member_id: str, amount: str, at: datetime, status: str = "completed") -> None:
    session.add(Purchase(store_id=store.id, member_id=member_id, receipt_id=f"r{random.randrange(10**12)}",
                         amount=Decimal(amount), currency="ILS", fingerprint="f", status=status, created_at=at))


def _visit(session, store, member_id: str, at: datetime, status: str = "accepted") -> None:
    session.add(CheckIn(member_id=member_id, store_id=store.id, status=status, lat=32.0, lon=34.8, distance_m=1.0,
                        visit_number=random.randrange(10**9) if status == "accepted" else None, created_at=at))


def ids(session, program, criteria) -> list[str]:
    return sorted(session.scalars(segments.member_ids(session, criteria, program=program)))


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("criteria, code, path", [
    ({"field": "shoe_size", "op": "=", "value": 3}, "unknown_field", "criteria.field"),
    ({"all": [{"field": "spend_90d", "op": "~", "value": "1"}]}, "invalid_operator", "criteria.all[0].op"),
    ({"field": "city", "op": ">", "value": "Haifa"}, "invalid_operator", "criteria.op"),
    ({"field": "spend_90d", "op": ">", "value": 1.5}, "invalid_value", "criteria.value"),
    ({"field": "spend_90d", "op": ">", "value": "1.555"}, "invalid_value", "criteria.value"),
    ({"field": "spend_90d", "op": ">", "value": "NaN"}, "invalid_value", "criteria.value"),
    ({"field": "visits_90d", "op": ">", "value": True}, "invalid_value", "criteria.value"),
    ({"field": "gender", "op": "in", "value": ["female", "robot"]}, "invalid_value", "criteria.value[1]"),
    ({"field": "gender", "op": "in", "value": []}, "invalid_value", "criteria.value"),
    ({"any": []}, "invalid_criteria", "criteria.any"),
    ({"all": [], "any": []}, "invalid_criteria", "criteria"),
    ({"not": [1]}, "invalid_criteria", "criteria.not"),
    ({"field": "city", "op": "=", "value": "Haifa", "extra": 1}, "invalid_criteria", "criteria"),
    ({"field": "social.followers", "op": ">", "value": 10}, "invalid_operator", "criteria.op"),
    ({"field": "social.Bad-Name", "op": "=", "value": "x"}, "unknown_field", "criteria.field"),
    ("all", "invalid_criteria", "criteria"),
])
def test_bad_criteria_name_the_path_and_what_is_wrong(criteria, code, path):
    with pytest.raises(Invalid) as caught:
        segments.check_criteria(criteria)
    assert caught.value.code == code
    assert list(caught.value.errors) == [path]


def test_a_tree_50_deep_or_with_1000_conditions_is_refused_with_the_limit():
    deep: dict = {"field": "city", "op": "=", "value": "Haifa"}
    for _ in range(50):
        deep = {"not": deep}
    with pytest.raises(Invalid) as caught:
        segments.check_criteria(deep)
    assert caught.value.code == "criteria_too_deep" and str(MAX_DEPTH) in caught.value.detail
    wide = {"all": [{"field": "visits_90d", "op": ">", "value": i} for i in range(1000)]}
    with pytest.raises(Invalid) as caught:
        segments.check_criteria(wide)
    assert caught.value.code == "criteria_too_large" and str(MAX_CONDITIONS) in caught.value.detail
    spread = {"all": [{"any": [{"field": "visits_90d", "op": ">", "value": i} for i in range(60)]}] * 2}
    with pytest.raises(Invalid) as caught:
        segments.check_criteria(spread)
    assert caught.value.code == "criteria_too_large"


def test_values_are_stored_in_their_plain_form():
    assert segments.check_criteria({"all": [{"field": "spend_90d", "op": ">=", "value": 250},
                                            {"field": "city", "op": "in", "value": ["  Tel   Aviv ", "Haifa"]}]}) == \
        {"all": [{"field": "spend_90d", "op": ">=", "value": "250"},
                 {"field": "city", "op": "in", "value": ["Tel Aviv", "Haifa"]}]}


# ------------------------------------------------------------------ the SQL

def test_sql_in_a_value_is_only_a_value(session, program, clock):
    _member(session, 1, city="Haifa")
    _member(session, 2, city="x' OR '1'='1")
    found = ids(session, program, {"field": "city", "op": "=", "value": "x' OR '1'='1"})
    assert found == ["mem_T0002"]
    assert ids(session, program, {"field": "city", "op": "=", "value": "Haifa'; DROP TABLE members; --"}) == []
    assert session.scalar(select(func.count()).select_from(Member)) == 2


def test_null_compares_false_and_not_of_it_is_true(session, program, clock):
    store = _store(session)
    _member(session, 1)  # never bought, no birthday, no city
    _member(session, 2, birthday=date(1990, 5, 1), city="Haifa", gender="female")
    _purchase(session, store, "mem_T0002", "10.00", NOW - timedelta(days=40))
    session.flush()
    for field, value in (("days_since_last_purchase", 30), ("age", 20)):
        for op in (">", ">=", "<", "<=", "=", "!="):
            assert "mem_T0001" not in ids(session, program, {"field": field, "op": op, "value": value}), (field, op)
        assert "mem_T0001" in ids(session, program, {"not": {"field": field, "op": ">", "value": value}})
    assert ids(session, program, {"field": "days_since_last_purchase", "op": "=", "value": 40}) == ["mem_T0002"]
    assert ids(session, program, {"field": "days_since_last_purchase", "op": ">", "value": 40}) == []
    assert ids(session, program, {"field": "city", "op": "!=", "value": "Eilat"}) == ["mem_T0002"]
    assert ids(session, program, {"field": "city", "op": "=", "value": "HAIFA"}) == ["mem_T0002"]


def test_age_counts_whole_years_on_the_birthday(session, program, clock):
    _member(session, 1, birthday=date(2000, 11, 22))  # 26 today
    _member(session, 2, birthday=date(2000, 11, 23))  # 26 tomorrow
    assert ids(session, program, {"field": "age", "op": "=", "value": 26}) == ["mem_T0001"]
    assert ids(session, program, {"field": "age", "op": "=", "value": 25}) == ["mem_T0002"]
    assert ids(session, program, {"field": "age", "op": "in", "value": [25, 26]}) == ["mem_T0001", "mem_T0002"]


def test_closed_members_are_never_in_a_segment(session, program, clock):
    _member(session, 1)
    _member(session, 2, status="closed")
    assert ids(session, program, {"all": []}) == ["mem_T0001"]


def test_one_member_is_tested_with_one_query(app, session, program, clock):
    store = _store(session)
    _member(session, 1, city="Haifa")
    _member(session, 2, city="Haifa")
    _purchase(session, store, "mem_T0001", "300.00", NOW - timedelta(days=3))
    session.flush()
    criteria = {"all": [{"field": "spend_90d", "op": ">", "value": "100"}, {"field": "city", "op": "=",
                                                                             "value": "haifa"}]}
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)
    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert segments.contains(session, criteria, "mem_T0001", program=program) is True
        assert segments.contains(session, criteria, "mem_T0002", program=program) is False
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2
    assert "mem_T0001" not in statements[0]  # bound, not written into the SQL


def test_a_refunded_purchase_and_a_refused_check_in_do_not_count(session, program, clock):
    store = _store(session)
    _member(session, 1)
    _purchase(session, store, "mem_T0001", "500.00", NOW - timedelta(days=1), status="refunded")
    _visit(session, store, "mem_T0001", NOW - timedelta(days=1), status="refused")
    session.flush()
    assert ids(session, program, {"field": "spend_90d", "op": ">", "value": "0"}) == []
    assert ids(session, program, {"field": "visits_90d", "op": ">", "value": 0}) == []
    assert ids(session, program, {"field": "purchases_365d", "op": "=", "value": 0}) == ["mem_T0001"]


def test_consents_and_preferences(session, program, clock):
    _member(session, 1, consents={"marketing_email": {"granted": True, "at": "2026-01-01T00:00:00Z"}},
            preferences={"email": False, "sms": True})
    _member(session, 2, consents={"marketing_email": {"granted": False, "at": "2026-01-01T00:00:00Z"}},
            preferences={})
    assert ids(session, program, {"field": "consents.marketing_email", "op": "=", "value": True}) == ["mem_T0001"]
    assert ids(session, program, {"field": "consents.profiling", "op": "=", "value": False}) == \
        ["mem_T0001", "mem_T0002"]
    assert ids(session, program, {"field": "preferences.email", "op": "=", "value": True}) == ["mem_T0002"]
    assert ids(session, program, {"field": "preferences.sms", "op": "=", "value": True}) == ["mem_T0001"]


# ------------------------------------------------------------------ property: SQL == a Python reference

def _club(session, seed: int) -> dict:
    """A small random club and what each field is for each member, worked out in plain Python."""
    rng = random.Random(seed)
    store = _store(session)
    n = 9
    people = []
    for i in range(n):
        referrer = f"mem_T{rng.randrange(i):04d}" if i and rng.random() < 0.5 else None
        people.append(_member(session, i, city=rng.choice(CITIES), gender=rng.choice(["female", "male", None]),
                              birthday=rng.choice([None, date(1970 + rng.randrange(50), 1 + rng.randrange(12), 15)]),
                              created_at=NOW - timedelta(days=rng.randrange(1, 800), hours=rng.randrange(24)),
                              referred_by_id=referrer,
                              consents={"profiling": {"granted": rng.random() < 0.5, "at": "2026-01-01T00:00:00Z"}}))
    session.flush()
    for member in people:
        session.get(Balance, member.id).points = rng.randrange(0, 300)
    spend: dict[str, list[tuple[datetime, Decimal, str]]] = {m.id: [] for m in people}
    visits: dict[str, list[datetime]] = {m.id: [] for m in people}
    for _ in range(40):
        who = rng.choice(people).id
        at = NOW - timedelta(days=rng.randrange(0, 500), minutes=rng.randrange(1, 1400))
        amount, status = Decimal(rng.randrange(100, 40000)) / 100, rng.choice(["completed"] * 4 + ["refunded"])
        _purchase(session, store, who, str(amount), at, status)
        spend[who].append((at, amount, status))
    for _ in range(20):
        who = rng.choice(people).id
        at = NOW - timedelta(days=rng.randrange(0, 200), minutes=rng.randrange(1, 1400))
        _visit(session, store, who, at)
        visits[who].append(at)
    session.flush()

    def window(member_id: str, days: int) -> list[Decimal]:
        return [a for at, a, s in spend[member_id] if s == "completed" and at >= NOW - timedelta(days=days)]
    own = {m.id: sum(window(m.id, 365), Decimal(0)) for m in people}
    friends = {m.id: [f.id for f in people if f.referred_by_id == m.id] for m in people}
    referral = {m: sum((own[f] for f in friends[m]), Decimal(0)) + Decimal("0.5") *
                sum((own[g] for f in friends[m] for g in friends[f]), Decimal(0)) for m in own}
    bought = sorted(v for v in own.values() if v > 0)
    referring = sorted(v for v in referral.values() if v != 0)

    def median(values):
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    own_median, ref_median = median(bought), median(referring)
    today = NOW.astimezone(program_tz).date()
    table = {}
    for m in people:
        completed = [at for at, _, s in spend[m.id] if s == "completed"]
        high_own = own_median is not None and own[m.id] > own_median
        high_ref = ref_median is not None and referral[m.id] > ref_median
        age = None
        if m.birthday:
            age = today.year - m.birthday.year - ((today.month, today.day) < (m.birthday.month, m.birthday.day))
        table[m.id] = {
            "spend_30d": sum(window(m.id, 30), Decimal(0)), "spend_90d": sum(window(m.id, 90), Decimal(0)),
            "spend_365d": own[m.id], "purchases_90d": len(window(m.id, 90)),
            "purchases_365d": len(window(m.id, 365)),
            "visits_90d": len([v for v in visits[m.id] if v >= NOW - timedelta(days=90)]),
            "days_since_last_purchase": (NOW - max(completed)).days if completed else None,
            "points_balance": session.get(Balance, m.id).points, "age": age, "gender": m.gender,
            "city": m.city.lower() if m.city else None, "enrolled_days": (NOW - m.created_at).days,
            "referrals": len(friends[m.id]), "referral_value": referral[m.id], "tier": "basic",
            "influence": "champion" if high_own and high_ref else "affluent" if high_own else
            "advocate" if high_ref else "miser",
            "consents.profiling": m.consents["profiling"]["granted"],
        }
    return table


program_tz = UTC
NUMBERS = {"spend_30d": "decimal", "spend_90d": "decimal", "spend_365d": "decimal", "referral_value": "decimal",
           "purchases_90d": "int", "purchases_365d": "int", "visits_90d": "int", "days_since_last_purchase": "int",
           "points_balance": "int", "age": "int", "enrolled_days": "int", "referrals": "int"}


def _conditions() -> st.SearchStrategy:
    number = st.sampled_from(sorted(NUMBERS)).flatmap(lambda f: st.builds(
        lambda op, v: {"field": f, "op": op, "value": [v, v + 1] if op == "in" else v},
        st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "in"]),
        st.integers(0, 800) if NUMBERS[f] == "int" or f in ("age",) else st.integers(0, 900))
        .map(lambda c: c if NUMBERS[f] == "int" else
             {**c, "value": [str(v) for v in c["value"]] if c["op"] == "in" else str(c["value"])}))
    choice = st.one_of(
        st.builds(lambda op, v: {"field": "city", "op": op, "value": v}, st.sampled_from(["=", "!="]),
                  st.sampled_from(["haifa", "Tel Aviv", "EILAT"])),
        st.builds(lambda op, v: {"field": "gender", "op": op, "value": v}, st.sampled_from(["=", "!="]),
                  st.sampled_from(["female", "male", "other"])),
        st.builds(lambda v: {"field": "influence", "op": "=", "value": v},
                  st.sampled_from(["champion", "affluent", "advocate", "miser"])),
        st.builds(lambda v: {"field": "consents.profiling", "op": "=", "value": v}, st.booleans()),
        st.just({"field": "tier", "op": "=", "value": "basic"}),
    )
    leaf = st.one_of(number, choice)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner)), max_leaves=6)


def _reference(node: dict, row: dict) -> bool:
    if "all" in node:
        return all(_reference(n, row) for n in node["all"])
    if "any" in node:
        return any(_reference(n, row) for n in node["any"])
    if "not" in node:
        return not _reference(node["not"], row)
    have, op, value = row[node["field"]], node["op"], node["value"]
    if have is None:
        return False
    if node["field"] in NUMBERS and NUMBERS[node["field"]] == "decimal":
        value = [Decimal(v) for v in value] if op == "in" else Decimal(value)
    if node["field"] == "city":
        value = value.lower()
    return {"=": lambda: have == value, "!=": lambda: have != value, ">": lambda: have > value,
            ">=": lambda: have >= value, "<": lambda: have < value, "<=": lambda: have <= value,
            "in": lambda: have in value}[op]()


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sql_agrees_with_a_python_reference(session, program, clock, seed):
    global program_tz
    program_tz = program.tz
    table = _club(session, seed)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_conditions())
    def check(criteria):
        criteria = segments.check_criteria(criteria)
        expected = sorted(m for m, row in table.items() if _reference(criteria, row))
        assert ids(session, program, criteria) == expected, criteria
    check()
    # a top-level all's profile conditions narrow every aggregate to their members: the same answer
    for criteria in ({"all": [{"field": "city", "op": "=", "value": "Haifa"},
                              {"field": "spend_365d", "op": ">", "value": "50"},
                              {"field": "visits_90d", "op": ">=", "value": 0},
                              {"not": {"field": "days_since_last_purchase", "op": "<", "value": 30}}]},
                     {"all": [{"any": [{"field": "gender", "op": "=", "value": "female"},
                                       {"field": "age", "op": ">", "value": 40}]},
                              {"not": {"field": "purchases_90d", "op": "=", "value": 0}}]}):
        criteria = segments.check_criteria(criteria)
        expected = sorted(m for m, row in table.items() if _reference(criteria, row))
        assert ids(session, program, criteria) == expected, criteria
