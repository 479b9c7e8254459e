"""One error shape everywhere: application/problem+json (RFC 9457) with a stable ``code``, and never a 500 for bad input."""
from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import func, select

from api.extensions import db
from api.resource import Resource
from tests.conftest import assert_problem
from wallet import enrolment, members

REGISTER = "/api/v1/auth/register"


def register_body(**overrides):
    return {"email": "dana@example.com", "password": "correct horse", "name": "Dana"} | overrides


def member_count(app) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(members.Member))
        db.session.remove()
        return n


# ------------------------------------------------------------------ 400 / 422: bad input, with the fields named

def test_missing_fields_are_named(client):
    body = assert_problem(client.post(REGISTER, json={}), 422, "validation_error")
    assert set(body["errors"]) == {"email", "password", "name"}
    assert all(isinstance(m, list) and m and all(isinstance(x, str) for x in m) for m in body["errors"].values())
    assert body["type"].endswith("/validation_error")
    assert body["title"] and "email" in body["detail"]


def test_wrong_types_and_ranges_are_named(client):
    r = client.post(REGISTER, json=register_body(email=12, password="short", birthday="not a date"))
    body = assert_problem(r, 422, "validation_error")
    assert set(body["errors"]) == {"email", "password", "birthday"}


def test_nested_fields_are_named(client):
    r = client.post(REGISTER, json=register_body(consents={"marketing": "perhaps"}, preferences={"fax": True}))
    body = assert_problem(r, 422, "validation_error")
    assert any(name.startswith("consents.marketing") for name in body["errors"]), body["errors"]
    assert any(name.startswith("preferences.fax") for name in body["errors"]), body["errors"]


def test_unknown_fields_are_refused(client, factory):
    body = assert_problem(client.post(REGISTER, json=register_body(is_admin=True)), 422, "validation_error")
    assert body["errors"] == {"is_admin": ["Unknown field."]}
    member = factory.member()
    r = client.patch("/api/v1/me", json={"role": "admin"}, headers=member["headers"])
    assert assert_problem(r, 422, "validation_error")["errors"] == {"role": ["Unknown field."]}
    # unknown *query* parameters are ignored (cache-busters and tracking tags are common); bodies are strict
    assert client.get("/api/v1/me/ledger?_=123", headers=member["headers"]).status_code == 200


def test_nothing_is_stored_when_validation_fails(client, app):
    client.post(REGISTER, json=register_body(password="short"))
    assert member_count(app) == 0


@pytest.mark.parametrize("raw", [b"{bad", b'{"email": ', b"\xff\xfe{}", b"{\"a\": \"\\ud83d\""])
def test_malformed_json_is_400(client, raw):
    body = assert_problem(client.post(REGISTER, data=raw, content_type="application/json"), 400, "malformed_json")
    assert body["errors"] == {"_body": ["Invalid JSON body."]}


def test_deeply_nested_json_is_400_not_500(client):
    raw = "[" * 20_000 + "]" * 20_000
    assert_problem(client.post(REGISTER, data=raw, content_type="application/json"), 400, "malformed_json")
    raw = json.dumps(register_body(consents=json.loads('{"a":' * 100 + "1" + "}" * 100)))
    assert_problem(client.post(REGISTER, data=raw, content_type="application/json"), 400, "malformed_json")


@pytest.mark.parametrize("body", [[1, 2], "a string", 42, None])
def test_a_body_that_is_not_an_object_is_422(client, body):
    r = client.post(REGISTER, data=json.dumps(body), content_type="application/json")
    assert_problem(r, 422, "validation_error")


