"""Operating it: health and readiness, request ids, JSON log lines, security headers, Prometheus metrics."""
from __future__ import annotations

import json
import logging

import pytest

from api.operations import CSP, JSONLines

from ..conftest import assert_problem


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_does_not_answer(make_app, tmp_path):
    broken = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = broken.test_client()
    body = assert_problem(client.get("/readyz"), 503, "not_ready")
    assert body["failing"] == ["database"]
    assert client.get("/healthz").status_code == 200  # the process itself still serves


def test_readyz_asks_redis_where_the_limits_count_there(make_app):
    down = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    body = assert_problem(down.test_client().get("/readyz"), 503, "not_ready")
    assert body["failing"] == ["redis"]


@pytest.mark.parametrize("sent, kept", [("abc-123_X.y:z", True), ("", False), ("bad id with spaces", False),
                                        ("x" * 129, False), ("<script>", False)])
def test_every_answer_carries_a_request_id(client, sent, kept):
    headers = {"X-Request-ID": sent} if sent else {}
    for path in ("/healthz", "/api/v1/me", "/api/v1/nowhere"):
        r = client.get(path, headers=headers)
        rid = r.headers["X-Request-ID"]
        assert (rid == sent) if kept else (len(rid) == 32 and rid != sent)


def test_html_pages_send_the_csp_and_frame_protection(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert r.headers["Content-Security-Policy"] == ("default-src 'self'; img-src 'self' data: blob:; style-src "
                                                   "'self' 'unsafe-inline'; frame-ancestors 'none'") == CSP
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in r.get_data(as_text=True)  # no inline script: the CSP would block it
    assert client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"


def test_token_answers_are_not_stored(client, factory):
    member = factory.member()
    r = client.post("/api/v1/auth/token", json={"email": member["email"], "password": "correct horse"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    r = client.post("/api/v1/auth/register", json={"email": "n@example.com", "password": "a fine passphrase",
                                                   "name": "N"})
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    r = client.get("/api/v1/me/card/token", headers=member["headers"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/api/v1/openapi.json").headers.get("Cache-Control", "")


def test_metrics_are_off_by_default(client):
    assert_problem(client.get("/metrics"), 404, "not_found")


def test_metrics_count_requests_by_route_and_status(make_app, factory):
    app = make_app(LOYALTY_METRICS=True)
    client = app.test_client()
    member = factory.member()
    for _ in range(3):
        client.get("/api/v1/me", headers=member["headers"])
    client.get("/api/v1/me")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'loyalty_http_requests_total{method="GET",route="/api/v1/me",status="200"} 3.0' in text
    assert 'loyalty_http_requests_total{method="GET",route="/api/v1/me",status="401"} 1.0' in text
    assert 'loyalty_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/me"}' in text
    assert "loyalty_outbox_events_total " in text and "# TYPE loyalty_webhook_deliveries gauge" in text


def test_log_lines_are_json_with_the_request_id(app):
    with app.test_request_context("/x", headers={"X-Request-ID": "req-42"}):
        from flask import g
        g.request_id = "req-42"
        record = logging.LogRecord("loyalty.access", logging.INFO, __file__, 1, "GET %s %s", ("/x", 200), None)
        record.status = 200
        line = json.loads(JSONLines().format(record))
    assert line["message"] == "GET /x 200" and line["request_id"] == "req-42" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("Z")


def test_the_demo_wallet_page_has_no_inline_script(client):
    r = client.get("/static/index.html")
    assert r.status_code == 200 and r.headers["Content-Security-Policy"] == CSP
    page = r.get_data(as_text=True)
    assert "<script>" not in page and '<script defer src="/static/wallet.js"></script>' in page
    r.close()
    js = client.get("/static/wallet.js")
    assert js.status_code == 200 and "addEventListener" in js.get_data(as_text=True)
    js.close()
