"""The staff audit log: who changed what, before and after; for personal fields, which ones changed, not values."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, JSONType, id_column
from .members import Staff

# Fields whose values never enter the log, whatever the entity: people's data and secrets.
PERSONAL_FIELDS = frozenset({
    "name", "email", "phone", "birthday", "address", "lat", "lon", "latitude", "longitude", "password",
    "password_hash", "first_name", "last_name", "social", "handle", "consents", "preferences",
})
SECRET_FIELDS = frozenset({"secret", "previous_secret", "token", "refresh_token"})
# Entities that are people: their PERSONAL_FIELDS are named only. Elsewhere (a store's lat/lon, an offer's name)
# the same field names are the club's own data and are kept.
PEOPLE = frozenset({"member", "staff"})
HIDDEN = "(changed)"


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),)

    id: Mapped[str] = id_column("aud")
    actor_id: Mapped[str] = mapped_column(String(32), index=True)
    actor_email: Mapped[str | None] = mapped_column(String(254))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSONType)
    after: Mapped[dict | None] = mapped_column(JSONType)
    changed: Mapped[list] = mapped_column(JSONType, default=list)
    at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Actor:
    id: str
    role: str
    email: str | None = None


def _actor(session: Session, actor: Any) -> Actor:
    if isinstance(actor, dict):
        actor = Actor(actor["id"], actor["role"], actor.get("email"))
    email = getattr(actor, "email", None)
    if email is None and actor.role in ("cashier", "marketer", "admin"):
        email = session.execute(select(Staff.email).where(Staff.id == actor.id)).scalar()
    return Actor(actor.id, actor.role, email)


def _plain(value: Any) -> Any:
    """A value as JSON keeps it (times as ISO strings, decimals as strings)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _hide(entity: str, values: dict[str, Any] | None, changed: set[str]) -> dict[str, Any] | None:
    if values is None:
        return None
    hidden = SECRET_FIELDS | (PERSONAL_FIELDS if entity in PEOPLE else frozenset())
    return {k: (HIDDEN if k in changed else None) if k in hidden else _plain(v) for k, v in values.items()
            if k not in hidden or k in changed}


def record(session: Session, actor: Any, action: str, entity: str, entity_id: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None, *, at: datetime | None = None) -> AuditEntry:
    """Log a staff change in the caller's transaction; personal and secret fields appear by name only."""
    who = _actor(session, actor)
    keys = set(before or {}) | set(after or {})
    changed = {k for k in keys if (before or {}).get(k, _MISSING) != (after or {}).get(k, _MISSING)}
    entry = AuditEntry(actor_id=who.id, actor_email=who.email, actor_role=who.role, action=action, entity=entity,
                       entity_id=entity_id, before=_hide(entity, before, changed), after=_hide(entity, after, changed),
                       changed=sorted(changed), at=at or utcnow())
    session.add(entry)
    return entry


_MISSING = object()


def listed(session: Session, *, actor_id: str | None = None, entity: str | None = None, entity_id: str | None = None,
           before: str | None = None, limit: int = 50) -> list[AuditEntry]:
    """The log, newest first, filtered."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if actor_id:
        query = query.where(AuditEntry.actor_id == actor_id)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if before:
        query = query.where(AuditEntry.id < before)
    return list(session.scalars(query.limit(limit)))
