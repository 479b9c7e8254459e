"""Sane maxima everywhere a till, a phone or a marketer sends data: read from the served OpenAPI document, every
number a request carries has a maximum, every string a maximum length (or a pattern or an enumeration), every list
a maximum of items, every free-form object a maximum of keys. A new field without one fails here."""
from __future__ import annotations

API = "/api/v1"


def _unbounded(spec: dict) -> list[str]:
    schemas = spec["components"]["schemas"]
    problems: list[str] = []

    def walk(node: dict, where: str, seen: tuple[str, ...] = ()) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name in seen:
                return
            seen, node = (*seen, name), schemas[name]
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if ("integer" in kinds or "number" in kinds) and not ({"maximum", "exclusiveMaximum", "enum"} & set(node)):
            problems.append(f"{where}: a number without a maximum")
        if "string" in kinds and not ({"maxLength", "enum", "pattern"} & set(node)) \
                and node.get("format") not in ("date", "date-time"):
            problems.append(f"{where}: a string without a maximum length")
        if "array" in kinds:
            if "maxItems" not in node:
                problems.append(f"{where}: a list without a maximum of items")
            walk(node.get("items", {}), f"{where}[]", seen)
        for key, value in (node.get("properties") or {}).items():
            if not value.get("readOnly"):
                walk(value, f"{where}.{key}", seen)
        extra = node.get("additionalProperties")
        free_form = isinstance(extra, dict) or (extra is None and "object" in kinds and not node.get("properties"))
        if free_form and not ({"maxProperties", "maxLength"} & set(node)):  # apispec writes a Dict's Length as maxLength
            problems.append(f"{where}: an object without a maximum of keys")

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    walk(parameter.get("schema", {}), f"{method.upper()} {path} ?{parameter['name']}")
            for content in ((operation.get("requestBody") or {}).get("content") or {}).values():
                walk(content["schema"], f"{method.upper()} {path} body")
    return problems


def test_every_field_a_request_sends_is_bounded(client):
    spec = client.get(f"{API}/openapi.json").get_json()
    assert _unbounded(spec) == []


def test_the_check_finds_an_unbounded_field():
    spec = {"components": {"schemas": {"In": {"type": "object", "properties": {
        "n": {"type": "integer"}, "s": {"type": "string"}, "ok": {"type": "string", "maxLength": 3},
        "xs": {"type": "array", "items": {"type": "integer", "maximum": 1}}, "d": {"type": "object"}}}}},
        "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/In"}}}}}}}}
    assert _unbounded(spec) == ["POST /x body.n: a number without a maximum",
                                "POST /x body.s: a string without a maximum length",
                                "POST /x body.xs: a list without a maximum of items",
                                "POST /x body.d: an object without a maximum of keys"]
