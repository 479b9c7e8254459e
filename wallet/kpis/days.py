"""Club days: a time's day in the club's timezone as a day number (days since 1970-01-01), in Python and in SQL."""
from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, cast, func, literal_column, type_coerce
from sqlalchemy.orm import Session

from ..db import on_postgres

EPOCH = date(1970, 1, 1).toordinal()
_SQLITE_FUNCTION = "kpi_local_day"


def number(day: date) -> int:
    return day.toordinal() - EPOCH


def of_number(day: int) -> date:
    return date.fromordinal(day + EPOCH)


def local_day(moment: datetime, tz: str) -> int:
    """The day number of an aware time in the timezone ``tz``."""
    return number(moment.astimezone(_zone(tz)).date())


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _sqlite_local_day(stored: Any, tz: str) -> int | None:
    if stored is None:
        return None
    return local_day(datetime.fromisoformat(str(stored)).replace(tzinfo=UTC), tz)


def sql_local_day(session: Session, column: Any, tz: str) -> Any:
    """SQL for the day number of a UTC time column (stored naive, as ``db.UTCDateTime`` stores it) in ``tz``:
    PostgreSQL converts with its own zone data; SQLite calls this module's Python (registered on the connection)."""
    if on_postgres(session):
        local = func.timezone(tz, func.timezone("UTC", column))
        return type_coerce(cast(local, Date) - literal_column("DATE '1970-01-01'", Date), Integer)
    prepare(session)
    return type_coerce(getattr(func, _SQLITE_FUNCTION)(column, tz), Integer)


def prepare(session: Session) -> None:
    """On SQLite, give the session's connection the day function (statements built once are run on many)."""
    raw = session.connection().connection.driver_connection
    if isinstance(raw, sqlite3.Connection):
        raw.create_function(_SQLITE_FUNCTION, 2, _sqlite_local_day, deterministic=True)
