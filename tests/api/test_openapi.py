"""The published OpenAPI 3 document: valid, complete, and honest about security and errors."""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

DOC = "/api/v1/openapi.json"
UNDOCUMENTED = ("/static/", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/redoc", "/api/v1/swagger")


@pytest.fixture(scope="module")
def spec(app):
    r = app.test_client().get(DOC)
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_the_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)  # raises on any error
    assert spec["info"]["title"] and spec["info"]["version"] == "v1"


def test_every_route_is_documented(app, spec):
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.startswith(UNDOCUMENTED):
            continue
        path = openapi_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, missing


def test_the_contract_routes_are_there(spec):
    for method, path in [("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/token"), ("get", "/api/v1/me"),
                         ("patch", "/api/v1/me"), ("get", "/api/v1/me/wallet"), ("get", "/api/v1/me/card/token"),
                         ("get", "/api/v1/me/card/qr"), ("get", "/api/v1/me/ledger"),
                         ("get", "/api/v1/admin/members"), ("get", "/api/v1/admin/members/{member_id}"),
                         ("post", "/api/v1/admin/members/{member_id}/adjustments"), ("post", "/api/v1/admin/staff")]:
        assert method in spec["paths"][path], (method, path)


def test_bearer_security_scheme(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                                                   "bearerFormat": "JWT"}
    assert spec["security"] == [{"bearerAuth": []}]
    # enrolment, sign-in, the rules, RFC 8058's unsubscribe link, a contest's public page and a message's tracked
    # links and open pixel are the only operations anyone may call without a token
    anonymous = {(path, method) for path, method, op in operations(spec) if op.get("security") == []}
    assert anonymous == {("/api/v1/auth/register", "post"), ("/api/v1/auth/token", "post"), ("/api/v1/rules", "get"),
                         ("/api/v1/unsubscribe/{token}", "get"), ("/api/v1/unsubscribe/{token}", "post"),
                         ("/api/v1/contests/{contest_id}", "get"), ("/api/v1/m/{token}", "get"),
                         ("/api/v1/m/{token}/open.gif", "get")}


def test_problem_responses_are_documented(spec):
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "errors"} <= set(problem["properties"])
    assert "application/problem+json" in spec["components"]["responses"]["Problem"]["content"]
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        # what each operation can send is tests/api/test_contract_document.py's; every one has its limits and failures
        for status in ("429", "500"):
            assert status in responses, (method, path, status)
        if operation.get("security") != []:
            assert "401" in responses, (method, path)
        # a tracked link's one success is its redirect
        assert any(s.startswith("2") for s in responses) or (path == "/api/v1/m/{token}" and "302" in responses), \
            (method, path)


def test_request_bodies_refuse_unknown_fields_and_name_required_ones(spec):
    schemas = spec["components"]["schemas"]
    register = schemas["Register"]
    assert set(register["required"]) == {"email", "password", "name"}
    assert register.get("additionalProperties") is False
    assert "password" not in schemas["Member"]["properties"]


def test_the_qr_route_documents_both_image_types(spec):
    content = spec["paths"]["/api/v1/me/card/qr"]["get"]["responses"]["200"]["content"]
    assert {"image/png", "image/svg+xml"} <= set(content)


def test_operations_have_summaries_and_unique_ids(spec):
    ids = [op.get("operationId") for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    for path, method, op in operations(spec):
        assert op.get("summary"), (method, path)


def test_docs_page(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b"openapi.json" in r.data


def test_the_spec_is_the_same_from_a_second_app(make_app, spec):
    """The OpenAPI object is per app: building another app leaves the first one's document alone."""
    other = make_app().test_client().get(DOC).get_json()
    assert other == spec
