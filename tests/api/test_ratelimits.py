"""Rate limits for every audience, counted once per host (every worker process) or across hosts (Redis); failed
sign-ins per account; the cap on password hashes computed at once."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from limits import parse
from sqlalchemy import func, select

from api.extensions import db
from api.host_limits import HostStorage
from wallet import members
from wallet.errors import Busy
from wallet.instore import CheckIn

from ..conftest import assert_problem

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "/api/v1/auth/token"


@pytest.fixture
def limited(make_app, tmp_path):
    """An app with every limit on and tiny, counting in a fresh host file."""
    def make(**overrides):
        settings = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": f"host://{tmp_path / 'limits.shm'}",
                    "RATELIMIT_AUTH": "100 per minute", "RATELIMIT_ANONYMOUS": "3 per minute",
                    "RATELIMIT_MEMBER": "3 per minute", "RATELIMIT_CASHIER": "4 per minute",
                    "RATELIMIT_STAFF": "2 per minute"} | overrides
        return make_app(**settings)
    return make


def retry_after(r) -> int:
    value = int(r.headers["Retry-After"])
    assert 1 <= value <= 60
    return value


def test_each_audience_has_its_own_budget(limited, factory):
    app = limited()
    client = app.test_client()
    member, other = factory.member(), factory.member()
    cashier, marketer = factory.staff("cashier"), factory.staff("marketer")
    for expected, who, path in ((3, member["headers"], "/api/v1/me"), (4, cashier["headers"], "/api/v1/pos/identify"),
                                (2, marketer["headers"], "/api/v1/admin/members"), (3, {}, "/api/v1/openapi.json")):
        method = client.post if "identify" in path else client.get
        kwargs = {"json": {"card_number": member["card_number"]}} if "identify" in path else {}
        answers = [method(path, headers=who, **kwargs).status_code for _ in range(expected + 2)]
        assert 429 not in answers[:expected], (path, answers)
        assert answers[expected:] == [429, 429], (path, answers)
        r = method(path, headers=who, **kwargs)
        body = assert_problem(r, 429, "rate_limited")
        assert retry_after(r) and "per 1 minute" in body["detail"]
    # another member's budget is untouched by the first one's, and health is never limited
    assert client.get("/api/v1/me", headers=other["headers"]).status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(10))


def test_an_invalid_token_counts_as_anonymous(limited):
    client = limited().test_client()
    bad = {"Authorization": "Bearer not-a-token"}
    assert [client.get("/api/v1/me", headers=bad).status_code for _ in range(4)] == [401, 401, 401, 429]
    assert client.get("/api/v1/openapi.json").status_code == 429  # same address, same budget


def test_a_limited_request_writes_nothing(limited, factory, app):
    client = limited(RATELIMIT_MEMBER="2 per minute").test_client()
    store, member = factory.store(), factory.member()
    far = {"store_id": store["id"], "lat": 0.0, "lon": 0.0}  # refused (too far): each refusal is stored as a row
    codes = [client.post("/api/v1/me/check-ins", json=far, headers=member["headers"]).status_code for _ in range(6)]
    assert codes == [422, 422, 429, 429, 429, 429]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 2
        db.session.remove()


def test_failed_sign_ins_slow_one_account_with_a_growing_retry_after(limited, factory):
    client = limited().test_client()
    member, other = factory.member(password="correct horse battery"), factory.member()
    wrong = {"email": member["email"], "password": "wrong password!"}
    assert [client.post(TOKEN, json=wrong).status_code for _ in range(6)] == [401] * 6  # the 6th closes it for 1 s
    waits = []
    for _ in range(3):
        r = client.post(TOKEN, json=wrong)
        assert_problem(r, 429, "too_many_attempts")
        waits.append(int(r.headers["Retry-After"]))
        # even the right password waits: the account is slowed down, whoever asks
        right = client.post(TOKEN, json={"email": member["email"].upper(), "password": "correct horse battery"})
        assert right.status_code == 429
        time.sleep(waits[-1] + 0.05)
        assert client.post(TOKEN, json=wrong).status_code == 401  # the next failure doubles the wait
    assert waits == [1, 2, 4]
    # another account is not slowed by this one's failures
    assert client.post(TOKEN, json={"email": other["email"], "password": "correct horse"}).status_code == 200
    time.sleep(8.05)
    assert client.post(TOKEN, json={"email": member["email"], "password": "correct horse battery"}).status_code == 200
    # a success forgets the failures: five more are free again
    assert [client.post(TOKEN, json=wrong).status_code for _ in range(5)] == [401] * 5


def test_the_wait_after_failures_is_capped(limited):
    limits = limited().extensions["loyalty.limits"]
    for _ in range(40):
        limits.sign_in_failed("victim@example.com")
    with pytest.raises(Exception) as raised:
        limits.refuse_sign_in("VICTIM@example.com ")
    assert raised.value.code == "too_many_attempts" and 1 <= raised.value.retry_after <= 900


def test_password_hashes_computed_at_once_are_capped(monkeypatch):
    running, peak, lock = [0], [0], threading.Lock()
    real = members.generate_password_hash

    def slow_hash(password, method):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real(password, method="pbkdf2:sha256:1000")
    monkeypatch.setattr(members, "generate_password_hash", slow_hash)
    members.configure_password_hashing("pbkdf2:sha256:1000", 2)
    try:
        threads = [threading.Thread(target=members.hash_password, args=("x" * 12,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert peak[0] == 2
        # a hash that cannot start within the wait is refused (503 busy), not queued for ever
        monkeypatch.setattr(members, "HASH_WAIT_SECONDS", 0.05)
        members.configure_password_hashing("pbkdf2:sha256:1000", 1)
        assert members._HASHING.acquire(timeout=1)  # another sign-in is hashing
        with pytest.raises(Busy):
            members.hash_password("z" * 12)
        members._HASHING.release()
        assert members.hash_password("z" * 12)
    finally:
        members.configure_password_hashing("pbkdf2:sha256:1000", 1)


def test_a_busy_sign_in_is_503_with_retry_after(client, factory, monkeypatch):
    member = factory.member()
    monkeypatch.setattr(members, "_hashing", _busy)
    r = client.post(TOKEN, json={"email": member["email"], "password": "correct horse"})
    assert_problem(r, 503, "busy")
    assert r.headers["Retry-After"] == "1"


def _busy():
    raise Busy("Too many sign-ins at once; try again in a moment", retry_after=1)


# ------------------------------------------------------------------ one count per host, one across hosts

COUNT_IN_A_PROCESS = """
import sys
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from api.host_limits import HostStorage
window = FixedWindowRateLimiter(HostStorage(sys.argv[1]))
item = parse("20 per minute")
print(sum(window.hit(item, "auth", "203.0.113.9") for _ in range(30)))
"""


def test_the_host_storage_counts_once_across_processes(tmp_path):
    uri = f"host://{tmp_path / 'shared.shm'}"
    procs = [subprocess.Popen([sys.executable, "-c", COUNT_IN_A_PROCESS, uri], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    let_through = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(let_through) == 20, let_through  # 60 hits from two processes, one budget of 20
    storage = HostStorage(uri)
    assert storage.get(parse("20 per minute").key_for("auth", "203.0.113.9")) == 60


def test_the_host_storage_windows_expire_and_keys_stay_apart(tmp_path):
    storage = HostStorage(f"host://{tmp_path / 'one.shm'}")
    assert [storage.incr("a", 1) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("b", 60) == 1 and storage.get("a") == 3
    time.sleep(1.05)
    assert storage.get("a") == 0 and storage.incr("a", 60) == 1 and storage.get("b") == 1
    storage.clear("b")
    assert storage.get("b") == 0
    started = time.perf_counter()
    for i in range(5000):
        storage.incr(f"key-{i % 50}", 60)
    per_hit = (time.perf_counter() - started) / 5000
    assert per_hit < 0.0005, f"{per_hit * 1e6:.0f} us per hit"  # measured ~5-10 us; a guard, not a benchmark


def redis_url() -> str:
    import redis
    url = "redis://127.0.0.1:6379/5"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url}: {exc}")
    return url


def test_two_hosts_share_one_budget_through_redis(limited, factory):
    url = redis_url()
    member = factory.member()
    one, two = limited(RATELIMIT_STORAGE_URI=url), limited(RATELIMIT_STORAGE_URI=url)
    answers = [(one if i % 2 else two).test_client().get("/api/v1/me", headers=member["headers"]).status_code
               for i in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    import redis
    assert redis.Redis.from_url(url).keys("LIMITS:LIMITER/member/*")  # the count is in Redis, not in either app
