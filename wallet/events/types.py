"""The event types of API.md, the one channel list, each type's ``data`` schema and the personal-data guard."""
from __future__ import annotations

import re
from typing import Any

CHANNELS = ("app", "till", "web", "console", "api", "job", "import")

# Keys that name personal data: refused anywhere in an event's data, so the log can stay append-only after an
# erasure (an erased member leaves ids and amounts behind, nothing that names or locates them).
PERSONAL_KEYS = frozenset({
    "name", "first_name", "last_name", "full_name", "display_name", "email", "email_address", "phone",
    "phone_number", "mobile", "birthday", "birth_date", "date_of_birth", "dob", "lat", "lon", "lng", "latitude",
    "longitude", "coordinates", "location", "address", "street", "postcode", "zip", "ip", "ip_address",
    "password", "password_hash", "handle", "username", "gender", "city",
})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_ID = {"type": "string", "maxLength": 64}
_IDS = {"type": "array", "items": _ID}
_POINTS = {"type": "integer", "format": "int64"}
_MONEY = {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "example": "120.50"}
_CODE = {"type": "string", "maxLength": 64}
_TIME = {"type": "string", "format": "date-time"}
_BOOL = {"type": "boolean"}
_NULLABLE_ID = {"type": ["string", "null"], "maxLength": 64}
_INT: dict[str, Any] = {"type": "integer"}


def _one_of(*values: str) -> dict[str, Any]:
    """A code from a fixed set (documented as an enum; :func:`check` checks the JSON type only). The sets are the
    domain's own, written out here because this module is imported by the modules that hold them
    (tests/api/test_contract.py holds them equal)."""
    return {"type": "string", "enum": list(values)}


_PURPOSE = _one_of("marketing_email", "marketing_sms", "marketing_push", "profiling", "social_data")  # consents.PURPOSES
_CONSENT_SOURCE = _one_of("enrolment", "profile", "unsubscribe", "migration", "staff")  # consents.SOURCES
_TRIGGER = _one_of("purchase", "check_in", "scan", "enrolment", "birthday", "inactivity", "referral", "data_shared",
                   "profile_completed")  # rules.TRIGGERS
_REFUSAL = _one_of("too_far_from_store", "location_inaccurate", "check_in_cooldown", "store_inactive",
                   "impossible_travel")  # instore's refusals
_TIER_REASON = _one_of("qualified", "review_up", "review_down", "status_match", "tier_removed")
_MEDIUM = _one_of("email", "sms", "push")  # campaigns.CHANNELS


def _schema(description: str, required: tuple[str, ...], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties, "required": list(required),
            "additionalProperties": False}


