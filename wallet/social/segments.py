"""``social.<attribute>`` for segments: the SQL for a member's social attribute.

Only members who share their social data have attributes (withdrawing deletes them); the consent is checked
here again so a row left by mistake is never used.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select

from ..members import Member
from .consent import PURPOSE
from .models import SocialAttribute


def _consented() -> ColumnElement[bool]:
    return func.coalesce(Member.consents[PURPOSE]["granted"].as_boolean(), False)


def social_attribute(attribute: str, member_id: Any = Member.id) -> Any:
    """A correlated scalar subquery: the member's attribute as text (NULL when absent or not shared)."""
    return (select(SocialAttribute.value)
            .where(SocialAttribute.member_id == member_id, SocialAttribute.key == attribute)
            .correlate_except(SocialAttribute).scalar_subquery())


def social_condition(attribute: str, op: str, value: Any) -> ColumnElement[bool]:
    """``social.<attribute> <op> <value>`` as a condition on ``members``: texts compared ignoring case and
    surrounding spaces (``= != in``); a member without the attribute matches no comparison (``!=`` included)."""
    column = func.lower(SocialAttribute.value)
    compared: ColumnElement[bool]
    if op == "in":
        compared = column.in_([str(v).strip().lower() for v in value])
    elif op in ("=", "!="):
        wanted = str(value).strip().lower()
        compared = column == wanted if op == "=" else column != wanted
    else:
        raise ValueError(f"social attributes compare with = != in, not {op}")
    return and_(_consented(), exists().where(SocialAttribute.member_id == Member.id,
                                             SocialAttribute.key == attribute, compared))
