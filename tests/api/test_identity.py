"""Enrolment: the email normalised and unique, the password hashed, consents timestamped, the card issued at once."""
from __future__ import annotations

import itertools
import re
from datetime import datetime

import pytest
from sqlalchemy import func, select

from api import config
from api.extensions import db
from tests.conftest import FAST_HASH, assert_problem
from wallet import codes, enrolment, members

REGISTER = "/api/v1/auth/register"


_ADDRESSES = itertools.count()


def register(client, **overrides):
    body = {"email": "dana@example.com", "password": "correct horse", "name": "Dana"} | overrides
    # Each from its own address: more than LOYALTY_ENROLMENT_BURST a minute from one is slowed (tests/api/test_fraud.py)
    n = next(_ADDRESSES)
    address = f"10.0.{n // 250}.{n % 250 + 1}"
    return client.post(REGISTER, json=body, environ_base={"REMOTE_ADDR": address})


def stored_member(app, member_id: str) -> members.Member:
    with app.app_context():
        member = db.session.get(members.Member, member_id)
        db.session.expunge_all()
        db.session.remove()
        return member


def test_registration_answers_member_and_tokens(client, clock):
    r = register(client, phone="+972 50-123-4567", birthday="1990-04-01")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) >= {"member", "access_token", "refresh_token", "token_type", "expires_in"}
    m = body["member"]
    assert m["email"] == "dana@example.com" and m["name"] == "Dana" and m["phone"] == "+972501234567"  # kept in E.164
    assert m["birthday"] == "1990-04-01" and m["status"] == "active" and m["tier"]
    assert re.fullmatch(r"[23456789A-HJ-NP-Z]{8}", m["referral_code"])
    assert "correct horse" not in r.get_data(as_text=True) and "password" not in m and "password_hash" not in m
    assert datetime.fromisoformat(m["created_at"]) == clock.now


@pytest.mark.parametrize("given,stored", [
    ("Dana@Example.COM", "dana@example.com"),
    ("  dana@example.com\t\n", "dana@example.com"),
    ("ｄａｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "dana@example.com"),   # fullwidth forms: NFKC
    ("DANA@EXAMPLE.COM", "dana@example.com"),
    ("\u00a0dana@example.com\u3000", "dana@example.com"),  # no-break and ideographic spaces: NFKC, then trimmed
    ("ﬁona@example.com", "fiona@example.com"),  # the ligature fi
    ("דנה@דוגמה.ישראל", "דנה@דוגמה.ישראל"),
])
def test_email_is_normalised(client, given, stored):
    r = register(client, email=given)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["member"]["email"] == stored


@pytest.mark.parametrize("first,second", [
    ("dana@example.com", "DANA@example.com"),
    ("dana@example.com", " dana@example.com "),
    ("dana@example.com", "ｄａｎａ@example.com"),
])
def test_email_is_unique_whatever_the_spelling(client, app, first, second):
    assert register(client, email=first).status_code == 201
    assert_problem(register(client, email=second, name="Imposter"), 409, "email_taken")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(members.Member)) == 1
        db.session.remove()


def test_email_is_unique_against_staff_too(client, factory):
    staff = factory.staff("marketer", email="boss@example.com")
    assert_problem(register(client, email="Boss@Example.com"), 409, "email_taken")
    member = factory.member(email="shopper@example.com")
    with pytest.raises(members.Conflict):
        factory.staff("admin", email=" SHOPPER@example.com")
    assert staff["email"] == "boss@example.com" and member["email"] == "shopper@example.com"


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.com", "dana@", "da na@example.com",
                                   "dana@@example.com", "x" * 250 + "@e.co"])
def test_invalid_emails_are_refused(client, email):
    r = register(client, email=email)
    assert r.status_code == 422, r.get_json()
    assert "email" in r.get_json()["errors"]


def test_password_is_hashed_never_stored(client, app):
    r = register(client, password="correct horse battery")
    member = stored_member(app, r.get_json()["member"]["id"])
    assert "correct horse" not in member.password_hash
    assert member.password_hash.startswith(FAST_HASH.split(":")[0] + ":")
    assert members.check_password_hash(member.password_hash, "correct horse battery")
    # the same password twice gives two different hashes (a salt)
    other = stored_member(app, register(client, email="b@example.com", password="correct horse battery")
                          .get_json()["member"]["id"])
    assert other.password_hash != member.password_hash


