"""One-click unsubscribe links (RFC 8058): a token naming the campaign, the member and the channel, signed so it
can't be guessed or altered; using it withdraws that channel's marketing consent (idempotent)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from .. import consents
from ..consents import PURPOSE_OF_CHANNEL
from ..errors import NotFound
from ..members import Member
from ..program import Program

_TOKEN = re.compile(r"^(cmp_[0-9A-Z]{26})\.(mem_[0-9A-Za-z_]{1,40})\.(email|sms|push)\.([A-Za-z0-9_-]{22})$")


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"unsubscribe", hashlib.sha256).digest()


def _mac(secret: bytes, body: str) -> str:
    digest = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]  # 132 bits


def token(program: Program, campaign_id: str, member_id: str, channel: str) -> str:
    body = f"{campaign_id}.{member_id}.{channel}"
    return f"{body}.{_mac(program.secret, body)}"


def url(program: Program, campaign_id: str, member_id: str, channel: str) -> str:
    return f"{program.public_url.rstrip('/')}/api/v1/unsubscribe/{token(program, campaign_id, member_id, channel)}"


@dataclass(frozen=True)
class Link:
    campaign_id: str
    member_id: str
    channel: str

    @property
    def purpose(self) -> str:
        return PURPOSE_OF_CHANNEL[self.channel]


class InvalidLink(NotFound):
    code = "invalid_unsubscribe_link"
    title = "This unsubscribe link is not valid"


def read(program: Program, value: str) -> Link:
    """The link a token names; InvalidLink for anything this club did not sign (any of its keys, for rotation)."""
    found = _TOKEN.match(value or "")
    if not found:
        raise InvalidLink("This unsubscribe link is not one the club sent")
    body = f"{found[1]}.{found[2]}.{found[3]}"
    if not any(hmac.compare_digest(_mac(key, body), found[4]) for key in program.qr_keys):
        raise InvalidLink("This unsubscribe link is not one the club sent")
    return Link(found[1], found[2], found[3])


def member_of(session: Session, link: Link) -> Member:
    """The member a link names, if they are still a member (an erased or closed one: InvalidLink, nothing to do)."""
    return _active(session.get(Member, link.member_id))


def _active(member: Member | None) -> Member:
    if member is None or member.status != "active":
        raise InvalidLink("This link's membership has ended: there is nothing left to unsubscribe from",
                          code="membership_ended")
    return member


def withdraw(session: Session, program: Program, value: str) -> tuple[Link, bool]:
    """Withdraw the marketing consent of the link's channel; ``(link, changed)`` (False: it was withdrawn already)."""
    link = read(program, value)
    member = _active(session.get(Member, link.member_id, with_for_update=True))
    changed = consents.change(session, member, {link.purpose: False}, now=program.now(), channel="web",
                              source="unsubscribe", actor=f"member:{member.id}")
    if changed:
        session.flush()
    return link, bool(changed)
