"""The schema comes from the migrations: this fails when the models and the migrations disagree."""
from __future__ import annotations

import os
import pprint

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, make_url, text

import wallet.models  # noqa: F401  (every model on Base.metadata)
from api.extensions import db
from wallet.db import Base


def differences(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_models_and_migrations_agree(app):
    """The test database was built by `upgrade()` alone (see conftest); the models must match it exactly."""
    with app.app_context():
        diff = differences(db.engine)
    assert diff == [], "models and migrations disagree; run tools/regen-migration (or add a revision):\n" + \
        pprint.pformat(diff)


def test_there_is_one_head(app):
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        assert len(script.get_heads()) == 1


def test_a_fresh_database_upgrades_downgrades_and_upgrades_again(make_app, tmp_path):
    fresh = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'fresh.db'}")
    with fresh.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"members", "cards", "staff", "refresh_tokens", "ledger_entries", "balances"} <= tables
        assert set(Base.metadata.tables) <= tables
        assert differences(db.engine) == []
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert differences(db.engine) == []


@pytest.fixture
def old_database(make_app, tmp_path, is_postgres):
    """An empty database of the suite's kind (SQLite, or a PostgreSQL database made for the test)."""
    if not is_postgres:
        yield make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'old.db'}")
        return
    url = make_url(os.environ["DATABASE_URL"])
    name = f"{url.database}_old"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    old = make_app(SQLALCHEMY_DATABASE_URI=url.set(database=name).render_as_string(hide_password=False))
    yield old
    with old.app_context():
        db.session.remove()
        db.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def test_upgrading_writes_the_events_of_what_happened_before_the_log(old_database):
    """A club upgraded to the event log keeps its members' history: the timeline reads events made from the rows."""
    from wallet import activity

    with old_database.app_context():
        upgrade(revision="0003")
        at, later = "2026-11-01 10:00:00.000000", "2026-11-01 11:00:00.000000"
        for statement in [
            f"INSERT INTO members (id, email, password_hash, name, status, tier, referral_code, channel, created_at, "
            f"preferences, consents) VALUES ('mem_', 'old@example.com', 'x', 'Old Member', 'active', 'basic', "
            f"'OLD12345', 'app', '{at}', '{{}}', '{{}}')",
            f"INSERT INTO cards (id, member_id, number, status, issued_at) VALUES ('crd_', 'mem_', "
            f"'8000000000000018', 'active', '{at}')",
            f"INSERT INTO stores (id, code, name, address, lat, lon, radius_m, timezone, check_in_cooldown_minutes, "
            f"active, created_at, updated_at) VALUES ('sto_OLD', 'OLD', 'Old Town', '', 32.0, 34.0, 100, 'UTC', 60, true, "
            f"'{at}', '{at}')",
            f"INSERT INTO purchases (id, store_id, member_id, receipt_id, amount, currency, points_awarded, rewards, "
            f"status, fingerprint, channel, created_at, refunded_at) VALUES ('pur_', 'sto_OLD', 'mem_', 'R-1', "
            f"50.5, 'ILS', 50, '[]', 'refunded', 'f', 'till', '{at}', '{later}')",
            f"INSERT INTO ledger_entries (id, member_id, seq, delta, kind, reason, balance_after, actor, description, "
            f"idempotency_key, source, created_at) VALUES ('led_', 'mem_', 1, 50, 'earn', 'purchase', 50, "
            f"'rule:rul_X', 'Thanks', 'k1', 'purchase:pur_', '{at}')",
        ]:
            db.session.execute(text(statement))
        db.session.commit()
        upgrade()
        found = dict(db.session.execute(text("SELECT type, id FROM events")).all())
        assert found == {"member.enrolled": "evt_M", "purchase.recorded": "evt_P", "purchase.refunded": "evt_R",
                         "points.earned": "evt_L"}  # evt_, the table's letter, the row id after its prefix ("OLD")
        items = activity.timeline(db.session, "mem_")
        assert [(i.kind, i.summary, i.points) for i in items] == [
            ("refund", "Refund of the purchase of 50.50 ILS at Old Town", None),
            ("points", "Thanks", 50), ("purchase", "Purchase of 50.50 ILS at Old Town", 50),
            ("enrolment", "Joined the club", None)]
        assert items[2].details == {"purchase_id": "pur_", "receipt_id": "R-1", "amount": "50.50",
                                    "currency": "ILS", "status": "refunded"}
        db.session.remove()
