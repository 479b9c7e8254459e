"""The loyalty club's HTTP API. ``create_app`` is the WSGI application factory: ``gunicorn "api:create_app()"``.

Environment variables are listed in :mod:`api.config` (and the README).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask, redirect, request
from flask.json.provider import DefaultJSONProvider
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from wallet import members, phones
from wallet.clock import iso
from wallet.program import Program
from wallet.tokens import KeyRing

from . import config, contract, errors, operations, ratelimits, wallet_passes
from .blueprints import ALL
from .extensions import db, migrate
from .speedups import PARSED_BODY, Parser, Sessions, limit_only_limited_blueprints

API_TITLE = "Loyalty API"
# Views that read a form body, not JSON (RFC 8058's one-click unsubscribe POST): the body guard lets them through.
FORM_ENDPOINTS = frozenset({"unsubscribe.page"})


# Before any view module is imported (create_app imports them): flask-smorest's ``arguments`` decorator binds
# the blueprint's parser when it decorates.
_PARSER = Parser()
for _blueprint in ALL:
    _blueprint.ARGUMENTS_PARSER = _PARSER


class _JSON(DefaultJSONProvider):
    """Flask's JSON, but a datetime that reaches it unformatted is written as the contract says (ISO 8601 in UTC
    with ``Z``, :func:`wallet.clock.iso`), and a date as ``YYYY-MM-DD``, not as an HTTP date (RFC 822)."""

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return iso(o)
        if isinstance(o, date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True, static_folder="../static", static_url_path="/static")
    app.config.update(config.from_environment(app.instance_path))
    app.config.update(
        API_TITLE=API_TITLE, API_VERSION="v1", OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api/v1", OPENAPI_JSON_PATH="openapi.json",
        # No OPENAPI_SWAGGER_UI_*/REDOC_*: flask-smorest's pages load from a CDN; api.docs serves /docs offline.
        # One kept connection per request thread (gunicorn.conf.py's GUNICORN_THREADS): with fewer, every moment
        # more threads than that are in the database opens a connection and closes it after (a server process
        # forked and its statements prepared again, for one request).
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": False, "pool_size": app.config["LOYALTY_DB_POOL_SIZE"]},
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update(overrides or {})
    _refuse_a_short_secret(app.config["SECRET_KEY"])
    _sqlite_options(app)

    if app.config["LOYALTY_TRUSTED_PROXIES"]:
        # Behind a load balancer the client's address is in X-Forwarded-For; rate limits key on it.
        n = app.config["LOYALTY_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(app, db, directory=str(__import__("pathlib").Path(__file__).parent.parent / "migrations"))
    # One limiter and one Api per app: their state (storage, enabled flag, spec) belongs to the app, and a
    # module-level instance re-initialised by a second create_app would change the first app's behaviour.
    app.session_interface = Sessions()
    # Request ids, headers, health, metrics. Registered before flask-limiter: its after-request hook runs after
    # this one's, so this one has the last word on Retry-After (a sign-in's own wait, not /auth's window).
    operations.register(app)
    limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
    limiter.init_app(app)
    app.extensions["loyalty.limiter"] = limiter
    ratelimits.init_app(app)  # every audience's budget, checked before anything else reads the request
    members.configure_password_hashing(app.config["LOYALTY_PASSWORD_HASH"],
                                       app.config["LOYALTY_PASSWORD_HASH_CONCURRENCY"])
    phones.configure_region(app.config.get("LOYALTY_PHONE_REGION", "IL"))
    app.extensions["loyalty.program"] = program_from_config(app.config)
    app.extensions["loyalty.keyring"] = keyring_from_config(app.config)
    with app.app_context():
        _tune_engine(db.engine)

    app.json = _JSON(app)
    app.json.sort_keys = False
    smorest = Api()
    smorest.init_app(app, spec_kwargs={"components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearerAuth": []}]})
    contract.prepare(smorest)
    app.extensions["loyalty.api"] = smorest
    from . import views  # noqa: F401  (registers the routes)
    from .views.auth import limit_auth
    limit_auth(limiter)
    for blueprint in ALL:
        smorest.register_blueprint(blueprint)
    from .views.unsubscribe import document as document_unsubscribe  # a plain route: documented by hand
    document_unsubscribe(smorest.spec)
    from .views.tracking import document as document_tracking  # plain routes too: a redirect and an image
    document_tracking(smorest.spec)
    contract.finish(app, smorest)
    errors.register(app)
    _guard_bodies(app)
    limit_only_limited_blueprints(app, limiter)

    @app.get("/")
    def index():
        return redirect("/static/index.html")

    from .docs import register as register_docs
    register_docs(app)
    from .console import register as register_console
    register_console(app)
    from .views.passkit import register as register_passkit  # Apple's PassKit web service: not problem+json
    register_passkit(app)
    from .views.unsubscribe import register as register_unsubscribe  # RFC 8058 pages: form bodies, HTML answers
    register_unsubscribe(app)
    from .views.tracking import register as register_tracking  # tracked links and the open pixel: not JSON
    register_tracking(app)
    from .cli import register as register_cli
    register_cli(app)
    return app


MIN_SECRET_BYTES = 32


def _refuse_a_short_secret(secret: str) -> None:
    """LOYALTY_SECRET_KEY signs every token and QR code: a short one can be guessed offline from one token."""
    if len(str(secret or "").encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(f"LOYALTY_SECRET_KEY must hold at least {MIN_SECRET_BYTES} bytes (a random one: "
                           "python -c 'import secrets; print(secrets.token_urlsafe(48))'); without it set, a key "
                           "is generated into the instance folder")


def program_from_config(cfg: dict) -> Program:
    return Program(
        secret=_derive("qr", cfg["SECRET_KEY"]),
        old_secrets=tuple(_derive("qr", k) for k in cfg["LOYALTY_OLD_SECRET_KEYS"]),
        currency=cfg["LOYALTY_CURRENCY"], timezone=cfg["LOYALTY_TIMEZONE"],
        points_expiry_days=cfg["LOYALTY_POINTS_EXPIRY_DAYS"] or None,
        pending_days=cfg["LOYALTY_PENDING_DAYS"],
        point_value=cfg.get("LOYALTY_POINT_VALUE", Decimal("0.01")),
        card_token_ttl=timedelta(minutes=cfg["LOYALTY_CARD_TOKEN_MINUTES"]),
        redemption_rollback_window=timedelta(minutes=cfg["LOYALTY_REDEMPTION_ROLLBACK_MINUTES"]),
        max_purchase_amount=Decimal(cfg["LOYALTY_MAX_PURCHASE_AMOUNT"]), welcome_pending=bool(cfg["LOYALTY_WELCOME_PENDING"]),
        enrolment_burst=int(cfg["LOYALTY_ENROLMENT_BURST"]), claim_burst=int(cfg["LOYALTY_CLAIM_BURST"]),
        max_travel_kmh=float(cfg["LOYALTY_MAX_TRAVEL_KMH"]),
        influence_window_days=cfg.get("LOYALTY_INFLUENCE_WINDOW_DAYS", 365),
        influence_second_degree=Decimal(str(cfg.get("LOYALTY_INFLUENCE_SECOND_DEGREE", "0.5"))),
        **wallet_passes.program_settings(cfg),  # LOYALTY_PUBLIC_URL, LOYALTY_APPLE_*, LOYALTY_GOOGLE_*
    )


def keyring_from_config(cfg: dict) -> KeyRing:
    keys = tuple(_derive("jwt", k) for k in [cfg["SECRET_KEY"], *cfg["LOYALTY_OLD_SECRET_KEYS"]])
    return KeyRing(keys=keys, access_ttl=timedelta(minutes=cfg["LOYALTY_ACCESS_TOKEN_MINUTES"]),
                   refresh_ttl=timedelta(days=cfg["LOYALTY_REFRESH_TOKEN_DAYS"]))


def _derive(purpose: str, secret: str) -> bytes:
    """A separate 256-bit key per purpose, so a QR code's MAC can never be a token's signature."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def _sqlite_options(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30, "check_same_thread": False}}


