"""The club's time: now in UTC, a time as the API writes it (ISO 8601 with ``Z``), and which timezone names are
real (a store's, a member's contact rules')."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_NOT_ZONES = {"localtime", "posixrules", "Factory"}  # files in some zoneinfo folders, not IANA zones


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC with ``Z``, e.g. ``2026-11-22T10:00:00Z``.

    Exactly what ``isoformat`` gives for the UTC instant (so microseconds appear when the value has any), with
    ``Z`` for ``+00:00``. An aware value in another zone is converted to UTC; None stays None. A naive datetime
    is refused (ValueError), as ``UTCDateTime`` refuses one: every datetime here is aware."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} has no UTC instant to write")
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(z for z in available_timezones()
                     if z not in _NOT_ZONES and not z.startswith(("posix/", "right/")))


def valid_timezone(name: Any) -> bool:
    """An IANA zone name this machine knows (``Asia/Jerusalem``); not ``localtime`` or a file path."""
    if not isinstance(name, str) or name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
