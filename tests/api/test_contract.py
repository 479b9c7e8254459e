"""The OpenAPI document as a client generator reads it (issue 18): errors as sent (one problem+json schema on every
operation, nothing else), points as int64, money as a decimal string, and answered fields `required`."""
from __future__ import annotations

import re

import pytest

from ..conftest import assert_problem

PROBLEM = {"$ref": "#/components/responses/Problem"}


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/api/v1/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield f"{method} {path}", operation


def test_errors_are_one_problem_schema_and_nothing_else(spec):
    assert spec["components"]["responses"] == {"Problem": {
        "description": "Problem (RFC 9457)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}
    assert "Error" not in spec["components"]["schemas"]
    for name, operation in operations(spec):
        assert "default" not in operation["responses"], name
        for code, response in operation["responses"].items():
            # the pages a person follows (unsubscribe, a tracked link) answer their refusals as pages too
            if code.startswith(("4", "5")) and not name.endswith(("/unsubscribe/{token}", "/m/{token}")):
                assert response == PROBLEM, (name, code)
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail", "code"]
    assert problem["properties"]["code"]["type"] == "string" and problem["properties"]["status"]["type"] == "integer"


def test_a_422_is_what_the_document_says(client, factory, spec):
    body = assert_problem(client.post("/api/v1/auth/register", json={"email": "x"}), 422, "validation_error")
    properties = spec["components"]["schemas"]["Problem"]["properties"]
    assert set(body) <= set(properties)
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body["errors"].values())


def _props(spec):
    for name, schema in spec["components"]["schemas"].items():
        for prop, value in (schema.get("properties") or {}).items():
            yield name, prop, value


def test_points_are_int64_and_money_a_decimal_string(spec):
    for schema, prop, value in _props(spec):
        kinds = value.get("type")
        if re.search(r"(^|_)points($|_(?!.*days$))|^balance(_after)?$|^delta$", prop) \
                and kinds in ("integer", ["integer", "null"]):  # points_expiry_days counts days
            assert value.get("format") == "int64", (schema, prop)
        if prop in ("amount", "price", "unit_price", "min_amount"):  # money: never a float
            assert value.get("type") in ("string", ["string", "null"]) and value.get("pattern"), (schema, prop)
    schemas = spec["components"]["schemas"]
    for schema in ("PurchaseIn", "PurchaseOut"):
        amount = schemas[schema]["properties"]["amount"]
        assert amount["type"] == "string" and re.fullmatch(amount["pattern"], "120.50")
        assert not re.fullmatch(amount["pattern"], "12.345") and not re.fullmatch(amount["pattern"], "-1")
    assert schemas["PurchaseOut"]["properties"]["points_awarded"] == {"type": "integer", "format": "int64"}
    assert schemas["StatementLine"]["properties"]["delta"]["format"] == "int64"


def test_answered_fields_are_required(spec):
    schemas = spec["components"]["schemas"]
    for name in ("PurchaseOut", "Reward", "StatementLine", "Lot", "LedgerPage", "RuleTerms", "RuleTermsList",
                 "CardBlockAnswer", "CardReplaceAnswer", "AdminCard", "Export", "Token", "CardToken", "Wallet"):
        assert schemas[name]["required"] == list(schemas[name]["properties"]), name
    # event data keeps each type's own required keys (an earned lot's expiry may be absent)
    assert schemas["EventData.points.earned"]["required"] == ["entry_id", "points", "balance_after"]
    # a schema a client sends keeps only its own required fields
    assert set(schemas["PurchaseIn"]["required"]) == {"card", "amount", "currency", "receipt_id"}
