"""Operating the API (API.md "Operating it"): health and readiness, request ids, JSON log lines, security headers,
and Prometheus metrics.

- ``GET /healthz``: 200 while the process serves (nothing else is asked).
- ``GET /readyz``: 200 while the database answers (and Redis, where the rate limits count there); 503 problem+json
  naming what does not.
- ``X-Request-ID`` on every answer: the caller's if it is sane (1-128 of ``A-Za-z0-9._:-``), else a new one; log
  lines are JSON objects carrying it (``LOYALTY_LOG_JSON=0`` for plain text), one access line per request.
- HTML pages: the Content-Security-Policy of API.md, frame protection; every answer ``nosniff``; answers carrying
  tokens (``/auth/*``, the card token) ``Cache-Control: no-store``.
- ``GET /metrics`` (only with ``LOYALTY_METRICS=1``): requests by route and status, latency histograms, the outbox
  backlog per reader, webhook deliveries by outcome. Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
  directory: every worker writes its counters there and any worker's /metrics adds them all up.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, request
from sqlalchemy import text

from wallet import events
from wallet.webhooks import deliveries

from .errors import problem
from .extensions import db

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
       "frame-ancestors 'none'")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("loyalty.access")


class JSONLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's id, and any ``extra`` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        try:
            line["request_id"] = g.request_id
        except (AttributeError, RuntimeError):  # outside a request
            pass
        line |= {k: v for k, v in vars(record).items() if k not in self._STANDARD and not k.startswith("_")}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _configure_logging(app: Flask) -> None:
    if app.testing or os.environ.get("LOYALTY_LOG_JSON", "1") in ("0", "false", "no"):
        return
    root = logging.getLogger()
    if any(isinstance(h.formatter, JSONLines) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONLines())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def register(app: Flask) -> None:
    _configure_logging(app)
    metrics = _Metrics() if app.config.get("LOYALTY_METRICS") else None
    app.extensions["loyalty.metrics"] = metrics
    access = app.config.get("LOYALTY_ACCESS_LOG", not app.testing)

    @app.before_request
    def _start():  # the first before-request hook: registered before the limits' (create_app)
        g.request_id = _request_id()
        g.started = time.perf_counter()

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        request_id = g.get("request_id") or _request_id()  # a limit may have answered before _start ran
        headers["X-Request-ID"] = request_id
        headers["X-Content-Type-Options"] = "nosniff"
        if g.get("retry_after"):
            headers["Retry-After"] = str(g.retry_after)
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = CSP
            headers["X-Frame-Options"] = "DENY"
            headers["Referrer-Policy"] = "no-referrer"
        if request.blueprint == "auth" or request.path.endswith("/card/token"):
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        started = g.get("started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        if metrics is not None:
            metrics.observe(request.method, route, response.status_code, seconds)
        if access:
            access_log.info("%s %s %s", request.method, request.path, response.status_code,
                            extra={"method": request.method, "route": route, "status": response.status_code,
                                   "duration_ms": round(seconds * 1000, 2), "address": request.remote_addr})
        return response

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        failing = []
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            logging.getLogger(__name__).warning("readiness: the database does not answer", exc_info=True)
            failing.append("database")
        limits = app.extensions.get("loyalty.limits")
        if limits is not None and "redis" in app.config["RATELIMIT_STORAGE_URI"].split("://", 1)[0]:
            try:
                ok = limits.storage.check()
            except Exception:
                ok = False
            if not ok:
                failing.append("redis")
        if failing:
            return problem(503, "not_ready", "Service Unavailable", "Not answering: " + ", ".join(failing),
                           headers={"Retry-After": "5"}, failing=failing)
        return {"status": "ready"}

    @app.get("/metrics")
    def metrics_page():
        if metrics is None:
            return problem(404, "not_found", "Not Found", "Metrics are off (LOYALTY_METRICS=1 turns them on)")
        return metrics.page()


def _request_id() -> str:
    sent = request.headers.get("X-Request-ID", "")
    return sent if _SANE_ID.match(sent) else uuid.uuid4().hex


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self._registry = CollectorRegistry(auto_describe=True)
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode the values live in files; a private registry still needs the objects to write them.
        registry = None if multiprocess else self._registry
        self.requests = Counter("loyalty_http_requests_total", "HTTP requests answered, by route and status",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("loyalty_http_request_duration_seconds", "Time to answer, by route",
                                 ["method", "route"], registry=registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.multiprocess = multiprocess

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def page(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = self._registry
        body = generate_latest(registry) + _database_gauges()
        return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def _database_gauges() -> bytes:
    """Read from the database at scrape time (one truth for every process and host): the outbox backlog per
    reader and webhook deliveries by outcome."""
    session = db.session
    behind, total = events.backlog(session)
    lines = ["# HELP loyalty_outbox_backlog Events recorded but not yet read, per reader of the log",
             "# TYPE loyalty_outbox_backlog gauge"]
    lines += [f'loyalty_outbox_backlog{{reader="{_label(name)}"}} {n}' for name, n in behind]
    lines.append(f"loyalty_outbox_events_total {total}")
    lines += ["# HELP loyalty_webhook_deliveries Webhook deliveries by outcome", "# TYPE loyalty_webhook_deliveries gauge"]
    lines += [f'loyalty_webhook_deliveries{{outcome="{_label(status)}"}} {n}'
              for status, n in deliveries.count_by_status(session)]
    session.rollback()
    return ("\n".join(lines) + "\n").encode()


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
