"""Benchmark: Apple Wallet card passes generated and signed per second on one core, and the PassKit web service's
"serials updated since" query as registered devices grow to 100,000 (not a test: it prints figures).

    .venv/bin/python -m tests.bench.passes [--seconds 5] [--devices 100000]

On a fresh PostgreSQL database of its own (BENCH_PG, default postgresql://postgres@127.0.0.1:5432), with a throwaway
Pass Type ID chain (RSA 2048, as Apple issues):
- passes/s: ``wallet.passes.card_pass`` in a loop in this one process (one core), each a whole member download:
  read the card, member, balance and stores, build pass.json and the strings, hash the files, sign the manifest
  (PKCS #7, RSA 2048, SHA-256), zip; and the same without the database (build, sign, zip only);
- the updated-serials query (``webservice.updated_serials``): for a device with three passes, with 1,000, 10,000
  and 100,000 devices registered (three passes each, and a tenth of the passes changed lately), the median and p99
  of 500 queries at each size. Flat means the figures do not grow with the devices.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from .common import BIN, ROOT, fresh_database, settle

DATABASE = "loyalty_bench_passes"
SECRET = "bench-secret-key-not-for-production-0123456789"
FAST_HASH = "pbkdf2:sha256:1000"


def _one_core() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        print("(could not pin to one core: figures are for this process, which Python runs on one core anyway)")


def _app(url: str):
    env = os.environ | {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET}
    subprocess.run([str(BIN / "loyalty"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    from api import create_app
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "LOYALTY_PASSWORD_HASH": FAST_HASH})


def _with_apple(app):
    """The app's programme with Apple Wallet configured by a throwaway certificate chain (call in its context)."""
    from tests.wallet_keys import TEAM_ID, make_apple_pki
    from wallet import passes

    pki = make_apple_pki(Path(tempfile.mkdtemp()))
    program = app.extensions["loyalty.program"]
    program.apple_wallet = passes.load_apple(pass_type_id=pki.pass_type_id, team_id=TEAM_ID, cert_path=str(pki.cert),
                                             key_path=str(pki.key), wwdr_path=str(pki.wwdr), key_password=None,
                                             now=datetime.now(UTC))
    return program


def passes_per_second(app, seconds: float) -> None:
    from api.extensions import db
    from wallet import enrolment, ledger, passes
    from wallet.passes import apple
    from wallet.passes.content import card_view, store_locations
    from wallet.stores import Store

    with app.app_context():
        program = _with_apple(app)
        program.public_url = "https://club.example"
        session = db.session
        for i in range(12):
            session.add(Store(code=f"S{i:02d}", name=f"Store {i}", lat=32.0 + i / 100, lon=34.7, radius_m=200,
                              timezone="Asia/Jerusalem"))
        member = enrolment.register_member(session, program, email="bench@example.com", password="a long secret",
                                           name="Noa Levi")
        ledger.earn(session, program, member_id=member.id, points=1234, reason="manual", idempotency_key="bench",
                    description="bench")
        session.commit()
        member_id = member.id
        card = member.card

        def whole() -> None:
            passes.card_pass(session, program, member_id)
            session.commit()

        view, places = card_view(session, program, card), store_locations(session)

        def offline() -> None:
            apple.package(program.apple_wallet, apple.card_content(program, program.apple_wallet, view, places))

        for name, work in (("card pass, whole download (database, build, sign, zip)", whole),
                           ("card pass, build + sign + zip only", offline)):
            for _ in range(20):
                work()  # warm up: images drawn, statements compiled
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                work()
                done += 1
            elapsed = time.perf_counter() - started
            print(f"{name}: {done / elapsed:,.0f} passes/s ({elapsed / done * 1000:.2f} ms each, {done} in "
                  f"{elapsed:.1f} s)")
        size = len(passes.card_pass(session, program, member_id).data)
        session.rollback()
        print(f"a card pass is {size:,} bytes")


def updated_serials(app, devices: int) -> None:
    from sqlalchemy import text

    from api.extensions import db
    from wallet import enrolment
    from wallet.passes import webservice

    with app.app_context():
        program = _with_apple(app)
        pass_type_id = program.apple_wallet.pass_type_id
        session = db.session
        owner = enrolment.register_member(session, program, email="owner@example.com", password="a long secret",
                                          name="Owner").id
        session.commit()
        now = int(time.time())
        made = 0
        for size in sorted({1_000, 10_000, devices}):
            # Devices made in bulk with set-based SQL: three passes each, a tenth of passes changed in the last hour.
            session.execute(text("""
                INSERT INTO wallet_passes (serial, kind, member_id, apple, google, modified, push_due, google_due,
                                           created_at)
                SELECT 'crd_B' || lpad(n::text, 9, '0'), 'card', :owner, true, false,
                       CASE WHEN n % 10 = 0 THEN CAST(:now AS bigint) - (n % 3600) ELSE CAST(:now AS bigint) - 86400 - n END, false, false, now()
                FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n"""),
                {"owner": owner, "now": now, "first": made * 3, "last": size * 3 - 1})
            session.execute(text("""
                INSERT INTO pass_devices (id, push_token, created_at, updated_at)
                SELECT 'dev' || lpad(n::text, 9, '0'), repeat('ab', 32), now(), now()
                FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n"""), {"first": made, "last": size - 1})
            session.execute(text("""
                INSERT INTO pass_registrations (device_id, serial, created_at)
                SELECT 'dev' || lpad((n / 3)::text, 9, '0'), 'crd_B' || lpad(n::text, 9, '0'), now()
                FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n"""), {"first": made * 3, "last": size * 3 - 1})
            session.commit()
            made = size
            settle()
            timings = []
            since = str(now - 1800)
            for i in range(500):
                device = f"dev{(i * 7919) % size:09d}"
                started = time.perf_counter()
                webservice.updated_serials(session, program, device_id=device, pass_type_id=pass_type_id,
                                           since=since if i % 2 else None)
                timings.append(time.perf_counter() - started)
                session.rollback()
            timings.sort()
            print(f"updated serials, {size:>7,} devices ({size * 3:,} registrations): "
                  f"p50 {statistics.median(timings) * 1000:.2f} ms, p99 {timings[int(len(timings) * 0.99)] * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--devices", type=int, default=100_000)
    args = parser.parse_args()
    _one_core()
    url = fresh_database(DATABASE)
    app = _app(url)
    passes_per_second(app, args.seconds)
    updated_serials(app, args.devices)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
