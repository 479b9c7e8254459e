"""Keeping passes up to date, out of the request: the worker turns the event log's balance, tier and coupon
changes into pass updates (:func:`follow_events`), tells registered iPhones over APNs (:func:`push_due`) and
brings saved Google Wallet objects up to date (:func:`sync_google`). Each is a scheduled job's step: it does one
batch and says how much it did. No transaction is open while Apple or Google answers."""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..coupons import Coupon
from ..db import rowcount
from ..events import Event, advance_cursor, claim_cursor, read
from ..members import Card
from ..program import Program
from . import google
from .apns import PushSender
from .content import card_view, coupon_view
from .models import PassDevice, PassRegistration, PassScan, RotatingCodeUse, WalletPass
from .registry import SYNC, changed
from .webservice import forget_device_tokens

log = logging.getLogger("loyalty.passes")

EVENT_CURSOR = "passes"  # the event log reader's name (event_cursors)
CARD_EVENTS = frozenset({"points.earned", "points.spent", "points.expired", "points.adjusted", "tier.changed",
                         "card.blocked", "card.replaced"})  # a blocked or replaced card's pass turns void
COUPON_EVENTS = frozenset({"coupon.redeemed", "coupon.voided", "coupon.redemption_rolled_back"})
# A purchase's points are in its own event (points_awarded), not in a points.earned of their own.
EVENT_TYPES = sorted(CARD_EVENTS | COUPON_EVENTS | {"purchase.recorded", "purchase.refunded", "member.updated",
                                                    "member.erased"})
_PROFILE_FIELDS = {"name", "status", "card", "tier"}  # member.updated fields a pass shows
RETRY_AFTER = 30.0  # seconds a worker waits before trying Apple or Google again after a failure
ROTATING_USES_KEPT = timedelta(minutes=10)  # a rotating code is dead after a minute and a half
SCANS_KEPT = timedelta(days=90)  # static pass code uses, kept for fraud review

_OWNER = f"passes:{socket.gethostname()[:30]}:{os.getpid()}"
_backoff: dict[str, float] = {}  # per process: "apns" / "google" -> monotonic time before which not to try


def apply_event(session: Session, program: Program, event: Event) -> int:
    """The passes an event changes, marked (:func:`wallet.passes.registry.changed`); how many."""
    data, member_id = event.data or {}, event.member_id
    if member_id is None:
        return 0
    if event.type in CARD_EVENTS:
        return changed(session, program, member_id)
    if event.type in COUPON_EVENTS:
        return changed(session, program, member_id, card=False, coupon_ids=[data.get("coupon_id", "")])
    if event.type == "purchase.recorded":
        return changed(session, program, member_id) if data.get("points_awarded") else 0
    if event.type == "purchase.refunded":
        return changed(session, program, member_id, coupon_ids=list(data.get("coupons_voided") or []))
    if event.type == "member.erased":
        return changed(session, program, member_id, all_coupons=True)
    if event.type == "member.updated" and (not data.get("fields") or _PROFILE_FIELDS & set(data["fields"])):
        return changed(session, program, member_id)
    return 0


def follow_events(session: Session, program: Program, *, batch: int = 500) -> int:
    """Read the next events that change what passes show and mark those passes, in one transaction with the
    reader's cursor (the caller commits): a crash re-reads them, and marking twice is harmless. How many events."""
    now = program.now()
    claimed = claim_cursor(session, EVENT_CURSOR, _OWNER, now, timedelta(minutes=5))
    if claimed is None:
        return 0  # another worker is on it
    events = read(session, claimed.after, limit=batch, types=EVENT_TYPES)
    for event in events:
        apply_event(session, program, event)
    advance_cursor(session, claimed, events[-1].cursor if events else claimed.after, release=True, now=now)
    return len(events)


def _waiting(what: str) -> bool:
    return _backoff.get(what, 0.0) > time.monotonic()


def _wait(what: str) -> None:
    _backoff[what] = time.monotonic() + RETRY_AFTER