# One schema per type: ids, codes, amounts and points only. The OpenAPI document publishes them (api/views/events).
DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "member.enrolled": _schema("A member joined; their card was issued.", ("card_id",),
                               card_id=_ID, referred_by=_NULLABLE_ID, referral_code=_CODE),
    "member.updated": _schema("A member's profile or preferences changed: which fields, never their values.",
                              ("fields",), fields={"type": "array", "items": _CODE}),
    "member.erased": _schema("A member's personal data was erased; ids and amounts remain.", (),
                             requested_by={"type": "string", "enum": ["member", "admin"]},
                             points_forfeited=_POINTS),
    "card.blocked": _schema("A member's card was blocked: its number, QR codes and pass codes are refused at the till.",
                            ("card_id",), card_id=_ID),
    "card.replaced": _schema("A member's card was blocked and a new one issued.", ("card_id", "new_card_id"),
                             card_id=_ID, new_card_id=_ID),
    "consent.changed": _schema("A consent was given or withdrawn.", ("consent", "granted"),
                               consent=_PURPOSE, granted=_BOOL, source=_CONSENT_SOURCE, text_version=_CODE),
    "purchase.recorded": _schema(
        "A receipt was counted at the till. The purchase's one event: it carries the points it earned and the rules' "
        "grants (`rewards`), which write no `points.earned` or `reward.granted` events of their own.",
        ("purchase_id", "amount", "currency"),
        purchase_id=_ID, receipt_id=_CODE, amount=_MONEY, currency=_CODE, points_awarded=_POINTS,
        points_credited=_POINTS,
        item_count={"type": "integer"},
        rewards={"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["rule_id", "kind", "points", "pending", "surprise"],
            "properties": {"rule_id": _ID, "grant_id": _NULLABLE_ID, "points": _POINTS, "entry_id": _NULLABLE_ID,
                           "kind": {"type": "string", "enum": ["rule", "benefit"]}, "pending": _BOOL,
                           "coupon_id": _NULLABLE_ID, "surprise": _BOOL}}}),
    "purchase.refunded": _schema("A purchase was refunded; what it earned was taken back.", ("purchase_id",),
                                 purchase_id=_ID, points_reversed=_POINTS, points_not_reversed=_POINTS,
                                 coupons_voided=_IDS, benefit_uses_returned={"type": "integer"},
                                 refund_id=_CODE, amount=_MONEY, points_debt=_POINTS, partial=_BOOL,
                                 rewards_taken_back=_IDS),
    "points.earned": _schema("Points were credited (a purchase's credit is in its `purchase.recorded`).", ("entry_id", "points", "balance_after"),
                             entry_id=_ID, points=_POINTS, reason=_CODE, source=_CODE, balance_after=_POINTS,
                             expires_at={"type": ["string", "null"], "format": "date-time"},
                             pending=_BOOL),
    "points.spent": _schema("Points were spent.", ("entry_id", "points", "balance_after"),
                            entry_id=_ID, points=_POINTS, reason=_CODE, source=_CODE, balance_after=_POINTS),
    "points.expired": _schema("Points of lots past their date expired.", ("entry_id", "points", "balance_after"),
                              entry_id=_ID, points=_POINTS, balance_after=_POINTS),
    "points.adjusted": _schema("Staff credited or debited points by hand, or a movement was reversed.",
                               ("entry_id", "points", "balance_after"), entry_id=_ID, points=_POINTS,
                               kind=_one_of("adjust", "reverse"), reverses=_NULLABLE_ID, balance_after=_POINTS),
    "coupon.issued": _schema("A coupon was issued (claimed, given by a rule or by staff).", ("coupon_id", "offer_id"),
                             coupon_id=_ID, offer_id=_ID, source=_CODE, points_cost=_POINTS, batch=_CODE,
                             expires_at=_TIME),
    "coupon.voided": _schema("A coupon not yet used was cancelled (by staff, or with the purchase that earned it).",
                             ("coupon_id", "offer_id"), coupon_id=_ID, offer_id=_ID, points_refunded=_POINTS),
    "coupon.redemption_rolled_back": _schema("A redemption was undone at the till: the coupon can be used again.",
                                             ("coupon_id", "redemption_id"), coupon_id=_ID, redemption_id=_ID),
    "coupon.redeemed": _schema("A coupon was redeemed at the till.", ("coupon_id", "offer_id"),
                               coupon_id=_ID, offer_id=_ID, redemption_id=_ID, receipt_id=_CODE),
    "check_in.recorded": _schema("A check-in in a store was accepted (coordinates are never recorded here).",
                                 ("check_in_id",), check_in_id=_ID, points_awarded=_POINTS),
    "check_in.refused": _schema("A check-in was refused and kept for review: why, never where.",
                                ("check_in_id", "reason"), check_in_id=_ID, reason=_REFUSAL),
    "scan.recorded": _schema("A member scanned a product.", ("scan_id", "product_id"),
                             scan_id=_ID, product_id=_ID, barcode=_CODE, first_scan=_BOOL, points_awarded=_POINTS),
    "reward.granted": _schema("A rule granted a reward (surprise and delight included) for anything but a "
                              "purchase (a purchase's grants are in its `purchase.recorded`).", ("grant_id", "rule_id"),
                              grant_id=_ID, rule_id=_ID, trigger=_TRIGGER, points=_POINTS, coupon_id=_NULLABLE_ID,
                              surprise=_BOOL),
    "tier.changed": _schema("A member moved to another tier (reason: qualified, review_up, review_down, status_match, "
                            "tier_removed); change_id names the history row.", ("to",),
                            **{"from": _CODE, "to": _CODE, "reason": _TIER_REASON, "change_id": _ID, "rank": _INT}),
    "referral.qualified": _schema("A referral qualified (the friend's first purchase): both sides earn.",
                                  ("referral_id",), referral_id=_ID, referrer_id=_ID, referred_id=_ID,
                                  purchase_id=_ID, points=_POINTS),
    "message.sent": _schema("A message went out on a member's channel.", ("message_id",),
                            message_id={"type": "string", "maxLength": 80}, campaign_id=_NULLABLE_ID, medium=_MEDIUM,
                            template=_CODE, coupon_id=_NULLABLE_ID, attempts={"type": "integer"}),
    "message.opened": _schema("A tracked message was opened for the first time (source: pixel, an email's open "
                              "pixel loaded; click, a link followed; app, the app's report of a push).",
                              ("message_id", "source"), message_id={"type": "string", "maxLength": 80},
                              campaign_id=_NULLABLE_ID, medium=_MEDIUM, source=_one_of("pixel", "click", "app")),
    "message.clicked": _schema("A tracked message's link was followed for the first time (link: its index in "
                               "the message).", ("message_id", "link"), message_id={"type": "string", "maxLength": 80},
                               campaign_id=_NULLABLE_ID, medium=_MEDIUM, link=_INT),
    "contest.drawn": _schema("A contest's draw was made.", ("contest_id",),
                             contest_id=_ID, winners=_IDS, proof=_CODE),
    "contest.entered": _schema("A member took their free entry in a contest.", ("contest_id", "entry_id"),
                               contest_id=_ID, entry_id=_ID),
    "contest.won": _schema("A member won a contest's draw (and the prize offer's coupon, when it could be issued).",
                           ("contest_id",), contest_id=_ID, coupon_id=_NULLABLE_ID),
}
TYPES = tuple(DATA_SCHEMAS)

_JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict, "null": type(None)}


def _personal(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in PERSONAL_KEYS:
                found.append(where)
            found += _personal(item, where)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _personal(item, f"{path}[{i}]")]
    if isinstance(value, str) and _EMAIL.fullmatch(value.strip()):
        return [path or "data"]
    return []


def _type_ok(value: Any, spec: dict[str, Any]) -> bool:
    kinds = spec.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    for kind in kinds:
        expected = _JSON_TYPES[kind]
        if isinstance(value, bool) and kind == "integer":
            continue  # bool is an int in Python, not in JSON
        if isinstance(value, expected):
            return True
    return not kinds


def till_actor(cashier_id: str | None) -> str:
    """Who acted at a till: the signed-in cashier (``staff:<id>``), or ``till`` when none is known."""
    return f"staff:{cashier_id}" if cashier_id else "till"


def channel_of(channel: str | None, default: str) -> str:
    """An event's channel: the one a use case was told, if it is one of the list; else where such a change comes
    from (``default``). Rows older than the list carry other words ("rule", "bulk", "system")."""
    return channel if channel in CHANNELS else default


def check(type_: str, channel: str, data: dict[str, Any]) -> None:
    """Refuse (ValueError) an unknown type or channel, data off its type's schema, or any personal data in it."""
    schema = DATA_SCHEMAS.get(type_)
    if schema is None:
        raise ValueError(f"unknown event type {type_!r}; the types are listed in wallet.events.TYPES")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    if not isinstance(data, dict):
        raise ValueError("an event's data is a dict")
    personal = _personal(data, "")
    if personal:
        raise ValueError(f"{type_} data must not carry personal data: {', '.join(personal)}")
    unknown = sorted(set(data) - set(schema["properties"]))
    if unknown:
        raise ValueError(f"{type_} data has no fields {unknown}; add them to DATA_SCHEMAS first")
    missing = [key for key in schema["required"] if key not in data]
    if missing:
        raise ValueError(f"{type_} data needs {missing}")
    wrong = [key for key, value in data.items() if not _type_ok(value, schema["properties"][key])]
    if wrong:
        raise ValueError(f"{type_} data has values of the wrong JSON type: {wrong}")
