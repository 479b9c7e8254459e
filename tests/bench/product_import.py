"""Benchmark: the products CSV import over HTTP (``POST /admin/products/import``) against its baseline, the
``loyalty products import`` command on the same file (not a test: it prints figures).

    .venv/bin/python -m tests.bench.product_import [--rows 10000] [--rounds 3]

On a fresh PostgreSQL database (BENCH_PG, default postgresql://postgres@127.0.0.1:5432), alternating rounds: the
command, then the same file as a multipart upload through the app (Flask's test client: the whole request, its
parsing, the import, the audit entry and the commit; no socket), each on an empty catalogue.
"""
from __future__ import annotations

import argparse
import csv
import io
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from .common import fresh_database, settle

DATABASE = "loyalty_console"
SECRET = "bench-secret-key-not-for-production-0123456789"


def catalogue(rows: int) -> bytes:
    from tests.api.test_stores_import_cli import HEADER, barcode
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for i in range(rows):
        complementary = "|".join(f"SKU-{j:06d}" for j in (i + 1, i + 2) if j < rows)
        writer.writerow([f"SKU-{i:06d}", barcode(i), f"Product {i}", "A description", "coffee", f"{i % 100}.50", "",
                         "", complementary, "true"])
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from api import create_app
    from api.extensions import db
    from wallet import members, tokens

    url = fresh_database(DATABASE)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False,
                      "LOYALTY_PASSWORD_HASH": "pbkdf2:sha256:1000"})
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        staff = members.create_staff(db.session, email="bench@example.com", password="bench password",
                                     role="marketer")
        signed_in = tokens.sign_in(db.session, tokens.principal_of(staff), app.extensions["loyalty.program"].now())
        db.session.commit()
        token = tokens.issue_access_token(app.extensions["loyalty.keyring"], signed_in,
                                          app.extensions["loyalty.program"].now())
        db.session.remove()
    body = catalogue(args.rows)
    path = Path(tempfile.mkdtemp()) / "catalogue.csv"
    path.write_bytes(body)
    print(f"{args.rows:,} rows, {len(body) / 1e6:.1f} MB")

    def empty() -> None:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("TRUNCATE products, audit_log RESTART IDENTITY CASCADE"))
            db.session.remove()
        settle()

    cli, http = [], []
    client = app.test_client()
    for _ in range(args.rounds):
        empty()
        started = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["products", "import", str(path)])
        cli.append(time.perf_counter() - started)
        assert result.exit_code == 0, result.output
        empty()
        started = time.perf_counter()
        r = client.post("/api/v1/admin/products/import", headers={"Authorization": f"Bearer {token}"},
                        content_type="multipart/form-data", data={"file": (io.BytesIO(body), "catalogue.csv")})
        http.append(time.perf_counter() - started)
        assert r.status_code == 200 and r.get_json()["created"] == args.rows, r.get_json()
        print(f"  round: command {cli[-1]:.2f} s, HTTP {http[-1]:.2f} s")
    for name, runs in (("loyalty products import (baseline)", cli), ("POST /admin/products/import", http)):
        median = statistics.median(runs)
        print(f"{name}: median {median:.2f} s ({args.rows / median:,.0f} rows/s); runs "
              + ", ".join(f"{r:.2f}" for r in runs))
    print(f"HTTP / command: {statistics.median(http) / statistics.median(cli):.2f}")


if __name__ == "__main__":
    main()
