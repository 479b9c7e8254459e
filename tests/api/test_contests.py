"""Contests: create, enter (free, once), extra entries per purchase, the public page through its life, the draw
(once, never early, distinct winners with their prize coupon), the worker's draw, and the timeline."""
from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem, run_together
from wallet import contests, coupons, tokens
from wallet.coupons import Coupon
from wallet.events import Event
from wallet.purchases import Purchase

ADMIN = "/api/v1/admin/contests"


class Headers(dict):
    """A staff member's headers, signed afresh whenever read (the tests move the clock by days)."""

    def __init__(self, factory, staff):
        super().__init__()
        self.factory, self.staff = factory, staff

    def keys(self):
        return ["Authorization"]

    def __getitem__(self, key):
        return self.factory.headers(tokens.Principal(self.staff["id"], "marketer"))[key]

    def __iter__(self):
        return iter(self.keys())

    def items(self):
        return [(k, self[k]) for k in self.keys()]


@pytest.fixture
def marketer(factory):
    return Headers(factory, factory.staff("marketer"))


def fresh(factory, member):
    return factory.headers(tokens.Principal(member["id"], "member"))


def _iso(t):
    return t.isoformat().replace("+00:00", "Z")


def _create(client, marketer, clock, **overrides):
    now = clock.now
    body = {"title": "Win a year of coffee", "terms": "One free entry per member.", "opens_at": _iso(now),
            "closes_at": _iso(now + timedelta(days=7)), "draw_at": _iso(now + timedelta(days=8)), "winners": 2}
    body |= overrides
    r = client.post(ADMIN, json=body, headers=marketer)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _offer(app, factory) -> str:
    with app.app_context():
        offer = coupons.create_offer(db.session, factory.program, {
            "title": "Prize", "terms": "A prize", "benefit": {"kind": "percent_off", "value": "10"}})
        db.session.commit()
        offer_id = offer.id
        db.session.remove()
    return offer_id


def _buy(app, member_id, store_id, amount, at, status="completed"):
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Purchase)) or 0
        db.session.add(Purchase(store_id=store_id, member_id=member_id, receipt_id=f"R{n}", amount=Decimal(amount),
                                currency="ILS", fingerprint="x", created_at=at, status=status))
        db.session.commit()
        db.session.remove()


