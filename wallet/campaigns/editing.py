"""Writing campaigns: checked when written (channel, template fields, holdout, send time, offer), changed only as
drafts; a launched campaign can only be cancelled."""
from __future__ import annotations

import os
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..coupons import get_offer
from ..errors import Conflict, Invalid, NotFound
from ..program import Program
from . import audience, templates
from .models import CHANNELS, MAX_HOLDOUT_PERCENT, Campaign, CampaignMessage

FIELDS = ("name", "segment_id", "channel", "subject", "body", "offer_id", "send_at", "holdout_percent",
          "response_days")
MAX_RESPONSE_DAYS = 365


def _check(session: Session, program: Program, data: dict[str, Any]) -> None:
    """Invalid (422, naming the field) for what no campaign may hold."""
    if data["channel"] not in CHANNELS:
        raise Invalid("channel is email, sms or push", errors={"channel": ["One of email, sms, push."]})
    body = data["body"]
    if not isinstance(body, str) or not body.strip():
        raise Invalid("The message needs a body", errors={"message.body": ["Required."]})
    limit = templates.LIMITS[data["channel"]]
    if len(body) > limit:
        raise Invalid(f"A {data['channel']} message body is at most {limit} characters",
                      errors={"message.body": [f"At most {limit} characters."]})
    used = templates.fields_in(body)
    if data["channel"] == "email":
        if not (data.get("subject") or "").strip():
            raise Invalid("An email needs a subject", errors={"message.subject": ["Required for email."]})
    if data.get("subject"):
        if any(c in data["subject"] for c in "\r\n"):
            raise Invalid("A subject is one line", errors={"message.subject": ["One line."]})
        used |= {name for _, name in templates.parse(data["subject"], "message.subject") if name}
    if "coupon_code" in used and not data.get("offer_id"):
        raise Invalid("The message names {coupon_code} but the campaign gives no offer",
                      code="unknown_template_field", errors={"message.body": ["{coupon_code} needs an offer_id."]})
    if data.get("offer_id"):
        try:
            get_offer(session, data["offer_id"])
        except NotFound:
            raise Invalid("No such offer", code="offer_not_found", errors={"offer_id": ["No such offer."]}) from None
    percent = data.get("holdout_percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= MAX_HOLDOUT_PERCENT:
        raise Invalid(f"holdout_percent is a whole number from 0 to {MAX_HOLDOUT_PERCENT}",
                      errors={"holdout_percent": [f"0 to {MAX_HOLDOUT_PERCENT}."]})
    days = data.get("response_days", 14)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RESPONSE_DAYS:
        raise Invalid(f"response_days is 1 to {MAX_RESPONSE_DAYS}",
                      errors={"response_days": [f"1 to {MAX_RESPONSE_DAYS}."]})
    send_at = data.get("send_at")
    if send_at is not None and send_at <= program.now():
        raise Invalid("send_at is in the past; leave it out to send at launch",
                      code="send_at_in_the_past", errors={"send_at": ["Must be in the future."]})
    if data.get("segment_id") is not None:
        audience.check_segment(session, data["segment_id"])


def create_campaign(session: Session, program: Program, data: dict[str, Any], *, actor: str) -> Campaign:
    """A draft campaign."""
    data = {"holdout_percent": 0, "response_days": 14} | {k: v for k, v in data.items() if k in FIELDS}
    _check(session, program, data)
    now = program.now()
    campaign = Campaign(**data, status="draft", seed=os.urandom(16).hex(), created_by=actor[:48], created_at=now,
                        updated_at=now)
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    campaign = session.scalar(query)
    if campaign is None:
        raise NotFound("No such campaign", code="campaign_not_found")
    return campaign


def list_campaigns(session: Session, *, status: str | None = None, before: str | None = None,
                   limit: int = 50) -> list[Campaign]:
    """Campaigns, newest first."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if status:
        query = query.where(Campaign.status == status)
    if before:
        query = query.where(Campaign.id < before)
    return list(session.scalars(query))


def update_campaign(session: Session, program: Program, campaign_id: str, changes: dict[str, Any]) -> Campaign:
    """Change a draft; a launched or cancelled campaign is 409 (make a new one)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    if campaign.status != "draft":
        raise Conflict("A launched campaign can't be changed; cancel it or make a new one",
                       code="campaign_not_draft")
    merged = {k: getattr(campaign, k) for k in FIELDS} | {k: v for k, v in changes.items() if k in FIELDS}
    _check(session, program, merged)
    for key, value in merged.items():
        setattr(campaign, key, value)
    campaign.updated_at = program.now()
    session.flush()
    return campaign


def delete_campaign(session: Session, program: Program, campaign_id: str) -> tuple[Campaign, bool]:
    """Delete a draft (``(campaign, True)``); a launched campaign is cancelled instead: its messages not yet sent
    are not sent, and it stays for its report (``(campaign, False)``)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    if campaign.status == "draft":
        session.delete(campaign)
        session.flush()
        return campaign, True
    if campaign.status == "launched":
        now = program.now()
        session.execute(update(CampaignMessage).where(CampaignMessage.campaign_id == campaign.id,
                                                      CampaignMessage.status == "pending")
                        .values(status="cancelled", reason="campaign_cancelled", next_attempt_at=None),
                        execution_options={"synchronize_session": False})
        campaign.status, campaign.cancelled_at, campaign.updated_at = "cancelled", now, now
        session.flush()
    return campaign, False


def messages_of(session: Session, campaign_id: str, *, status: str | None = None, after: str | None = None,
                limit: int = 50) -> list[CampaignMessage]:
    """A campaign's audience rows in member order (a cursor is the last member id seen)."""
    get_campaign(session, campaign_id)
    query = select(CampaignMessage).where(CampaignMessage.campaign_id == campaign_id)
    if status:
        query = query.where(CampaignMessage.status == status)
    if after:
        query = query.where(CampaignMessage.member_id > after)
    return list(session.scalars(query.order_by(CampaignMessage.member_id).limit(limit)))