def test_invalid_query_parameters_are_422(client, factory):
    member = factory.member()
    for query in ("limit=0", "limit=201", "limit=abc", "limit=99999999999999999999999"):
        r = client.get(f"/api/v1/me/ledger?{query}", headers=member["headers"])
        assert "limit" in assert_problem(r, 422, "validation_error")["errors"], query
    r = client.get("/api/v1/me/ledger?cursor=%%%not-a-cursor", headers=member["headers"])
    assert "cursor" in assert_problem(r, 422, "invalid_cursor")["errors"]
    r = client.get("/api/v1/me/card/qr?format=gif", headers=member["headers"])
    assert "format" in assert_problem(r, 422, "validation_error")["errors"]


# ------------------------------------------------------------------ 401 / 403 / 404 / 405 / 409

def test_401_without_or_with_a_garbage_token(client):
    r = client.get("/api/v1/me")
    body = assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="loyalty"'
    assert "token" in body["detail"].lower()
    for header in ("Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer ", "garbage"):
        r = client.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.get_json()["code"] in ("unauthorized", "invalid_token"), header
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer garbage"})
    assert_problem(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="loyalty", error="invalid_token"'


def test_403_for_the_wrong_role(client, factory):
    member = factory.member()
    assert_problem(client.get("/api/v1/admin/members", headers=member["headers"]), 403, "forbidden")


def test_404_unknown_route_and_unknown_ids(client, factory):
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert "Traceback" not in json.dumps(body)
    # a body of the wrong type doesn't turn a missing route into a 415
    assert_problem(client.post("/api/v1/nope", data="x", content_type="text/plain"), 404, "not_found")
    marketer = factory.staff("marketer")
    assert_problem(client.get("/api/v1/admin/members/mem_01JZZZZZZZZZZZZZZZZZZZZZZZ", headers=marketer["headers"]),
                   404, "not_found")
    r = client.post("/api/v1/admin/members/mem_nope/adjustments", json={"points": 5, "reason": "goodwill"},
                    headers=marketer["headers"])
    assert_problem(r, 404, "not_found")


def test_405_names_the_allowed_methods(client, factory):
    member = factory.member()
    r = client.delete("/api/v1/me", headers=member["headers"])
    assert_problem(r, 405, "method_not_allowed")
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "PATCH"} <= allowed and "DELETE" not in allowed
    r = client.get(REGISTER)
    assert_problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_409_email_taken(client):
    assert client.post(REGISTER, json=register_body()).status_code == 201
    body = assert_problem(client.post(REGISTER, json=register_body(name="Other")), 409, "email_taken")
    assert "password" not in json.dumps(body)


# ------------------------------------------------------------------ 413 / 415

