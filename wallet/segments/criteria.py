"""The criteria language and its field catalogue: what a marketer may write, checked before anything runs.

A criteria tree nests ``{"all": [...]}``, ``{"any": [...]}`` and ``{"not": {...}}`` around conditions
``{"field", "op", "value"}`` with ``op`` in ``= != > >= < <= in`` (``in`` takes a list). :func:`validate` answers
the tree in its stored form (values parsed: decimals as strings, cities trimmed) or raises
:class:`~wallet.errors.Invalid` whose ``errors`` key is the path of what is wrong (``criteria.all[2].op``) and
whose ``code`` says what: ``invalid_criteria`` (the shape), ``unknown_field``, ``invalid_operator``,
``invalid_value``, ``criteria_too_deep``, ``criteria_too_large``.

Every comparison with null is false (``days_since_last_purchase`` of a member who never bought, the ``age`` of a
member with no birthday, an unset ``city``), and ``not`` of a false comparison is true: logic has two values here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import Invalid
from ..members import CHANNELS, GENDERS

OPS = ("=", "!=", ">", ">=", "<", "<=", "in")
ORDERED = OPS
EQUALITY = ("=", "!=", "in")
MAX_DEPTH = 10  # nesting of all/any/not
MAX_CONDITIONS = 100
MAX_IN = 100  # values in one `in`
MAX_INT = 2 ** 53 - 1
CONSENT_PURPOSES = ("marketing_email", "marketing_sms", "marketing_push", "profiling", "social_data")
INFLUENCE = ("champion", "affluent", "advocate", "miser")


@dataclass(frozen=True)
class Field:
    """One field a condition may compare: its type (``decimal``, ``integer``, ``string``, ``enum``, ``boolean``,
    ``tier``), where it comes from, what null means, and the operators it takes."""

    name: str
    type: str
    source: str
    null: str
    ops: tuple[str, ...] = ORDERED
    choices: tuple[str, ...] = ()


def _windowed(name: str, days: int, what: str, kind: str = "decimal") -> Field:
    return Field(name, kind, f"{what} over the last {days} days", "never: 0 when there were none")


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("tier", "tier", "the member's tier code (members.tier); compared by the tiers' ranks where tiers have "
          "ranks, otherwise only = != in", "never", EQUALITY),
    _windowed("spend_30d", 30, "the member's completed purchases' amounts (decimal string)"),
    _windowed("spend_90d", 90, "the member's completed purchases' amounts (decimal string)"),
    _windowed("spend_365d", 365, "the member's completed purchases' amounts (decimal string)"),
    _windowed("purchases_90d", 90, "the number of the member's completed purchases", "integer"),
    _windowed("purchases_365d", 365, "the number of the member's completed purchases", "integer"),
    _windowed("visits_90d", 90, "the number of the member's accepted check-ins", "integer"),
    Field("days_since_last_purchase", "integer", "whole days since the member's last completed purchase",
          "the member never bought: every comparison is false"),
    Field("points_balance", "integer", "the member's spendable points (balances.points)", "never"),
    Field("age", "integer", "whole years since the member's birthday", "no birthday given: every comparison is false"),
    Field("gender", "enum", "the member's profile", "not given: every comparison is false", EQUALITY, GENDERS),
    Field("city", "string", "the member's profile, compared ignoring case and surrounding spaces",
          "not given: every comparison is false", EQUALITY),
    Field("enrolled_days", "integer", "whole days since the member enrolled", "never"),
    Field("referrals", "integer", "friends the member referred (ever)", "never: 0"),
    Field("referral_value", "decimal", "the referral value over LOYALTY_INFLUENCE_WINDOW_DAYS: friends' spend plus "
          "LOYALTY_INFLUENCE_SECOND_DEGREE times their friends' spend (wallet.influence)", "never: 0"),
    Field("influence", "enum", "the member's influence quadrant (wallet.influence)", "never", EQUALITY, INFLUENCE),
    *(Field(f"preferences.{c}", "boolean", f"the member's {c} channel preference",
            "not set: the default (email and push on, the others off)", ("=", "!=")) for c in CHANNELS),
    *(Field(f"consents.{p}", "boolean", f"the member's {p} consent", "never given: false", ("=", "!="))
      for p in CONSENT_PURPOSES),
)}
SOCIAL_PREFIX = "social."
_SOCIAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# ``social.<attribute>``: any attribute the social profile holds (wallet.social), compared as text.
SOCIAL_FIELD = Field("social.<attribute>", "string", "the member's social profile attribute of that name "
                     "(lower-case letters, digits and _), compared as text ignoring case",
                     "no such attribute, or no social_data consent: every comparison is false", EQUALITY)


def social_field(name: str) -> Field | None:
    """The field a ``social.<attribute>`` name stands for, or None if it is not one."""
    attribute = name[len(SOCIAL_PREFIX):] if name.startswith(SOCIAL_PREFIX) else ""
    return Field(name, "string", SOCIAL_FIELD.source, SOCIAL_FIELD.null, EQUALITY) \
        if _SOCIAL_NAME.match(attribute) else None


def catalogue() -> list[Field]:
    """Every field a condition may name, in the catalogue's order."""
    return [*FIELDS.values(), SOCIAL_FIELD]