def test_a_contest_from_creation_to_a_verifiable_draw(client, app, factory, marketer, clock):
    offer_id = _offer(app, factory)
    contest = _create(client, marketer, clock, prize_offer_id=offer_id, winners=2,
                      entries_per_purchase={"min_amount": "50.00"})
    assert len(contest["commitment"]) == 64 and "seed" not in contest
    assert contest["entries_per_purchase"] == {"min_amount": "50.00"}
    public = f"/api/v1/contests/{contest['id']}"
    page = client.get(public).get_json()  # no sign-in
    assert page["status"] == "open" and page["entry_count"] == 0 and page["commitment"] == contest["commitment"]
    assert page["entries"] is None and page["seed"] is None and page["winners"] is None

    store = factory.store()
    people = [factory.member() for _ in range(4)]
    aliases = {}
    for person in people:
        r = client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=person["headers"])
        assert r.status_code == 201, r.get_json()
        aliases[person["id"]] = r.get_json()["alias"]
    assert len(set(aliases.values())) == 4
    again = client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=people[0]["headers"])
    assert_problem(again, 409, "contest_already_entered")
    # extra entries: 2 qualifying purchases for people[0]; too small, refunded, before/after the window don't count
    _buy(app, people[0]["id"], store["id"], "50.00", clock.now + timedelta(hours=1))
    _buy(app, people[0]["id"], store["id"], "120.00", clock.now + timedelta(days=2))
    _buy(app, people[1]["id"], store["id"], "49.99", clock.now + timedelta(hours=1))
    _buy(app, people[1]["id"], store["id"], "80.00", clock.now + timedelta(hours=1), status="refunded")
    _buy(app, people[2]["id"], store["id"], "80.00", clock.now - timedelta(hours=1))
    outsider = factory.member()
    _buy(app, outsider["id"], store["id"], "500.00", clock.now + timedelta(hours=1))
    assert client.get(public).get_json()["entry_count"] == 4

    early = client.post(f"{ADMIN}/{contest['id']}/draw", headers=marketer)
    assert_problem(early, 409, "contest_not_closed")
    clock.advance(days=7)
    _buy(app, people[3]["id"], store["id"], "80.00", clock.now)  # at closes_at: too late
    late = client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=fresh(factory, outsider))
    assert_problem(late, 422, "contest_closed")
    page = client.get(public).get_json()
    expected = sorted([aliases[people[0]["id"]]] * 3 + [aliases[p["id"]] for p in people[1:]])
    assert page["status"] == "closed" and page["entries"] == expected and page["entry_count"] == 6
    assert page["entries_sha256"] == hashlib.sha256("\n".join(expected).encode()).hexdigest()
    assert page["seed"] is None

    r = client.post(f"{ADMIN}/{contest['id']}/draw", headers=marketer)
    assert r.status_code == 200, r.get_json()
    drawn = r.get_json()
    assert hashlib.sha256(bytes.fromhex(drawn["seed"])).hexdigest() == contest["commitment"]
    assert drawn["winners"] == contests.pick_winners(drawn["seed"], expected, 2)
    assert len(set(drawn["winners"])) == 2
    assert client.get(public).get_json() == drawn
    assert_problem(client.post(f"{ADMIN}/{contest['id']}/draw", headers=marketer), 409, "contest_already_drawn")

    winners = {m for m, a in aliases.items() if a in drawn["winners"]}
    with app.app_context():
        held = set(db.session.scalars(select(Coupon.member_id).where(Coupon.offer_id == offer_id)))
        types = [e.type for e in db.session.scalars(select(Event).where(Event.type.like("contest.%")))]
        db.session.remove()
    assert held == winners
    assert sorted(types) == ["contest.drawn"] + ["contest.entered"] * 4 + ["contest.won"] * 2
    # the timeline shows the entry and the win
    winner = next(p for p in people if p["id"] in winners)
    items = client.get("/api/v1/me/activity?kind=contest", headers=fresh(factory, winner)).get_json()["items"]
    assert [i["summary"] for i in items] == ["You won Win a year of coffee", "Entered Win a year of coffee"]
    # the public page never names members
    assert not any(p["id"] in str(drawn) or p["email"] in str(drawn) for p in people)


def test_more_winners_than_entrants(client, factory, marketer, clock):
    contest = _create(client, marketer, clock, winners=5)
    people = [factory.member() for _ in range(2)]
    for p in people:
        client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=p["headers"])
    clock.advance(days=8)
    drawn = client.post(f"{ADMIN}/{contest['id']}/draw", headers=marketer).get_json()
    assert len(drawn["winners"]) == 2 and len(set(drawn["winners"])) == 2


def test_a_contest_with_no_entries_draws_no_one(client, marketer, clock):
    contest = _create(client, marketer, clock)
    clock.advance(days=8)
    drawn = client.post(f"{ADMIN}/{contest['id']}/draw", headers=marketer).get_json()
    assert drawn["winners"] == [] and drawn["entries"] == []


def test_entering_before_it_opens_or_an_unknown_contest(client, factory, marketer, clock):
    contest = _create(client, marketer, clock, opens_at=_iso(clock.now + timedelta(days=1)))
    member = factory.member()
    assert_problem(client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=member["headers"]),
                   422, "contest_not_open")
    assert_problem(client.post("/api/v1/me/contests/cts_nope/entries", headers=member["headers"]),
                   404, "contest_not_found")
    assert_problem(client.get("/api/v1/contests/cts_nope"), 404, "contest_not_found")
    assert client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=marketer).status_code == 403


@pytest.mark.parametrize("change, field", [
    ({"closes_at": "2026-11-01T00:00:00Z"}, "closes_at"),
    ({"draw_at": "2026-11-23T00:00:00Z"}, "draw_at"),
    ({"winners": 0}, "winners"),
    ({"entries_per_purchase": {"min_amount": "0"}}, "entries_per_purchase.min_amount"),
    ({"prize_offer_id": "off_nope"}, "prize_offer_id"),
    ({"title": ""}, "title"),
    ({"extra": 1}, "extra"),
])
def test_bad_contests_are_refused(client, marketer, clock, app, change, field):
    now = clock.now
    body = {"title": "T", "terms": "x", "opens_at": _iso(now), "closes_at": _iso(now + timedelta(days=7)),
            "draw_at": _iso(now + timedelta(days=8)), "winners": 1} | change
    r = client.post(ADMIN, json=body, headers=marketer)
    assert r.status_code in (400, 422) and r.mimetype == "application/problem+json", r.get_json()
    assert any(k.startswith(field.split(".")[0]) for k in r.get_json()["errors"]), r.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(contests.Contest)) == 0
        db.session.remove()


