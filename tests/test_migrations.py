"""The schema comes from the migrations: this fails when the models and the migrations disagree."""
from __future__ import annotations

import pprint

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

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