def test_413_for_a_body_over_the_limit(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    raw = json.dumps(register_body(name="x" * limit))
    assert_problem(client.post(REGISTER, data=raw, content_type="application/json"), 413, "payload_too_large")
    assert member_count(app) == 0


def test_a_body_just_under_the_limit_is_read(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    raw = json.dumps(register_body(name="x" * 200))
    raw = raw[:-1] + " " * (limit - len(raw)) + "}"
    assert len(raw) == limit
    assert "name" in assert_problem(client.post(REGISTER, data=raw, content_type="application/json"),
                                    422, "validation_error")["errors"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml"])
def test_415_for_a_body_that_is_not_json(client, content_type):
    r = client.post(REGISTER, data="email=a@b.co&password=12345678&name=x", content_type=content_type)
    assert_problem(r, 415, "unsupported_media_type")


def test_json_with_a_charset_or_problem_suffix_is_json(client):
    raw = json.dumps(register_body())
    r = client.post(REGISTER, data=raw, content_type="application/json; charset=utf-8")
    assert r.status_code == 201, r.get_json()


# ------------------------------------------------------------------ 429

def _redis_url() -> str:
    """LOYALTY_TEST_REDIS_URL or the local default; the test is skipped, saying why, when nothing answers there."""
    url = os.environ.get("LOYALTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except Exception as error:
        pytest.skip(f"Redis is not reachable at {url} ({error.__class__.__name__}); set LOYALTY_TEST_REDIS_URL "
                    "to a Redis this test may use")
    return url


def _hit_until_limited(app, n: int):
    client = app.test_client()
    answers = [client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong"})
               for _ in range(n)]
    return answers


def test_429_with_retry_after(make_app, tmp_path):
    limited = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="3 per minute", RATELIMIT_STORAGE_URI="memory://")
    answers = _hit_until_limited(limited, 4)
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    body = assert_problem(answers[-1], 429, "rate_limited")
    assert body["title"] == "Too Many Requests"
    retry_after = int(answers[-1].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "3 per 1 minute" in body["detail"]
    # registration shares the /auth budget
    r = limited.test_client().post(REGISTER, json=register_body())
    assert_problem(r, 429, "rate_limited")


def test_rate_limits_are_per_app(make_app, client):
    """A second app with limits on must not switch them on for the first (the limiter is per app)."""
    limited = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="1 per minute", RATELIMIT_STORAGE_URI="memory://")
    _hit_until_limited(limited, 2)
    for _ in range(5):
        r = client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong"})
        assert_problem(r, 401, "invalid_credentials")


def _token_attempt(client, forwarded_for: str):
    return client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong"},
                       headers={"X-Forwarded-For": forwarded_for}).status_code


def test_x_forwarded_for_is_ignored_unless_a_proxy_is_trusted(make_app):
    """Otherwise a client could pick a new address per request and never be limited."""
    direct = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="2 per minute", RATELIMIT_STORAGE_URI="memory://")
    client = direct.test_client()
    assert [_token_attempt(client, f"10.0.0.{i}") for i in range(3)] == [401, 401, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(make_app):
    proxied = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="2 per minute", RATELIMIT_STORAGE_URI="memory://",
                       LOYALTY_TRUSTED_PROXIES=1)
    client = proxied.test_client()
    assert [_token_attempt(client, "203.0.113.7") for _ in range(3)] == [401, 401, 429]
    assert _token_attempt(client, "203.0.113.8") == 401
    # only the address the trusted proxy appended counts, not what the client wrote before it
    assert _token_attempt(client, "198.51.100.1, 203.0.113.7") == 429


def test_rate_limit_shared_between_workers_through_redis(make_app):
    """Two apps (as two gunicorn workers would be) count against one limit when the storage is Redis."""
    url = _redis_url()
    import uuid
    config = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "3 per minute", "RATELIMIT_STORAGE_URI": url,
              "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}  # this run's own counters; nothing to clean up
    worker_a, worker_b = make_app(**config), make_app(**config)
    statuses = [r.status_code for r in _hit_until_limited(worker_a, 2)]
    statuses += [r.status_code for r in _hit_until_limited(worker_b, 2)]
    assert statuses == [401, 401, 401, 429]
    assert int(_hit_until_limited(worker_a, 1)[0].headers["Retry-After"]) >= 1


# ------------------------------------------------------------------ 500

class Explodes(Resource):
    def post(self):
        enrolment.register_member(db.session, db.get_app().extensions["loyalty.program"],
                                email="ghost@example.com", password="correct horse", name="Ghost")
        db.session.flush()
        raise RuntimeError("secret internals: password=hunter2")


def test_unexpected_errors_are_a_500_problem_without_internals(make_app, caplog):
    app = make_app()

    @app.get("/api/v1/test/boom")
    def boom():
        raise ZeroDivisionError("secret internals")

    app.add_url_rule("/api/v1/test/explodes", view_func=Explodes.as_view("explodes"))
    client = app.test_client()
    for r in (client.get("/api/v1/test/boom"), client.post("/api/v1/test/explodes")):
        body = assert_problem(r, 500, "internal_error")
        text = r.get_data(as_text=True)
        assert "Traceback" not in text and "secret" not in text and "hunter2" not in text
        assert "ZeroDivisionError" not in text and "RuntimeError" not in text
        assert set(body) == {"type", "title", "status", "detail", "code"}
    # the error is logged for us, and the half-done transaction was rolled back
    assert "unhandled error" in caplog.text
    assert member_count(app) == 0


# ------------------------------------------------------------------ huge and strange input never gives a 500

STRANGE_NAMES = ["דנה כהן", "Dana 🎉🛒", "محمد", "Zoë Ünïcødé", "ｆｕｌｌｗｉｄｔｈ", "a" * 120, "🎉" * 120,
                 "\u202eevil override", "e\u0301"]


@pytest.mark.parametrize("name", STRANGE_NAMES)
def test_unicode_names_are_kept_as_given(client, name):
    r = client.post(REGISTER, json=register_body(name=name))
    assert r.status_code == 201, r.get_json()
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).get_json()["name"] == name


