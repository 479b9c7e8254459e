"""The club's event log (a transactional outbox): ``emit`` in the use case's transaction, read in commit order."""
from .log import (
    Claimed,
    Event,
    EventCursor,
    advance_cursor,
    after,
    backlog,
    claim_cursor,
    emit,
    envelope,
    event_row,
    last_of_next,
    read,
)
from .types import CHANNELS, DATA_SCHEMAS, PERSONAL_KEYS, TYPES, channel_of, check, till_actor

__all__ = ["CHANNELS", "DATA_SCHEMAS", "PERSONAL_KEYS", "TYPES", "Claimed", "Event", "EventCursor",
           "advance_cursor", "after", "backlog", "channel_of", "check", "claim_cursor", "emit", "envelope", "event_row",
           "last_of_next", "read", "till_actor"]
