"""Stores: where members check in and tills stand, each with its place, radius, timezone and check-in cool-down."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..clock import valid_timezone
from ..currencies import ISO_4217
from ..errors import Conflict, Invalid, NotFound
from ..program import Program
from .models import Store

STORE_FIELDS = ("code", "name", "address", "lat", "lon", "radius_m", "timezone", "check_in_cooldown_minutes", "active",
                "currency")


STORE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")


RADIUS_M = (10, 10_000)


COOLDOWN_MINUTES = (1, 43_200)  # a minute to thirty days


def number_within(value: Any, low: float, high: float) -> bool:
    """A real number (not a bool) in [low, high]; NaN and infinities are outside any range."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _store_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if "code" in data and not (isinstance(data["code"], str) and STORE_CODE.match(data["code"])):
        errors["code"] = ["1 to 32 capital letters, digits, '-' or '_'."]
    if "name" in data and not (isinstance(data["name"], str) and 1 <= len(data["name"].strip()) <= 120):
        errors["name"] = ["1 to 120 characters."]
    if "address" in data and not (isinstance(data["address"], str) and len(data["address"]) <= 240):
        errors["address"] = ["At most 240 characters."]
    if "lat" in data and not number_within(data["lat"], -90, 90):
        errors["lat"] = ["A latitude from -90 to 90."]
    if "lon" in data and not number_within(data["lon"], -180, 180):
        errors["lon"] = ["A longitude from -180 to 180."]
    if "radius_m" in data and not (isinstance(data["radius_m"], int) and not isinstance(data["radius_m"], bool)
                                   and RADIUS_M[0] <= data["radius_m"] <= RADIUS_M[1]):
        errors["radius_m"] = [f"Whole metres from {RADIUS_M[0]} to {RADIUS_M[1]}."]
    if "timezone" in data and not valid_timezone(data["timezone"]):
        errors["timezone"] = ["An IANA time zone such as Asia/Jerusalem."]
    minutes = data.get("check_in_cooldown_minutes", COOLDOWN_MINUTES[0])
    if not (isinstance(minutes, int) and not isinstance(minutes, bool)
            and COOLDOWN_MINUTES[0] <= minutes <= COOLDOWN_MINUTES[1]):
        errors["check_in_cooldown_minutes"] = [f"Whole minutes from {COOLDOWN_MINUTES[0]} to {COOLDOWN_MINUTES[1]}."]
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = ["true or false."]
    if data.get("currency") is not None and not (isinstance(data["currency"], str)
                                                 and data["currency"].strip().upper() in ISO_4217):
        errors["currency"] = ["An ISO 4217 currency code such as USD (null: the club's currency)."]
    return errors


def _own_currency(program: Program, data: dict[str, Any]) -> None:
    """A store's currency in capitals; the club's own is no currency of the store's (null)."""
    if isinstance(data.get("currency"), str):
        data["currency"] = data["currency"].strip().upper()
        if data["currency"] == program.currency:
            data["currency"] = None


def get_store(session: Session, store_id: str) -> Store:
    """A store that has not been archived, or NotFound."""
    store = session.get(Store, store_id) if isinstance(store_id, str) else None
    if store is None or store.archived_at is not None:
        raise NotFound("No such store", code="store_not_found")
    return store


def store_by_code(session: Session, code: str) -> Store | None:
    return session.scalar(select(Store).where(Store.code == code))


def create_store(session: Session, program: Program, data: dict[str, Any]) -> Store:
    """A new store; its code is unique, its coordinates, radius and time zone are checked."""
    data = {k: v for k, v in data.items() if k in STORE_FIELDS}
    if isinstance(data.get("code"), str):
        data["code"] = data["code"].strip().upper()
    missing = [k for k in ("code", "name", "lat", "lon") if data.get(k) is None]
    errors = _store_problems(data) | {k: ["Required."] for k in missing}
    if errors:
        raise Invalid("The store is not valid", errors=errors)
    _own_currency(program, data)
    if store_by_code(session, data["code"]) is not None:
        raise Conflict(f"A store with the code {data['code']} exists", code="store_code_taken",
                       errors={"code": ["Already taken."]})
    now = program.now()
    store = Store(**data, created_at=now, updated_at=now)
    store.name = store.name.strip()
    session.add(store)
    session.flush()
    return store


def update_store(session: Session, program: Program, store_id: str, changes: dict[str, Any]) -> Store:
    """Change a store; deactivating it stops check-ins, scans and purchases there at once."""
    store = get_store(session, store_id)
    changes = {k: v for k, v in changes.items() if k in STORE_FIELDS}
    if isinstance(changes.get("code"), str):
        changes["code"] = changes["code"].strip().upper()
    errors = _store_problems(changes)
    errors |= {k: ["May not be null."] for k, v in changes.items() if v is None and k != "currency"}
    if errors:
        raise Invalid("The store is not valid", errors=errors)
    _own_currency(program, changes)
    if "code" in changes and changes["code"] != store.code:
        if store_by_code(session, changes["code"]) is not None:
            raise Conflict(f"A store with the code {changes['code']} exists", code="store_code_taken",
                           errors={"code": ["Already taken."]})
    for key, value in changes.items():
        setattr(store, key, value.strip() if key == "name" else value)
    store.updated_at = program.now()
    session.flush()
    return store


def archive_store(session: Session, program: Program, store_id: str) -> None:
    """Retire a store: kept for the history of check-ins and purchases made there, gone from every list."""
    store = get_store(session, store_id)
    store.active = False
    store.archived_at = store.updated_at = program.now()
    session.flush()


def list_stores(session: Session, *, q: str | None = None, active: bool | None = None, limit: int = 50,
                after: str | None = None) -> list[Store]:
    """Stores by id (the cursor), optionally matching ``q`` in code, name or address."""
    query = select(Store).where(Store.archived_at.is_(None))
    if q:
        needle = q.strip().lower()
        query = query.where(or_(func.lower(Store.code).contains(needle, autoescape=True),
                                func.lower(Store.name).contains(needle, autoescape=True),
                                func.lower(Store.address).contains(needle, autoescape=True)))
    if active is not None:
        query = query.where(Store.active.is_(active))
    if after:
        query = query.where(Store.id > after)
    return list(session.scalars(query.order_by(Store.id).limit(limit)))