@pytest.mark.parametrize("field,value", [
    ("name", "Dana\x00Evil"), ("email", "dana\x00@example.com"), ("password", "correct\x00horse"),
    ("referral_code", "AB\x00CD"), ("phone", "+972\x00501234567"), ("name", "Dana \ud800"),
    ("email", "dana\udfff@example.com"), ("consents", {"market\x00ing": True}),
    ("consents", {"marketing\ud800": True}),
])
def test_nul_bytes_and_lone_surrogates_are_422_never_500(client, app, field, value):
    r = client.post(REGISTER, json=register_body(**{field: value}))
    body = assert_problem(r, 422, "validation_error")
    assert field in body["errors"], body
    assert member_count(app) == 0


def test_nul_bytes_in_query_and_path_are_422(client, factory):
    marketer = factory.staff("marketer")
    r = client.get("/api/v1/admin/members?q=dana%00", headers=marketer["headers"])
    assert "query.q" in assert_problem(r, 422, "validation_error")["errors"]
    r = client.get("/api/v1/admin/members/mem_%00", headers=marketer["headers"])
    assert "path.member_id" in assert_problem(r, 422, "validation_error")["errors"]


def test_nul_in_sign_in_is_refused(client):
    r = client.post("/api/v1/auth/token", json={"email": "a\x00@b.co", "password": "x"})
    assert_problem(r, 422, "validation_error")


@pytest.mark.parametrize("field", ["email", "password", "name", "phone", "referral_code", "birthday"])
def test_one_megabyte_strings_never_give_a_500(client, app, field):
    r = client.post(REGISTER, json=register_body(**{field: "x" * 1_000_000}))
    assert_problem(r, 413, "payload_too_large")


@pytest.mark.parametrize("field,size", [("email", 300), ("password", 200), ("name", 121), ("phone", 40),
                                        ("referral_code", 17)])
def test_long_strings_under_the_body_limit_are_named(client, field, size):
    r = client.post(REGISTER, json=register_body(**{field: "x" * size}))
    assert field in assert_problem(r, 422, "validation_error")["errors"]


def test_strange_values_in_every_register_field(client):
    for value in (None, True, 0, -1, 1.5, [], {}, [1], {"a": 1}, "", " ", "\t\n"):
        for field in ("email", "password", "name", "phone", "birthday", "referral_code", "consents", "preferences"):
            r = client.post(REGISTER, json=register_body(**{field: value}))
            assert r.status_code in (201, 409, 422), (field, value, r.get_data(as_text=True))
            assert r.status_code != 201 or field in ("phone", "birthday", "referral_code", "consents", "preferences")


# ------------------------------------------------------------------ Idempotency-Key: replay, conflict, bad keys

