"""Benchmark: POST /pos/purchases on gunicorn + PostgreSQL, against two baselines served the same way.

    .venv/bin/python -m tests.bench.purchases [--members 2000] [--seconds 10] [--rounds 5] [--round-seconds 6]

Prints purchases/s and p50/p99 at full load (wrk), p50/p99 at a paced 200 purchases/s, the p50 of a purchase
when the ledger holds 10 thousand and 1 million entries, and the same full-load figures for a bare Flask
JSON endpoint and a bare Flask endpoint doing one small write transaction, served the same way. The
one-transaction baseline and the purchases are measured in alternating rounds, each round's ratio printed,
and the median of them. Needs PostgreSQL and wrk.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from sqlalchemy import text

from . import baseline
from .common import BIN, ROOT, fmt, fresh_database, gunicorn, paced, wrk

SECRET = "bench-secret-key-not-for-production"
FAST_HASH = "pbkdf2:sha256:1000"
# Limits stay on (every request pays the check, counted in the default per-host storage), but one till's token
# sends thousands of purchases a minute here, far past a real till's 600: its budget is raised to fit the load.
LIMITS = {"LOYALTY_RATELIMIT_CASHIER": "10000000 per minute", "LOYALTY_RATELIMIT_STORAGE_URI": "host:///tmp/bench-ratelimits.shm"}

PURCHASE_LUA = r"""
local cards = {}
local counter = 0
local next_tid = 0
setup = function(thread)
  -- a global in the thread's own Lua state: each wrk thread sends its own receipts (a local here would be 0 in
  -- every thread, and the threads would send the same receipts: half the "purchases" would be replays)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
