"""GET /admin/kpis over a year of a big club (PostgreSQL): how long the worker's summary job takes to read the
whole event log, and how fast the answers come from its summaries.

    .venv/bin/python -m tests.bench.kpis [--url postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_kpis_bench]
        [--members 1000000] [--purchases 10000000] [--reuse]

1. ``tests/bench/generate_club.py`` (the seg engineer's, copied unchanged) writes members, cards, purchases and
   check-ins by COPY, but no events. The events the use cases would have written are derived from those rows in
   time order, as the club's log would hold them: ``member.enrolled`` per member; one ``purchase.recorded`` per
   purchase, carrying its points and grant (``points_credited``, ``rewards``: the till's one event row since the
   till stopped writing ``points.earned`` and ``reward.granted`` beside it); ``check_in.recorded`` per check-in.
2. The summary job runs as the worker runs it (``kpis.summarise`` a batch per transaction until caught up), timed.
3. A tail the job has not reached (the events of 2,000 more purchases today) is added, so answers also read it.
4. ``GET /api/v1/admin/kpis`` through the Flask app (every layer but the socket): the default 30 days, a year, a
   year by month and a year by day, 15 times each; p50 and max are printed; then again once the job has caught up
   with the tail. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.bench import generate_club as club_generator

SECRET = club_generator.SECRET
TZ = "Asia/Jerusalem"

# The events the use cases write, derived from the generator's rows in one pass, in time order (positions ascend
# with time, as a live log's do). One event row per output row of the lateral.
DERIVE = """
INSERT INTO events (id, type, occurred_at, member_id, store_id, channel, actor, data, created_at)
SELECT 'evt_B' || lpad(row_number() OVER (ORDER BY s.at, s.kind, s.id, t.n)::text, 25, '0'), t.type, s.at,
       s.member_id, s.store_id, t.channel, t.actor, t.data, s.at
