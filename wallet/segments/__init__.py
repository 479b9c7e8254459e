"""Segments: a marketer's named groups of members, written as criteria (``wallet.segments.criteria``) and compiled
to one SQL select of member ids (``wallet.segments.sql``), never a list kept or members filtered in Python.

Other features ask :func:`member_ids` (campaigns, bulk adjustments) or :func:`contains` (a rule's
``conditions.segment``, an offer's ``segment_id``). The windows of spend, purchases and visits read the worker's
summary plus what changed since (``wallet.segments.activity``: exact now)."""
from .criteria import CONSENT_PURPOSES, FIELDS, OPS, Field, catalogue
from .models import Segment, SegmentActivity
from .segments import (
    Preview,
    check_criteria,
    contains,
    create_segment,
    delete_segment,
    get_segment,
    listed,
    member_ids,
    preview,
    segment_members,
    update_segment,
    users_of,
)

__all__ = ["CONSENT_PURPOSES", "FIELDS", "OPS", "Field", "Preview", "Segment", "SegmentActivity", "catalogue", "check_criteria",
           "contains", "create_segment", "delete_segment", "get_segment", "listed", "member_ids", "preview",
           "segment_members", "update_segment", "users_of"]
