"""The per-request shortcuts of the HTTP layer answer exactly as the long way round did: the verified-token
cache, flask-limiter's hooks only where a limit exists, and the JSON body parsed once for guard and schema."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from webargs import core as webargs_core

from tests.conftest import assert_problem
from wallet import tokens
from wallet.errors import InvalidToken, TokenExpired

TOKEN = "/api/v1/auth/token"
WRONG = {"email": "nobody@example.com", "password": "wrong password"}
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def ring(key: bytes = b"k" * 32) -> tokens.KeyRing:
    return tokens.KeyRing(keys=(key,), access_ttl=timedelta(minutes=15))


# ------------------------------------------------------------------ the verified-token cache

def test_a_cached_token_still_expires_on_the_second():
    keys = ring()
    token = tokens.issue_access_token(keys, tokens.Principal("mem_1", "member"), NOW)
    assert tokens.verify_access_token(keys, token, NOW).id == "mem_1"
    assert token in keys._verified
    assert tokens.verify_access_token(keys, token, NOW + timedelta(minutes=14, seconds=59)).id == "mem_1"
    with pytest.raises(TokenExpired):
        tokens.verify_access_token(keys, token, NOW + timedelta(minutes=15))
    with pytest.raises(TokenExpired):  # and an expired token is never taken from the cache as valid
        tokens.verify_access_token(keys, token, NOW + timedelta(days=1))


def test_the_cache_belongs_to_its_key_ring():
    mine, other = ring(b"a" * 32), ring(b"b" * 32)
    token = tokens.issue_access_token(mine, tokens.Principal("stf_1", "cashier", "sto_1"), NOW)
    assert tokens.verify_access_token(mine, token, NOW) == tokens.Principal("stf_1", "cashier", "sto_1")
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(other, token, NOW)
    assert mine == ring(b"a" * 32)  # the cache takes no part in equality


def test_refused_tokens_are_not_cached():
    keys = ring()
    token = tokens.issue_access_token(keys, tokens.Principal("mem_1", "member"), NOW)
    for bad in (token + "x", token.replace(".", "!", 1), "garbage"):
        with pytest.raises(InvalidToken):
            tokens.verify_access_token(keys, bad, NOW)
    with pytest.raises(TokenExpired):
        tokens.verify_access_token(keys, token, NOW + timedelta(hours=1))
    assert keys._verified == {}


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    keys = ring()
    issued = [tokens.issue_access_token(keys, tokens.Principal(f"mem_{i}", "member"), NOW) for i in range(10)]
    for i, token in enumerate(issued):
        assert tokens.verify_access_token(keys, token, NOW).id == f"mem_{i}"
        assert len(keys._verified) <= 3
    assert list(keys._verified) == issued[-3:]
    assert tokens.verify_access_token(keys, issued[0], NOW).id == "mem_0"  # forgotten, so verified again


def test_an_expired_cached_token_is_still_401_token_expired(client, clock, factory):
    cashier = factory.staff("cashier")
    body = {"card": "0000000000000", "amount": "1.00", "currency": "ILS", "receipt_id": "r-1"}
    assert client.post("/api/v1/pos/identify", json={"card_number": "1"}, headers=cashier["headers"]).status_code != 401
    clock.advance(minutes=15)
    r = client.post("/api/v1/pos/purchases", json=body, headers=cashier["headers"])
    assert_problem(r, 401, "token_expired")
    assert "invalid_token" in r.headers["WWW-Authenticate"]


# ------------------------------------------------------------------ flask-limiter, only where a limit is

def _limiter_hooks(app):
    limiter = app.extensions["loyalty.limiter"]
    return limiter._check_request_limit in app.before_request_funcs[None]


def test_limits_are_still_enforced_on_auth_and_only_there(make_app, factory):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="3 per minute", RATELIMIT_STORAGE_URI="memory://")
    assert not _limiter_hooks(app)  # the shortcut is in place: nothing but /auth has a limit
    client = app.test_client()
    member = factory.member()
    for _ in range(5):  # other routes neither count against /auth nor carry rate-limit headers
        r = client.get("/api/v1/me", headers=member["headers"])
        assert r.status_code == 200
        assert not [h for h in r.headers.keys() if h.lower().startswith(("x-ratelimit", "retry-after"))]
    assert client.get("/api/v1/nope").status_code == 404
    answers = [client.post(TOKEN, json=WRONG) for _ in range(4)]
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert answers[1].headers["X-RateLimit-Remaining"] == "1"
    body = assert_problem(answers[-1], 429, "rate_limited")
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in body["detail"]


def test_a_default_limit_keeps_the_hooks_on_every_route(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="10 per minute", RATELIMIT_DEFAULT="2 per minute",
                   RATELIMIT_STORAGE_URI="memory://")
    assert _limiter_hooks(app)
    client = app.test_client()
    statuses = [client.get("/api/v1/openapi.json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_route_limit_added_after_the_app_was_built_is_enforced(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_AUTH="10 per minute", RATELIMIT_STORAGE_URI="memory://")
    limiter = app.extensions["loyalty.limiter"]

    @app.get("/limited-later")
    @limiter.limit("1 per minute")
    def limited_later():
        return {"ok": True}

    client = app.test_client()
    first = client.get("/limited-later")
    assert first.status_code == 200 and first.headers["X-RateLimit-Limit"] == "1"
    assert_problem(client.get("/limited-later"), 429, "rate_limited")


# ------------------------------------------------------------------ one parse of the body

@pytest.fixture
def parses(monkeypatch):
    calls = []
    real = webargs_core.parse_json

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(webargs_core, "parse_json", counting)
    return calls


def test_the_guard_parses_the_body_and_the_schema_reads_that(client, parses):
    assert_problem(client.post(TOKEN, json=WRONG), 401, "invalid_credentials")
    assert parses == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_bodies_webargs_refused_are_still_refused(client, parses, encoding):
    """json.loads reads UTF-16/32 and a BOM; webargs reads UTF-8 only and answers 400, as it always did."""
    r = client.post(TOKEN, data=json.dumps(WRONG).encode(encoding), content_type="application/json")
    body = assert_problem(r, 400, "malformed_json")
    assert body["errors"] == {"_body": ["Invalid JSON body."]}
    assert len(parses) == 1


def test_one_schema_instance_serves_request_after_request(client):
    first = assert_problem(client.post(TOKEN, json={"email": "a@b.co"}), 422, "validation_error")
    assert "_schema" in first["errors"]
    assert_problem(client.post(TOKEN, json=WRONG), 401, "invalid_credentials")
    again = assert_problem(client.post(TOKEN, json={"email": "a@b.co", "bogus": 1}), 422, "validation_error")
    assert set(again["errors"]) == {"bogus"}


def _nest(depth: int, leaf, kind: str):
    for _ in range(depth):
        leaf = {"k": leaf} if kind == "dict" else [leaf]
    return leaf


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("leaf", ["x", 1, {}])
def test_the_nesting_limit_is_where_it_was(client, kind, leaf):
    assert_problem(client.post(TOKEN, json=_nest(32, leaf, kind)), 422, "validation_error")
    body = assert_problem(client.post(TOKEN, json=_nest(33, leaf, kind)), 400, "malformed_json")
    assert body["errors"] == {"_body": ["Nested too deeply."]}


def test_unstorable_text_deep_down_is_still_named(client):
    body = assert_problem(client.post(TOKEN, json={"email": "a@b.co", "password": "x",
                                                    "extra": [{"a": "ok"}, {"b": "bad\x00"}],
                                                    "k\ud800": 1}), 422, "validation_error")
    assert set(body["errors"]) == {"extra.1.b", "_body"}


# ------------------------------------------------------------------ api.speedups stays engaged

def test_the_parser_keeps_one_schema_instance_per_class(app, client):
    """If webargs stopped calling ``_get_schema`` (renamed, say), every request would build its schema anew."""
    from api import _PARSER
    _PARSER._instances.clear()
    for _ in range(3):
        assert_problem(client.post(TOKEN, json=WRONG), 401, "invalid_credentials")
    assert len(_PARSER._instances) == 1
    (schema_class, schema), = _PARSER._instances.items()
    assert isinstance(schema, schema_class)
    assert_problem(client.post(TOKEN, json=WRONG), 401, "invalid_credentials")
    assert _PARSER._instances[schema_class] is schema


def test_webargs_still_has_the_methods_the_parser_overrides():
    from api.speedups import Parser
    for name in ("_get_schema", "_raw_load_json"):
        assert name in vars(Parser)  # ours
        assert callable(getattr(webargs_core.Parser, name, None)), f"webargs no longer has {name}"


def test_no_signing_serializer_is_built_without_a_session_cookie(client, monkeypatch):
    from flask.sessions import SecureCookieSessionInterface
    built = []
    real = SecureCookieSessionInterface.get_signing_serializer

    def counting(self, app):
        built.append(app)
        return real(self, app)
    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert built == []
    client.set_cookie("session", "not-a-signed-session")
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert len(built) >= 1  # a cookie takes Flask's own path, which verifies it (and drops a forged one)
