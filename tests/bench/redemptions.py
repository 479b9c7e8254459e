"""Benchmark: coupon redemption at the till and bulk issue, on gunicorn + PostgreSQL (not a test: it prints figures).

    .venv/bin/python -m tests.bench.redemptions [--members 100000] [--seconds 10] [--workers 4] [--connections 16]

On a fresh database of its own it seeds ``--members`` members, then, over HTTP against gunicorn:
- times POST /admin/offers/{id}/issue {"all_members": true}: one request giving every member a coupon
  (target: 100,000 coupons in under 10 s);
- drives POST /pos/redemptions with wrk at full load, every request a different coupon's scanned QR token, and
  prints redemptions/s with p50/p99;
- sends a paced 200 redemptions/s (latency counted from each request's scheduled time, so queueing shows) and
  prints p50/p99 (target: p99 under 50 ms);
- checks afterwards that the database holds exactly one redemption per 201 answer.
Needs PostgreSQL (BENCH_PG, default postgresql://postgres@127.0.0.1:5432) and wrk.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request

from sqlalchemy import create_engine, insert, text

from .common import BIN, ROOT, fmt, fresh_database, gunicorn, paced, wrk

DATABASE = "loyalty_bench_redemptions"
SECRET = "bench-secret-key-not-for-production"
FAST_HASH = "pbkdf2:sha256:1000"

REDEEM_LUA = r"""
local tokens = {}
local counter = 0
local next_tid = 0
setup = function(thread)
  thread:set("tid", next_tid)  -- a global in the thread's own Lua state
  next_tid = next_tid + 1
end
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  auth = "Bearer " .. args[2]
  nthreads = tonumber(args[3])
