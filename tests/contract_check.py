"""Every answer the test suite gets, checked against the OpenAPI document (issue 18): a pytest plugin, opt-in.

    LOYALTY_CONTRACT_REPORT=/tmp/contract.jsonl python -m pytest -p tests.contract_check tests/api

Each answer a Flask test client gets is matched to its operation in the app's own ``/api/v1/openapi.json`` and
written to the report as one JSON line: the operation, the status, whether the document declares that status for
the operation, whether the media type is the declared one, and for a JSON answer the errors of validating it against
the declared schema (``required``, ``enum``, types, patterns) and the properties it carries that the schema does not
name. It also records each string value it met per schema property, which tells a fixed set of values (an enum)
from free text. The plugin fails nothing by itself: ``tests/api/test_contract_document.py`` holds the rules, and this
report is the evidence that the document describes what the server really sends. Real servers (tests/test_server.py)
are not seen; only answers through ``app.test_client()``.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPORT = os.environ.get("LOYALTY_CONTRACT_REPORT")
_open = FlaskClient.open
_SPECS: dict[int, tuple[dict, list, Registry]] = {}


def _spec_of(app) -> tuple[dict, list, Registry]:
    key = id(app)
    if key not in _SPECS:
        with app.app_context():  # no request: a request would count against the rate limits under test
            spec = json.loads(json.dumps(app.extensions["loyalty.api"].spec.to_dict()))
        routes = []
        for path, item in spec["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")
            routes.append((pattern, path, item))
        registry = Registry().with_resource("urn:spec", Resource(contents=spec, specification=DRAFT202012))
        _SPECS[key] = (spec, routes, registry)
    return _SPECS[key]


def _resolve(spec: dict, node: dict) -> tuple[str | None, dict]:
    name = None
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = spec["components"]["schemas"][name]
    return name, node


def _walk(spec: dict, node: dict, value: Any, where: str, out: dict, extra: set) -> None:
    """Record string values per schema property, and properties the schema does not name."""
    name, node = _resolve(spec, node)
    where = name or where
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            prop = node["properties"].get(key)
            if prop is None:
                if node.get("additionalProperties") is None:  # True: extension members, as a Problem has
                    extra.add(f"{where}.{key}")
                continue
            if isinstance(item, str):
                out.setdefault(f"{where}.{key}", set()).add(item[:80])
            _walk(spec, prop, item, f"{where}.{key}", out, extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            if isinstance(item, str):
                out.setdefault(f"{where}[]", set()).add(item[:80])
            _walk(spec, node["items"], item, f"{where}[]", out, extra)


def _check(app, method: str, path: str, response) -> dict | None:
    spec, routes, registry = _spec_of(app)
    found = next(((template, item) for pattern, template, item in routes
                  if pattern.match(path) and method.lower() in item), None)
    if found is None:
        return None
    template, operation = found[0], found[1][method.lower()]
    status = str(response.status_code)
    declared = operation["responses"].get(status)
    row: dict[str, Any] = {"op": f"{method.lower()} {template}", "status": status, "declared": declared is not None,
                           "mimetype": response.mimetype}
    if declared is None:
        return row
    if "$ref" in declared:
        declared = spec["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    content = declared.get("content") or {}
    row["media_ok"] = (response.mimetype in content) if content else not response.get_data()
    schema = (content.get(response.mimetype) or {}).get("schema")
    if schema and response.mimetype.endswith("json"):
        body = response.get_json(silent=True)
        ref = schema.get("$ref", "")
        target = {"$ref": "urn:spec" + ref} if ref else {**schema}
        validator = Draft202012Validator(target, registry=registry)
        row["errors"] = sorted({f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                                for e in validator.iter_errors(body)})[:20]
        values: dict[str, set] = {}
        extra: set = set()
        _walk(spec, schema, body, template, values, extra)
        row["values"] = {k: sorted(v) for k, v in values.items()}
        row["extra"] = sorted(extra)
    return row


def _recording_open(self, *args, **kwargs):
    response = _open(self, *args, **kwargs)
    try:
        request = response.request
        row = _check(self.application, request.method, request.path, response)
    except Exception as error:  # a broken check must not hide as a test's failure
        row = {"op": "?", "check_failed": repr(error)}
    if row is not None and REPORT:
        with open(REPORT, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
    return response


if REPORT:
    FlaskClient.open = _recording_open  # type: ignore[method-assign]
