"""Deliveries: one per event per subscription, fanned out from the event log by the worker, claimed with a lease,
sent with no transaction open, and their outcome recorded (retries with backoff, 410 disables)."""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import iso, utcnow
from ..db import Base, id_column, new_id, on_postgres, table_of
from ..errors import NotFound
from ..events import Event, advance_cursor, claim_cursor, envelope, read
from . import http
from .settings import Settings
from .subscriptions import Subscription, get, sign, signing_secrets

STATUSES = ("pending", "delivered", "failed")
_POSITION = BigInteger().with_variant(Integer(), "sqlite")  # as the event log's key
FAN_OUT = "webhooks"  # the event cursor the fan-out follows


class Delivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_position"),
                      Index("ix_webhook_deliveries_due", "status", "next_attempt_at"))

    id: Mapped[str] = id_column("whd")
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    # The event by its key in the log (a delivery reads it back by position); its id is what receivers see.
    event_position: Mapped[int] = mapped_column(_POSITION, ForeignKey("events.position"))
    event_id: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(240))
    next_attempt_at: Mapped[datetime]
    give_up_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


# ------------------------------------------------------------------ fan-out


def fan_out(session: Session, settings: Settings, *, owner: str, now: datetime, limit: int = 500) -> int:
    """Make the deliveries of the next committed events (the caller commits); how many events were read."""
    claimed = claim_cursor(session, FAN_OUT, owner, now, settings.lease)
    if claimed is None:
        return 0  # another worker is fanning out
    events = read(session, claimed.after, limit=limit)
    subscriptions = list(session.scalars(select(Subscription).where(Subscription.status.in_(("active", "paused")))))
    rows = [{"id": new_id("whd"), "subscription_id": s.id, "event_position": e.position, "event_id": e.id,
             "type": e.type, "status": "pending",
             "attempts": 0, "next_attempt_at": now, "give_up_at": now + settings.retry_for, "created_at": now}
            for e in events for s in subscriptions if s.wants(e.type)]
    if rows:
        insert = pg_insert if on_postgres(session) else sqlite_insert
        # The unique (subscription, event) pair: a fan-out repeated after a lost lease adds nothing.
        session.execute(insert(Delivery).on_conflict_do_nothing(), rows)
    advance_cursor(session, claimed, events[-1].cursor if events else claimed.after, release=True, now=now)
    return len(events)


