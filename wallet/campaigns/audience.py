"""Who a campaign reaches: the audience fixed at launch by one INSERT ... SELECT (members of the segment who are
active and have both the channel's preference and its purpose's consent), and a random holdout drawn in SQL.

Each member's draw is the first 60 bits of ``md5(campaign seed || member id)`` (PostgreSQL's ``md5``; on SQLite the
same function registered on the connection), stored with the row; a member whose draw is below
``holdout_percent / 100 * 2^60`` is held out: each member with that probability, independently (a Bernoulli
assignment, as experimentation platforms hash users into groups), so the holdout is that share of the audience in
expectation, not to the member. No sort of the audience is needed, which keeps a million-member launch one pass.
Anyone with the seed can recompute who was held out."""
from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import ColumnElement, Select, case, cast, func, insert, literal, select, true
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger

from .. import segments
from ..consents import PURPOSE_OF_CHANNEL
from ..db import on_postgres, table_of
from ..errors import Conflict, Invalid, NotFound
from ..members import Member
from ..program import Program
from .models import Campaign, CampaignMessage

# API.md: email and push are on unless the member turned them off; sms is off until turned on.
PREFERENCE_DEFAULTS = {"email": True, "sms": False, "push": True}


class UnknownSegment(Invalid):
    code = "unknown_segment"
    title = "No such segment"


def check_segment(session: Session, segment_id: str) -> None:
    """Invalid (422 naming ``segment_id``) unless it names a segment."""
    if session.get(segments.Segment, segment_id) is None:
        raise UnknownSegment("The campaign names a segment that doesn't exist",
                             errors={"segment_id": ["No such segment."]})


def draw(seed: str, member_id: str) -> int:
    """A member's holdout draw for a campaign (0 to 2^60 - 1), as the SQL computes it."""
    return int(hashlib.md5((seed + member_id).encode(), usedforsecurity=False).hexdigest()[:15], 16)


def threshold(percent: int) -> int:
    """Draws below this are held out: each member with probability ``percent`` / 100."""
    return (percent << 60) // 100


def _draw_sql(session: Session, seed: str, member_id: ColumnElement[str]) -> ColumnElement[int]:
    if on_postgres(session):
        hexed = literal("x") + func.substr(func.md5(literal(seed) + member_id), 1, 15)
        return cast(cast(hexed, BIT(60)), BigInteger)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    raw.create_function("loyalty_draw", 2, draw, deterministic=True)
    return func.loyalty_draw(literal(seed), member_id, type_=BigInteger)


def audience_select(session: Session, campaign: Campaign) -> Select[Any]:
    """The ids of the members a campaign reaches now: in its segment (every member when it has none), active (not
    closed or erased), with the channel's preference on and its purpose's consent given."""
    channel = campaign.channel
    preference = func.coalesce(Member.preferences[channel].as_boolean(), PREFERENCE_DEFAULTS[channel])
    consent = func.coalesce(Member.consents[PURPOSE_OF_CHANNEL[channel]]["granted"].as_boolean(), False)
    audience = select(Member.id).where(Member.status == "active", preference.is_(true()), consent.is_(true()))
    if campaign.segment_id is not None:
        check_segment(session, campaign.segment_id)
        audience = audience.where(Member.id.in_(segments.member_ids(session, campaign.segment_id)))
    return audience


def launch(session: Session, program: Program, campaign_id: str, *, actor: str) -> Campaign:
    """Fix the audience now (one statement), hold each member out with probability ``holdout_percent`` / 100 (their
    draw), and make every treated member's message due at ``send_at`` (or now). Launching twice is 409."""
    campaign = session.scalar(select(Campaign).where(Campaign.id == campaign_id).with_for_update()
                              .execution_options(populate_existing=True))
    if campaign is None:
        raise NotFound("No such campaign", code="campaign_not_found")
    if campaign.status != "draft":
        raise Conflict(f"This campaign is {campaign.status} already", code="campaign_already_launched")
    now = program.now()
    if campaign.send_at is not None and campaign.send_at <= now:
        campaign.send_at = None  # a send time that has passed while it was a draft: send now
    due = campaign.send_at or now
    members = audience_select(session, campaign).subquery()
    member_id = list(members.c)[0]
    draw_of = _draw_sql(session, campaign.seed, member_id)
    drawn = select(member_id.label("member_id"), draw_of.label("draw")).subquery()
    held = drawn.c.draw < threshold(campaign.holdout_percent)
    table = table_of(CampaignMessage)
    # In member order: the rows' keys then go into the primary key and the member index as appends, not at random
    # (random inserts made a million-member launch 10 times slower).
    rows = (select(literal(campaign.id), drawn.c.member_id, held, drawn.c.draw,
                   case((held, "holdout"), else_="pending"), literal(0),
                   case((held, None), else_=literal(due, table.c.next_attempt_at.type)))
            .order_by(drawn.c.member_id))
    session.execute(insert(table).from_select(
        ["campaign_id", "member_id", "holdout", "draw", "status", "attempts", "next_attempt_at"], rows))
    counts = session.execute(select(func.count(), func.coalesce(func.sum(case((table.c.holdout, 1), else_=0)), 0))
                             .where(table.c.campaign_id == campaign.id)).one()
    campaign.audience, campaign.holdout = int(counts[0]), int(counts[1])
    campaign.status, campaign.launched_at, campaign.launched_by, campaign.updated_at = "launched", now, actor[:48], now
    session.flush()
    return campaign


def held_out(session: Session, campaign_id: str) -> Select[Any]:
    return select(CampaignMessage.member_id).where(CampaignMessage.campaign_id == campaign_id,
                                                   CampaignMessage.holdout.is_(True))
