"""Shared marshmallow pieces: the strict base schema, the problem shape, lists with cursors."""
from __future__ import annotations

import base64
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from wallet import passwords
from wallet.clock import iso
from wallet.errors import Invalid


class StrictSchema(Schema):
    """Unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = RAISE


class ListArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


def page_schema(item: type[Schema] | Schema, name: str) -> type[Schema]:
    return Schema.from_dict({"items": fields.List(fields.Nested(item)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type = str) -> Any:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError
        return value
    except (ValueError, TypeError):
        raise Invalid("Not a cursor this API gave out", code="invalid_cursor",
                      errors={"cursor": ["Unknown cursor."]}) from None


def page(items: list, limit: int, cursor_of) -> dict[str, Any]:
    """``items`` was fetched with ``limit + 1``: the extra row says there is a next page."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(cursor_of(items[-1])) if more and items else None}


class Time(fields.AwareDateTime):
    """A time, ISO 8601 in UTC with ``Z`` (the contract's ``2026-11-22T10:00:00Z``): see :func:`wallet.clock.iso`
    (microseconds only when the value has any; another zone is converted to UTC; a naive value is refused, as
    ``UTCDateTime`` refuses one). Read as before: ISO 8601 with ``Z`` or an offset; a time without one is
    refused (422)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso(value)


_OLD_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?\+00:00")


def zulu(value: Any) -> Any:
    """Times kept as strings in stored JSON before the API wrote ``Z`` (a member's consents, a rule's snapshots, a
    grant's event) said ``+00:00``: answer them with ``Z``, as every other time. Anything else is left as it is."""
    if isinstance(value, str):
        return value[:-6] + "Z" if len(value) >= 25 and _OLD_TIME.fullmatch(value) else value
    if isinstance(value, dict):
        return {k: zulu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [zulu(v) for v in value]
    return value


class StoredJSON(fields.Dict):
    """A JSON object from the database, its times (strings) answered with ``Z``: see :func:`zulu`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(zulu(value), attr, obj, **kwargs)


class StoredTime(fields.String):
    """A time kept as a string in stored JSON, answered with ``Z``: see :func:`zulu`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).setdefault("format", "date-time")
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return zulu(super()._serialize(value, attr, obj, **kwargs))


MONEY_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


class Money(fields.Field):
    """A decimal string such as "12.50" (at most two places, non-negative); never a float."""

    def __init__(self, **kwargs):
        # Documented as what it is on the wire, so a generated client keeps it a decimal string, not a float.
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("example", "12.50")
        metadata.setdefault("type", "string")  # apispec adds "null" where None is allowed
        metadata.setdefault("pattern", MONEY_PATTERN)
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError('Send money as a decimal string, e.g. "12.50".')
        try:
            number = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise ValidationError("Not a decimal number.") from None
        if not number.is_finite() or number < 0 or number > Decimal("9999999999.99"):
            raise ValidationError("Must be a non-negative amount below 10 billion.")
        if number.as_tuple().exponent < -2:
            raise ValidationError("At most two decimal places.")
        return number


# A new password's length, checked with the other fields (the domain also refuses common ones: wallet.passwords).
NEW_PASSWORD = validate.Length(passwords.MIN_LENGTH, passwords.MAX_LENGTH)
