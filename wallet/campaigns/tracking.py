"""Opens and clicks, where the channel allows it and the member agreed to it.

Only a member who gave the ``profiling`` consent (what the club knows of them shapes what it offers them) is
tracked: their email carries an open pixel and its links go through the club's redirect, their SMS's links too,
and the app's report that they opened a push notification counts. Everyone else's links go straight to where they
point, and their messages stay out of the counts (and out of the report's denominator, ``tracked``). The consent is
read again when a click or an open comes in: withdrawn since, the link still works and nothing is recorded.

A tracked link is ``<public URL>/api/v1/m/<campaign>.<member>.<n>.<mac>``: the n-th link of the campaign's message
(``templates.links_in``; a launched campaign's message can't change), signed so it can't be guessed or altered. It
redirects only to that link of that campaign, never to a URL it carries. The pixel is
``.../api/v1/m/<campaign>.<member>.open.<mac>/open.gif``. The first click (a click is an open too) and the first open
are kept on the message's row and announced once (``message.clicked``, ``message.opened``); repeats change nothing.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from .. import consents, events
from ..db import rowcount
from ..errors import NotFound
from ..members import Member
from ..program import Program
from . import templates
from .models import Campaign, CampaignMessage, message_key

PURPOSE = "profiling"  # the consent that tracking needs
OPEN = "open"
_TOKEN = re.compile(r"^(cmp_[0-9A-Z]{26})\.(mem_[0-9A-Za-z_]{1,40})\.(open|0|[1-9][0-9]{0,3})\.([A-Za-z0-9_-]{22})$")
_MESSAGE_ID = re.compile(r"^(cmp_[0-9A-Z]{26})\.(mem_[0-9A-Za-z_]{1,40})$")
SYNC = {"synchronize_session": False}
_AFTER_A_LINK = ".,;:!?)"


class InvalidTrackingLink(NotFound):
    code = "invalid_tracking_link"
    title = "This link is not valid"


class MessageNotFound(NotFound):
    code = "message_not_found"
    title = "No such message"


def tracks(member: Member) -> bool:
    """Whether the member's messages may be tracked (the profiling consent, given and not withdrawn)."""
    return consents.granted(member.consents, PURPOSE)


def _mac(secret: bytes, body: str) -> str:
    key = hmac.new(secret, b"message-tracking", hashlib.sha256).digest()
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]  # 132 bits


def token(program: Program, campaign_id: str, member_id: str, what: str) -> str:
    """``what``: a link's index in the campaign's message, or ``open`` (the pixel)."""
    body = f"{campaign_id}.{member_id}.{what}"
    return f"{body}.{_mac(program.secret, body)}"


def _base(program: Program) -> str:
    return f"{program.public_url.rstrip('/')}/api/v1/m/"


def click_url(program: Program, campaign_id: str, member_id: str, index: int) -> str:
    return _base(program) + token(program, campaign_id, member_id, str(index))


def open_url(program: Program, campaign_id: str, member_id: str) -> str:
    return _base(program) + token(program, campaign_id, member_id, OPEN) + "/open.gif"


def link_to(program: Program, campaign_id: str, member_id: str) -> templates.LinkTo:
    """Where a tracked message's n-th link goes: the club's redirect for it."""
    return lambda index, _url: click_url(program, campaign_id, member_id, index)


@dataclass(frozen=True)
class Mark:
    """What a signed tracking token names: a campaign's message to a member, and one of its links or its pixel."""

    campaign_id: str
    member_id: str
    what: str

    @property
    def index(self) -> int:
        return int(self.what)


