"""The whole OpenAPI document, walked (issue 18): every operation's errors, every answered schema's ``required``, every
fixed set of values an enum, every object's size ``maxProperties``, every points count int64, every money field a
decimal string, every binary answer with its media type. Each rule names its exceptions, with why.

``tests/contract_check.py`` is the other half: run with it, the suite's answers are checked against this document
(``LOYALTY_CONTRACT_REPORT=... pytest -p tests.contract_check tests/api``)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from api.resource import Resource
from wallet import activity, campaigns, consents, contact, coupons, instore, ledger, members, rules, tiers
from wallet import events as event_log
from wallet.events.types import DATA_SCHEMAS

PROBLEM = {"$ref": "#/components/responses/Problem"}
SCHEMAS = "#/components/schemas/"


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/api/v1/openapi.json").get_json()


def operations(spec) -> Iterator[tuple[str, str, str, dict]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield f"{method} {path}", method, path, operation


def referenced(node: Any, schemas: dict, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith(SCHEMAS) and ref[len(SCHEMAS):] not in found:
            found.add(ref[len(SCHEMAS):])
            referenced(schemas[ref[len(SCHEMAS):]], schemas, found)
        for value in node.values():
            referenced(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            referenced(value, schemas, found)
    return found


def answered_and_sent(spec) -> tuple[set[str], set[str]]:
    schemas = spec["components"]["schemas"]
    answered: set[str] = set()
    sent: set[str] = set()
    for _, _, _, operation in operations(spec):
        referenced(operation.get("requestBody"), schemas, sent)
        for code, response in operation["responses"].items():
            if code.startswith("2"):
                referenced(response, schemas, answered)
    return answered, sent


def walk(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    """Every schema object inside ``node`` (properties, items, anyOf/oneOf/allOf, additionalProperties), with a path:
    ``Schema/property[]/property``; ``{}`` a map's values, ``|0`` an option of anyOf, oneOf or allOf."""
    if not isinstance(node, dict):
        return
    yield where, node
    for name, prop in (node.get("properties") or {}).items():
        yield from walk(prop, f"{where}/{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{where}{{}}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, option in enumerate(node.get(key) or []):
            yield from walk(option, f"{where}|{i}")


def every_schema(spec) -> Iterator[tuple[str, dict]]:
    for name, schema in spec["components"]["schemas"].items():
        yield from walk(schema, name)
    for name, _, _, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            yield from walk(parameter.get("schema"), f"{name} ?{parameter['name']}")
        for media, content in ((operation.get("requestBody") or {}).get("content") or {}).items():
            yield from walk(content.get("schema"), f"{name} <{media}>")
        for code, response in operation["responses"].items():
            for media, content in (response.get("content") or {}).items():
                yield from walk(content.get("schema"), f"{name} {code} <{media}>")


def leaf(where: str) -> str:
    """The name of the property (or query parameter) a path ends at."""
    return re.sub(r"(\[\]|\{\}|\|\d+)+$", "", re.split(r"[/?]", where)[-1]).strip()


def kinds(node: dict) -> set[str]:
    kind = node.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


# ------------------------------------------------------------------------------------------ errors

# Statuses every operation through api.resource.Resource can answer: 409 concurrent_update (a write that lost a
# race, or a database error left after the retries), 422 (the guard refuses NUL and lone surrogates in any query
# string), 429 (every audience has a budget), 500.
EVERYWHERE = {"409", "422", "429", "500"}
# No id in the path, but something named in the body (or the caller's card or pass) may not be there: 404.
FINDS = {
    "post /api/v1/admin/adjustments", "post /api/v1/admin/rules/simulate", "post /api/v1/me/check-ins",
    "post /api/v1/me/scans", "post /api/v1/me/coupons", "post /api/v1/pos/identify", "post /api/v1/pos/purchases",
    "post /api/v1/pos/redemptions", "post /api/v1/pos/redemptions/validate", "get /api/v1/me/card/pass.pkpass",
    "get /api/v1/me/card/google-wallet",
}
# Operations that hash or check a password: beyond LOYALTY_PASSWORD_HASH_CONCURRENCY they wait, then 503 busy.
HASHING = {"post /api/v1/auth/register", "post /api/v1/auth/token", "post /api/v1/me/password",
           "post /api/v1/me/erase", "post /api/v1/admin/staff"}
# The one anonymous operation that answers 401: a wrong password or refresh token.
ANONYMOUS_401 = {"post /api/v1/auth/token"}
# RFC 8058's pages (a plain route, not a Resource) answer a person: their refusals are HTML pages.
UNSUBSCRIBE = {
    "get /api/v1/unsubscribe/{token}": {"404": "text/html", "410": "text/html", "429": PROBLEM, "500": PROBLEM},
    "post /api/v1/unsubscribe/{token}": {"400": "text/html", "404": "text/html", "410": "text/html", "413": PROBLEM,
                                         "429": PROBLEM, "500": PROBLEM},
    # a campaign message's tracked link and open pixel (api.views.tracking): a person follows the link
    "get /api/v1/m/{token}": {"404": "text/html", "429": PROBLEM, "500": PROBLEM},
    "get /api/v1/m/{token}/open.gif": {"404": PROBLEM, "429": PROBLEM, "500": PROBLEM},
}


def _view(app, method: str, path: str):
    for rule in app.url_map.iter_rules():
        openapi = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if openapi == path and method.upper() in rule.methods:
            view = app.view_functions[rule.endpoint]
            return view, getattr(view, "view_class", None)
    raise AssertionError(f"no route for {method} {path}")


def test_each_operation_declares_the_errors_it_can_send_and_no_other(app, spec):
    for name, method, path, operation in operations(spec):
        declared = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
        if name in UNSUBSCRIBE:
            assert {c: r if r == PROBLEM else next(iter(r["content"])) for c, r in declared.items()} == UNSUBSCRIBE[name]
            continue
        view, view_class = _view(app, method, path)
        assert view_class is not None and issubclass(view_class, Resource), name
        roles = getattr(view, "_roles", ()) or getattr(getattr(view_class, method), "_roles", ())
        expected = set(EVERYWHERE)
        if operation.get("security") != [] or name in ANONYMOUS_401:
            expected.add("401")  # no token, an expired or revoked one
        if roles:
            expected.add("403")  # a token of another role (api.auth.roles_required)
        if method in ("post", "put", "patch"):  # the body guard: too large, not JSON, malformed JSON
            expected |= {"413", "415"} if getattr(view_class, "raw_body", False) else {"400", "413", "415"}
        if "{" in path or name in FINDS:
            expected.add("404")
        if name in HASHING:
            expected.add("503")
        assert set(declared) == expected, (name, sorted(set(declared) ^ expected))
        assert all(r == PROBLEM for r in declared.values()), name


def test_a_get_or_delete_never_declares_a_body_error_nor_an_anonymous_one_a_token_error(spec):
    for name, method, _, operation in operations(spec):
        codes = set(operation["responses"])
        if method in ("get", "delete"):
            assert not codes & {"400", "413", "415"}, name
        if operation.get("security") == [] and name not in ANONYMOUS_401:
            assert not codes & {"401", "403"}, name
        if name not in HASHING:
            assert "503" not in codes, name


# ------------------------------------------------------------------------------------------ required

# Fields an answer may leave out, with why. Everything else an answered schema names is in its `required`.
OPTIONAL = {
    ("Kpis", "series"): "only with ?interval=",
}


def test_every_answered_schema_requires_what_it_always_sends(spec):
    schemas = spec["components"]["schemas"]
    answered, sent = answered_and_sent(spec)
    # a schema a client sends has its own required fields: one used both ways could not say what an answer carries
    assert not answered & sent, sorted(answered & sent)
    for name in sorted(answered):
        schema = schemas[name]
        if name.startswith("EventData."):  # an event type's data: its own required keys (wallet.events.DATA_SCHEMAS)
            assert schema["required"] == DATA_SCHEMAS[name.removeprefix("EventData.")]["required"], name
            continue
        for where, node in walk(schema, name):
            if node.get("properties") and "object" in (kinds(node) or {"object"}):
                optional = {p for (s, p) in OPTIONAL if s == where}
                assert set(node.get("required", ())) == set(node["properties"]) - optional, where
    for (schema, prop), _why in OPTIONAL.items():
        assert prop in schemas[schema]["properties"] and prop not in schemas[schema]["required"]


# ------------------------------------------------------------------------------------------ enums

# A string named like one of these carries a value from a fixed set: it has an enum...
FIXED = re.compile(r"^(status|kind|channel|purpose|platform|metric|interval|role|trigger|type|token_type|change|"
                   r"awaits|action|entity|medium|network|gender|format|consent|requested_by|reason|source)$")
# ...unless it is listed here, with why its values are open.
OPEN = {
    "Problem/type": "a URL naming the problem",
    "Problem/code": "the problem's stable code: too many to list, and new ones come",
    "AdminCoupon/source": "what issued it, with its key: claim, rule, bulk:<batch>, ...",
    "Benefit/source": "the event that gave it: <trigger>:<id>",
    "Grant/event_source": "the event that gave it: <trigger>:<id>",
    "LedgerEntry/reason": "why points moved: the rule's trigger or the action; a new kind of movement adds one",
    "StatementLine/reason": "as LedgerEntry.reason",
    "MemberDetail/recent_ledger[]/reason": "as LedgerEntry.reason",
    "CampaignMessage/reason": "why a message was held back, in words or a code with its detail",
    "Skipped/reason": "which condition refused: condition:<name>, cap:<name>, ...",
    "AuditEntry/action": "named by each audited change; a new one adds its word",
    "AuditEntry/entity": "named by each audited change; a new one adds its word",
    "Match/reason": "the staff member's words for a status match",
    "MatchGiven/reason": "the staff member's words for a status match",
    "StatusMatchIn/reason": "the staff member's words for a status match",
    "Adjustment/reason": "the staff member's words", "BulkAdjustment/reason": "the staff member's words",
    "Void/reason": "the staff member's words",
    "EventData.points.earned/reason": "as LedgerEntry.reason", "EventData.points.earned/source": "<trigger>:<id>",
    "EventData.points.spent/reason": "as LedgerEntry.reason", "EventData.points.spent/source": "<trigger>:<id>",
    "EventData.coupon.issued/source": "as AdminCoupon.source",
    "SegmentField/source": "words: where the field's value comes from",
    "get /api/v1/admin/audit ?entity": "as AuditEntry.entity",
}


def test_strings_with_fixed_values_are_enums(spec):
    missing = []
    for where, node in every_schema(spec):
        if not FIXED.match(leaf(where)) or "string" not in kinds(node):
            continue
        if "enum" not in node and where not in OPEN:
            missing.append(where)
    assert not missing, missing


def _enum(spec, schema: str, prop: str) -> set:
    node = spec["components"]["schemas"][schema]["properties"][prop]
    node = node.get("items", node)
    return set(node["enum"]) - {None}


@pytest.mark.parametrize(("schema", "prop", "values"), [
    ("Device", "platform", contact.PLATFORMS), ("ConsentChange", "purpose", consents.PURPOSES),
    ("ConsentChange", "source", consents.SOURCES), ("ConsentChange", "channel", event_log.CHANNELS),
    ("LedgerEntry", "kind", ledger.KINDS), ("StatementLine", "channel", event_log.CHANNELS),
    ("ActivityItem", "kind", activity.KINDS), ("Qualifying", "metric", tiers.METRICS), ("Qualify", "metric", tiers.METRICS),
    ("Grant", "trigger", rules.TRIGGERS), ("Rule", "trigger", rules.TRIGGERS), ("Token", "role", members.ROLES),
    ("Staff", "role", members.STAFF_ROLES), ("Coupon", "status", coupons.SHOWN_STATUSES),
    ("Report", "status", campaigns.STATUSES), ("Report", "channel", campaigns.CHANNELS),
    ("Delivery", "type", event_log.TYPES), ("Webhook", "events", ("*", *event_log.TYPES)),
    ("CheckIn", "reason", (instore.TOO_FAR, instore.INACCURATE, instore.COOLDOWN, instore.STORE_INACTIVE,
                           instore.IMPOSSIBLE_TRAVEL)),
    ("Pending", "awaits", (ledger.FIRST_PURCHASE,)),
    # the event data's sets, written out in wallet.events.types (it can't import the modules that hold them)
    ("EventData.consent.changed", "consent", consents.PURPOSES),
    ("EventData.consent.changed", "source", consents.SOURCES),
    ("EventData.reward.granted", "trigger", rules.TRIGGERS), ("EventData.message.sent", "medium", campaigns.CHANNELS),
    ("EventData.check_in.refused", "reason", (instore.TOO_FAR, instore.INACCURATE, instore.COOLDOWN,
                                              instore.STORE_INACTIVE, instore.IMPOSSIBLE_TRAVEL)),
])
def test_an_enum_is_the_domain_s_own_set(spec, schema, prop, values):
    assert _enum(spec, schema, prop) == set(values)


# ------------------------------------------------------------------------------------------ sizes and numbers

def test_an_object_is_bounded_by_max_properties_never_max_length(spec):
    for where, node in every_schema(spec):
        if kinds(node) & {"object"} or "properties" in node:
            assert not {"minLength", "maxLength"} & set(node), where
    schemas = spec["components"]["schemas"]
    assert schemas["MemberPatch"]["properties"]["consents"]["maxProperties"] == len(consents.PURPOSES)
    assert schemas["MemberPatch"]["properties"]["preferences"]["maxProperties"] == len(members.CHANNELS)
    assert schemas["RuleIn"]["properties"]["conditions"]["maxProperties"] == 20


# Integers that count points, by name, and those whose name does not say so.
POINTS_NAME = re.compile(r"(^|_)points($|_(?!.*days$))|^balance(_after)?$|^delta$|^debt$|^pending_(total|cancelled)$")
POINTS_TOO = {"Lot/remaining", "PointsKpi/issued", "PointsKpi/redeemed", "PointsKpi/expired", "PointsKpi/adjusted",
              "PointsKpi/reversed", "PointsKpi/outstanding", "KpiBucket/points", "Kpis/points"}


def test_every_points_count_is_int64(spec):
    for where, node in every_schema(spec):
        name = leaf(where)
        if where in MONEY_OR_POINTS or re.search(r"\|\d+$", where):
            continue  # an integer for points and visits, a decimal string for money: see the money test
        if POINTS_NAME.search(name) or where in POINTS_TOO:
            if "$ref" in node:
                continue  # a block of figures (KpiBucket.points): its own fields are checked
            assert kinds(node) & {"integer"} or node.get("oneOf"), where
            if kinds(node) & {"integer"}:
                assert node.get("format") == "int64", where
        elif name.endswith("_days"):  # points_expiry_days counts days, not points
            assert node.get("format") != "int64", where


# Money: a decimal string, never a number.
MONEY = re.compile(r"^(amount|price|unit_price|min_amount|own_value|referral_value|referred_spend|liability|revenue|"
                   r"refunded|per_active_member|remaining_amount)$")
MONEY_OR_POINTS = {"Qualify/threshold", "QualifyIn/threshold", "Qualifying/value", "NextTier/remaining"}


def test_money_is_a_decimal_string(spec):
    def decimal_string(node: dict) -> bool:
        return "string" in kinds(node) and "number" not in kinds(node) and bool(node.get("pattern")) \
            and re.fullmatch(node["pattern"], "120.50") is not None and re.fullmatch(node["pattern"], "1e3") is None

    for where, node in every_schema(spec):
        name = leaf(where)
        if where in MONEY_OR_POINTS:  # an integer for points and visits, a decimal string for money
            options = node["oneOf"]
            assert {"type": "integer", "format": "int64"} in options and any(map(decimal_string, options)), where
        elif MONEY.match(name) and kinds(node) & {"string", "number"}:
            assert decimal_string(node), where
    assert not any("number" in kinds(n) and MONEY.match(leaf(w)) for w, n in every_schema(spec))


# ------------------------------------------------------------------------------------------ media types

# What each operation answers on success, where it is not JSON.
MEDIA = {
    "get /api/v1/me/card/qr": {"image/png", "image/svg+xml"},
    "get /api/v1/me/coupons/{coupon_id}/qr": {"image/png", "image/svg+xml"},
    "get /api/v1/me/card/pass.pkpass": {"application/vnd.apple.pkpass"},
    "get /api/v1/m/{token}/open.gif": {"image/gif"},
    "get /api/v1/me/coupons/{coupon_id}/pass.pkpass": {"application/vnd.apple.pkpass"},
    "get /api/v1/unsubscribe/{token}": {"text/html"},
    "post /api/v1/unsubscribe/{token}": {"text/html"},
}


def test_every_answer_has_its_media_type(spec):
    for name, _, _, operation in operations(spec):
        for code, response in operation["responses"].items():
            if not code.startswith("2"):
                continue
            content = response.get("content") or {}
            if code == "204":
                assert not content, name
                continue
            assert set(content) == MEDIA.get(name, {"application/json"}), (name, code)
            for media, body in content.items():
                if media.startswith(("image/", "application/vnd.")):
                    assert body["schema"] == {"type": "string", "format": "binary"}, (name, media)
                elif media == "application/json":
                    assert body.get("schema"), (name, code)
    # no CSV goes out: the CSV files (products, social data) only come in
    assert not [n for n, _, _, op in operations(spec) for r in op["responses"].values() if "text/csv" in
                (r.get("content") or {})]
