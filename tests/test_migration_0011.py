"""Migration 0011: points columns widened to 64 bits on PostgreSQL, online-safe (it refuses to rewrite a big table in
place), welcome holds and fraud tables added; and down again."""
from __future__ import annotations

import pytest
from alembic import command
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from api.extensions import db
from tests.test_migrations import differences, old_database  # noqa: F401  (the fixture)

POINTS = [("balances", "points"), ("ledger_entries", "delta"), ("ledger_entries", "balance_after"),
          ("points_lots", "remaining"), ("purchases", "points_awarded"), ("offers", "points_cost")]


def _types(conn) -> dict[tuple[str, str], str]:
    rows = conn.execute(text("SELECT table_name, column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = current_schema()")).all()
    return {(t, c): d for t, c, d in rows}


def test_0011_up_and_down(old_database, is_postgres, monkeypatch):  # noqa: F811
    with old_database.app_context():
        upgrade(revision="0007")
        if is_postgres:
            db.session.execute(text(
                "INSERT INTO members (id, email, password_hash, name, status, tier, referral_code, channel, created_at, "
                "preferences, consents) VALUES ('mem_1', 'a@example.com', 'x', 'A', 'active', 'basic', 'R1', 'app', "
                "now(), '{}', '{}')"))
            db.session.execute(text("INSERT INTO balances (member_id, points, pending, seq, updated_at) "
                                    "VALUES ('mem_1', 2147483647, 0, 0, now())"))
            db.session.commit()
            # Every table counts as big: the migration refuses before changing anything, and says why.
            monkeypatch.setenv("LOYALTY_MIGRATION_REWRITE_ROWS", "-2")
            config = old_database.extensions["migrate"].migrate.get_config()
            with pytest.raises(RuntimeError, match="LOYALTY_MIGRATION_REWRITE_BIG=1"):
                command.upgrade(config, "head")  # alembic's own: Flask-Migrate's turns the error into an exit
            db.session.rollback()
            assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0007"
            with db.engine.connect() as conn:
                assert {_types(conn)[k] for k in POINTS} == {"integer"}
            monkeypatch.delenv("LOYALTY_MIGRATION_REWRITE_ROWS")
        upgrade()
        assert differences(db.engine) == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"fraud_flags", "burst_counters"} <= tables
        assert "awaits" in {c["name"] for c in inspect(db.engine).get_columns("pending_points")}
        if is_postgres:
            with db.engine.connect() as conn:
                assert {_types(conn)[k] for k in POINTS} == {"bigint"}
            db.session.execute(text("UPDATE balances SET points = points + 3000000000"))  # past 2^31 now fits
            assert db.session.execute(text("SELECT points FROM balances")).scalar() == 5147483647
            db.session.execute(text("UPDATE balances SET points = 7"))
            db.session.commit()
        downgrade(revision="0007")
        assert not {"fraud_flags", "burst_counters"} & set(inspect(db.engine).get_table_names())
        if is_postgres:
            with db.engine.connect() as conn:
                assert {_types(conn)[k] for k in POINTS} == {"integer"}
        upgrade()
        assert differences(db.engine) == []
        db.session.remove()