def push_due(session: Session, program: Program, sender: PushSender, *, batch: int = 500) -> int:
    """Tell the devices registered for changed passes (one empty push per device, whatever number of its passes
    changed). A pass stays due while one of its devices could not be reached; the worker tries again after
    ``RETRY_AFTER``. Devices whose token APNs calls dead are forgotten. How many passes are done."""
    settings = program.apple_wallet
    if settings is None or _waiting("apns"):
        return 0
    due = session.execute(select(WalletPass.serial, WalletPass.modified).where(WalletPass.push_due.is_(True))
                          .limit(batch)).all()
    if not due:
        return 0
    pairs = session.execute(select(PassRegistration.serial, PassDevice.push_token)
                            .join(PassDevice, PassDevice.id == PassRegistration.device_id)
                            .where(PassRegistration.serial.in_([serial for serial, _ in due]))).all()
    session.commit()  # nothing held while APNs answers
    tokens = sorted({token for _, token in pairs})
    outcomes = sender.send(settings.pass_type_id, tokens) if tokens else {}
    unreached = {serial for serial, token in pairs if outcomes.get(token, "retry") == "retry"}
    forget_device_tokens(session, [token for token, outcome in outcomes.items() if outcome == "gone"])
    done = 0
    for serial, modified in due:
        if serial not in unreached:
            # Only the version that was announced: a change made meanwhile stays due.
            done += rowcount(session.execute(update(WalletPass).where(WalletPass.serial == serial,
                                                                      WalletPass.modified == modified)
                                             .values(push_due=False), execution_options=SYNC))
    if unreached:
        _wait("apns")
        log.warning("APNs: %d passes' devices not reached; trying again in %.0f s", len(unreached), RETRY_AFTER)
    return done


_classes_sent: set[str] = set()  # per process: Google classes already brought up to date


def _google_calls(session: Session, program: Program, row: WalletPass) -> list[tuple[str, dict[str, Any]]]:
    settings = program.google_wallet
    assert settings is not None
    if row.kind == "card":
        card = session.get(Card, row.serial)
        if card is None:
            return []
        return [("loyaltyClass", google.loyalty_class(program, settings)),
                ("loyaltyObject", google.loyalty_object(program, settings, card_view(session, program, card)))]
    coupon = session.get(Coupon, row.serial)
    if coupon is None:
        return []
    view = coupon_view(program, coupon)
    return [("offerClass", google.offer_class(program, settings, view)),
            ("offerObject", google.offer_object(program, settings, view))]


def sync_google(session: Session, program: Program, client: google.WalletApi, *, batch: int = 50) -> int:
    """Bring the Google Wallet objects of changed cards and coupons up to date (inserted if the member has not
    saved them yet, so a later save shows today's state). How many are done."""
    if program.google_wallet is None or _waiting("google"):
        return 0
    rows = list(session.scalars(select(WalletPass).where(WalletPass.google_due.is_(True)).limit(batch)))
    if not rows:
        return 0
    work = [(row.serial, row.modified, _google_calls(session, program, row)) for row in rows]
    session.commit()  # nothing held while Google answers
    done, failed = [], 0
    for serial, modified, calls in work:
        try:
            for resource, body in calls:
                if resource.endswith("Class"):
                    if body["id"] in _classes_sent:
                        continue
                    client.upsert(resource, body)
                    _classes_sent.add(body["id"])
                else:
                    client.upsert(resource, body)
            done.append((serial, modified))
        except Exception as error:  # tried again later; one object's failure does not hold the others
            failed += 1
            log.warning("Google Wallet update of %s failed: %s", serial, error)
    for serial, modified in done:
        session.execute(update(WalletPass).where(WalletPass.serial == serial, WalletPass.modified == modified)
                        .values(google_due=False), execution_options=SYNC)
    if failed:
        _wait("google")
    return len(done)


def purge(session: Session, program: Program) -> int:
    """Forget rotating-code uses past their use (minutes) and static pass code scans past fraud review (90 days)."""
    now = program.now()
    gone = rowcount(session.execute(delete(RotatingCodeUse).where(RotatingCodeUse.created_at < now - ROTATING_USES_KEPT)))
    gone += rowcount(session.execute(delete(PassScan).where(PassScan.at < now - SCANS_KEPT)))
    return gone
