"""Contests anyone can verify: a free entry per member (no purchase necessary), optional extra entries per
purchase over an amount, a prize offer whose coupon goes to each winner.

Verifiable: at creation the club commits to ``sha256(seed)`` (a secret 32-byte seed); from ``closes_at`` the entry
list (public aliases) and its SHA-256 are published and frozen; at the draw the seed is revealed and the winners
are :func:`wallet.contests.draw.pick_winners` of the seed and that list: anyone can recompute them.
"""
from .contests import (
    DEMO_CONTESTS,
    create_contest,
    draw,
    draw_due,
    enter,
    frozen_entries,
    get_contest,
    list_contests,
    public_view,
    update_contest,
)
from .draw import entry_list_sha256, pick_winners
from .models import Contest, ContestEntry

__all__ = ["DEMO_CONTESTS", "Contest", "ContestEntry", "create_contest", "draw", "draw_due", "enter",
           "entry_list_sha256", "frozen_entries", "get_contest", "list_contests", "pick_winners", "public_view",
           "update_contest"]
