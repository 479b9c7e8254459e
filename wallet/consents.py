"""Consents per purpose (the fixed list of API.md), off until granted, and every change kept: when, through which
channel, from where (enrolment, the profile, an unsubscribe link) and which version of the text the member saw.

The member's current consents stay on the member (``members.consents``: ``{purpose: {granted, at, text_version}}``,
read by the campaigns' audience and the segments); this module is the only writer of that map and of the history.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import events
from .clock import iso
from .db import Base, id_column
from .errors import Invalid

PURPOSES = ("marketing_email", "marketing_sms", "marketing_push", "profiling", "social_data")
# The marketing purpose each channel's messages need (besides the channel's preference).
PURPOSE_OF_CHANNEL = {"email": "marketing_email", "sms": "marketing_sms", "push": "marketing_push"}
SOURCES = ("enrolment", "profile", "unsubscribe", "migration", "staff")
TEXT_VERSION_MAX = 40


class ConsentChange(Base):
    """One consent given or withdrawn: kept for good (the member's export shows them all)."""

    __tablename__ = "consent_changes"
    __table_args__ = (Index("ix_consent_changes_member_at", "member_id", "at"),)

    id: Mapped[str] = id_column("cns")
    member_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool]
    at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    text_version: Mapped[str | None] = mapped_column(String(TEXT_VERSION_MAX))


def normalise(changes: dict[str, Any]) -> dict[str, tuple[bool, str | None]]:
    """``{purpose: bool}`` or ``{purpose: {granted, text_version?}}`` as ``{purpose: (granted, text_version)}``;
    Invalid (422, naming each field) for an unknown purpose or a malformed value."""
    out: dict[str, tuple[bool, str | None]] = {}
    errors: dict[str, list[str]] = {}
    for purpose, value in changes.items():
        where = f"consents.{purpose}"
        if purpose not in PURPOSES:
            errors[where] = [f"Unknown purpose; one of {', '.join(PURPOSES)}."]
            continue
        version = None
        if isinstance(value, dict):
            extra = set(value) - {"granted", "text_version"}
            version = value.get("text_version")
            value = value.get("granted")
            if extra:
                errors[where] = [f"Unknown fields {sorted(extra)}."]
                continue
            if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= TEXT_VERSION_MAX
                                        or not version.isprintable()):
                errors[where] = [f"text_version is 1 to {TEXT_VERSION_MAX} printable characters."]
                continue
        if not isinstance(value, bool):
            errors[where] = ["true or false, or {granted: true|false, text_version}."]
            continue
        out[purpose] = (value, version)
    if errors:
        raise Invalid("Some consents are not valid: " + ", ".join(sorted(errors)), errors=errors)
    return out


def granted(consents: dict[str, Any] | None, purpose: str) -> bool:
    """Whether the member's consents map grants ``purpose`` (never given: no)."""
    entry = (consents or {}).get(purpose)
    return isinstance(entry, dict) and entry.get("granted") is True


def change(session: Session, member: Any, changes: dict[str, Any], *, now: datetime, channel: str, source: str,
           actor: str) -> list[str]:
    """Apply consent changes to a member (any object with ``id`` and ``consents``): each real change is kept in the
    history and announced by a ``consent.changed`` event; the purposes that changed. Repeating a choice changes
    nothing (a new ``text_version`` for a consent already given is kept: the member agreed to the new text); a "no"
    to a purpose never asked is kept too (the member refused that text)."""
    wanted = normalise(changes)
    current = dict(member.consents or {})
    changed: list[str] = []
    for purpose, (value, version) in wanted.items():
        before = current.get(purpose) if isinstance(current.get(purpose), dict) else {}
        if before and before.get("granted") is value and (version is None or before.get("text_version") == version):
            continue
        entry = {"granted": value, "at": iso(now)}
        if version is not None:
            entry["text_version"] = version
        current[purpose] = entry
        session.add(ConsentChange(member_id=member.id, purpose=purpose, granted=value, at=now, channel=channel,
                                  source=source, text_version=version))
        data: dict[str, Any] = {"consent": purpose, "granted": value, "source": source}
        if version is not None:
            data["text_version"] = version
        events.emit(session, "consent.changed", member_id=member.id, channel=channel, actor=actor[:64],
                    occurred_at=now, data=data)
        changed.append(purpose)
    if changed:
        member.consents = current
    return changed


def history(session: Session, member_id: str, *, limit: int = 50, before: str | None = None) -> list[ConsentChange]:
    """The member's consent changes, newest first (a cursor is the last id seen)."""
    query = select(ConsentChange).where(ConsentChange.member_id == member_id)
    if before:
        query = query.where(ConsentChange.id < before)
    return list(session.scalars(query.order_by(ConsentChange.id.desc()).limit(limit)))


def history_records(session: Session, member_id: str) -> list[dict[str, Any]]:
    """Every consent change of the member, oldest first, as the export writes them."""
    rows = session.scalars(select(ConsentChange).where(ConsentChange.member_id == member_id)
                           .order_by(ConsentChange.id))
    return [{"purpose": r.purpose, "consent": r.purpose, "granted": r.granted, "at": iso(r.at), "channel": r.channel,
             "source": r.source, "text_version": r.text_version} for r in rows]
