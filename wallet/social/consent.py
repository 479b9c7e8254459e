"""The ``social_data`` consent seen from the social profile: the ONE place this package reads or writes it.

At the merge with the consents-per-purpose work (``wallet.consents.change``), :func:`set_share_consent`'s body
becomes ``consents.change(session, member, {"social_data": granted}, now=now, channel=channel, source=source,
actor=actor)`` and :func:`shares` becomes ``consents.granted(member.consents, "social_data")``; nothing else here
changes (both keep ``members.consents`` as ``{purpose: {granted, at}}``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import events
from ..clock import iso

PURPOSE = "social_data"


def shares(consents: dict[str, Any] | None) -> bool:
    """Whether a member's consents map grants ``social_data`` (never given: no)."""
    entry = (consents or {}).get(PURPOSE)
    return isinstance(entry, dict) and entry.get("granted") is True


def set_share_consent(session: Any, member: Any, granted: bool, *, now: datetime, channel: str, actor: str,
                      source: str = "profile") -> bool:
    """Give or withdraw the member's ``social_data`` consent; True if it changed (a ``consent.changed`` event)."""
    if shares(member.consents) is granted and PURPOSE in (member.consents or {}):
        return False
    member.consents = dict(member.consents or {}) | {PURPOSE: {"granted": granted, "at": iso(now)}}
    events.emit(session, "consent.changed", member_id=member.id, channel=channel, actor=actor[:64], occurred_at=now,
                data={"consent": PURPOSE, "granted": granted, "source": source})
    return True
