"""Benchmark: coupon redemption at the till and bulk issue, on gunicorn + PostgreSQL (not a test: it prints figures).

    .venv/bin/python -m tests.bench.redemptions [--members 100000] [--seconds 10] [--workers 4] [--connections 16]
                                                [--rates 200,50] [--bulk-runs 3]

First a baseline on the same machine at the same moment: a bare Flask endpoint doing one small write transaction
(tests/bench/baseline.py), at full load and at the paced rates. Then, on a fresh database of its own, it seeds
``--members`` members and, over HTTP against gunicorn:
- times POST /admin/offers/{id}/issue {"all_members": true}: one request giving every member a coupon
  (target: 100,000 coupons in under 10 s);
- drives POST /pos/redemptions with wrk at full load, every request a different coupon's scanned QR token, and
  prints redemptions/s with p50/p99;
- sends paced redemptions at 200/s and at 50/s (``--rates``; latency counted from each request's scheduled time,
  so queueing shows) and prints p50/p99 (target: p99 under 50 ms at 200/s);
- times the database alone writing the same 100,000 rows (a copy table with the same indexes, no foreign keys);
- after the redemptions, times ``--bulk-runs`` - 1 more bulk issues, each to a new offer, so the spread shows;
- checks afterwards that every request (each a different coupon) was answered 201.
Needs PostgreSQL (BENCH_PG, default postgresql://postgres@127.0.0.1:5432) and wrk.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request

from sqlalchemy import create_engine, insert, text

from . import baseline
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
        now = program.now()
        signed_in = {role: tokens.sign_in(session, tokens.principal_of(who), now)
                     for role, who in (("cashier", cashier), ("marketer", marketer))}
        session.commit()
        out = {"offer_id": offer.id, "secret": program.secret,
               "cashier": tokens.issue_access_token(keyring, signed_in["cashier"], now),
               "marketer": tokens.issue_access_token(keyring, signed_in["marketer"], now)}
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


def warm(base: str, path: str, workers: int, token: str | None = None) -> None:
    """Keep every worker busy a few times over, so none is still importing the app when the timing starts."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def hit(_):
        for _ in range(5):
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=120) as r:
                r.read()
    threads = [threading.Thread(target=hit, args=(i,)) for i in range(workers * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def raw_insert_seconds(url: str, offer_id: str) -> float:
    """The database alone writing the same rows: the issued coupons copied into a table with the same columns,
    checks and indexes (no foreign keys), timed. It says what the machine gives at this moment."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_coupons_copy (LIKE coupons INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                          "INCLUDING INDEXES)"))
    with engine.begin() as conn:
        t0 = time.perf_counter()
        conn.execute(text("INSERT INTO bench_coupons_copy SELECT * FROM coupons WHERE offer_id = :o"), {"o": offer_id})
    seconds = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_coupons_copy"))
    engine.dispose()
    return seconds


def tx_baseline(args) -> list[tuple[str, dict]]:
    """A bare Flask endpoint doing one small write transaction, served the same way, measured the same way."""
    url = fresh_database(DATABASE + "_baseline")
    baseline.prepare(url)
    body = b"{}"
    headers = {"Content-Type": "application/json"}
    with gunicorn("tests.bench.baseline:create_app()", {"DATABASE_URL": url}, args.workers, "/bare") as base:
        warm(base, "/bare", args.workers)
        wrk(base + "/tx", TX_LUA, seconds=2, connections=args.connections, threads=args.threads)
        out = [("baseline: Flask + one write transaction",
                wrk(base + "/tx", TX_LUA, seconds=args.seconds, connections=args.connections, threads=args.threads))]
        for rate in args.rates:
            out.append((f"baseline: one write transaction at {rate:.0f}/s",
                        paced(base, lambda i: ("POST", "/tx", body, headers), rate, args.seconds)))
    return out


TX_LUA = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = "{}"\n'


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
    parser.add_argument("--rates", default="200,50",
                        help="paced rates, redemptions/s: the target's 200, and one a small machine keeps up with")
    parser.add_argument("--bulk-runs", type=int, default=3,
                        help="bulk issues timed in all: the first before the redemptions, the others (each to a "
                             "new offer) after them, to show how much the time varies")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]

    results: list[tuple[str, dict]] = tx_baseline(args)
    url = fresh_database(DATABASE)
    t0 = time.perf_counter()
    club = seed(url, args.members)
    print(f"seeded {args.members:,} members in {time.perf_counter() - t0:.1f} s")
    env = {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET, "LOYALTY_ACCESS_TOKEN_MINUTES": "600"}
    answered_201 = refused = 0
    with gunicorn("api:create_app()", env, args.workers) as api:
        warm(api, f"/api/v1/admin/offers/{club['offer_id']}", args.workers, club["marketer"])
        t0 = time.perf_counter()
        status, report = post(f"{api}/api/v1/admin/offers/{club['offer_id']}/issue", club["marketer"],
                              {"all_members": True, "batch": "bench"})
        bulk_seconds = time.perf_counter() - t0
        assert status == 200, (status, report)
        print(f"bulk issue over HTTP: {report['issued']:,} coupons in {bulk_seconds:.2f} s "
              f"(skipped {report['skipped']})   (target: 100,000 in < 10 s)")
        raw_seconds = raw_insert_seconds(url, club["offer_id"])

        tokens = coupon_tokens(url, club["offer_id"], club["secret"])

        def take(n: int) -> list[str]:  # every request names a coupon no other request names
            taken, tokens[:] = tokens[:n], tokens[n:]
            return taken

        warmup = take(200)
        paced(api, redeem_requests(warmup, club["cashier"]), 100, 2)
        answered_201 += len(warmup)
        slices = {rate: take(int(rate * args.seconds)) for rate in args.rates}
        with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
            f.write("\n".join(tokens) + "\n")
        try:
            full = wrk(f"{api}/api/v1/pos/redemptions", REDEEM_LUA, [f.name, club["cashier"], str(args.threads)],
                       seconds=args.seconds, connections=args.connections, threads=args.threads)
        finally:
            os.unlink(f.name)
        results.append(("POST /pos/redemptions (full load, wrk)", full))
        answered_201 += full["requests"] - full["non2xx"] - full["socket_errors"]
        refused += full["non2xx"]
        for rate in args.rates:
            at_rate = paced(api, redeem_requests(slices[rate], club["cashier"]), rate, args.seconds)
            results.append((f"POST /pos/redemptions at {rate:.0f}/s", at_rate))
            answered_201 += at_rate["statuses"].get(201, 0)
            refused += sum(n for code, n in at_rate["statuses"].items() if code != 201)
        bulk_runs = [bulk_seconds]
        for i in range(1, args.bulk_runs):
            status, offer = post(f"{api}/api/v1/admin/offers", club["marketer"],
                                 {"title": f"Bench: round {i + 1}", "benefit": {"kind": "percent_off", "value": "5"}})
            assert status == 201, (status, offer)
            t0 = time.perf_counter()
            status, again = post(f"{api}/api/v1/admin/offers/{offer['id']}/issue", club["marketer"],
                                 {"all_members": True})
            bulk_runs.append(time.perf_counter() - t0)
            assert status == 200 and again["issued"] == report["issued"], (status, again)
            print(f"bulk issue over HTTP, round {i + 1}: {again['issued']:,} coupons in {bulk_runs[-1]:.2f} s")

    redeemed = count_redemptions(url)
    by = dict(results)
    print()
    for name, r in results:
        print(fmt(name, r))
    print()
    tx = by["baseline: Flask + one write transaction"]
    full = by["POST /pos/redemptions (full load, wrk)"]
    print(f"redemptions/s at full load: {full['rps']:.0f}   p50 {full['p50_ms']:.1f} ms   p99 {full['p99_ms']:.1f} ms"
          f"   ({full['rps'] / max(tx['rps'], 1e-9):.2f} of the one-transaction baseline's {tx['rps']:.0f}/s)")
    for rate in args.rates:
        mine, base = by[f"POST /pos/redemptions at {rate:.0f}/s"], by[f"baseline: one write transaction at {rate:.0f}/s"]
        print(f"p50/p99 at {rate:.0f} redemptions/s: {mine['p50_ms']:.1f} / {mine['p99_ms']:.1f} ms"
              f"   (baseline transaction at that rate: {base['p50_ms']:.1f} / {base['p99_ms']:.1f} ms)"
              f"{'   (target: p99 < 50 ms)' if rate == 200 else ''}")
    print(f"bulk issue of {report['issued']:,} coupons: {', '.join(f'{t:.2f}' for t in bulk_runs)} s   (target < 10 s); "
          f"the database alone writing the same rows (same indexes, no foreign keys): {raw_seconds:.2f} s")
    # wrk stops with requests in flight that it does not count, so the database may hold a few more.
    print(f"redemptions in the database: {redeemed:,}; 201 answers counted: {answered_201:,}; "
          f"refused: {refused} (each request named a different coupon, so this should be 0)")


if __name__ == "__main__":
    main()
