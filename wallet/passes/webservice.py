"""Apple's PassKit web service, as Apple's "Wallet Passes Web Service" reference fixes it: devices register and
unregister passes for updates, ask which passes changed since a tag, fetch the latest pass, and send their logs.

Status codes are Apple's (201 new registration, 200 existing, 401 wrong ``ApplePass`` token, 204 nothing
changed, 304 not modified), and so are the bodies: JSON where Apple gives one, otherwise none. A refusal is
:class:`Refused` with its status; the HTTP layer answers it as plain text, never problem+json.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db import on_postgres, rowcount
from ..program import AppleWallet, Program
from . import apple, registry, signing
from .content import card_view_by_serial, coupon_view_by_serial, store_locations
from .models import PassDevice, PassRegistration, WalletPass

log = logging.getLogger("loyalty.passes.device")

MAX_PASSES_PER_DEVICE = 200  # a phone with the card and a good many coupons, of a few members of one family
MAX_DEVICES_PER_PASS = 10  # a member's iPhone, iPad and a few replacements; a pass file passed around stops here
MAX_LOG_MESSAGES = 50
MAX_LOG_LENGTH = 1000
# The tag handed back is held this far behind the clock: a change whose transaction began earlier but committed
# after the answer (or a host whose clock is a little behind) is still newer than the tag. Passes changed within
# this window come again in the next answer; their fetch then answers 304 or the same pass.
TAG_MARGIN_SECONDS = 60

_DEVICE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SERIAL = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_PUSH_TOKEN = re.compile(r"^[0-9A-Fa-f]{16,200}$")  # APNs tokens are hex (64 characters today)


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LatestPass:
    status: int  # 200 or 304
    data: bytes | None
    modified: int


def _settings(program: Program, pass_type_id: str) -> AppleWallet:
    settings = signing.apple(program)  # PassUnavailable: 404 (the HTTP layer says so in plain text)
    if pass_type_id != settings.pass_type_id:
        raise Refused(404, "Unknown pass type")
    return settings


def _check_names(device_id: str | None, serial: str | None) -> None:
    if device_id is not None and not _DEVICE.match(device_id):
        raise Refused(400, "The device library identifier is 1 to 64 letters, digits, dots, dashes or underscores")
    if serial is not None and not _SERIAL.match(serial):
        raise Refused(404, "No such pass")


def _authorize(program: Program, serial: str, authorization: str | None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "ApplePass" or not token or not apple.token_matches(program, serial, token.strip()):
        raise Refused(401, "Authorization: ApplePass <the pass's authenticationToken>")


def _handed_out(session: Session, serial: str) -> WalletPass:
    row = session.get(WalletPass, serial)
    if row is None or not row.apple:
        raise Refused(404, "No such pass")
    return row


def register(session: Session, program: Program, *, device_id: str, pass_type_id: str, serial: str,
             authorization: str | None, body: Any) -> int:
    """A device asks to hear of this pass's updates: 201 registered now, 200 already was (the push token is kept
    up to date either way)."""
    _settings(program, pass_type_id)
    _check_names(device_id, serial)
    _authorize(program, serial, authorization)
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    if not isinstance(push_token, str) or not _PUSH_TOKEN.match(push_token):
        raise Refused(400, "pushToken: the device's APNs token, 16 to 200 hexadecimal characters")
    _handed_out(session, serial)
    now = program.now()
    known = session.get(PassRegistration, (device_id, serial)) is not None
    if not known:
        _refuse_past_caps(session, device_id, serial)  # before writing anything: a refusal costs two counts
    insert = pg_insert if on_postgres(session) else sqlite_insert
    # The device's row, written first, is locked until the end (PostgreSQL): one device's registrations are
    # counted in turn, so the cap holds exactly also when a device registers many passes at once.
    session.execute(insert(PassDevice).values(id=device_id, push_token=push_token, created_at=now, updated_at=now)
                    .on_conflict_do_update(index_elements=["id"], set_={"push_token": push_token, "updated_at": now}))
    if known:
        return 200
    _refuse_past_caps(session, device_id, serial)
    session.add(PassRegistration(device_id=device_id, serial=serial, created_at=now))
    session.flush()
    return 201


def _refuse_past_caps(session: Session, device_id: str, serial: str) -> None:
    held = session.scalar(select(func.count()).select_from(PassRegistration)
                          .where(PassRegistration.device_id == device_id)) or 0
    if held >= MAX_PASSES_PER_DEVICE:
        raise Refused(403, f"This device has registered {MAX_PASSES_PER_DEVICE} passes of this club, the most it "
                           "may; unregister one first")
    devices = session.scalar(select(func.count()).select_from(PassRegistration)
                             .where(PassRegistration.serial == serial)) or 0
    if devices >= MAX_DEVICES_PER_PASS:
        raise Refused(403, f"This pass is registered on {MAX_DEVICES_PER_PASS} devices, the most it may be")


def unregister(session: Session, program: Program, *, device_id: str, pass_type_id: str, serial: str,
               authorization: str | None) -> int:
    """The device no longer wants this pass's updates (the pass was deleted): 200, also when it was not registered.
    A device with no registration left is forgotten."""
    _settings(program, pass_type_id)
    _check_names(device_id, serial)
    _authorize(program, serial, authorization)
    session.execute(delete(PassRegistration).where(PassRegistration.device_id == device_id,
                                                   PassRegistration.serial == serial))
    left = session.scalar(select(func.count()).select_from(PassRegistration)
                          .where(PassRegistration.device_id == device_id))
    if not left:
        session.execute(delete(PassDevice).where(PassDevice.id == device_id))
    return 200


def updated_serials(session: Session, program: Program, *, device_id: str, pass_type_id: str,
                    since: str | None) -> dict[str, Any] | None:
    """``{serialNumbers, lastUpdated}`` of the device's passes changed after the tag ``since`` (all of them without
    one); None (204) when there are none. One index range: the device's registrations, each joined to its pass by
    key, so its cost does not grow with the number of devices."""
    _settings(program, pass_type_id)
    _check_names(device_id, None)
    after = None
    if since:
        if not since.isdigit() or len(since) > 15:
            raise Refused(400, "passesUpdatedSince is a tag this service gave out")
        after = int(since)
    query = (select(WalletPass.serial, WalletPass.modified).join_from(PassRegistration, WalletPass,
                                                                       WalletPass.serial == PassRegistration.serial)
             .where(PassRegistration.device_id == device_id))
    if after is not None:
        query = query.where(WalletPass.modified > after)
    rows = session.execute(query.order_by(WalletPass.serial).limit(MAX_PASSES_PER_DEVICE)).all()
    if not rows:
        return None
    tag = min(max(modified for _, modified in rows), registry.epoch(program) - TAG_MARGIN_SECONDS)
    return {"serialNumbers": [serial for serial, _ in rows], "lastUpdated": str(max(tag, after or 0))}


def latest_pass(session: Session, program: Program, *, pass_type_id: str, serial: str, authorization: str | None,
                if_modified_since: datetime | None) -> LatestPass:
    """The pass as it is now (200, signed), or 304 when it has not changed since ``If-Modified-Since``. A card that
    no longer works comes voided, without a code; an erased member's pass shows nothing personal."""
    settings = _settings(program, pass_type_id)
    _check_names(None, serial)
    _authorize(program, serial, authorization)
    row = _handed_out(session, serial)
    if row.kind == "card":
        content = apple.card_content(program, settings, card_view_by_serial(session, program, serial),
                                     store_locations(session))
    else:
        content = apple.coupon_content(program, settings, coupon_view_by_serial(session, program, serial))
    modified = registry.refresh(session, program, serial, content.digest)
    if if_modified_since is not None and modified <= int(if_modified_since.timestamp()):
        return LatestPass(304, None, modified)
    return LatestPass(200, apple.package(settings, content), modified)


def record_logs(body: Any) -> int:
    """Devices' error messages about the web service, logged (bounded); how many were logged."""
    messages = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise Refused(400, 'The body is {"logs": ["message", ...]}')
    logged = 0
    for message in messages[:MAX_LOG_MESSAGES]:
        if isinstance(message, str):
            log.warning("a device reports: %s", message[:MAX_LOG_LENGTH].replace("\n", " "))
            logged += 1
    return logged


def forget_device_tokens(session: Session, tokens: list[str]) -> int:
    """APNs said these tokens are dead: drop their devices and registrations."""
    if not tokens:
        return 0
    devices = list(session.scalars(select(PassDevice.id).where(PassDevice.push_token.in_(tokens))))
    if not devices:
        return 0
    session.execute(delete(PassRegistration).where(PassRegistration.device_id.in_(devices)))
    done = session.execute(delete(PassDevice).where(PassDevice.id.in_(devices)))
    return rowcount(done)

