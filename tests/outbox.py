"""Test helpers for the event log on PostgreSQL, where a reader sees an event once every transaction older than it
has ended: transaction ids are shared by the whole server, so another database's open transaction (a parallel
test run) can hold the log back for a moment. Tests wait for that moment to pass, then assert exact outcomes."""
from __future__ import annotations

import time

from sqlalchemy import text

from wallet.db import on_postgres


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
