"""Access and refresh tokens per RFC 8725: pinned algorithm, exp/iss/aud/typ checked, kid for rotation, refresh
tokens that work once and whose reuse revokes the whole family."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select, update

from api.extensions import db
from tests.conftest import assert_problem
from wallet import members, tokens

ME = "/api/v1/me"
TOKEN = "/api/v1/auth/token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ring(app) -> tokens.KeyRing:
    return app.extensions["loyalty.keyring"]


@pytest.fixture
def member(factory):
    return factory.member()


def claims_for(ring, member, now: datetime | None = None, **overrides):
    now = now or datetime.now(UTC)
    # the member's own sign-in (tokens name theirs): the one its fixture token carries
    sid = jwt.decode(member["headers"]["Authorization"].split()[1], options={"verify_signature": False})["sid"]
    return {"iss": ring.issuer, "aud": ring.audience, "sub": member["id"], "role": "member",
            "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=5)).timestamp()),
            "jti": "0123456789abcdef", "sid": sid} | overrides


def forge(ring, claims, *, key: bytes | None = None, alg: str = "HS256", **header) -> str:
    """A JWT built by hand (pyjwt refuses to make some of the broken ones), HMAC-signed with ``key``."""
    key = key if key is not None else ring.keys[0]
    header = {"alg": alg, "typ": tokens.ACCESS_TYP, "kid": ring.kid(ring.keys[0])} | header
    header = {k: v for k, v in header.items() if v is not None}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def sign_in(client, email, password):
    r = client.post(TOKEN, json={"email": email, "password": password})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def refresh(client, token):
    return client.post(TOKEN, json={"refresh_token": token})


# ------------------------------------------------------------------ the happy path

def test_a_fresh_access_token_works_and_carries_no_personal_data(client, ring, member):
    body = sign_in(client, member["email"], member["password"])
    assert body["token_type"] == "Bearer" and body["expires_in"] == int(ring.access_ttl.total_seconds())
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "HS256", "typ": "at+jwt", "kid": ring.kid(ring.keys[0])}
    payload = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert payload["sub"] == member["id"] and payload["role"] == "member"
    assert member["email"] not in json.dumps(payload)
    assert jwt.get_unverified_header(body["refresh_token"])["typ"] == "refresh+jwt"


def test_wrong_password_and_unknown_email_look_the_same(client, member):
    wrong = client.post(TOKEN, json={"email": member["email"], "password": "not the password"})
    unknown = client.post(TOKEN, json={"email": "nobody@example.com", "password": "not the password"})
    a, b = assert_problem(wrong, 401, "invalid_credentials"), assert_problem(unknown, 401, "invalid_credentials")
    assert a == b


def test_sign_in_normalises_the_email(client, member):
    body = sign_in(client, "  " + member["email"].upper() + " ", member["password"])
    assert client.get(ME, headers=bearer(body["access_token"])).get_json()["id"] == member["id"]


def test_staff_sign_in_carries_role_and_store(client, factory):
    cashier = factory.staff("cashier")
    body = sign_in(client, cashier["email"], cashier["password"])
    payload = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (payload["role"], payload["store"], body["role"]) == ("cashier", cashier["store_id"], "cashier")


def test_deactivated_staff_can_not_sign_in(client, app, factory):
    admin = factory.staff("admin")
    with app.app_context():
        db.session.execute(update(members.Staff).where(members.Staff.id == admin["id"]).values(active=False))
        db.session.commit()
    r = client.post(TOKEN, json={"email": admin["email"], "password": admin["password"]})
    assert_problem(r, 401, "invalid_credentials")


def test_token_request_needs_one_way_in(client, member):
    assert_problem(client.post(TOKEN, json={}), 422, "validation_error")
    r = client.post(TOKEN, json={"email": member["email"], "password": "x", "refresh_token": "y"})
    assert_problem(r, 422, "validation_error")


# ------------------------------------------------------------------ expiry, against the programme's clock

def test_expired_access_token_by_the_clock(client, clock, factory):
    member = factory.member()  # its token is issued at the clock's time
    assert client.get(ME, headers=member["headers"]).status_code == 200
    clock.advance(minutes=14, seconds=59)
    assert client.get(ME, headers=member["headers"]).status_code == 200
    clock.advance(seconds=1)
    body = assert_problem(client.get(ME, headers=member["headers"]), 401, "token_expired")
    assert body["title"] == "Token expired"


def test_expired_access_token_issued_in_the_past(client, ring, member):
    old = tokens.issue_access_token(ring, tokens.Principal(member["id"], "member", session_id="s" * 32),
                                    datetime.now(UTC) - timedelta(hours=1))
    r = client.get(ME, headers=bearer(old))
    assert_problem(r, 401, "token_expired")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="loyalty", error="invalid_token"'


def test_the_programme_clock_rules_iat_too(client, clock, factory):
    """A clock far ahead of the machine's: tokens it issues are valid, not 'issued in the future'."""
    clock.now = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    member = factory.member()
    assert client.get(ME, headers=member["headers"]).status_code == 200