def read(program: Program, value: str, *, pixel: bool) -> Mark:
    """The message and link (or pixel) a token names; InvalidTrackingLink for anything this club did not sign (any
    of its keys, for rotation), or a pixel's token given as a link's and the other way round."""
    # Punctuation after a link in a text ("see <link>.") that a mail client or phone took into the link: a MAC's
    # alphabet has none of it, so it can only be that.
    found = _TOKEN.match((value or "").rstrip(_AFTER_A_LINK))
    if not found or (found[3] == OPEN) != pixel:
        raise InvalidTrackingLink("This link is not one the club sent, or it was altered")
    body = f"{found[1]}.{found[2]}.{found[3]}"
    if not any(hmac.compare_digest(_mac(key, body), found[4]) for key in program.qr_keys):
        raise InvalidTrackingLink("This link is not one the club sent, or it was altered")
    return Mark(found[1], found[2], found[3])


def follow(session: Session, program: Program, value: str, *, record: bool = True) -> str:
    """Where a tracked link goes (the link of the campaign's message it names), its first click recorded (unless
    ``record`` is false: a HEAD); the caller commits. InvalidTrackingLink for a token the club did not sign or a
    link the message does not have."""
    mark = read(program, value, pixel=False)
    campaign = session.get(Campaign, mark.campaign_id)
    links = templates.links_in(campaign.body) if campaign is not None else []
    if mark.index >= len(links):
        raise InvalidTrackingLink("This link is not one the club sent")
    if record:
        _record(session, program, campaign, mark.member_id, source="click", link=mark.index)
    return links[mark.index]


def pixel_loaded(session: Session, program: Program, value: str, *, record: bool = True) -> None:
    """An email's open pixel was loaded: its first open recorded (the caller commits)."""
    mark = read(program, value, pixel=True)
    campaign = session.get(Campaign, mark.campaign_id)
    if campaign is None or campaign.channel != "email":
        raise InvalidTrackingLink("This link is not one the club sent")
    if record:
        _record(session, program, campaign, mark.member_id, source="pixel")


def opened_in_app(session: Session, program: Program, member_id: str, message_id: str) -> None:
    """The member's app says they opened a push message (``message_id``: the push's ``id``); the first open is
    recorded if the message is tracked. MessageNotFound for another member's message, one never handed to the push
    gateway, or a message of another channel. The caller commits."""
    found = _MESSAGE_ID.match(message_id or "")
    if not found or found[2] != member_id:
        raise MessageNotFound("You have no such message")
    row = session.get(CampaignMessage, (found[1], member_id))
    campaign = session.get(Campaign, found[1])
    if row is None or campaign is None or row.holdout or row.attempts == 0 or campaign.channel != "push":
        raise MessageNotFound("You have no such push message")
    _record(session, program, campaign, member_id, source="app")


def _record(session: Session, program: Program, campaign: Campaign | None, member_id: str, *, source: str,
            link: int | None = None) -> None:
    """The first open (and, for a click, the first click) of a tracked message, each announced once: conditional
    updates, so two clicks at once record one (on PostgreSQL the second waits for the first's row and then finds
    it done)."""
    if campaign is None:
        return
    member = session.get(Member, member_id)
    if member is None or member.status != "active" or not tracks(member):
        return
    now = program.now()
    table = CampaignMessage
    where = (table.campaign_id == campaign.id, table.member_id == member_id, table.tracked.is_(True))
    key = message_key(campaign.id, member_id)
    channel = "app" if source == "app" else "web"
    actor = f"member:{member_id}"
    data = {"message_id": key, "campaign_id": campaign.id, "medium": campaign.channel}
    if rowcount(session.execute(update(table).where(*where, table.opened_at.is_(None)).values(opened_at=now),
                                execution_options=SYNC)):
        events.emit(session, "message.opened", member_id=member_id, channel=channel, actor=actor, occurred_at=now,
                    data=data | {"source": source})
    if link is not None and rowcount(session.execute(
            update(table).where(*where, table.clicked_at.is_(None)).values(clicked_at=now), execution_options=SYNC)):
        events.emit(session, "message.clicked", member_id=member_id, channel=channel, actor=actor, occurred_at=now,
                    data=data | {"link": link})
