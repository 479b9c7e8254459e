"""Migration 0016: a message's tracking (tracked, opened_at, clicked_at) added to campaign_messages with its rows
kept, and down again, with the table's partial indexes as they were (SQLite rebuilds the table to drop a column)."""
from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from api.extensions import db
from tests.test_migrations import differences, old_database  # noqa: F401  (the fixture)

ROW = ("INSERT INTO campaign_messages (campaign_id, member_id, holdout, draw, status, attempts, next_attempt_at) "
       "VALUES ('cmp_1', 'mem_{n}', false, 7, 'pending', 0, '2026-12-01 10:00:00')")


def _indexes(conn, is_postgres: bool) -> dict[str, str]:
    """The table's indexes as the database states them (their WHERE clauses included)."""
    if is_postgres:
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'campaign_messages'"))
    else:
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                 "AND tbl_name = 'campaign_messages' AND sql IS NOT NULL"))
    return {name: " ".join(sql.split()).replace('"', "") for name, sql in rows}


def _columns() -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("campaign_messages")}


def test_0016_up_and_down(old_database, is_postgres):  # noqa: F811
    with old_database.app_context():
        upgrade(revision="0015")
        db.session.execute(text(ROW.format(n=1)))
        db.session.commit()
        with db.engine.connect() as conn:
            before = _indexes(conn, is_postgres)
        assert {"ix_campaign_messages_due", "ix_campaign_messages_member_sent"} <= set(before)
        assert "status = 'pending'" in before["ix_campaign_messages_due"].replace("::text", "").replace("(", "") \
            .replace(")", "")

        upgrade()
        assert differences(db.engine) == []
        assert {"tracked", "opened_at", "clicked_at"} <= _columns()
        # the rows there before are untracked; a row inserted without the column (a launch's INSERT ... SELECT) too
        db.session.execute(text(ROW.format(n=2)))
        db.session.commit()
        assert db.session.execute(text("SELECT member_id, tracked, opened_at, clicked_at FROM campaign_messages "
                                       "ORDER BY member_id")).all() == [("mem_1", False, None, None),
                                                                         ("mem_2", False, None, None)]
        db.session.execute(text("UPDATE campaign_messages SET tracked = true, clicked_at = '2026-12-02 10:00:00' "
                                "WHERE member_id = 'mem_2'"))
        db.session.commit()
        db.session.remove()

        downgrade(revision="0015")
        assert not {"tracked", "opened_at", "clicked_at"} & _columns()
        assert [r[0] for r in db.session.execute(text("SELECT member_id FROM campaign_messages ORDER BY member_id"))] \
            == ["mem_1", "mem_2"]
        db.session.remove()  # on SQLite every transaction is a writer: end this one before the next connection's
        with db.engine.connect() as conn:
            assert _indexes(conn, is_postgres) == before

        upgrade()
        assert differences(db.engine) == []
        assert db.session.execute(text("SELECT count(*) FROM campaign_messages WHERE tracked")).scalar() == 0
        db.session.remove()
