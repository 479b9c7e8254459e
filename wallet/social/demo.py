"""The demo club's social side: the demo member shares a linked profile."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ..members import Member
from ..program import Program
from .consent import shares
from .profile import put_profile


def load_demo(session: Session, program: Program, member: Member) -> None:
    if shares(member.consents):
        return
    put_profile(session, program, member, {
        "networks": [{"network": "instagram", "handle": "dana.demo"}, {"network": "tiktok", "handle": "danademo"}],
        "attributes": {"favourite_drink": "flat white", "followers": 1840, "interests": "coffee, baking"},
        "share_consent": True}, channel="app")
