"""The baselines a purchase is measured against, served the same way (gunicorn, same workers):
a bare Flask JSON endpoint, and a bare Flask endpoint doing one small PostgreSQL write transaction."""
from __future__ import annotations

import os
import random

from flask import Flask, jsonify
from sqlalchemy import create_engine, text

MEMBERS = 2000


def create_app() -> Flask:
    app = Flask(__name__)
    # pooled as the API is: one kept connection per request thread (api.config's LOYALTY_DB_POOL_SIZE)
    engine = create_engine(os.environ["DATABASE_URL"],
                           pool_size=int(os.environ.get("LOYALTY_DB_POOL_SIZE", os.environ.get("GUNICORN_THREADS", "8"))))

    @app.get("/bare")
    def bare():
        return jsonify(ok=True)

    @app.post("/tx")
    def tx():
        member = random.randrange(MEMBERS)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_rows (member, delta) VALUES (:m, 1)"), {"m": member})
            balance = conn.execute(text("UPDATE bench_balances SET points = points + 1 WHERE member = :m "
                                        "RETURNING points"), {"m": member}).scalar_one()
        return jsonify(balance=balance), 201

    return app


def prepare(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, member int NOT NULL, delta int NOT NULL,"
                          " created_at timestamptz NOT NULL DEFAULT now())"))
        conn.execute(text("CREATE TABLE bench_balances (member int PRIMARY KEY, points int NOT NULL DEFAULT 0)"))
        conn.execute(text("INSERT INTO bench_balances (member) SELECT g FROM generate_series(0, :n) g"),
                     {"n": MEMBERS})
    engine.dispose()