def test_expired_refresh_token(client, clock, member):
    body = sign_in(client, member["email"], member["password"])
    clock.advance(days=31)
    assert_problem(refresh(client, body["refresh_token"]), 401, "token_expired")


# ------------------------------------------------------------------ forgeries and header tricks

def test_bad_signature(client, ring, member):
    good = forge(ring, claims_for(ring, member))
    assert client.get(ME, headers=bearer(good)).status_code == 200
    head, payload, sig = good.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    assert_problem(client.get(ME, headers=bearer(f"{head}.{payload}.{flipped}")), 401, "invalid_token")
    # same kid, someone else's key
    other = forge(ring, claims_for(ring, member), key=b"k" * 32)
    assert_problem(client.get(ME, headers=bearer(other)), 401, "invalid_token")
    # the payload changed under a valid signature (privilege escalation attempt)
    tampered = b64(json.dumps(claims_for(ring, member, role="admin")).encode())
    assert_problem(client.get(ME, headers=bearer(f"{head}.{tampered}.{sig}")), 401, "invalid_token")


def test_alg_none(client, ring, member):
    header = {"alg": "none", "typ": tokens.ACCESS_TYP, "kid": ring.kid(ring.keys[0])}
    payload = claims_for(ring, member)
    for sig in ("", "xyz"):
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{sig}"
        assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")
    for alg in ("None", "NONE", "nOnE"):
        header["alg"] = alg
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."
        assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")


def test_other_algorithms_with_our_key_are_refused(client, ring, member):
    """HS512 signed with the real key, and an RS256 header over an HMAC (the key-confusion trick)."""
    hs512 = forge(ring, claims_for(ring, member), alg="HS512")
    assert_problem(client.get(ME, headers=bearer(hs512)), 401, "invalid_token")
    good = forge(ring, claims_for(ring, member))
    _, payload, sig = good.split(".")
    for alg in ("RS256", "ES256", "PS256", "HS384", "EdDSA"):
        header = b64(json.dumps({"alg": alg, "typ": tokens.ACCESS_TYP, "kid": ring.kid(ring.keys[0])}).encode())
        assert_problem(client.get(ME, headers=bearer(f"{header}.{payload}.{sig}")), 401, "invalid_token")


def test_wrong_typ(client, ring, member):
    body = sign_in(client, member["email"], member["password"])
    # a refresh token is not an access token ...
    assert_problem(client.get(ME, headers=bearer(body["refresh_token"])), 401, "invalid_token")
    # ... and an access token is not a refresh token
    assert_problem(refresh(client, body["access_token"]), 401, "invalid_token")
    for typ in ("JWT", "jwt", None, "AT+JWT+X", ""):
        token = forge(ring, claims_for(ring, member), typ=typ)
        assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")
    # the refresh token still works afterwards: a refusal did not spend it
    assert refresh(client, body["refresh_token"]).status_code == 200


@pytest.mark.parametrize("claim,value", [("aud", "some-other-api"), ("aud", ["some-other-api"]),
                                         ("iss", "someone-else"), ("iss", None), ("aud", None)])
def test_wrong_audience_or_issuer(client, ring, member, claim, value):
    claims = claims_for(ring, member)
    if value is None:
        del claims[claim]
    else:
        claims[claim] = value
    assert_problem(client.get(ME, headers=bearer(forge(ring, claims))), 401, "invalid_token")


@pytest.mark.parametrize("kid", ["deadbeef0000", "", None, "../../etc/passwd", 42, ["x"]])
def test_unknown_kid(client, ring, member, kid):
    token = forge(ring, claims_for(ring, member), kid=kid)
    assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti"])
def test_required_claims(client, ring, member, missing):
    claims = claims_for(ring, member)
    del claims[missing]
    assert_problem(client.get(ME, headers=bearer(forge(ring, claims))), 401, "invalid_token")


@pytest.mark.parametrize("claim,value", [("exp", "tomorrow"), ("exp", 1e20), ("iat", "now"), ("sub", 123),
                                         ("exp", True)])
def test_claims_of_the_wrong_type(client, ring, member, claim, value):
    token = forge(ring, claims_for(ring, member, **{claim: value}))
    assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")


def test_the_qr_card_token_is_not_a_bearer_token(client, member):
    card_token = client.get("/api/v1/me/card/token", headers=member["headers"]).get_json()["token"]
    assert_problem(client.get(ME, headers=bearer(card_token)), 401, "invalid_token")


