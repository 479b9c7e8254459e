"""Migration 0017: segment_activity, the partial index of refunded purchases and (PostgreSQL) members' index on
lower(city) added, and taken away again with the rows of purchases and members kept."""
from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from api.extensions import db
from tests.test_migrations import differences, old_database  # noqa: F401  (the fixture)
from wallet.members import Member


def _indexes(table: str) -> set[str]:
    return {i["name"] for i in inspect(db.engine).get_indexes(table)}


def _state(is_postgres: bool) -> tuple[bool, bool, bool]:
    with db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if is_postgres:
            city = conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_members_city_lower'"))
        else:
            city = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'ix_members_city_lower'"))
        refunded = conn.execute(text(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_purchases_refunded_at'" if is_postgres else
            "SELECT count(*) FROM sqlite_master WHERE name = 'ix_purchases_refunded_at'")).scalar()
        return "segment_activity" in tables, bool(refunded), bool(city.scalar())


def test_0017_up_and_down(old_database, is_postgres):  # noqa: F811
    with old_database.app_context():
        upgrade(revision="0016")
        db.session.add(Member(id="mem_1", email="a@example.com", password_hash="x", name="A", referral_code="REF1",
                              city="Haifa"))
        db.session.commit()
        assert _state(is_postgres) == (False, False, False)

        upgrade()
        assert differences(db.engine) == []
        assert _state(is_postgres) == (True, True, is_postgres)
        db.session.execute(text("INSERT INTO segment_activity VALUES ('mem_1', 1, 2, 3, 4, 5, 6, "
                                "'2026-12-01 09:00:00')"))
        db.session.commit()
        if is_postgres:  # a city's members from the index alone
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(db.session.execute(text(
                "EXPLAIN SELECT id FROM members WHERE lower(city) = 'haifa' AND status = 'active'")).scalars())
            assert "Index Only Scan using ix_members_city_lower" in plan, plan
        db.session.remove()

        downgrade(revision="0016")
        assert _state(is_postgres) == (False, False, False)
        assert db.session.execute(text("SELECT id, city FROM members")).all() == [("mem_1", "Haifa")]
        db.session.remove()

        upgrade()
        assert differences(db.engine) == []
        assert _state(is_postgres) == (True, True, is_postgres)
        db.session.remove()
