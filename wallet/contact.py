"""How and when a member may be contacted: contact rules (timezone, quiet hours, a weekly cap) and push devices."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow, valid_timezone
from .db import Base, id_column
from .errors import Invalid, NotFound

PLATFORMS = ("ios", "android", "web")
MAX_DEVICES = 10  # per member
MAX_PER_WEEK = 100
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class ContactRules:
    """A member's contact rules with the club's defaults filled in: both limits off until the member sets them."""

    timezone: str
    quiet_from: time | None = None
    quiet_to: time | None = None
    max_per_week: int | None = None

    def as_dict(self) -> dict[str, Any]:
        quiet = None if self.quiet_from is None or self.quiet_to is None else {
            "from": self.quiet_from.strftime("%H:%M"), "to": self.quiet_to.strftime("%H:%M")}
        return {"timezone": self.timezone, "quiet_hours": quiet, "max_messages_per_week": self.max_per_week}

    def quiet_until(self, now: datetime) -> datetime | None:
        """If ``now`` falls in the member's quiet hours, when they end (UTC); else None."""
        if self.quiet_from is None or self.quiet_to is None:
            return None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        start, end = self.quiet_from, self.quiet_to
        at = local.time().replace(tzinfo=None)
        if start < end:
            inside = start <= at < end
            end_day = local.date()
        else:  # over midnight: 21:00 to 08:00
            inside = at >= start or at < end
            end_day = local.date() + timedelta(days=1) if at >= start else local.date()
        if not inside:
            return None
        # A wall-clock time that a DST jump skips resolves forward (zoneinfo's fold=0), never before now.
        until = datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)
        return max(until, now + timedelta(seconds=1))


def rules_of(stored: dict[str, Any] | None, default_timezone: str) -> ContactRules:
    """The rules a member set (``members.contact_rules``), with the club's timezone by default."""
    stored = stored or {}
    quiet = stored.get("quiet_hours") or None
    return ContactRules(timezone=stored.get("timezone") or default_timezone,
                        quiet_from=time.fromisoformat(quiet["from"]) if quiet else None,
                        quiet_to=time.fromisoformat(quiet["to"]) if quiet else None,
                        max_per_week=stored.get("max_messages_per_week"))


def validate_rules(changes: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The member's stored contact rules after ``changes`` (a partial ``{timezone, quiet_hours, max_messages_per_week}``;
    null switches a rule off); Invalid naming each bad field."""
    out = dict(current or {})
    errors: dict[str, list[str]] = {}
    unknown = set(changes) - {"timezone", "quiet_hours", "max_messages_per_week"}
    for key in sorted(unknown):
        errors[f"contact_rules.{key}"] = ["Unknown field."]
    if "timezone" in changes:
        zone = changes["timezone"]
        if zone is None:
            out.pop("timezone", None)
        elif not valid_timezone(zone) or len(zone) > 64:
            errors["contact_rules.timezone"] = ["An IANA timezone such as Asia/Jerusalem."]
        else:
            out["timezone"] = zone
    if "quiet_hours" in changes:
        quiet = changes["quiet_hours"]
        if quiet is None:
            out.pop("quiet_hours", None)
        elif (not isinstance(quiet, dict) or set(quiet) != {"from", "to"}
              or not all(isinstance(quiet[k], str) and _HHMM.match(quiet[k]) for k in ("from", "to"))
              or quiet["from"] == quiet["to"]):
            errors["contact_rules.quiet_hours"] = ['{"from": "HH:MM", "to": "HH:MM"}, two different times '
                                                   '(over midnight is fine: 21:00 to 08:00), or null.']
        else:
            out["quiet_hours"] = {"from": quiet["from"], "to": quiet["to"]}
    if "max_messages_per_week" in changes:
        cap = changes["max_messages_per_week"]
        if cap is None:
            out.pop("max_messages_per_week", None)
        elif isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_PER_WEEK:
            errors["contact_rules.max_messages_per_week"] = [f"A whole number from 0 to {MAX_PER_WEEK}, or null."]
        else:
            out["max_messages_per_week"] = cap
    if errors:
        raise Invalid("Some contact rules are not valid: " + ", ".join(sorted(errors)), errors=errors)
    return out


# ------------------------------------------------------------------ push devices


class Device(Base):
    """A phone or browser the member receives push messages on."""

    __tablename__ = "member_devices"
    # A token names one device: registered again by another member (the phone changed hands), it moves to them.
    __table_args__ = (UniqueConstraint("platform", "token"), Index("ix_member_devices_member", "member_id"))

    id: Mapped[str] = id_column("dev")
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    platform: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def register_device(session: Session, member_id: str, *, platform: str, token: str, now: datetime) -> Device:
    """Register a push token for the member (again: the same device, now the member's)."""
    if platform not in PLATFORMS:
        raise Invalid("platform is ios, android or web", errors={"platform": ["One of ios, android, web."]})
    token = token.strip()
    if not 8 <= len(token) <= 512 or not token.isprintable():
        raise Invalid("A push token is 8 to 512 printable characters", errors={"token": ["8 to 512 characters."]})
    device = session.scalar(select(Device).where(Device.platform == platform, Device.token == token)
                            .with_for_update())
    if device is not None:
        device.member_id = member_id
        session.flush()
        return device
    held = session.scalars(select(Device).where(Device.member_id == member_id).order_by(Device.created_at)).all()
    if len(held) >= MAX_DEVICES:  # the oldest goes: a member changes phones, they don't hold eleven
        session.delete(held[0])
    device = Device(member_id=member_id, platform=platform, token=token, created_at=now)
    session.add(device)
    session.flush()
    return device


def remove_device(session: Session, member_id: str, device_id: str) -> None:
    """Forget one of the member's devices; another member's is not found."""
    device = session.get(Device, device_id)
    if device is None or device.member_id != member_id:
        raise NotFound("No such device", code="not_found")
    session.delete(device)
    session.flush()


def devices_of(session: Session, member_id: str) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.member_id == member_id).order_by(Device.created_at)))