# ------------------------------------------------------------------ refresh rotation and reuse detection

def test_each_refresh_token_works_once(client, member):
    first = sign_in(client, member["email"], member["password"])
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.get_json()
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get(ME, headers=bearer(second["access_token"])).get_json()["id"] == member["id"]
    third = refresh(client, second["refresh_token"])
    assert third.status_code == 200


def test_reuse_revokes_the_whole_family(client, app, member):
    first = sign_in(client, member["email"], member["password"])
    second = refresh(client, first["refresh_token"]).get_json()
    third = refresh(client, second["refresh_token"]).get_json()
    # the stolen first token comes back
    assert_problem(refresh(client, first["refresh_token"]), 401, "refresh_token_reused")
    # ... and now even the newest one of the family is refused, as are the older ones
    assert_problem(refresh(client, third["refresh_token"]), 401, "invalid_token")
    assert_problem(refresh(client, second["refresh_token"]), 401, "invalid_token")
    with app.app_context():
        rows = db.session.scalars(select(tokens.RefreshToken).where(tokens.RefreshToken.subject == member["id"]))
        assert {row.revoked for row in rows} == {True}
        db.session.remove()


def test_reuse_leaves_other_sessions_alone(client, member):
    phone = sign_in(client, member["email"], member["password"])
    tablet = sign_in(client, member["email"], member["password"])
    refresh(client, phone["refresh_token"])
    assert_problem(refresh(client, phone["refresh_token"]), 401, "refresh_token_reused")
    assert refresh(client, tablet["refresh_token"]).status_code == 200


def test_registration_gives_a_working_refresh_token(client):
    r = client.post("/api/v1/auth/register", json={"email": "new@example.com", "password": "correct horse",
                                                   "name": "New"})
    assert r.status_code == 201
    assert refresh(client, r.get_json()["refresh_token"]).status_code == 200


def test_a_refresh_token_of_a_closed_membership_is_refused(client, app, member):
    body = sign_in(client, member["email"], member["password"])
    with app.app_context():
        db.session.execute(update(members.Member).where(members.Member.id == member["id"]).values(status="closed"))
        db.session.commit()
    assert_problem(refresh(client, body["refresh_token"]), 401, "invalid_token")


def test_a_refresh_token_that_was_never_issued(client, ring, member):
    claims = claims_for(ring, member, jti="f" * 32, exp=int((datetime.now(UTC) + timedelta(days=1)).timestamp()))
    forged = forge(ring, claims, typ=tokens.REFRESH_TYP)
    assert_problem(refresh(client, forged), 401, "invalid_token")


# ------------------------------------------------------------------ key rotation

def test_tokens_signed_with_a_retired_key_still_verify(make_app, app, member):
    old_app = app
    old_tokens = sign_in(old_app.test_client(), member["email"], member["password"])
    new_app = make_app(SECRET_KEY="a-brand-new-secret-key-0123456789",
                       LOYALTY_OLD_SECRET_KEYS=[app.config["SECRET_KEY"]])
    new_client = new_app.test_client()
    # the old key's access token still opens the door ...
    assert new_client.get(ME, headers=bearer(old_tokens["access_token"])).status_code == 200
    # ... its refresh token is accepted, and what comes back is signed with the new key
    r = refresh(new_client, old_tokens["refresh_token"])
    assert r.status_code == 200, r.get_json()
    new_ring = new_app.extensions["loyalty.keyring"]
    assert jwt.get_unverified_header(r.get_json()["access_token"])["kid"] == new_ring.kid(new_ring.keys[0])
    assert new_ring.kid(new_ring.keys[0]) != app.extensions["loyalty.keyring"].kid(app.extensions[
        "loyalty.keyring"].keys[0])
    # a server that never heard of the new key does not accept its tokens
    assert_problem(old_app.test_client().get(ME, headers=bearer(r.get_json()["access_token"])), 401,
                   "invalid_token")


def test_a_dropped_key_no_longer_verifies(make_app, app, member):
    old_tokens = sign_in(app.test_client(), member["email"], member["password"])
    new_app = make_app(SECRET_KEY="a-brand-new-secret-key-0123456789", LOYALTY_OLD_SECRET_KEYS=[])
    assert_problem(new_app.test_client().get(ME, headers=bearer(old_tokens["access_token"])), 401, "invalid_token")


def test_old_keys_come_from_the_environment(monkeypatch, tmp_path):
    from api import config
    monkeypatch.setenv("LOYALTY_SECRET_KEY", "current")
    monkeypatch.setenv("LOYALTY_OLD_SECRET_KEYS", "older,oldest")
    cfg = config.from_environment(str(tmp_path))
    assert cfg["SECRET_KEY"] == "current" and cfg["LOYALTY_OLD_SECRET_KEYS"] == ["older", "oldest"]
