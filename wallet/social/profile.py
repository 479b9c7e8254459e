"""The member's social profile: read, replace, forget; the ``social_data`` consent governs it all.

Nothing is stored without the consent, and withdrawing it (here, through ``DELETE /me/social``, or anywhere else
through :func:`forget`) deletes the networks and attributes. Granting it fires ``data_shared`` once per member
ever (a claimed life event, ``data_shared:<member>``); ``profile_completed`` fires once when the profile fields
the club asks for (``LOYALTY_PROFILE_FIELDS``) are all filled.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import triggers
from ..db import rowcount
from ..errors import Invalid, Rejected
from ..members import Member
from ..program import Program
from .consent import set_share_consent, shares
from .models import (
    ATTRIBUTE_KEY_MAX,
    ATTRIBUTE_VALUE_MAX,
    ATTRIBUTES_MAX,
    HANDLE_MAX,
    NETWORKS,
    SocialAttribute,
    SocialNetwork,
)

PROFILE_FIELDS = ("name", "birthday", "phone", "city")  # LOYALTY_PROFILE_FIELDS' default
_HANDLE = re.compile(r"^[\w.\-]+$")  # letters (any script), digits, _ . -
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def _text_ok(value: str) -> bool:
    return all(unicodedata.category(c)[0] != "C" for c in value)


def validate_profile(networks: Any, attributes: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Networks as ``[(network, handle)]`` and attributes as ``{key: text}``; Invalid naming each bad field.
    A handle may start with ``@`` (dropped); attribute values may be texts, numbers or booleans (kept as text);
    markup is kept as text, never interpreted."""
    errors: dict[str, list[str]] = {}
    out_networks: list[tuple[str, str]] = []
    seen: set[str] = set()
    if not isinstance(networks, list) or len(networks) > len(NETWORKS):
        errors["networks"] = [f"A list of at most {len(NETWORKS)} networks."]
        networks = []
    for i, item in enumerate(networks):
        where = f"networks[{i}]"
        if not isinstance(item, dict) or set(item) != {"network", "handle"}:
            errors[where] = ["{network, handle}."]
            continue
        network, handle = item["network"], item["handle"]
        if network not in NETWORKS:
            errors[f"{where}.network"] = [f"One of {', '.join(NETWORKS)}."]
            continue
        if network in seen:
            errors[f"{where}.network"] = ["Each network once."]
            continue
        seen.add(network)
        handle = unicodedata.normalize("NFKC", handle).strip().removeprefix("@") if isinstance(handle, str) else ""
        if not 1 <= len(handle) <= HANDLE_MAX or not _HANDLE.match(handle):
            errors[f"{where}.handle"] = [f"1 to {HANDLE_MAX} letters, digits, '_', '.' or '-' (an '@' first is "
                                         "dropped)."]
            continue
        out_networks.append((network, handle))
    out_attributes: dict[str, str] = {}
    if not isinstance(attributes, dict) or len(attributes) > ATTRIBUTES_MAX:
        errors["attributes"] = [f"A flat map of at most {ATTRIBUTES_MAX} attributes."]
        attributes = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or len(key) > ATTRIBUTE_KEY_MAX or not _KEY.match(key):
            errors["attributes"] = [f"Keys are 1 to {ATTRIBUTE_KEY_MAX} of a-z, 0-9 and _, starting with a letter."]
            continue
        where = f"attributes.{key}"
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)) and abs(value) < 1e15:
            value = str(value)
        if not isinstance(value, str):
            errors[where] = ["A text, a number or true/false (no lists or maps)."]
            continue
        value = unicodedata.normalize("NFC", value).strip()
        if len(value) > ATTRIBUTE_VALUE_MAX or not _text_ok(value):
            errors[where] = [f"At most {ATTRIBUTE_VALUE_MAX} printable characters."]
            continue
        out_attributes[key] = value
    if errors:
        raise Invalid("The social profile is not valid: " + ", ".join(sorted(errors)), errors=errors)
    return out_networks, out_attributes


def get_profile(session: Session, member: Member) -> dict[str, Any]:
    """``{networks: [{network, handle}], attributes, share_consent}``: empty without the consent."""
    consented = shares(member.consents)
    if not consented:
        return {"networks": [], "attributes": {}, "share_consent": False}
    networks = session.execute(select(SocialNetwork.network, SocialNetwork.handle)
                               .where(SocialNetwork.member_id == member.id).order_by(SocialNetwork.network)).all()
    attributes = session.execute(select(SocialAttribute.key, SocialAttribute.value)
                                 .where(SocialAttribute.member_id == member.id).order_by(SocialAttribute.key)).all()
    return {"networks": [{"network": n, "handle": h} for n, h in networks],
            "attributes": dict(attributes), "share_consent": True}


