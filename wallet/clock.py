"""The club's time: now in UTC, and a time as the API writes it (ISO 8601 with ``Z``)."""
from __future__ import annotations

from datetime import UTC, datetime


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