def test_an_open_contest_keeps_its_terms(client, marketer, clock):
    contest = _create(client, marketer, clock)
    assert_problem(client.patch(f"{ADMIN}/{contest['id']}", json={"winners": 9}, headers=marketer),
                   409, "contest_started")
    r = client.patch(f"{ADMIN}/{contest['id']}", json={"title": "New title"}, headers=marketer)
    assert r.status_code == 200 and r.get_json()["title"] == "New title"
    later = _create(client, marketer, clock, opens_at=_iso(clock.now + timedelta(days=1)))
    r = client.patch(f"{ADMIN}/{later['id']}", json={"winners": 9}, headers=marketer)
    assert r.status_code == 200 and r.get_json()["winners"] == 9


def test_the_worker_draws_at_draw_at_once(client, app, factory, marketer, clock):
    contest = _create(client, marketer, clock)
    member = factory.member()
    client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=member["headers"])
    with app.app_context():
        clock.advance(days=7, hours=12)  # closed, not yet draw_at
        assert contests.draw_due(db.session, factory.program) == 0
        clock.advance(hours=12)
        assert contests.draw_due(db.session, factory.program) == 1
        db.session.commit()
        assert contests.draw_due(db.session, factory.program) == 0
        db.session.remove()
    page = client.get(f"/api/v1/contests/{contest['id']}").get_json()
    assert page["status"] == "drawn" and len(page["winners"]) == 1


@pytest.mark.postgres
def test_two_workers_drawing_at_once_make_one_draw(client, app, factory, marketer, clock):
    contest = _create(client, marketer, clock)
    for _ in range(3):
        client.post(f"/api/v1/me/contests/{contest['id']}/entries", headers=factory.member()["headers"])
    clock.advance(days=9)

    def work(i):
        with app.app_context():
            try:
                if i % 2:
                    done = contests.draw_due(db.session, factory.program)
                else:
                    contests.draw(db.session, factory.program, contest["id"], actor="test")
                    done = 1
                db.session.commit()
                return done
            except contests.contests.Conflict as error:
                db.session.rollback()
                return error.code
            finally:
                db.session.remove()
    results = run_together(6, work)
    assert results.count(1) == 1, results
    assert set(results) - {1} <= {0, "contest_already_drawn"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Event).where(Event.type == "contest.drawn")) == 1
        db.session.remove()


@pytest.mark.postgres
def test_a_member_entering_twice_at_once_gets_one_entry(client, app, factory, marketer, clock):
    contest = _create(client, marketer, clock)
    member = factory.member()
    answers = run_together(4, lambda i: client.post(f"/api/v1/me/contests/{contest['id']}/entries",
                                                   headers=member["headers"]).status_code)
    assert sorted(answers) == [201, 409, 409, 409]


def test_the_demo_club_has_a_linked_profile_an_open_contest_and_a_drawn_one(app, client):
    from wallet import demo, members
    with app.app_context():
        program = app.extensions["loyalty.program"]
        demo.load(db.session, program)
        db.session.commit()
        demo.load(db.session, program)  # twice: nothing more
        db.session.commit()
        member = db.session.scalar(select(members.Member).where(members.Member.email == "member@demo.club"))
        profile = __import__("wallet.social", fromlist=["get_profile"]).get_profile(db.session, member)
        found = {c.title: c for c in db.session.scalars(select(contests.Contest))}
        db.session.remove()
    assert profile["share_consent"] is True and len(profile["networks"]) == 2
    assert len(found) == 2
    opened = client.get(f"/api/v1/contests/{found['Win a year of coffee'].id}").get_json()
    assert opened["status"] == "open" and opened["entry_count"] == 4
    drawn = client.get(f"/api/v1/contests/{found['Autumn giveaway: a club mug'].id}").get_json()
    assert drawn["status"] == "drawn" and len(drawn["winners"]) == 2
    assert drawn["winners"] == contests.pick_winners(drawn["seed"], drawn["entries"], 2)