def test_the_default_password_hash_is_scrypt(monkeypatch, tmp_path):
    monkeypatch.delenv("LOYALTY_PASSWORD_HASH", raising=False)
    assert config.from_environment(str(tmp_path))["LOYALTY_PASSWORD_HASH"] == "scrypt:16384:8:1"  # see README
    assert members.generate_password_hash("x", method="scrypt:32768:8:1").startswith("scrypt:32768:8:1$")


@pytest.mark.parametrize("password", ["short", "", "x" * 129])
def test_password_length(client, password):
    assert "password" in assert_problem(register(client, password=password), 422, "validation_error")["errors"]


def test_consents_are_recorded_with_the_time(client, app, clock):
    r = register(client, consents={"marketing_email": True, "profiling": False})
    consents = r.get_json()["member"]["consents"]
    assert consents == {"marketing_email": {"granted": True, "at": "2026-11-22T10:00:00Z", "text_version": None},
                        "profiling": {"granted": False, "at": "2026-11-22T10:00:00Z", "text_version": None}}
    assert stored_member(app, r.get_json()["member"]["id"]).consents == {
        k: {"granted": v["granted"], "at": v["at"]} for k, v in consents.items()}


def test_preferences_have_defaults_and_can_be_chosen(client):
    default = register(client).get_json()["member"]["preferences"]
    assert set(default) == {"email", "sms", "push", "wallet"} and all(isinstance(v, bool) for v in default.values())
    chosen = register(client, email="b@example.com", preferences={"sms": True, "email": False})
    assert chosen.get_json()["member"]["preferences"] | {} == default | {"sms": True, "email": False}


def test_birthday_must_be_in_the_past(client):
    for day in ("2999-01-01", "1800-01-01", "2026-02-30", "yesterday"):
        assert "birthday" in assert_problem(register(client, birthday=day), 422, "validation_error")["errors"]


def test_unknown_referral_code(client):
    r = register(client, referral_code="ZZZZZZZZ")
    assert "referral_code" in assert_problem(r, 422, "unknown_referral_code")["errors"]


def test_the_card_is_issued_at_registration(client, app):
    r = register(client)
    number = r.get_json()["member"]["card"]["number"]
    assert re.fullmatch(r"\d{16}", number)
    assert codes.luhn_valid(number)
    assert r.get_json()["member"]["card"]["status"] == "active"
    with app.app_context():
        card = db.session.scalar(select(members.Card).where(members.Card.number == number))
        assert card.member_id == r.get_json()["member"]["id"]
        db.session.remove()


def test_card_numbers_are_unique_random_and_catch_typos(client):
    numbers = [register(client, email=f"m{i}@example.com").get_json()["member"]["card"]["number"]
               for i in range(25)]
    assert len(set(numbers)) == 25
    assert all(codes.luhn_valid(n) for n in numbers)
    # not a counter: consecutive members' numbers are far apart
    assert all(abs(int(a[:-1]) - int(b[:-1])) > 1000 for a, b in zip(numbers, numbers[1:], strict=False))
    # a single mistyped digit or a swap of two neighbours is caught by the check digit
    n = numbers[0]
    typo = n[:3] + str((int(n[3]) + 1) % 10) + n[4:]
    assert not codes.luhn_valid(typo)
    swaps = [i for i in range(15) if n[i] != n[i + 1] and {n[i], n[i + 1]} != {"0", "9"}]  # Luhn's one blind spot
    for i in swaps:
        assert not codes.luhn_valid(n[:i] + n[i + 1] + n[i] + n[i + 2:])


def test_ids_are_opaque_and_not_sequential(client):
    ids = [register(client, email=f"m{i}@example.com").get_json()["member"]["id"] for i in range(10)]
    assert all(re.fullmatch(r"mem_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert not any(i.removeprefix("mem_").isdigit() for i in ids)
    # the last 16 characters (80 bits) are random: no two members share them, and they don't count up
    tails = [i[-16:] for i in ids]
    assert len(set(tails)) == 10
    assert sorted(tails) != tails or sorted(tails, reverse=True) != tails


def test_luhn():
    assert codes.luhn_valid("79927398713")
    assert not codes.luhn_valid("79927398710")
    assert codes.luhn_check_digit("7992739871") == "3"
    assert not codes.luhn_valid("") and not codes.luhn_valid("abc")


def test_registration_rolls_back_whole(client, app, monkeypatch):
    """If issuing the card fails, no member is left without a card."""
    def broken():
        raise RuntimeError("card printer on fire")
    monkeypatch.setattr(enrolment, "new_card_number", broken)  # the name enrolment issues card numbers by
    assert_problem(register(client), 500, "internal_error")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(members.Member)) == 0
        db.session.remove()
