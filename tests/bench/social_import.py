"""Benchmark: the social import of 100,000 rows on PostgreSQL (not a test: it prints figures).

    .venv/bin/python -m tests.bench.social_import [--rows 100000] [--rounds 3]

A fresh database (BENCH_PG) with as many members as rows (80% share their social data; a third of the rows name
the member by phone in a local spelling, the rest by email in capitals). Each round, on empty social tables:
the whole HTTP request (``POST /admin/social/import``, the CSV body, sync threshold raised so it answers at once;
Flask's test client, no socket), then the worker's path (``wallet.social.run_queued`` on the same file queued).
Target: under 30 s for 100,000 rows.
"""
from __future__ import annotations

import argparse
import csv
import io
import statistics
import time

from sqlalchemy import text

from .common import fresh_database, settle

DATABASE = "loyalty_social_bench"
SECRET = "bench-secret-key-not-for-production-0123456789"


def _members(conn, n: int) -> None:
    conn.execute(text("""
        INSERT INTO members (id, email, password_hash, name, phone, status, tier, preferences, consents,
                             referral_code, channel, created_at)
        SELECT 'mem_b' || lpad(i::text, 10, '0'), 'fan' || i || '@example.com', 'x', 'Fan ' || i,
               '+97254' || lpad(i::text, 7, '0'), 'active', 'basic', '{}'::jsonb,
               CASE WHEN i % 5 = 0 THEN '{}'::jsonb
                    ELSE '{"social_data": {"granted": true, "at": "2026-12-01T00:00:00Z"}}'::jsonb END,
               'R' || i, 'app', now()
        FROM generate_series(1, :n) AS i"""), {"n": n})


def social_file(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "phone", "network", "handle", "team", "followers"])
    for i in range(1, rows + 1):
        if i % 3 == 0:
            writer.writerow(["", f"054-{i // 10000:03d}{i % 10000:04d}"[:12], "instagram", f"fan_{i}", "מכבי", i])
        else:
            writer.writerow([f"FAN{i}@Example.com", "", "tiktok", f"fan.{i}", "Hapoel", i % 1000])
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from api import create_app
    from api.extensions import db
    from wallet import members, social, tokens

    url = fresh_database(DATABASE)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False,
                      "LOYALTY_PASSWORD_HASH": "pbkdf2:sha256:1000", "LOYALTY_SOCIAL_IMPORT_SYNC_BYTES": 1 << 30})
    program = app.extensions["loyalty.program"]
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        staff = members.create_staff(db.session, email="bench@example.com", password="bench password",
                                     role="marketer")
        db.session.commit()
        with db.engine.begin() as conn:
            _members(conn, args.rows)
            conn.execute(text("ANALYZE members"))
        token = tokens.issue_access_token(app.extensions["loyalty.keyring"], tokens.principal_of(staff),
                                          program.now())
        db.session.remove()
    body = social_file(args.rows)
    print(f"{args.rows:,} rows, {len(body) / 1e6:.1f} MB")

    def empty() -> None:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("TRUNCATE social_networks, social_attributes, social_imports, audit_log"))
            db.session.remove()
        settle()

    http, worker = [], []
    client = app.test_client()
    for _ in range(args.rounds):
        empty()
        started = time.perf_counter()
        r = client.post("/api/v1/admin/social/import", data=body,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
        http.append(time.perf_counter() - started)
        report = r.get_json()
        assert r.status_code == 200 and report["matched"] == args.rows and not report["errors"], \
            {k: v for k, v in report.items() if k != "errors"} | {"errors": report.get("errors", [])[:3]}
        empty()
        with app.app_context():
            social.queue_import(db.session, program, body.decode(), "csv", dry_run=False, actor="bench")
            db.session.commit()
            started = time.perf_counter()
            assert social.run_queued(db.session, program) == 1
            db.session.commit()
            worker.append(time.perf_counter() - started)
            db.session.remove()
        print(f"  round: HTTP {http[-1]:.2f} s (applied {report['applied']:,}, skipped_no_consent "
              f"{report['skipped_no_consent']:,}), worker {worker[-1]:.2f} s")
    for name, runs in (("POST /admin/social/import", http), ("worker (queued import)", worker)):
        median = statistics.median(runs)
        print(f"{name}: median {median:.2f} s ({args.rows / median:,.0f} rows/s); runs "
              + ", ".join(f"{r:.2f}" for r in runs))


if __name__ == "__main__":
    main()