FROM (
    SELECT created_at AS at, 0 AS kind, id, id AS member_id, NULL::varchar AS store_id, NULL::numeric AS amount,
           0 AS points FROM members
    UNION ALL
    SELECT created_at, 1, id, member_id, store_id, amount, points_awarded FROM purchases
    UNION ALL
    SELECT created_at, 2, id, member_id, store_id, NULL, 0 FROM check_ins
) s
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES
        (0, 1, 'member.enrolled', 'app', 'member:' || s.id, jsonb_build_object('card_id', 'crd_' || substr(s.id, 5))),
        (1, 1, 'purchase.recorded', 'till', 'till', jsonb_build_object(
            'purchase_id', s.id, 'receipt_id', s.id, 'amount', s.amount::text, 'currency', 'ILS',
            'points_awarded', s.points, 'points_credited', s.points, 'item_count', 0,
            'rewards', CASE WHEN s.points > 0 THEN jsonb_build_array(jsonb_build_object(
                'rule_id', 'rul_BENCH', 'grant_id', 'gnt_' || substr(s.id, 5), 'kind', 'points', 'points', s.points,
                'entry_id', 'led_' || substr(s.id, 5), 'pending', false, 'coupon_id', NULL, 'surprise', false))
                ELSE '[]'::jsonb END)),
        (2, 1, 'check_in.recorded', 'app', 'member:' || s.member_id, jsonb_build_object(
            'check_in_id', s.id, 'points_awarded', 0))
    ) AS v(kind, n, type, channel, actor, data)
    WHERE v.kind = s.kind
) t
ORDER BY s.at, s.kind, s.id, t.n
"""


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def generate(url: str, members: int, purchases: int) -> datetime:
    club_generator.fresh(url)
    club_generator.migrate(url)
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        # Until the segments' migration (0008, another branch) is merged here: the columns its generator fills.
        conn.execute("ALTER TABLE members ADD COLUMN IF NOT EXISTS gender varchar(16)")
        conn.execute("ALTER TABLE members ADD COLUMN IF NOT EXISTS city varchar(80)")
    club = club_generator.generate_club(url, members=members, purchases=purchases)
    started = time.perf_counter()
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        count = conn.execute(DERIVE).rowcount
        conn.execute("VACUUM ANALYZE events")
    print(f"events derived: {count:,} in {time.perf_counter() - started:.0f} s", flush=True)
    return club.now


def program(now: datetime):
    from wallet.program import Program
    return Program(secret=b"x" * 32, timezone=TZ, clock=lambda: now)


def summarise(url: str, now: datetime) -> None:
    from wallet import kpis
    engine = create_engine(url)
    started = time.perf_counter()
    with Session(engine) as session:
        read = 0
        while True:
            t = time.perf_counter()
            done = kpis.summarise(session, program(now))
            session.commit()
            if not done:
                break
            read += done
            if read // kpis.summary.BATCH % 100 == 0:
                print(f"  {read:,} events, {done / (time.perf_counter() - t):,.0f}/s in the last batch", flush=True)
    seconds = time.perf_counter() - started
    print(f"summary job: {read:,} events in {seconds:.0f} s ({read / seconds:,.0f} events/s)", flush=True)
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE kpi_days")
        conn.execute("VACUUM ANALYZE kpi_member_days")
        conn.execute("VACUUM ANALYZE kpi_active_changes")
        sizes = conn.execute("SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) FROM "
                             "pg_stat_user_tables WHERE relname LIKE 'kpi%%' ORDER BY relname").fetchall()
    for name, rows, size in sizes:
        print(f"  {name}: {rows:,} rows, {size}")
    engine.dispose()


def forget(url: str) -> None:
    """Drop the summaries and the job's cursor (the tail's events stay: the job reads them this time)."""
    from wallet import kpis
    engine = create_engine(url)
    with Session(engine) as session:
        kpis.forget(session)
        session.commit()
    engine.dispose()


def add_tail(url: str, now: datetime, purchases: int = 2000) -> None:
    """The events of ``purchases`` more purchases today, not yet summarised: answers read them from the log."""
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("""
            INSERT INTO events (id, type, occurred_at, member_id, store_id, channel, actor, data, created_at)
            SELECT 'evt_T' || lpad(g::text, 12, '0') || t.n, t.type, %(now)s - (g || ' seconds')::interval,
                   'mem_G' || lpad((g * 37 %% 1000)::text, 25, '0'), NULL, 'till', 'till', t.data, %(now)s
            FROM generate_series(1, %(n)s) g
            CROSS JOIN LATERAL (VALUES
                (1, 'purchase.recorded', jsonb_build_object('purchase_id', 'pur_T' || g, 'amount', '42.50',
                                                            'currency', 'ILS')),
                (2, 'points.earned', jsonb_build_object('entry_id', 'led_T' || g, 'points', 42,
                                                        'balance_after', 42))) AS t(n, type, data)
            """, {"now": now.replace(tzinfo=None), "n": purchases})


def measure(url: str, now: datetime, rounds: int = 15) -> None:
    os.environ.update({"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET, "LOYALTY_TIMEZONE": TZ})
    from api import create_app
    from wallet import tokens
    app = create_app()
    app.extensions["loyalty.program"].clock = lambda: now
    ring = app.extensions["loyalty.keyring"]
    from api.extensions import db
    with app.app_context():  # a token names its sign-in (every request reads it by key)
        signed_in = tokens.sign_in(db.session, tokens.Principal("stf_BENCHMARKETER000000000000", "marketer"), now)
        db.session.commit()
    headers = {"Authorization": "Bearer " + tokens.issue_access_token(ring, signed_in, now)}
    client = app.test_client()
    today = now.astimezone(app.extensions["loyalty.program"].tz).date()
    year = f"from={today - timedelta(days=364)}&to={today}"
    for label, query in (("default (the last 30 days)", ""), ("a year", year),
                         ("a year, interval=month", year + "&interval=month"),
                         ("a year, interval=day", year + "&interval=day")):
        times, body = [], None
        for _ in range(rounds):
            started = time.perf_counter()
            r = client.get(f"/api/v1/admin/kpis?{query}", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.get_data(as_text=True)
            body = r.get_json()
        assert body is not None
        print(f"GET /admin/kpis {label}: p50 {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
              f"(purchases {body['purchases']['count']:,}, revenue {Decimal(body['purchases']['revenue']):,}, "
              f"active_30d {body['members']['active_30d']:,}, active_90d {body['members']['active_90d']:,})",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_KPIS_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_kpis_bench"))
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true", help="the club and its summaries are there: measure only")
    parser.add_argument("--resummarise", action="store_true",
                        help="the club is there: drop the summaries, run the job again from the start, measure")
    args = parser.parse_args()
    if args.reuse or args.resummarise:
        with psycopg.connect(_dsn(args.url)) as conn:
            now = conn.execute("SELECT max(created_at) FROM purchases").fetchone()[0].replace(tzinfo=UTC)
        if args.resummarise:
            forget(args.url)
            summarise(args.url, now)
        add_tail(args.url, now)
    else:
        now = generate(args.url, args.members, args.purchases)
        summarise(args.url, now)
        add_tail(args.url, now)
    print("with the tail not yet summarised:")
    measure(args.url, now)
    summarise(args.url, now)
    print("caught up (no tail):")
    measure(args.url, now)


if __name__ == "__main__":
    main()
