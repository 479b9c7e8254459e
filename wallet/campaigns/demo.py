"""The demo club's campaign: a few shoppers who consented (and some who did not), and an email campaign with an
offer's coupon, launched with a holdout; its messages wait for the worker (``LOYALTY_SMTP_URL``)."""
from __future__ import annotations

import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import consents as consent_log
from .. import enrolment, members
from ..coupons import Offer
from ..program import Program
from .audience import audience_select, draw, launch, threshold
from .editing import create_campaign
from .models import Campaign

NAME = "Winter coffee week"
# (email, name, consents): who hears from the club, and who does not
SHOPPERS: list[tuple[str, str, dict[str, Any]]] = [
    ("noa@demo.club", "Noa Levi", {"marketing_email": True, "profiling": True}),
    ("avi@demo.club", "Avi Cohen", {"marketing_email": {"granted": True, "text_version": "2026-11"}}),
    ("maya@demo.club", "Maya Katz", {"marketing_email": True, "marketing_sms": True}),
    ("omer@demo.club", "Omer Bar", {"marketing_email": True}),
    ("shira@demo.club", "Shira Adler", {"marketing_email": True, "marketing_push": True}),
    ("itai@demo.club", "Itai Golan", {"marketing_email": True}),
    ("lior@demo.club", "Lior Mizrahi", {"marketing_email": True}),
    ("tamar@demo.club", "Tamar Azulay", {"marketing_email": False}),  # said no
    ("yossi@demo.club", "Yossi Peretz", {}),  # never asked
]
PASSWORD = "demo-shopper-1"


def load_demo(session: Session, program: Program) -> Campaign | None:
    """Create the shoppers and launch the campaign, once (safe to run again)."""
    for email, name, consents in SHOPPERS:
        if not members.email_taken(session, email):
            enrolment.register_member(session, program, email=email, password=PASSWORD, name=name, consents=consents)
        elif consents:  # a shopper another part of the demo enrolled first (the segments' shoppers) answers too
            member = session.scalar(select(members.Member).where(members.Member.email == email))
            consent_log.change(session, member, consents, now=program.now(), channel="app", source="demo",
                               actor="demo")
    session.flush()
    if session.scalar(select(Campaign.id).where(Campaign.name == NAME)) is not None:
        return None
    offer = session.scalar(select(Offer.id).where(Offer.title == "A free coffee on us"))
    campaign = create_campaign(session, program, {
        "name": NAME, "channel": "email", "subject": "{first_name}, a coffee on us this week",
        "body": "Hello {name},\n\nIt's winter coffee week at the club: show this code at the till for a free bag of "
                "our house blend." + (" Your code: {coupon_code}." if offer else "") + "\n\nSee you soon!",
        "offer_id": offer, "holdout_percent": 25, "response_days": 14}, actor="demo")
    # A small club's Bernoulli holdout can come out empty: the demo picks a seed that holds out its quarter.
    ids = list(session.scalars(audience_select(session, campaign)))
    for _ in range(1000):
        if sum(draw(campaign.seed, i) < threshold(25) for i in ids) == len(ids) // 4:
            break
        campaign.seed = os.urandom(16).hex()
    session.flush()
    return launch(session, program, campaign.id, actor="demo")