def forget(session: Session, member_id: str) -> int:
    """Delete the member's social data (the consent was withdrawn); how many rows went."""
    gone = rowcount(session.execute(delete(SocialNetwork).where(SocialNetwork.member_id == member_id)))
    return gone + rowcount(session.execute(delete(SocialAttribute).where(SocialAttribute.member_id == member_id)))


def data_shared(session: Session, program: Program, member_id: str, *, channel: str) -> bool:
    """Fire ``data_shared`` for the member unless it ever fired (True if it fired now)."""
    tally = triggers.fire_once(session, program, trigger="data_shared", member_id=member_id,
                               source=f"data_shared:{member_id}", channel=channel)
    return tally.events == 1


def put_profile(session: Session, program: Program, member: Member, data: dict[str, Any], *,
                channel: str = "app", profile_fields: tuple[str, ...] = PROFILE_FIELDS) -> dict[str, Any]:
    """Replace the member's social profile. ``share_consent`` (when given) grants or withdraws ``social_data``
    first; a profile with networks or attributes needs the consent (422 ``social_consent_required``); withdrawing
    deletes everything."""
    networks, attributes = validate_profile(data.get("networks", []), data.get("attributes", {}))
    now, actor = program.now(), f"member:{member.id}"
    wanted = data.get("share_consent")
    consented = shares(member.consents) if wanted is None else bool(wanted)
    if not consented:
        if networks or attributes:
            raise Rejected("Sharing social data needs the social_data consent (share_consent: true)",
                           code="social_consent_required",
                           errors={"share_consent": ["Must be true to store networks or attributes."]})
        if wanted is False:
            set_share_consent(session, member, False, now=now, channel=channel, actor=actor)
        forget(session, member.id)
        session.flush()
        return get_profile(session, member)
    granted_now = set_share_consent(session, member, True, now=now, channel=channel, actor=actor)
    forget(session, member.id)
    session.add_all([SocialNetwork(member_id=member.id, network=n, handle=h, linked_at=now) for n, h in networks])
    session.add_all([SocialAttribute(member_id=member.id, key=k, value=v) for k, v in attributes.items()])
    session.flush()
    if granted_now:
        data_shared(session, program, member.id, channel=channel)
    check_profile_completed(session, program, member, profile_fields, channel=channel)
    return get_profile(session, member)


def delete_profile(session: Session, program: Program, member: Member, *, channel: str = "app") -> None:
    """Forget the social profile and withdraw the ``social_data`` consent (an import can't bring it back)."""
    set_share_consent(session, member, False, now=program.now(), channel=channel, actor=f"member:{member.id}")
    forget(session, member.id)
    session.flush()


def _filled(session: Session, member: Member, name: str) -> bool:
    if name == "social":
        return shares(member.consents) and session.scalar(
            select(SocialNetwork.network).where(SocialNetwork.member_id == member.id).limit(1)) is not None
    value = getattr(member, name, None) if name in Member.__table__.c else None
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


def check_profile_completed(session: Session, program: Program, member: Member,
                            profile_fields: tuple[str, ...] = PROFILE_FIELDS, *, channel: str = "app") -> bool:
    """Fire ``profile_completed`` once per member ever when every field the club asks for is filled (a member
    column, or ``social``: a linked network); True if it fired now. A field the members table lacks is never
    filled."""
    if not profile_fields or not all(_filled(session, member, f) for f in profile_fields):
        return False
    tally = triggers.fire_once(session, program, trigger="profile_completed", member_id=member.id,
                               source=f"profile_completed:{member.id}", channel=channel)
    return tally.events == 1


def after_member_update(session: Session, program: Program, member: Member, *, shared_before: bool,
                        profile_fields: tuple[str, ...] = PROFILE_FIELDS, channel: str = "app") -> None:
    """What a profile change elsewhere (``PATCH /me``: consents, name, phone...) means here: a withdrawn
    ``social_data`` consent deletes the social data, a new one fires ``data_shared`` (once ever), and a profile
    now complete fires ``profile_completed`` (once ever)."""
    if not shares(member.consents):
        forget(session, member.id)
    elif not shared_before:
        data_shared(session, program, member.id, channel=channel)
    check_profile_completed(session, program, member, profile_fields, channel=channel)
