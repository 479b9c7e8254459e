"""A campaign's report, as API.md defines it: who was reached and held out, what happened to the messages, who
opened and clicked where the channel allows it (among the members tracked: ``tracking``), who responded (bought, or
redeemed the campaign's offer, within ``response_days`` of the send), and the lift over the holdout with its 95%
interval (Newcombe's hybrid score interval for a difference of two proportions)."""
from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from ..coupons import Coupon, Redemption
from ..purchases import Purchase
from .editing import get_campaign
from .models import CampaignMessage

Z95 = 1.959963984540054
# What each channel can count: an email's opens (its pixel, or a click) and clicks, an SMS's clicks (its opens are
# not seen), a push's opens (reported by the app; it has no tracked links).
OPENS = ("email", "push")
CLICKS = ("email", "sms")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """95% interval of p1 - p2 (Newcombe 1998, method 10: the hybrid of the two Wilson intervals)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def report(session: Session, campaign_id: str) -> dict[str, Any]:
    """The report of API.md; a draft's counts are zero, and lift is null without a holdout (or without anyone
    treated)."""
    campaign = get_campaign(session, campaign_id)
    m = CampaignMessage
    out: dict[str, Any] = {"campaign_id": campaign.id, "status": campaign.status, "channel": campaign.channel,
                           "audience": 0, "holdout": 0, "treated": 0, "sent": 0, "delivered": 0, "failed": 0,
                           "suppressed": 0, "cancelled": 0, "pending": 0, "tracked": 0,
                           "opened": 0 if campaign.channel in OPENS else None,
                           "clicked": 0 if campaign.channel in CLICKS else None,
                           "redeemed": 0, "responders": 0, "response_rate": None, "holdout_responders": 0,
                           "holdout_response_rate": None, "lift": None, "lift_ci95": None,
                           "window": None, "suppressed_by": {}}
    if campaign.launched_at is None:
        return out
    for status, n, tried in session.execute(select(m.status, func.count(), func.sum(case((m.attempts > 0, 1),
                                                                                         else_=0)))
                                            .where(m.campaign_id == campaign.id).group_by(m.status)):
        n, tried = int(n), int(tried or 0)
        out["audience"] += n
        if status == "holdout":
            out["holdout"] = n
            continue
        out["sent"] += tried
        if status == "sent":
            out["delivered"] = n
        elif status in ("failed", "suppressed", "cancelled", "pending"):
            out[status] = n
    out["treated"] = out["audience"] - out["holdout"]
    # Delivered messages of tracked members: the denominator of opened and clicked (the others' are not counted).
    tracked, opened, clicked = session.execute(select(
        func.count(), func.sum(case((m.opened_at.is_not(None), 1), else_=0)),
        func.sum(case((m.clicked_at.is_not(None), 1), else_=0)))
        .where(m.campaign_id == campaign.id, m.status == "sent", m.tracked.is_(True))).one()
    out["tracked"] = int(tracked)
    if campaign.channel in OPENS:
        out["opened"] = int(opened or 0)
    if campaign.channel in CLICKS:
        out["clicked"] = int(clicked or 0)
    out["suppressed_by"] = {reason: int(n) for reason, n in session.execute(
        select(m.reason, func.count()).where(m.campaign_id == campaign.id, m.status == "suppressed")
        .group_by(m.reason).order_by(m.reason))}
    start = max(campaign.launched_at, campaign.send_at or campaign.launched_at)
    end = start + timedelta(days=campaign.response_days)
    out["window"] = {"from": start, "to": end}
    bought = exists().where(Purchase.member_id == m.member_id, Purchase.created_at >= start, Purchase.created_at < end,
                            Purchase.status != "refunded")
    responded: ColumnElement[bool] = bought
    if campaign.offer_id:
        redeemed = exists().where(Redemption.member_id == m.member_id, Redemption.offer_id == campaign.offer_id,
                                  Redemption.rolled_back_at.is_(None), Redemption.redeemed_at >= start,
                                  Redemption.redeemed_at < end)
        responded = or_(bought, redeemed)
        out["redeemed"] = int(session.scalar(select(func.count()).select_from(Coupon).where(
            and_(Coupon.offer_id == campaign.offer_id, Coupon.issue_key == f"campaign:{campaign.id}",
                 Coupon.status == "redeemed"))) or 0)
    for holdout, n in session.execute(select(m.holdout, func.count()).where(m.campaign_id == campaign.id, responded)
                                      .group_by(m.holdout)):
        out["holdout_responders" if holdout else "responders"] = int(n)
    if out["treated"]:
        out["response_rate"] = out["responders"] / out["treated"]
    if out["holdout"]:
        out["holdout_response_rate"] = out["holdout_responders"] / out["holdout"]
    if out["treated"] and out["holdout"]:
        out["lift"] = out["response_rate"] - out["holdout_response_rate"]
        out["lift_ci95"] = list(newcombe(out["responders"], out["treated"], out["holdout_responders"], out["holdout"]))
    return out
