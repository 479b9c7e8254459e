"""Phones in E.164, as imports and members' profiles compare them (``LOYALTY_PHONE_REGION`` for local numbers)."""
from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "IL"
_REGION = [DEFAULT_REGION]


def configure_region(region: str) -> None:
    """``LOYALTY_PHONE_REGION``: the country a number without ``+`` is read in."""
    _REGION[0] = (region or DEFAULT_REGION).upper()


def normalise_phone(raw: str | None, region: str | None = None) -> str | None:
    """``+972541234567`` for ``054-123-4567`` (region IL); None for what is not a possible phone number."""
    region = region or _REGION[0]
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or len(text) > 40:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
