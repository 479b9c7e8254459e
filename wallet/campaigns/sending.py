"""The messages' outbox: due messages claimed with a lease (PostgreSQL: SKIP LOCKED), checked again at the moment
of sending (consent and preference, the member's quiet hours and weekly cap), sent with no transaction open
(``email``, ``gateways``), and their outcome recorded only by the worker that still holds them."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from .. import consents, contact, coupons, events
from ..db import on_postgres, rowcount, table_of
from ..members import Member
from ..program import Program
from . import templates, tracking, unsubscribe
from .audience import PREFERENCE_DEFAULTS
from .models import Campaign, CampaignMessage, message_key
from .settings import MessageSettings

SYNC = {"synchronize_session": False}
ACTOR = "job:campaigns"


@dataclass(frozen=True)
class Job:
    """A claimed message with everything its sending needs (read while claiming: sending needs no database)."""

    campaign_id: str
    member_id: str
    channel: str
    to: Any  # an email address, a phone number, or the member's push devices [{platform, token}]
    subject: str | None
    text: str
    html: str | None
    unsubscribe_url: str
    coupon_id: str | None = None
    # The member gave the profiling consent: links go through the club's redirect, an email carries the open pixel
    # (open_url), a push's open reported by the app counts (wallet.campaigns.tracking).
    tracked: bool = False
    open_url: str | None = None

    @property
    def key(self) -> str:
        return message_key(self.campaign_id, self.member_id)


@dataclass(frozen=True)
class Outcome:
    """What sending one message came to: ``sent``, ``retry`` (a temporary failure) or ``failed`` (for good)."""

    status: str
    error: str | None = None
    code: int | None = None


@dataclass
class Claimed:
    jobs: list[Job]
    suppressed: Counter[str]
    delayed: int
    cancelled: int

    @property
    def handled(self) -> int:
        return len(self.jobs) + sum(self.suppressed.values()) + self.delayed + self.cancelled


def claim(session: Session, program: Program, settings: MessageSettings, *, owner: str, now: datetime,
          channels: tuple[str, ...], limit: int | None = None) -> Claimed:
    """Take due messages of ``channels`` for a lease and decide each one now: send it (a Job), suppress it, delay it
    to the end of the member's quiet hours, or drop it with its cancelled campaign. The caller commits."""
    table = CampaignMessage
    due = (select(table.campaign_id, table.member_id)
           .join(Campaign, Campaign.id == table.campaign_id)
           .where(table.status == "pending", table.next_attempt_at <= now, Campaign.channel.in_(channels),
                  or_(table.lease_until.is_(None), table.lease_until < now))
           .order_by(table.next_attempt_at).limit(limit or settings.batch)
           .with_for_update(skip_locked=True, of=table))
    taken = session.execute(
        update(table).where(tuple_(table.campaign_id, table.member_id).in_(due))
        .values(lease_owner=owner, lease_until=now + settings.lease)
        .returning(table.campaign_id, table.member_id), execution_options=SYNC).all()
    claimed = Claimed([], Counter(), 0, 0)
    if not taken:
        return claimed
    pairs = [(c, m) for c, m in taken]
    rows = session.execute(select(table, Campaign, Member).join(Campaign, Campaign.id == table.campaign_id)
                           .join(Member, Member.id == table.member_id, isouter=True)
                           .where(tuple_(table.campaign_id, table.member_id).in_(pairs))
                           .order_by(table.next_attempt_at, table.campaign_id, table.member_id)).all()
    member_ids = list({m for _, m in pairs})
    week = dict(session.execute(select(table.member_id, func.count()).where(
        table.member_id.in_(member_ids), table.status == "sent", table.sent_at > now - timedelta(days=7))
        .group_by(table.member_id)).all())
    devices: dict[str, list[dict[str, str]]] = {}
    if any(c.channel == "push" for _, c, _ in rows):
        for device in session.scalars(select(contact.Device).where(contact.Device.member_id.in_(member_ids))
                                      .order_by(contact.Device.created_at)):
            devices.setdefault(device.member_id, []).append({"platform": device.platform, "token": device.token})
    for message, campaign, member in rows:
        decision = _decide(session, program, message, campaign, member, week, devices, now)
        if isinstance(decision, Job):
            claimed.jobs.append(decision)
            week[message.member_id] = week.get(message.member_id, 0) + 1  # the cap counts this batch too
            continue
        kind, value = decision
        where = (table.campaign_id == message.campaign_id, table.member_id == message.member_id,
                 table.lease_owner == owner)
        if kind == "delay":
            session.execute(update(table).where(*where).values(next_attempt_at=value, lease_owner=None,
                                                               lease_until=None), execution_options=SYNC)
            claimed.delayed += 1
        elif kind == "cancel":
            session.execute(update(table).where(*where).values(status="cancelled", reason=value, next_attempt_at=None,
                                                               lease_owner=None, lease_until=None),
                            execution_options=SYNC)
            claimed.cancelled += 1
        else:
            session.execute(update(table).where(*where).values(status="suppressed", reason=value, next_attempt_at=None,
                                                               lease_owner=None, lease_until=None),
                            execution_options=SYNC)
            claimed.suppressed[value] += 1
    return claimed


