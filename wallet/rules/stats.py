"""A surprise rule's draws: wins and losses counted, so a marketer sets the real win rate against the odds."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Rule, RuleGrant, RuleLosingDraw


def draw_stats(session: Session, rule: Rule, *, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """Draws won (grants with a draw) and lost (``rule_losing_draws``) in the days given (inclusive), and the
    observed win rate beside the rule's probability. A draw that won but that a cap then refused counts as neither."""
    wins = select(func.count()).select_from(RuleGrant).where(RuleGrant.rule_id == rule.id, RuleGrant.draw.is_not(None))
    losses = select(func.count()).select_from(RuleLosingDraw).where(RuleLosingDraw.rule_id == rule.id)
    if since is not None:
        wins, losses = wins.where(RuleGrant.day >= since), losses.where(RuleLosingDraw.day >= since)
    if until is not None:
        wins, losses = wins.where(RuleGrant.day <= until), losses.where(RuleLosingDraw.day <= until)
    won, lost = session.execute(select(wins.scalar_subquery(), losses.scalar_subquery())).one()
    draws = won + lost
    return {"rule_id": rule.id, "probability": rule.probability, "draws": draws, "wins": won, "losses": lost,
            "win_rate": round(won / draws, 6) if draws else None}