# ------------------------------------------------------------------ claim, send, record


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with everything its POST needs (read while claiming, so sending needs no database)."""

    delivery_id: str
    subscription_id: str
    event_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]


def body_of(event: Event) -> bytes:
    """The POST body: ``{"type", "timestamp", "data"}``, ``data`` the whole event; the same on every retry."""
    return json.dumps({"type": event.type, "timestamp": iso(event.occurred_at), "data": envelope(event)},
                      separators=(",", ":"), ensure_ascii=False).encode()


def claim(session: Session, settings: Settings, *, owner: str, now: datetime, limit: int | None = None) -> list[Job]:
    """Take due deliveries of active subscriptions for a lease (PostgreSQL: SKIP LOCKED); the caller commits."""
    due = (select(Delivery.id).join(Subscription, Subscription.id == Delivery.subscription_id)
           .where(Delivery.status == "pending", Delivery.next_attempt_at <= now, Subscription.status == "active",
                  (Delivery.lease_until.is_(None)) | (Delivery.lease_until < now))
           .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit or settings.batch)
           .with_for_update(skip_locked=True, of=Delivery))
    taken = session.execute(
        update(Delivery).where(Delivery.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + settings.lease, attempts=Delivery.attempts + 1)
        .returning(Delivery.id, Delivery.subscription_id, Delivery.event_position),
        execution_options={"synchronize_session": False}).all()
    if not taken:
        return []
    events = {e.position: e for e in session.scalars(select(Event).where(Event.position.in_({t[2] for t in taken})))}
    subscriptions = {s.id: s for s in session.scalars(select(Subscription).where(
        Subscription.id.in_({t[1] for t in taken})))}
    return [Job(d, s, events[e].id, subscriptions[s].url, body_of(events[e]),
                tuple(signing_secrets(subscriptions[s], now))) for d, s, e in taken]


def send(job: Job, settings: Settings) -> http.Answer:
    """POST a claimed delivery, signed; no database here."""
    timestamp = int(time.time())  # the receiver checks it against its own clock
    headers = {"webhook-id": job.event_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(job.event_id, timestamp, job.body, list(job.secrets))}
    return http.post(job.url, job.body, headers, timeout=settings.timeout, max_body=settings.max_body,
                     allow_private=settings.allow_private)


def backoff(attempts: int, settings: Settings, rng: random.Random) -> float:
    """Seconds to the next attempt: doubling from ``first_delay`` up to ``max_delay``, with jitter (half to all)."""
    delay = min(settings.first_delay * 2 ** max(0, attempts - 1), settings.max_delay)
    return delay * (0.5 + rng.random() * 0.5)


_DELIVERIES = table_of(Delivery)
_RECORD = (update(_DELIVERIES)
           .where(_DELIVERIES.c.id == bindparam("d_id"), _DELIVERIES.c.lease_owner == bindparam("owner"))
           .values(status=bindparam("status"), last_status_code=bindparam("code"), last_error=bindparam("error"),
                   next_attempt_at=bindparam("next_at"), delivered_at=bindparam("delivered_at"),
                   lease_owner=None, lease_until=None))


def outcome(answer: http.Answer, attempts: int, give_up_at: datetime, settings: Settings, now: datetime,
            rng: random.Random) -> dict[str, Any]:
    """What a delivery becomes after an answer: delivered, failed, or pending until its next attempt."""
    code = answer.status
    values: dict[str, Any] = {"code": code, "error": answer.error, "delivered_at": None, "next_at": now}
    if code is not None and 200 <= code < 300:
        return values | {"status": "delivered", "delivered_at": now}
    if code == 410 or now >= give_up_at:
        return values | {"status": "failed"}
    if code in (429, 503) and answer.retry_after is not None:
        # At least a second: a receiver saying "0" must not turn one worker's round into a busy loop.
        wait = min(max(answer.retry_after, 1.0), settings.retry_for.total_seconds())
    else:
        wait = backoff(attempts, settings, rng)
    if code is not None and answer.error is None:
        values["error"] = f"HTTP {code}"
    return values | {"status": "pending", "next_at": now + timedelta(seconds=wait)}


def record(session: Session, owner: str, results: list[tuple[Job, http.Answer]], settings: Settings,
           now: datetime, rng: random.Random) -> dict[str, int]:
    """Record what the receivers answered (only for deliveries this worker still holds); the caller commits."""
    if not results:
        return {}
    rows = {d.id: d for d in session.scalars(select(Delivery).where(
        Delivery.id.in_([job.delivery_id for job, _ in results]), Delivery.lease_owner == owner))}
    params, gone, counts = [], set(), {"delivered": 0, "pending": 0, "failed": 0}
    for job, answer in results:
        row = rows.get(job.delivery_id)
        if row is None:
            continue  # the lease ran out and another worker took it: its record wins
        values = outcome(answer, row.attempts, row.give_up_at, settings, now, rng)
        params.append({"d_id": job.delivery_id, "owner": owner, **values})
        counts[values["status"]] += 1
        if answer.status == 410:
            gone.add(job.subscription_id)
    if params:
        session.connection().execute(_RECORD, params)
    if gone:
        session.execute(update(Subscription).where(Subscription.id.in_(gone), Subscription.status == "active")
                        .values(status="disabled", disabled_reason="the receiver answered 410 Gone", updated_at=now),
                        execution_options={"synchronize_session": False})
    return counts


def release(session: Session, owner: str, jobs: list[Job]) -> None:
    """Give back claimed deliveries that were not sent (the worker is stopping): not counted as attempts."""
    if jobs:
        session.execute(update(Delivery).where(Delivery.id.in_([j.delivery_id for j in jobs]),
                                               Delivery.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None, attempts=Delivery.attempts - 1),
                        execution_options={"synchronize_session": False})


# ------------------------------------------------------------------ staff


def listed(session: Session, subscription_id: str, *, status: str | None = None, before: str | None = None,
           limit: int = 50) -> list[Delivery]:
    """A subscription's deliveries, newest first."""
    get(session, subscription_id)
    query = select(Delivery).where(Delivery.subscription_id == subscription_id).order_by(Delivery.id.desc())
    if status:
        query = query.where(Delivery.status == status)
    if before:
        query = query.where(Delivery.id < before)
    return list(session.scalars(query.limit(limit)))


def retry(session: Session, subscription_id: str, delivery_id: str, *, now: datetime) -> Delivery:
    """Send a delivery again now, once: if that attempt fails it is failed again."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.subscription_id != subscription_id:
        raise NotFound("No such delivery", code="not_found")
    delivery.status, delivery.next_attempt_at, delivery.give_up_at = "pending", now, now
    session.flush()
    return delivery


def remove_subscription(session: Session, subscription_id: str) -> Subscription:
    """Delete a subscription and its deliveries."""
    subscription = get(session, subscription_id)
    session.execute(delete(Delivery).where(Delivery.subscription_id == subscription.id),
                    execution_options={"synchronize_session": False})
    session.delete(subscription)
    session.flush()
    return subscription


def count_by_status(session: Session) -> list[tuple[str, int]]:
    """Webhook deliveries by outcome (status), for the operators' metrics."""
    return [(status, n) for status, n in session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))]