end
request = function()
  -- Thread t takes tokens t, t + n, t + 2n, ...: every request redeems a coupon nobody else touched.
  local token = tokens[(counter * nthreads + tid) % #tokens + 1]
  counter = counter + 1
  return wrk.format("POST", "/api/v1/pos/redemptions",
                    {["Content-Type"] = "application/json", ["Authorization"] = auth},
                    '{"coupon":"' .. token .. '"}')
end
"""


def seed(url: str, n_members: int) -> dict:
    """Migrate; a store, a cashier, a marketer, a free offer and ``n_members`` members (bulk inserted)."""
    env = os.environ | {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET}
    subprocess.run([str(BIN / "loyalty"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    from api import create_app
    from api.extensions import db
    from wallet import coupons, members, tokens
    from wallet.db import new_id
    from wallet.ledger import Balance
    from wallet.stores import Store

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "LOYALTY_PASSWORD_HASH": FAST_HASH,
                      "LOYALTY_ACCESS_TOKEN_MINUTES": 600})
    program = app.extensions["loyalty.program"]
    keyring = app.extensions["loyalty.keyring"]
    with app.app_context():
        session = db.session
        store = Store(code="BENCH", name="Bench store", lat=32.0, lon=34.8)
        session.add(store)
        session.flush()
        cashier = members.create_staff(session, email="till@bench.example", password="bench-pass", role="cashier",
                                       store_id=store.id)
        marketer = members.create_staff(session, email="marketing@bench.example", password="bench-pass",
                                        role="marketer")
        offer = coupons.create_offer(session, program, {"title": "Bench: 10% off",
                                                        "benefit": {"kind": "percent_off", "value": "10"}})
        password_hash = members.hash_password("bench-pass")
        for start in range(0, n_members, 10_000):
            ids = [new_id("mem") for _ in range(start, min(start + 10_000, n_members))]
            session.execute(insert(members.Member), [
                {"id": mid, "email": f"bench{start + i}@example.com", "password_hash": password_hash,
                 "name": f"Bench {start + i}", "referral_code": f"B{start + i:09d}"} for i, mid in enumerate(ids)])
            session.execute(insert(members.Card), [
                {"member_id": mid, "number": f"9{start + i:015d}"} for i, mid in enumerate(ids)])
            session.execute(insert(Balance), [{"member_id": mid} for mid in ids])
        session.commit()
        now = program.now()
        out = {"offer_id": offer.id, "secret": program.secret,
               "cashier": tokens.issue_access_token(keyring, tokens.principal_of(cashier), now),
               "marketer": tokens.issue_access_token(keyring, tokens.principal_of(marketer), now)}
        session.remove()
        db.engine.dispose()
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return out


def post(url: str, token: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def coupon_tokens(url: str, offer_id: str, secret: bytes) -> list[str]:
    from wallet import qr
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM coupons WHERE offer_id = :o AND status = 'issued' ORDER BY id"),
                           {"o": offer_id}).scalars().all()
    engine.dispose()
    return [qr.coupon_token(secret, cid) for cid in ids]


def count_redemptions(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM coupon_redemptions")).scalar_one()
    engine.dispose()
    return n


def redeem_requests(tokens: list[str], auth: str):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"}

    def make(i: int):
        return "POST", "/api/v1/pos/redemptions", json.dumps({"coupon": tokens[i]}).encode(), headers
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rate", type=float, default=200, help="the paced rate, redemptions/s")
    args = parser.parse_args()

    url = fresh_database(DATABASE)
    t0 = time.perf_counter()
    club = seed(url, args.members)
    print(f"seeded {args.members:,} members in {time.perf_counter() - t0:.1f} s")
    env = {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET, "LOYALTY_ACCESS_TOKEN_MINUTES": "600"}
    results: list[tuple[str, dict]] = []
    with gunicorn("api:create_app()", env, args.workers) as api:
        t0 = time.perf_counter()
        status, report = post(f"{api}/api/v1/admin/offers/{club['offer_id']}/issue", club["marketer"],
                              {"all_members": True, "batch": "bench"})
        bulk_seconds = time.perf_counter() - t0
        assert status == 200, (status, report)
        print(f"bulk issue over HTTP: {report['issued']:,} coupons in {bulk_seconds:.2f} s "
              f"(skipped {report['skipped']})   (target: 100,000 in < 10 s)")

        tokens = coupon_tokens(url, club["offer_id"], club["secret"])
        warm_n = 200
        paced_n = int(args.rate * args.seconds)
        warm, paced_slice, rest = tokens[:warm_n], tokens[warm_n:warm_n + paced_n], tokens[warm_n + paced_n:]
        paced(api, redeem_requests(warm, club["cashier"]), 100, warm_n / 100)
        with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
            f.write("\n".join(rest) + "\n")
        try:
            full = wrk(f"{api}/api/v1/pos/redemptions", REDEEM_LUA, [f.name, club["cashier"], str(args.threads)],
                       seconds=args.seconds, connections=args.connections, threads=args.threads)
        finally:
            os.unlink(f.name)
        results.append(("POST /pos/redemptions (full load, wrk)", full))
        at_rate = paced(api, redeem_requests(paced_slice, club["cashier"]), args.rate, args.seconds)
        results.append((f"POST /pos/redemptions at {args.rate:.0f}/s", at_rate))

    redeemed = count_redemptions(url)
    answered_201 = warm_n + (full["requests"] - full["non2xx"] - full["socket_errors"]) \
        + at_rate["statuses"].get(201, 0)
    refused = full["non2xx"] + sum(n for status, n in at_rate["statuses"].items() if status != 201)
    print()
    for name, r in results:
        print(fmt(name, r))
    print()
    print(f"redemptions/s at full load: {full['rps']:.0f}   p50 {full['p50_ms']:.1f} ms   p99 {full['p99_ms']:.1f} ms")
    print(f"p99 at {args.rate:.0f} redemptions/s: {at_rate['p99_ms']:.1f} ms   (target < 50 ms)")
    print(f"bulk issue of {report['issued']:,} coupons: {bulk_seconds:.2f} s   (target < 10 s)")
    # wrk stops with requests in flight that it does not count, so the database may hold a few more.
    print(f"redemptions in the database: {redeemed:,}; 201 answers counted: {answered_201:,}; "
          f"refused: {refused} (each request named a different coupon, so this should be 0)")


if __name__ == "__main__":
    main()
