"""Offers and coupons (interface stub; the full feature lands with the offers issue)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .errors import NotFound
from .program import Program


def issue_coupon(session: Session, program: Program, *, offer_id: str, member_id: str, idempotency_key: str,
                 source: str | None, actor: str) -> Any:
    """Give a member a coupon of an offer (a rule's reward); None when the offer can't give one now."""
    return None


def coupon_summary(coupon: Any) -> dict[str, Any]:
    return {}


def coupon_for_till(session: Session, program: Program, code: str, store_id: str | None = None) -> dict[str, Any]:
    raise NotFound("No such coupon", code="coupon_not_found")


def wallet_coupons(session: Session, program: Program, member_id: str) -> list[dict[str, Any]]:
    return []