def _decide(session: Session, program: Program, message: CampaignMessage, campaign: Campaign, member: Member | None,
            week: dict[str, int], devices: dict[str, list[dict[str, str]]], now: datetime) -> Job | tuple[str, Any]:
    if campaign.status != "launched":
        return ("cancel", "campaign_cancelled")
    if member is None or member.status != "active":
        return ("suppress", "member_inactive")
    channel = campaign.channel
    if not (member.preferences or {}).get(channel, PREFERENCE_DEFAULTS[channel]):
        return ("suppress", "preference_off")
    if not consents.granted(member.consents, consents.PURPOSE_OF_CHANNEL[channel]):
        return ("suppress", "consent_withdrawn")
    to: Any = {"email": member.email, "sms": member.phone, "push": devices.get(member.id)}[channel]
    if not to:
        return ("suppress", "no_address")
    rules = contact.rules_of(member.contact_rules, program.timezone)
    until = rules.quiet_until(now)
    if until is not None:
        return ("delay", until)
    if rules.max_per_week is not None and week.get(member.id, 0) >= rules.max_per_week:
        return ("suppress", "weekly_cap")
    coupon_code = None
    coupon_id = message.coupon_id
    if campaign.offer_id:
        coupon = coupons.issue_coupon(session, program, offer_id=campaign.offer_id, member_id=member.id,
                                      idempotency_key=f"campaign:{campaign.id}", source=f"campaign:{campaign.id}",
                                      actor=ACTOR, channel="job")
        if coupon is None and "coupon_code" in templates.fields_in(campaign.body) | templates.fields_in(campaign.subject):
            return ("suppress", "offer_unavailable")
        if coupon is not None:
            coupon_id, coupon_code = coupon.id, _code(coupon.code)
            if message.coupon_id != coupon.id:
                session.execute(update(CampaignMessage).where(CampaignMessage.campaign_id == campaign.id,
                                                              CampaignMessage.member_id == member.id)
                                .values(coupon_id=coupon.id), execution_options=SYNC)
    values = templates.Values(name=member.name, coupon_code=coupon_code)
    # An SMS is tracked only if it has a link to follow; an email always (its pixel), a push always (the app).
    tracked = tracking.tracks(member) and (channel != "sms" or bool(templates.links_in(campaign.body)))
    link_to = tracking.link_to(program, campaign.id, member.id) if tracked and channel != "push" else None
    return Job(campaign.id, member.id, channel, to,
               templates.render_text(campaign.subject, values) if campaign.subject else None,
               templates.render_text(campaign.body, values, link_to),
               templates.render_html(campaign.body, values, link_to) if channel == "email" else None,
               unsubscribe.url(program, campaign.id, member.id, channel), coupon_id, tracked,
               tracking.open_url(program, campaign.id, member.id) if tracked and channel == "email" else None)


def _code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def backoff(attempts: int, settings: MessageSettings, rng: random.Random) -> float:
    delay = min(settings.first_delay * 2 ** max(0, attempts - 1), settings.max_delay)
    return delay * (0.5 + rng.random() * 0.5)


def record(session: Session, owner: str, results: list[tuple[Job, Outcome]], settings: MessageSettings,
           now: datetime, rng: random.Random) -> Counter[str]:
    """Record what the relay or gateways answered, for the messages this worker still holds; each sent message's
    ``message.sent`` event is written here. The caller commits.

    On PostgreSQL the transaction commits without waiting for its WAL flush (``synchronous_commit = off``): a
    worker that dies after the commit loses nothing; only a crash of the database server itself could forget the
    last fraction of a second of records, and those messages would go again with the same Message-ID (or
    idempotency key), which the relay or gateway drops."""
    counts: Counter[str] = Counter()
    if not results:
        return counts
    if on_postgres(session):
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    table = CampaignMessage
    sent_events = []
    for job, outcome in results:
        where = (table.campaign_id == job.campaign_id, table.member_id == job.member_id, table.lease_owner == owner,
                 table.status == "pending")
        if outcome.status == "sent":  # the common case: one statement
            attempts = session.execute(update(table).where(*where).values(
                status="sent", sent_at=now, next_attempt_at=None, attempts=table.attempts + 1, lease_owner=None,
                lease_until=None, last_error=None, tracked=job.tracked).returning(table.attempts),
                execution_options=SYNC).scalar()
            if attempts is None:
                continue  # the lease ran out and another worker took it: its record wins
            counts["sent"] += 1
            data: dict[str, Any] = {"message_id": job.key, "campaign_id": job.campaign_id, "medium": job.channel,
                                    "attempts": attempts}
            if job.coupon_id:
                data["coupon_id"] = job.coupon_id
            sent_events.append(events.event_row("message.sent", member_id=job.member_id, channel="job", actor=ACTOR,
                                                occurred_at=now, data=data))
            continue
        attempts = session.scalar(select(table.attempts).where(*where))
        if attempts is None:
            continue
        attempts += 1
        # tracked as this attempt was: a copy the relay took before its answer was lost can be clicked already
        values: dict[str, Any] = {"attempts": attempts, "lease_owner": None, "lease_until": None,
                                  "last_error": (outcome.error or None) and outcome.error[:240],
                                  "tracked": job.tracked}
        status = outcome.status
        if status == "retry" and attempts >= settings.max_attempts:
            status, values["reason"] = "failed", "retries_exhausted"
        if status == "failed":
            values |= {"status": "failed", "next_attempt_at": None}
            values.setdefault("reason", "refused")
        else:
            values["next_attempt_at"] = now + timedelta(seconds=backoff(attempts, settings, rng))
        if rowcount(session.execute(update(table).where(*where).values(**values), execution_options=SYNC)):
            counts[status] += 1
    if sent_events:
        session.execute(insert(table_of(events.Event)), sent_events)
    return counts


def release(session: Session, owner: str, jobs: list[Job]) -> None:
    """Give back claimed messages that were not sent (the worker is stopping, or its lease is running out)."""
    for job in jobs:
        session.execute(update(CampaignMessage).where(
            CampaignMessage.campaign_id == job.campaign_id, CampaignMessage.member_id == job.member_id,
            CampaignMessage.lease_owner == owner).values(lease_owner=None, lease_until=None), execution_options=SYNC)
