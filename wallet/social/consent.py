"""The ``social_data`` consent seen from the social profile: the ONE place this package reads or writes it, through
the consents of every purpose (``wallet.consents``: kept with its history and announced by ``consent.changed``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import consents

PURPOSE = "social_data"


def shares(member_consents: dict[str, Any] | None) -> bool:
    """Whether a member's consents map grants ``social_data`` (never given: no)."""
    return consents.granted(member_consents, PURPOSE)


def set_share_consent(session: Any, member: Any, granted: bool, *, now: datetime, channel: str, actor: str,
                      source: str = "profile") -> bool:
    """Give or withdraw the member's ``social_data`` consent; True if it changed (kept in the history, and a
    ``consent.changed`` event)."""
    changed = consents.change(session, member, {PURPOSE: granted}, now=now, channel=channel, source=source,
                              actor=actor[:64])
    return PURPOSE in changed