def test_idempotency_replay_and_conflict(client, factory):
    marketer, member = factory.staff("marketer"), factory.member()
    url = f"/api/v1/admin/members/{member['id']}/adjustments"
    headers = marketer["headers"] | {"Idempotency-Key": "k" * 255}  # the longest key allowed
    first = client.post(url, json={"points": 30, "reason": "goodwill gesture"}, headers=headers)
    assert first.status_code == 201, first.get_json()
    again = client.post(url, json={"points": 30, "reason": "goodwill gesture"}, headers=headers)
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert again.headers["Idempotency-Replayed"] == "true"
    assert factory.balance(member["id"]) == 30
    other = client.post(url, json={"points": 31, "reason": "goodwill gesture"}, headers=headers)
    assert_problem(other, 409, "idempotency_conflict")
    assert factory.balance(member["id"]) == 30


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "ünïcode", "tab\there"])
def test_bad_idempotency_keys_are_422(client, factory, key):
    marketer, member = factory.staff("marketer"), factory.member()
    r = client.post(f"/api/v1/admin/members/{member['id']}/adjustments", json={"points": 5, "reason": "goodwill"},
                    headers=marketer["headers"] | {"Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    assert "Idempotency-Key" in assert_problem(r, 422, "invalid_idempotency_key")["errors"]
    assert factory.balance(member["id"]) == 0


def test_an_unreachable_rate_limit_store_does_not_take_sign_in_down(make_app, caplog):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="3 per minute",
                   RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")  # nothing listens on port 1
    r = app.test_client().post(REGISTER, json=register_body())
    assert r.status_code == 201, r.get_json()


def test_the_rate_limit_store_can_be_made_to_fail_closed(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="3 per minute", RATELIMIT_SWALLOW_ERRORS=False,
                   RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    assert_problem(app.test_client().post(REGISTER, json=register_body()), 500, "internal_error")


def test_anonymous_requests_are_not_replayed_nor_their_tokens_stored(client, app):
    """Strangers share no key space, and answers that carry tokens are never kept in the idempotency table."""
    from wallet import idempotency
    headers = {"Idempotency-Key": "same-key"}
    first = client.post(REGISTER, json=register_body(), headers=headers)
    assert first.status_code == 201
    again = client.post(REGISTER, json=register_body(), headers=headers)
    assert_problem(again, 409, "email_taken")
    assert "Idempotency-Replayed" not in again.headers
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(idempotency.IdempotencyKey)) == 0
        db.session.remove()


# ------------------------------------------------------------------ fuzz: whatever JSON arrives, never a 500

def _json_values():
    from hypothesis import strategies as st
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=300)
               | st.sampled_from(["", " ", "\x00", "a@b.co", "1990-01-01", "2999-12-31", "+972501234567",
                                  "Dana", "x" * 130, "ｄａｎａ@example.com"]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def _bodies(fields: list[str]):
    from hypothesis import strategies as st
    return st.dictionaries(st.sampled_from(fields) | st.text(max_size=10), _json_values(), max_size=len(fields) + 1)


FUZZ_TARGETS = {
    "register": ("POST", REGISTER, None, ["email", "password", "name", "phone", "birthday", "referral_code",
                                          "consents", "preferences"]),
    "token": ("POST", "/api/v1/auth/token", None, ["email", "password", "refresh_token"]),
    "patch_me": ("PATCH", "/api/v1/me", "member", ["name", "phone", "birthday", "preferences", "consents"]),
    "adjust": ("POST", "/api/v1/admin/members/{member}/adjustments", "admin", ["points", "reason"]),
    "staff": ("POST", "/api/v1/admin/staff", "admin", ["email", "password", "name", "role", "store_id"]),
}


@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_fuzzed_bodies_never_give_a_500(client, factory, target):
    from hypothesis import HealthCheck, given, settings
    method, url, who, fields = FUZZ_TARGETS[target]
    people = {"member": factory.member(), "admin": factory.staff("admin")}
    url = url.format(member=people["member"]["id"])
    headers = people[who]["headers"] if who else {}

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=_bodies(fields) | _json_values())
    def check(body):
        r = client.open(url, method=method, json=body, headers=headers)
        assert r.status_code < 500, (body, r.get_data(as_text=True))
        if r.status_code >= 400:
            assert r.mimetype == "application/problem+json"

    check()