init = function(args)
  for line in io.lines(args[1]) do cards[#cards + 1] = line end
  token = args[2]
  tag = args[3]
end
request = function()
  counter = counter + 1
  local card = cards[(counter * 7919 + tid * 104729) % #cards + 1]
  local body = string.format('{"card":"%s","amount":"%d.90","currency":"ILS","receipt_id":"%s-%d-%d"}',
                             card, counter % 300 + 1, tag, tid, counter)
  return wrk.format("POST", "/api/v1/pos/purchases",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
"""

BARE_LUA = 'wrk.method = "GET"\n'
TX_LUA = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = "{}"\n'


# BENCH_DB_PREFIX: the databases' names (dropped and made again), so two people's runs on one server don't meet.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "loyalty_bench")


def setup_club(url: str, members: int) -> tuple[list[str], str]:
    """Migrate, then a store, a cashier, a 1-point-per-shekel rule, a ladder of tiers (Silver and Gold on spend,
    VIP on referral value: each member crosses a threshold now and then during the run) and ``members`` members."""
    env = os.environ | {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET}
    subprocess.run([str(BIN / "loyalty"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    from api import create_app
    from api.extensions import db
    from wallet import enrolment, rules, tiers, tokens
    from wallet import members as m
    from wallet.stores import Store

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "LOYALTY_PASSWORD_HASH": FAST_HASH,
                      "LOYALTY_ACCESS_TOKEN_MINUTES": 600})
    program = app.extensions["loyalty.program"]
    with app.app_context():
        store = Store(code="BENCH", name="Bench store", lat=32.0, lon=34.8)
        db.session.add(store)
        db.session.flush()
        cashier = m.create_staff(db.session, email="till@bench.example", password="bench-pass", role="cashier",
                                 store_id=store.id)
        rules.create_rule(db.session, program, {"title": "1 point per shekel", "trigger": "purchase",
                                                "reward": {"points_per_currency_unit": 1}})
        for code, rank, metric, threshold in (("silver", 1, "spend", "2000.00"), ("gold", 2, "spend", "6000.00"),
                                              ("vip", 3, "referral_value", "20000.00")):
            tiers.create_tier(db.session, program, {"code": code, "name": code.title(), "rank": rank,
                                                    "qualify": {"metric": metric, "threshold": threshold}})
        rules.create_rule(db.session, program, {"title": "Gold bonus", "trigger": "purchase", "reward": {"points": 5},
                                                "conditions": {"tiers": ["gold", "vip"]}})
        cards = []
        for i in range(members):
            member = enrolment.register_member(db.session, program, email=f"bench{i}@example.com", password="bench-pass",
                                       name=f"Bench {i}")
            cards.append(member.card.number)
        signed_in = tokens.sign_in(db.session, tokens.principal_of(cashier), program.now())  # a till's sign-in
        db.session.commit()
        token = tokens.issue_access_token(app.extensions["loyalty.keyring"], signed_in, program.now())
        db.session.remove()
        db.engine.dispose()
    return cards, token


def ledger_size(url: str) -> int:
    from sqlalchemy import create_engine
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    engine.dispose()
    return n


def seed_ledger(url: str, target: int) -> int:
    """Grow the ledger to at least ``target`` entries (earns spread over every member, balances equal to sums)."""
    from sqlalchemy import create_engine
    engine = create_engine(url)
    with engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
        n_members = conn.execute(text("SELECT count(*) FROM balances")).scalar_one()
        per = max(0, -(-(target - have) // n_members))  # rounded up: at least ``target``
        if per:
            conn.execute(text("""
                INSERT INTO ledger_entries (id, member_id, seq, delta, kind, reason, source, balance_after,
                                            expires_at, actor, description, idempotency_key, created_at)
                SELECT 'led_' || upper(substr(md5(b.member_id || ':' || (b.seq + s)), 1, 26)), b.member_id, b.seq + s, 10, 'earn',
                       'purchase', 'seed', b.points + 10 * s, now() + interval '365 days', 'seed', 'seeded',
                       'seed:' || b.member_id || ':' || (b.seq + s), now() - interval '1 day'
                FROM balances b CROSS JOIN generate_series(1, :per) s"""), {"per": per})
            conn.execute(text("""
                INSERT INTO points_lots (id, member_id, entry_id, points, remaining, expires_at)
                SELECT 'lot_' || substr(e.id, 5), e.member_id, e.id, 10, 10, e.expires_at
                FROM ledger_entries e WHERE e.source = 'seed' AND e.id NOT IN (SELECT entry_id FROM points_lots)"""))
            conn.execute(text("UPDATE balances SET seq = seq + :per, points = points + 10 * :per"), {"per": per})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return ledger_size(url)


def purchase_requests(cards: list[str], token: str, tag: str):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def make(i: int):
        body = {"card": cards[(i * 7919) % len(cards)], "amount": f"{i % 300 + 1}.90", "currency": "ILS",
                "receipt_id": f"{tag}-{i}"}
        return "POST", "/api/v1/pos/purchases", json.dumps(body).encode(), headers
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="full-load rounds of baseline, then purchases")
    parser.add_argument("--round-seconds", type=int, default=6, help="each full-load measurement in a round")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip-million", action="store_true", help="skip the 1-million-entry ledger figure")
    args = parser.parse_args()
    results: list[tuple[str, dict]] = []
    rounds: list[tuple[dict, dict]] = []  # (one-transaction baseline, purchases), measured back to back

    base_db = f"{DB_PREFIX}_baseline"
    base_url = fresh_database(base_db)
    baseline.prepare(base_url)
    url = fresh_database(DB_PREFIX)
    t0 = time.perf_counter()
    cards, token = setup_club(url, args.members)
    print(f"set up {args.members} members in {time.perf_counter() - t0:.1f} s")
    env = {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET, "LOYALTY_ACCESS_TOKEN_MINUTES": "600"} | LIMITS
    print(f"rate limits on, configured for this load: {LIMITS}")
    with tempfile.NamedTemporaryFile("w", suffix=".cards", delete=False) as f:
        f.write("\n".join(cards) + "\n")
    load = {"seconds": args.round_seconds, "connections": args.connections}
    try:
        # Both servers up at once (the idle one costs nothing), so the baseline and the purchases can be measured
        # in alternating rounds: this machine's speed drifts by 20% within minutes, and a ratio of two figures
        # taken minutes apart would measure the drift.
        with gunicorn("tests.bench.baseline:create_app()", {"DATABASE_URL": base_url}, args.workers, "/bare") as base, \
                gunicorn("api:create_app()", env, args.workers) as api:
            target = api + "/api/v1/pos/purchases"
            wrk(base + "/bare", BARE_LUA, seconds=2, connections=args.connections)
            results.append(("baseline: bare Flask JSON", wrk(base + "/bare", BARE_LUA, seconds=args.seconds,
                                                              connections=args.connections)))
            seed_ledger(url, 10_000)
            paced(api, purchase_requests(cards, token, "warm"), 100, 3)
            wrk(base + "/tx", TX_LUA, seconds=2, connections=args.connections)
            wrk(target, PURCHASE_LUA, [f.name, token, "w0"], seconds=3, connections=args.connections)
            for i in range(1, args.rounds + 1):
                tx = wrk(base + "/tx", TX_LUA, database=base_db, **load)
                full = wrk(target, PURCHASE_LUA, [f.name, token, f"w{i}"], database=DB_PREFIX, **load)
                rounds.append((tx, full))
                results.append((f"baseline: Flask + one write transaction #{i}", tx))
                results.append((f"POST /pos/purchases (full load) #{i}", full))
            results.append(("POST /pos/purchases at 200/s",
                            paced(api, purchase_requests(cards, token, "p200"), 200, args.seconds)))
        if not args.skip_million:
            sizes = ledger_sizes(args)
    finally:
        os.unlink(f.name)

    print()
    for name, r in results:
        print(fmt(name, r))
    by = dict(results)
    print()
    ratios = [full["rps"] / tx["rps"] for tx, full in rounds]
    for i, ((tx, full), ratio) in enumerate(zip(rounds, ratios, strict=True), 1):
        print(f"round {i}: purchases/s vs one-transaction baseline: {full['rps']:.0f} / {tx['rps']:.0f} = {ratio:.2f}")
    print(f"purchases/s, median of {len(rounds)} rounds: {statistics.median(f['rps'] for _, f in rounds):.0f}"
          f"   ratio to the one-transaction baseline, median: {statistics.median(ratios):.2f}"
          f"   (targets: >= 600/s and >= 0.50)")
    print("CPU per request, medians of the rounds (where the budget goes; wrk's own CPU not counted):")
    for part, key in (("server (gunicorn and the app)", "server_cpu_ms"), ("PostgreSQL backends", "db_cpu_ms")):
        tx_ms = statistics.median(tx[key] for tx, _ in rounds)
        full_ms = statistics.median(full[key] for _, full in rounds)
        print(f"  {part:<30} purchase {full_ms:.2f} ms   one-transaction baseline {tx_ms:.2f} ms"
              f"   ({full_ms / tx_ms:.1f}x)")
    at200 = by["POST /pos/purchases at 200/s"]
    print(f"p99 at 200 purchases/s: {at200['p99_ms']:.1f} ms   (target < 50 ms)")
    if not args.skip_million:
        print()
        for n, p50s in sizes:
            print(f"purchase p50 with a ledger of {n:,} entries (paced 100/s, {len(p50s)} alternating runs): "
                  + ", ".join(f"{p:.1f}" for p in p50s) + f" ms, median {statistics.median(p50s):.1f} ms")
        (_, small), (_, big) = sizes
        print(f"p50 with 1M entries vs 10k, medians: {statistics.median(big):.1f} / {statistics.median(small):.1f} ms"
              f" = {statistics.median(big) / statistics.median(small):.2f}   (target <= 1.20)")


def ledger_sizes(args: argparse.Namespace) -> list[tuple[int, list[float]]]:
    """The p50 of a purchase with a ledger of 10 thousand and of 1 million entries: two clubs alike but for their
    ledgers, served side by side, measured in alternating paced runs (the machine's drift hits both alike)."""
    clubs = []
    for name, size in ((f"{DB_PREFIX}_10k", 10_000), (f"{DB_PREFIX}_1m", 1_000_000)):
        url = fresh_database(name)
        cards, token = setup_club(url, args.members)
        t0 = time.perf_counter()
        n = seed_ledger(url, size)
        print(f"seeded a ledger of {n:,} entries in {time.perf_counter() - t0:.0f} s")
        clubs.append((url, cards, token, n))
    env = {"LOYALTY_SECRET_KEY": SECRET, "LOYALTY_ACCESS_TOKEN_MINUTES": "600"} | LIMITS
    (small_url, small_cards, small_token, small_n), (big_url, big_cards, big_token, big_n) = clubs
    p50s: tuple[list[float], list[float]] = ([], [])
    with gunicorn("api:create_app()", env | {"DATABASE_URL": small_url}, args.workers) as small, \
            gunicorn("api:create_app()", env | {"DATABASE_URL": big_url}, args.workers) as big:
        servers = ((small, small_cards, small_token), (big, big_cards, big_token))
        for api, cards, token in servers:
            paced(api, purchase_requests(cards, token, "warm"), 100, 3)
        for i in range(3):
            for k in ((0, 1) if i % 2 == 0 else (1, 0)):
                api, cards, token = servers[k]
                p50s[k].append(paced(api, purchase_requests(cards, token, f"p{i}"), 100, args.seconds)["p50_ms"])
    return [(small_n, p50s[0]), (big_n, p50s[1])]


if __name__ == "__main__":
    main()