class _Check:
    def __init__(self, tiers_ranked: bool) -> None:
        self.conditions = 0
        self.tiers_ranked = tiers_ranked

    def fail(self, path: str, message: str, code: str) -> Invalid:
        return Invalid(f"{path}: {message}", code=code, errors={path: [message]})

    def node(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise self.fail(path, f"Criteria nest at most {MAX_DEPTH} levels of all/any/not.", "criteria_too_deep")
        if not isinstance(node, dict):
            raise self.fail(path, 'Expected {"all": [...]}, {"any": [...]}, {"not": {...}} or '
                                  '{"field", "op", "value"}.', "invalid_criteria")
        keys = set(node)
        if keys in ({"all"}, {"any"}):
            (key,) = keys
            items = node[key]
            if not isinstance(items, list) or (key == "any" and not items):
                raise self.fail(f"{path}.{key}", f"{key} takes a list of criteria" +
                                (" (at least one)." if key == "any" else "."), "invalid_criteria")
            if len(items) > MAX_CONDITIONS:
                raise self.fail(f"{path}.{key}", f"At most {MAX_CONDITIONS} conditions in a segment.",
                                "criteria_too_large")
            return {key: [self.node(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(items)]}
        if keys == {"not"}:
            return {"not": self.node(node["not"], f"{path}.not", depth + 1)}
        if keys == {"field", "op", "value"}:
            self.conditions += 1
            if self.conditions > MAX_CONDITIONS:
                raise self.fail(path, f"At most {MAX_CONDITIONS} conditions in a segment.", "criteria_too_large")
            return self.condition(node, path)
        raise self.fail(path, 'A criterion is one of {"all": [...]}, {"any": [...]}, {"not": {...}} or '
                              '{"field", "op", "value"}; got keys ' + ", ".join(sorted(map(str, keys))[:6]) + ".",
                        "invalid_criteria")

    def condition(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        name, op, value = node["field"], node["op"], node["value"]
        field = (FIELDS.get(name) or social_field(name)) if isinstance(name, str) else None
        if field is None:
            shown = repr(name)[:60]
            hint = (" A social attribute is lower-case letters, digits and _." if isinstance(name, str)
                    and name.startswith(SOCIAL_PREFIX) else " GET /api/v1/admin/segments/fields lists them.")
            raise self.fail(f"{path}.field", f"Unknown field {shown}.{hint}", "unknown_field")
        if not isinstance(op, str) or op not in OPS:
            raise self.fail(f"{path}.op", f"Unknown operator {repr(op)[:20]}; one of {' '.join(OPS)}.",
                            "invalid_operator")
        if op not in field.ops and not (field.type == "tier" and self.tiers_ranked):
            raise self.fail(f"{path}.op", f"{name} takes {' '.join(field.ops)}, not {op}.", "invalid_operator")
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN:
                raise self.fail(f"{path}.value", f"in takes a list of 1 to {MAX_IN} values.", "invalid_value")
            parsed: Any = [self.value(field, v, f"{path}.value[{i}]") for i, v in enumerate(value)]
        else:
            parsed = self.value(field, value, f"{path}.value")
        return {"field": name, "op": op, "value": parsed}

    def value(self, field: Field, value: Any, path: str) -> Any:
        def bad(message: str) -> Invalid:
            return self.fail(path, message, "invalid_value")
        if field.type == "decimal":
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise bad(f'{field.name} compares with a decimal string, e.g. "250.00".')
            try:
                number = Decimal(str(value).strip())
            except (InvalidOperation, ValueError):
                raise bad("Not a decimal number.") from None
            exponent = number.as_tuple().exponent
            if not number.is_finite() or not isinstance(exponent, int) or exponent < -2 or abs(number) >= 10 ** 12:
                raise bad("A decimal with at most two places, below 10^12.")
            return str(number)
        if field.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT:
                raise bad(f"{field.name} compares with a whole number.")
            return value
        if field.type == "boolean":
            if not isinstance(value, bool):
                raise bad(f"{field.name} compares with true or false.")
            return value
        if field.type == "enum":
            if value not in field.choices:
                raise bad(f"{field.name} is one of {', '.join(field.choices)}.")
            return value
        # string and tier
        if not isinstance(value, str) or not value.strip() or len(value) > 80:
            raise bad(f"{field.name} compares with a text of 1 to 80 characters.")
        return " ".join(value.split())


def validate(criteria: Any, path: str = "criteria", *, tiers_ranked: bool = False) -> dict[str, Any]:
    """The criteria tree in its stored form, or Invalid naming the path of what is wrong. ``tiers_ranked``: tiers
    have ranks, so ``tier`` takes > >= < <= too."""
    return _Check(tiers_ranked).node(criteria, path, 1)


def conditions_of(criteria: dict[str, Any]) -> list[dict[str, Any]]:
    """Every condition in a (validated) tree."""
    stack, found = [criteria], []
    while stack:
        node = stack.pop()
        if "field" in node:
            found.append(node)
        else:
            for key in ("all", "any"):
                stack.extend(node.get(key, []))
            if "not" in node:
                stack.append(node["not"])
    return found
