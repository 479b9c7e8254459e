"""Tiers: the marketer's ladder (rank 0 the entry tier), members moving up at once when an event crosses a
threshold, down only at review after ``retain_days``, status matches by hand, and each member's tier history."""
from .catalogue import (
    TIER_FIELDS,
    create_tier,
    current,
    delete_tier,
    ensure_entry_tier,
    get_tier,
    list_tiers,
    update_tier,
)
from .ladder import Ladder, Step, Totals, ladder, may_cross
from .models import (
    ENTRY_CODE,
    METRICS,
    MONEY_METRICS,
    MemberTier,
    Tier,
    TierChange,
    TiersRevision,
    TierValues,
    revision_column,
)
from .progress import Counted, count, count_in_batch, move, settle
from .qualifying import referral_value_query, value_of, values_query
from .review import Review, review
from .standing import history, standing, status_match

__all__ = ["ENTRY_CODE", "METRICS", "MONEY_METRICS", "TIER_FIELDS", "Counted", "Ladder", "MemberTier", "Review",
           "Step", "Tier", "TierChange", "TierValues", "TiersRevision", "Totals", "count", "count_in_batch",
           "create_tier", "current", "delete_tier", "ensure_entry_tier", "get_tier", "history", "ladder", "list_tiers",
           "may_cross", "move", "referral_value_query", "review", "revision_column", "settle", "standing",
           "status_match", "update_tier", "value_of", "values_query"]
