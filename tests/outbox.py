"""Test helpers for the event log on PostgreSQL, where a reader sees an event once every transaction older than it
has ended: transaction ids are shared by the whole server, so another database's open transaction (a parallel
test run) can hold the log back for a moment. Tests wait for that moment to pass, then assert exact outcomes."""
from __future__ import annotations

import time

from sqlalchemy import select, text

from api.extensions import db
from wallet.db import on_postgres
from wallet.events import Event


def settle(session, timeout: float = 20.0) -> None:
    """Wait until every committed event is readable (PostgreSQL); at once elsewhere. Ends the session's transaction."""
    session.commit()
    if not on_postgres(session):
        return
    deadline = time.monotonic() + timeout
    while True:
        ready = session.execute(text("SELECT coalesce(max(xact_id), 0) < pg_snapshot_xmin(pg_current_snapshot())"
                                     "::text::bigint FROM events")).scalar()
        session.commit()
        if ready:
            return
        if time.monotonic() > deadline:
            raise AssertionError("a transaction on the server stayed open for the whole wait")
        time.sleep(0.02)


def member_events(app, member_id: str) -> list:
    """A member's events as written, oldest first (not through the commit-order reader: what each use case wrote)."""
    with app.app_context():
        found = list(db.session.scalars(select(Event).where(Event.member_id == member_id).order_by(Event.position)))
        db.session.expunge_all()
        db.session.remove()
    return found
