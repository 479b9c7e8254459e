"""The OpenAPI document as a client generator reads it (issue 18).

- Errors as sent: each operation lists the statuses it can answer with (:func:`errors_of`), each the one ``Problem``
  schema as ``application/problem+json``; flask-smorest's own ``Error``/``default`` answers, which this server never
  sends, are removed. The unsubscribe pages (RFC 8058) answer their refusals as HTML pages: documented as such.
- Points are ``integer`` with ``format: int64``; money is a decimal string (:class:`api.schemas.Money`).
- A length limit on an object (a ``Dict`` field) is ``maxProperties``, not ``maxLength``.
- Every schema that is only ever answered lists its fields in ``required``: a dumped schema writes each of its
  fields (a missing attribute is written as its ``dump_default``), so a generated client may read them all.

``tests/api/test_contract.py`` holds the rules; ``tests/contract_check.py`` checks the suite's answers against them.
"""
from __future__ import annotations

import re
from typing import Any

import marshmallow
from flask import Flask
from flask_smorest import Api

from .resource import Resource

PROBLEM = "application/problem+json"
PROBLEM_RESPONSE = {"$ref": "#/components/responses/Problem"}


def problem_schema() -> dict:
    return {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "code": {"type": "string", "description": "stable machine-readable code"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
        # RFC 9457 extension members: some problems say more (`limit`, `retry_after`, `balance`, ...)
        "additionalProperties": True}


def _object_limits(self, field: marshmallow.fields.Field, ret: dict, **_: Any) -> dict:
    """apispec writes a ``Length`` validator as ``minLength``/``maxLength`` whatever the field; on a ``Dict`` it
    bounds the number of keys: ``minProperties``/``maxProperties``."""
    if isinstance(field, marshmallow.fields.Dict):
        for length, properties in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
            if length in ret:
                ret[properties] = ret.pop(length)
    return {}


def prepare(api: Api) -> None:
    """Before the blueprints are registered (their schemas are converted then)."""
    api.spec.components.schema("Problem", problem_schema())
    api.ma_plugin.converter.add_attribute_function(_object_limits)


def finish(app: Flask, api: Api) -> None:
    """After every blueprint (and the hand-written operations) is in the document."""
    api.spec.components.response("Problem", {"description": "Problem (RFC 9457)",
                                             "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    views = _views_by_operation(app)
    for path, item in api.spec._paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation.setdefault("operationId", operation_id(method, path))
            view = views.get((method, path))
            if view is None:  # a plain route, documented by hand with its own answers (the unsubscribe pages)
                continue
            # flask-smorest's own error answers (``default``, its 422) are not what this server sends: replaced
            responses = {code: r for code, r in operation["responses"].items() if code.startswith(("1", "2", "3"))}
            for code in errors_of(method, path, operation, view):
                responses[str(code)] = PROBLEM_RESPONSE
            operation["responses"] = dict(sorted(responses.items()))
    for name in ("UNPROCESSABLE_ENTITY", "DEFAULT_ERROR"):
        api.spec.components.responses.pop(name, None)
    api.spec.components.schemas.pop("Error", None)
    _type_the_contract(api.spec)
    used: set[str] = set()
    refs(api.spec._paths, api.spec.components.schemas, used)
    if "PaginationMetadata" not in used:  # flask-smorest's, for its own pagination, which this API does not use
        api.spec.components.schemas.pop("PaginationMetadata", None)


# ---------------------------------------------------------------------------------------------- errors

# Operations that look something up by what the body (or the caller's card) names, with no id in the path: 404.
FINDS_WITHOUT_A_PATH_ID = frozenset({
    "post /api/v1/admin/adjustments",  # a member of the batch
    "post /api/v1/admin/rules/simulate",  # the member
    "post /api/v1/me/check-ins", "post /api/v1/me/scans",  # the store, the product by barcode
    "post /api/v1/me/coupons",  # the offer claimed
    "post /api/v1/pos/identify", "post /api/v1/pos/purchases",  # the card scanned or typed
    "post /api/v1/pos/redemptions", "post /api/v1/pos/redemptions/validate",  # the coupon, the card
    "get /api/v1/me/card/pass.pkpass", "get /api/v1/me/card/google-wallet",  # 404 wallet_pass_unavailable
})
# Operations that hash or verify a password: more at once than LOYALTY_PASSWORD_HASH_CONCURRENCY wait, then 503 busy.
HASHES_A_PASSWORD = frozenset({
    "post /api/v1/auth/register", "post /api/v1/auth/token", "post /api/v1/me/password", "post /api/v1/me/erase",
    "post /api/v1/admin/staff",
})
# Anonymous operations that still answer 401: a wrong password or a refresh token that is not (or no longer) good.
ANONYMOUS_401 = frozenset({"post /api/v1/auth/token"})
BODY_METHODS = ("post", "put", "patch")


def errors_of(method: str, path: str, operation: dict, view: tuple[Any, Any]) -> set[int]:
    """The problem+json statuses an operation can answer with, from what its view is:

    - any: 422 (the body guard refuses NUL and lone surrogates in any query string or path), 429 (every audience's
      budget, and /auth's), 500 (a bug), 409 ``concurrent_update`` (api.resource: a write that lost a race, or any
      database error left after its retries);
    - with a token: 401 (none, expired, revoked); with roles (:func:`api.auth.roles_required`): 403;
    - POST, PUT, PATCH: 413 (too large), 415 (not JSON) and 400 (malformed JSON); a view that reads a file itself
      (``raw_body``) answers 413 and 415 for its file but never 400;
    - an id in the path: 404; :data:`FINDS_WITHOUT_A_PATH_ID`, :data:`HASHES_A_PASSWORD` (503), :data:`ANONYMOUS_401`.

    A view that is not an :class:`api.resource.Resource` (the unsubscribe pages) is documented by hand."""
    view_func, view_class = view
    name = f"{method} {path}"
    codes = {409, 422, 429, 500}
    if operation.get("security") != [] or name in ANONYMOUS_401:
        codes.add(401)
    if _roles(view_func, view_class, method):
        codes.add(403)
    if method in BODY_METHODS:
        codes |= {413, 415} if getattr(view_class, "raw_body", False) else {400, 413, 415}
    if "{" in path or name in FINDS_WITHOUT_A_PATH_ID:
        codes.add(404)
    if name in HASHES_A_PASSWORD:
        codes.add(503)
    return codes


def _roles(view_func: Any, view_class: Any, method: str) -> tuple[str, ...]:
    return getattr(view_func, "_roles", ()) or getattr(getattr(view_class, method, None), "_roles", ())


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def _views_by_operation(app: Flask) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(method, OpenAPI path) -> (view function, view class) of every Resource view."""
    out = {}
    for rule in app.url_map.iter_rules():
        view_func = app.view_functions[rule.endpoint]
        view_class = getattr(view_func, "view_class", None)
        if view_class is None or not issubclass(view_class, Resource):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(method.lower(), openapi_path(rule.rule))] = (view_func, view_class)
    return out


def operation_id(method: str, path: str) -> str:
    """``get /api/v1/admin/members/{member_id}`` -> ``getAdminMembersByMemberId``: stable names for client generators."""
    words = [method.lower()]
    for part in path.removeprefix("/api/v1/").split("/"):
        if part.startswith("{"):
            words += ["by", *part.strip("{}").split("_")]
        else:
            words += re.split(r"[-_]", part)
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:] if w)


# ---------------------------------------------------------------------------------------------- types

# Integers that count points: int64 (a balance can pass 2**31 in a long-lived club). Not ``points_expiry_days``.
POINTS = re.compile(r"(^|_)points($|_(?!.*days$))|^balance(_after)?$|^delta$|^debt$|^pending_(total|cancelled)$")


# The till's schemas (api/views/pos.py, its hot path kept as it is): what they always send, said here.
TILL_FIELDS = {
    ("PurchaseOut", "status"): {"enum": ["completed", "refunded"]},  # wallet.purchases.Purchase.status
    ("RefundOut", "status"): {"enum": ["refunded"]},
    ("Identified", "kind"): {"enum": ["card", "coupon"]},  # wallet.qr: what was scanned or typed
    ("RewardBenefit", "multiplier"): {"pattern": r"^[0-9]+(\.[0-9]+)?$"},
    ("RewardBenefit", "valid_until"): {"format": "date-time"},
}


def _type_the_contract(spec) -> None:
    """What a client generator needs to read answers right: points as int64, and on every schema only ever
    answered (never sent), every field ``required``: a dumped schema always writes each of its fields."""
    schemas = spec.components.schemas
    for (schema_name, name), more in TILL_FIELDS.items():
        schemas[schema_name]["properties"][name].update(more)
    optional: dict[str, set[str]] = {}
    for schema_name, schema in schemas.items():
        for name, prop in (schema.get("properties") or {}).items():
            if prop.pop("x-optional", False):  # a field an answer may leave out: not required
                optional.setdefault(schema_name, set()).add(name)
            kinds = prop.get("type")
            if POINTS.search(name) and (kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds)):
                prop.setdefault("format", "int64")
    sent, answered = set(), set()
    for item in spec._paths.values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            refs(operation.get("requestBody"), schemas, sent)
            for code, response in (operation.get("responses") or {}).items():
                if code.startswith("2"):
                    refs(response, schemas, answered)
    for name in answered - sent:
        if name.startswith("EventData."):  # wallet.events.DATA_SCHEMAS: each type's own required keys, kept as written
            continue
        schema = schemas[name]
        if schema.get("properties"):
            schema["required"] = [p for p in schema["properties"] if p not in optional.get(name, ())]


def refs(node: Any, schemas: dict, found: set) -> None:
    """The component schemas ``node`` refers to, directly or through other schemas."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in found and name in schemas:
                found.add(name)
                refs(schemas[name], schemas, found)
        for value in node.values():
            refs(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, schemas, found)