def _tune_engine(engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when a transaction starts, and start it as a writer:
        # two deferred transactions that both upgrade to write would deadlock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _guard_bodies(app: Flask) -> None:
    """Refuse, before any view runs, bodies and parameters that no schema should have to think about.
    The parsed body is left in the environ for the arguments parser, which then need not parse it again."""
    from .errors import problem

    @app.before_request
    def _guard():
        req = request._get_current_object()  # one proxy lookup, not one per attribute
        if req.routing_exception is not None:
            return None  # 404/405 answer first, whatever the body
        if req.endpoint in FORM_ENDPOINTS:
            return None  # RFC 8058's one-click POST is a form body, read by its own view
        view_class = getattr(app.view_functions.get(req.endpoint or ""), "view_class", None)
        if getattr(view_class, "raw_body", False):
            # A file upload (the CSV imports): the view reads its own body, within the imports' larger limit.
            req.max_content_length = app.config["LOYALTY_MAX_IMPORT_BYTES"]
            return None
        errors = {}
        if req.view_args:
            errors = {f"path.{k}": [UNSTORABLE] for k, v in req.view_args.items()
                      if isinstance(v, str) and _unstorable(v)}
        if req.query_string:
            for name, value in req.args.items(multi=True):  # every value of a repeated name, not only one
                if _unstorable(name):
                    errors["query"] = [UNSTORABLE]  # not a name to echo back as a key
                elif _unstorable(value):
                    errors[f"query.{name}"] = [UNSTORABLE]
        has_body = bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "").lower()
        if has_body and req.method in ("POST", "PUT", "PATCH"):
            if not req.is_json:
                return problem(415, "unsupported_media_type", "Unsupported Media Type",
                               "Send the body as application/json")
            try:
                data = req.get_data(cache=True)
                encoding = json.detect_encoding(data)
                body = json.loads(data.decode(encoding, "surrogatepass"))  # what json.loads(data) does
                bad = _unstorable_fields(body)
            except (RecursionError, _TooDeep):
                return problem(400, "malformed_json", "Bad Request", "The JSON body is nested too deeply",
                               {"_body": ["Nested too deeply."]})
            except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
                return problem(400, "malformed_json", "Bad Request", "The body is not valid JSON",
                               {"_body": ["Invalid JSON body."]})
            if bad:
                errors |= {name or "_body": [UNSTORABLE] for name in bad}
            elif encoding == "utf-8":
                # webargs decodes strict UTF-8 only; with no NUL or surrogate anywhere (bad is empty) its parse
                # of these bytes gives this very value. Other encodings it refuses: let it, as before.
                req.environ[PARSED_BODY] = (body,)
        if errors:
            return problem(422, "validation_error", "Unprocessable Entity",
                           "Some fields are not valid: " + ", ".join(sorted(errors)), errors)
        return None


UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."
MAX_DEPTH = 32  # no body this API reads nests deeper than a few levels
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _TooDeep(Exception):
    pass


def _unstorable(text: str) -> bool:
    """NUL and lone surrogates: neither PostgreSQL text nor UTF-8 can hold them."""
    return _UNSTORABLE.search(text) is not None


def _unstorable_fields(value: Any, path: str = "", depth: int = 0) -> list[str]:
    if depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return [path] if _unstorable(value) else []
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if _unstorable(key):
                out.append(path or "_body")
            elif depth >= MAX_DEPTH:
                raise _TooDeep  # as the call for this item would
            elif isinstance(item, str):  # the common leaf, without a call and a path string per field
                if _unstorable(item):
                    out.append(f"{path}.{key}" if path else str(key))
            elif isinstance(item, (dict, list)):
                out.extend(_unstorable_fields(item, f"{path}.{key}" if path else str(key), depth + 1))
        return out
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _unstorable_fields(item, f"{path}.{i}" if path else str(i),
                                                                              depth + 1)]
    return []
