"""Fixtures: one database per run (SQLite by default, PostgreSQL through DATABASE_URL), emptied after each test.

Tests commit for real (the API commits; the concurrency tests need other connections to see rows), so
instead of a rollback per test every table is emptied after it.
"""
from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import has_app_context
from sqlalchemy import text

from api import create_app
from api.extensions import db
from wallet import enrolment, members, tokens
from wallet.db import Base
from wallet.stores import Store

FAST_HASH = "pbkdf2:sha256:1000"  # the real default is scrypt; tests don't need to be slow


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    url = database_url(tmp_path_factory)
    app = create_app({
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghij",
        "LOYALTY_PASSWORD_HASH": FAST_HASH, "RATELIMIT_ENABLED": False,
    })
    if url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()  # close pooled connections now, not in the garbage collector


@pytest.fixture
def make_app(app):
    """Builds another app on the test database with the test settings plus ``overrides`` (rate limits on, other
    keys, ...); each one's connections are closed after the test."""
    made = []

    def make(**overrides: Any):
        config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                  "SECRET_KEY": app.config["SECRET_KEY"], "LOYALTY_PASSWORD_HASH": FAST_HASH,
                  "RATELIMIT_ENABLED": False} | overrides
        other = create_app(config)
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def is_postgres(app) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


@pytest.fixture(autouse=True)
def _clean(request, app):
    """Each test starts with an empty club and the real clock."""
    program = app.extensions["loyalty.program"]
    settings = dict(vars(program))  # tests may change the clock, the random source or any setting
    yield
    vars(program).update(settings)
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))


def pytest_collection_modifyitems(config, items):
    if (os.environ.get("DATABASE_URL") or "").startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL for real row locks: set DATABASE_URL=postgresql+psycopg://... "
                                   "(.ci/run does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def session(ctx):
    return db.session


@pytest.fixture
def program(app):
    return app.extensions["loyalty.program"]


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock(program):
    clock = Clock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    program.clock = clock
    return clock


@pytest.fixture
def client(app):
    return app.test_client()


# ------------------------------------------------------------------ factories

class Factory:
    """Builds members, staff and stores straight through the domain, committed, and returns API headers."""

    def __init__(self, app):
        self.app = app
        self.n = 0

    @property
    def program(self):
        return self.app.extensions["loyalty.program"]

    def _commit(self, fn, *args, **kwargs):
        # Inside a test's own app context, share its session: a second SQLite connection would wait
        # on the first one's write lock.
        if has_app_context():
            result = fn(db.session, *args, **kwargs)
            db.session.commit()
            return result
        with self.app.app_context():
            result = fn(db.session, *args, **kwargs)
            db.session.commit()
            return result

    def headers(self, principal: tokens.Principal) -> dict[str, str]:
        """A fresh sign-in's access token (recorded, as the API's own sign-in does)."""
        ring = self.app.extensions["loyalty.keyring"]
        if principal.session_id is None:
            principal = self._commit(lambda s: tokens.sign_in(s, principal, self.program.now()))
        return {"Authorization": f"Bearer {tokens.issue_access_token(ring, principal, self.program.now())}"}

    def store(self, **overrides: Any) -> dict[str, Any]:
        self.n += 1
        data = {"code": f"S{self.n:03d}", "name": f"Store {self.n}", "lat": 32.0753, "lon": 34.7754,
                "radius_m": 200, "timezone": "Asia/Jerusalem", "check_in_cooldown_minutes": 240} | overrides

        def make(session):
            store = Store(**data)
            session.add(store)
            session.flush()
            return {"id": store.id, **data}
        return self._commit(make)

    def member(self, **overrides: Any) -> dict[str, Any]:
        self.n += 1
        data = {"email": f"member{self.n}@example.com", "password": "correct horse", "name": f"Member {self.n}"}
        data |= overrides

        def make(session):
            member = enrolment.register_member(session, self.program, **data)
            return {"id": member.id, "email": member.email, "card_number": member.card.number,
                    "card_id": member.card.id, "password": data["password"]}
        out = self._commit(make)
        out["headers"] = self.headers(tokens.Principal(out["id"], "member"))
        return out

    def staff(self, role: str, store_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        self.n += 1
        data = {"email": f"{role}{self.n}@example.com", "password": "staff password", "role": role} | overrides
        if role == "cashier" and store_id is None:
            store_id = self.store()["id"]

        def make(session):
            staff = members.create_staff(session, store_id=store_id, **data)
            return {"id": staff.id, "email": staff.email, "store_id": staff.store_id, "password": data["password"]}
        out = self._commit(make)
        out["headers"] = self.headers(tokens.Principal(out["id"], role, out["store_id"]))
        return out

    def rule(self, **data: Any) -> str:
        from wallet import rules
        data = {"title": "rule", "trigger": "purchase"} | data
        return self._commit(lambda s: rules.create_rule(s, self.program, data).id)

    def earn(self, member_id: str, points: int, key: str | None = None, **kwargs) -> None:
        from wallet import ledger
        self.n += 1
        self._commit(lambda s: ledger.earn(s, self.program, member_id=member_id, points=points, reason="manual",
                                           idempotency_key=key or f"test:{self.n}", description="test", **kwargs))

    def spend(self, member_id: str, points: int, key: str | None = None, **kwargs) -> None:
        """Spend points as a coupon would (``description``: "a reward" unless given)."""
        from wallet import ledger
        self.n += 1
        kwargs.setdefault("description", "a reward")
        self._commit(lambda s: ledger.spend(s, self.program, member_id=member_id, points=points, reason="coupon",
                                            idempotency_key=key or f"test:{self.n}", **kwargs))

    def balance(self, member_id: str) -> int:
        from wallet import ledger
        if has_app_context():
            return ledger.balance_of(db.session, member_id).points
        with self.app.app_context():
            value = ledger.balance_of(db.session, member_id).points
            db.session.remove()
            return value


@pytest.fixture
def factory(app):
    return Factory(app)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json", response.mimetype
    body = response.get_json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    return body


def run_together(n: int, work) -> list:
    """Run ``work(i)`` in n threads released at once by a barrier; any thread's exception fails the test."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # collected: a thread's exception must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results
