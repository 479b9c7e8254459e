"""Fraud review: the defences against farming points, and the flags they raise for a marketer to review.

- ``flags``: one row per incident and hour (kind, subject), counted, listed by ``GET /admin/flags``, reviewed.
- ``bursts``: enrolments per device or address and claims per member, counted per minute in the database (one
  row per subject, shared by every host); past the limit a request is slowed (429) and flagged.
- ``travel``: a check-in faster from the member's last one than LOYALTY_MAX_TRAVEL_KMH is refused and flagged.
- ``welcome``: welcome points wait for the member's first purchase, which releases them.
- ``watch``: the worker reads purchases from the event log and flags a card used at two stores within a minute
  (nothing is added to the till's one statement).
"""
from .bursts import BurstCounter, check_burst, count, prune_counters
from .flags import (
           CLAIM_BURST,
           ENROLMENT_BURST,
           IMPOSSIBLE_TRAVEL,
           KINDS,
           QR_TWO_STORES,
           Flag,
           get_flag,
           list_flags,
           raise_flag,
           review_flag,
)
from .travel import TravelCheck, travel_from_last
from .watch import TWO_STORES_WINDOW, watch_purchases
from .welcome import release_welcome

__all__ = ["CLAIM_BURST", "ENROLMENT_BURST", "IMPOSSIBLE_TRAVEL", "KINDS", "QR_TWO_STORES", "TWO_STORES_WINDOW", "BurstCounter", "Flag", "TravelCheck", "check_burst", "count", "get_flag",
           "list_flags", "prune_counters", "raise_flag", "release_welcome", "review_flag", "travel_from_last", "watch_purchases"]
