"""Webhook subscriptions: where events go, which ones, and the secrets that sign them (Standard Webhooks 1.0)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import utcnow
from ..db import Base, JSONType, id_column
from ..errors import Invalid, NotFound
from ..events import TYPES
from . import urls

STATUSES = ("active", "paused", "disabled")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ROTATION_OVERLAP = timedelta(hours=24)


class Subscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = id_column("whk")
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(String(240), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Kept as given: signing needs the key itself (as every Standard Webhooks sender does).
    secret: Mapped[str] = mapped_column(String(80))
    previous_secret: Mapped[str | None] = mapped_column(String(80))
    previous_secret_until: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(240))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes, as Standard Webhooks libraries read it."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signing_secrets(subscription: Subscription, now: datetime) -> list[str]:
    """The secrets deliveries are signed with now: the current one, and the previous for 24 h after a rotation."""
    secrets = [subscription.secret]
    if subscription.previous_secret and subscription.previous_secret_until and now < subscription.previous_secret_until:
        secrets.append(subscription.previous_secret)
    return secrets


def sign(msg_id: str, timestamp: int, body: bytes, secrets: list[str]) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
                    for s in secrets)


def _events(values: Any) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise Invalid("events is a non-empty list of event types, or [\"*\"]", errors={"events": ["A list of types."]})
    unknown = [v for v in values if v != "*" and v not in TYPES]
    if unknown:
        raise Invalid(f"Unknown event types: {', '.join(unknown)}", code="validation_error",
                      errors={"events": [f"Unknown type {t}." for t in unknown]})
    return ["*"] if "*" in values else list(dict.fromkeys(values))


@dataclass
class Created:
    subscription: Subscription
    secret: str  # shown once


def create(session: Session, *, url: str, events: list[str], description: str = "", allow_private: bool,
           now: datetime) -> Created:
    """A new subscription, active at once; its secret is in the answer only."""
    urls.check(url, allow_private=allow_private)
    secret = new_secret()
    subscription = Subscription(url=url, events=_events(events), description=description, status="active",
                                secret=secret, created_at=now, updated_at=now)
    session.add(subscription)
    session.flush()
    return Created(subscription, secret)


def get(session: Session, subscription_id: str) -> Subscription:
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise NotFound("No such webhook", code="not_found")
    return subscription


def listed(session: Session, *, after: str | None, limit: int) -> list[Subscription]:
    """Subscriptions in the order they were made, after a cursor (an id)."""
    query = select(Subscription).order_by(Subscription.id).limit(limit)
    if after:
        query = query.where(Subscription.id > after)
    return list(session.scalars(query))


def update(session: Session, subscription_id: str, changes: dict[str, Any], *, allow_private: bool,
           now: datetime) -> Subscription:
    """Change the URL, events, description or status (``active`` again after a 410 re-enables it)."""
    subscription = get(session, subscription_id)
    if "url" in changes:
        urls.check(changes["url"], allow_private=allow_private)
        subscription.url = changes["url"]
    if "events" in changes:
        subscription.events = _events(changes["events"])
    if "description" in changes:
        subscription.description = changes["description"]
    if "status" in changes:
        if changes["status"] not in STATUSES:
            raise Invalid("status is active, paused or disabled", errors={"status": ["Unknown status."]})
        subscription.status = changes["status"]
        subscription.disabled_reason = None if changes["status"] != "disabled" else "disabled by staff"
    subscription.updated_at = now
    session.flush()
    return subscription


def rotate_secret(session: Session, subscription_id: str, *, now: datetime) -> Created:
    """A new secret; the one it replaces still signs deliveries (beside the new one) for 24 hours."""
    subscription = get(session, subscription_id)
    secret = new_secret()
    subscription.previous_secret, subscription.previous_secret_until = subscription.secret, now + ROTATION_OVERLAP
    subscription.secret = secret
    subscription.updated_at = now
    session.flush()
    return Created(subscription, secret)
