"""Configuration from the environment. Every variable the service reads is listed here and in the README.

| variable | default | meaning |
|---|---|---|
| DATABASE_URL | sqlite:///<instance>/loyalty.db | SQLAlchemy URL; PostgreSQL as postgresql+psycopg://user@host/db |
| LOYALTY_SECRET_KEY | generated once into <instance>/secret_key | signs access tokens and QR codes |
| LOYALTY_OLD_SECRET_KEYS | (none) | comma-separated retired keys, still accepted while their tokens live |
| LOYALTY_ACCESS_TOKEN_MINUTES | 15 | access token lifetime |
| LOYALTY_REFRESH_TOKEN_DAYS | 30 | refresh token lifetime |
| LOYALTY_CARD_TOKEN_MINUTES | 5 | how long a card's QR code stays valid |
| LOYALTY_CURRENCY | ILS | the club's currency (ISO 4217) |
| LOYALTY_TIMEZONE | Asia/Jerusalem | the programme's timezone: daily caps, birthdays |
| LOYALTY_POINTS_EXPIRY_DAYS | 365 | earned points expire after this many days (0: never) |
| LOYALTY_POINT_VALUE | 0.01 | what one point is worth in the club's currency (a decimal): the KPIs' points liability |
| LOYALTY_PENDING_DAYS | 0 | purchase points are pending this many days (the return window) |
| LOYALTY_REDEMPTION_ROLLBACK_MINUTES | 30 | how long a store may roll back a coupon redemption |
| LOYALTY_INFLUENCE_WINDOW_DAYS | 365 | influence: own and referred spend count over this many days |
| LOYALTY_INFLUENCE_SECOND_DEGREE | 0.5 | influence: a friend's friend's spend counts this much in the referral value |
| LOYALTY_RATELIMIT_AUTH | 20 per minute | limit on /auth/* per client address |
| LOYALTY_RATELIMIT_ANONYMOUS | 120 per minute | limit on other requests without a valid token, per client address |
| LOYALTY_RATELIMIT_MEMBER | 300 per minute | limit per member token (its sign-in) |
| LOYALTY_RATELIMIT_CASHIER | 600 per minute | limit per cashier token |
| LOYALTY_RATELIMIT_STAFF | 600 per minute | limit per marketer or admin token |
| LOYALTY_RATELIMIT_STORAGE_URI | host://<instance>/ratelimits.shm | limit counters: host:// is one count per host (every worker process); redis://127.0.0.1:6379/0 one count across hosts; memory:// one per process |
| LOYALTY_METRICS | 0 | 1: serve Prometheus metrics at /metrics (set PROMETHEUS_MULTIPROC_DIR under gunicorn) |
| LOYALTY_LOG_JSON | 1 | log lines as JSON objects with the request id (0: plain text) |
| LOYALTY_PASSWORD_HASH_CONCURRENCY | 1 | password hashes one process computes at once (sign-ins beyond wait, then 503 busy) |
| LOYALTY_RATELIMIT_FAIL_OPEN | 1 | 1: if that storage is unreachable, requests pass (and it is logged) rather than fail with 500 |
| LOYALTY_MAX_BODY_BYTES | 65536 | larger request bodies are refused with 413 |
| LOYALTY_MAX_IMPORT_BYTES | 20971520 | the largest CSV file an import takes (POST /admin/products/import); larger: 413 |
| LOYALTY_SOCIAL_IMPORT_SYNC_BYTES | 2097152 | a social import larger than this answers 202 and the worker imports it |
| LOYALTY_PHONE_REGION | IL | phones without a country code are read in this region (E.164 comparisons: imports, profiles) |
| LOYALTY_PROFILE_FIELDS | name,birthday,phone,city | the profile fields that, all filled, fire `profile_completed` (a member field, or `social`: a linked network) |
| LOYALTY_PASSWORD_HASH | scrypt:16384:8:1 | werkzeug password hashing method |
| LOYALTY_TRUSTED_PROXIES | 0 | how many proxies in front set X-Forwarded-For (rate limits key on the client's address) |
| LOYALTY_WEBHOOK_ALLOW_PRIVATE | 0 | 1: webhooks may target private, loopback and link-local addresses (development only) |
| LOYALTY_WEBHOOK_TIMEOUT_SECONDS | 10 | how long a webhook receiver has to answer |
| LOYALTY_WEBHOOK_LEASE_SECONDS | 60 | a delivery claimed by a worker that died is taken up again after this (at least twice the timeout) |
| LOYALTY_WORKER_CONCURRENCY | 8 | webhook deliveries one worker has in flight at once |
| LOYALTY_EVENTS_NATS_URL | (none) | nats://host:4222: the worker publishes every event to the JetStream stream LOYALTY |
| LOYALTY_EVENTS_NATS_DUPLICATE_WINDOW | 7200 | seconds JetStream de-duplicates a re-published event (Nats-Msg-Id) |
| LOYALTY_PUBLIC_URL | http://127.0.0.1:5000 | what phones reach (https in production): the PassKit web service is <public base>/api/passkit |
| LOYALTY_APPLE_PASS_TYPE_ID | (none) | Apple Wallet: the Pass Type ID (pass.com.example.club); unset: Apple passes answer 404 |
| LOYALTY_APPLE_TEAM_ID | (none) | Apple Wallet: the developer team's id |
| LOYALTY_APPLE_CERT | (none) | Apple Wallet: PEM file of the Pass Type ID certificate (also APNs' client certificate) |
| LOYALTY_APPLE_KEY | (none) | Apple Wallet: PEM file of its private key |
| LOYALTY_APPLE_KEY_PASSWORD | (none) | the key file's password, if it has one |
| LOYALTY_APPLE_WWDR | (none) | Apple Wallet: PEM file of Apple's WWDR intermediate certificate (G4) |
| LOYALTY_APPLE_APNS_HOST | api.push.apple.com | APNs host (api.sandbox.push.apple.com for development devices) |
| LOYALTY_GOOGLE_ISSUER_ID | (none) | Google Wallet: the issuer id; unset: Google Wallet answers 404 |
| LOYALTY_GOOGLE_SERVICE_ACCOUNT | (none) | Google Wallet: the service account's JSON key file |
| LOYALTY_PASSES_EVERY_SECONDS | 5 | how often the worker turns events into pass updates, APNs pushes and Google Wallet updates |
| LOYALTY_MAX_PURCHASE_AMOUNT | 1000000.00 | the largest purchase amount (and item price) a till may send; more is 422 |
| LOYALTY_WELCOME_PENDING | 1 | 1: welcome (enrolment) points are pending until the member's first purchase |
| LOYALTY_ENROLMENT_BURST | 10 | enrolments per minute per device (X-Device-ID) or address; more are 429 and flagged |
| LOYALTY_CLAIM_BURST | 30 | coupon claims per minute per member; more are 429 and flagged |
| LOYALTY_MAX_TRAVEL_KMH | 300 | check-ins faster apart than this are refused (422 impossible_travel) and flagged |
| LOYALTY_SMTP_URL | (none) | the mail relay for campaign email: smtp://[user:password@]host[:port], smtp+starttls://... or smtps://...; unset: email waits |
| LOYALTY_MAIL_FROM | club@<host of LOYALTY_PUBLIC_URL> | the campaign emails' From address |
| LOYALTY_SMS_GATEWAY_URL | (none) | where SMS messages are POSTed as signed JSON; unset: SMS waits |
| LOYALTY_PUSH_GATEWAY_URL | (none) | where push messages are POSTed as signed JSON; unset: push waits |
| LOYALTY_GATEWAY_SECRET | (none) | signs gateway requests as Standard Webhooks does (whsec_<base64>); needed with a gateway URL |
| LOYALTY_MESSAGE_TIMEOUT_SECONDS | 10 | how long the SMTP relay or a gateway has to answer |
"""
from __future__ import annotations

import os
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _secret(instance: Path) -> str:
    if os.environ.get("LOYALTY_SECRET_KEY"):
        return os.environ["LOYALTY_SECRET_KEY"]
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two workers starting at once agree on one secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        except FileExistsError:
            pass
    return path.read_text().strip()


def _point_value(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise ValueError(f"LOYALTY_POINT_VALUE must be a non-negative decimal such as 0.01, not {text!r}")
    return value


def from_environment(instance_path: str) -> dict:
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    return {
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL", f"sqlite:///{instance / 'loyalty.db'}"),
        "SECRET_KEY": _secret(instance),
        "LOYALTY_OLD_SECRET_KEYS": [k for k in _env("LOYALTY_OLD_SECRET_KEYS", "").split(",") if k],
        "LOYALTY_ACCESS_TOKEN_MINUTES": int(_env("LOYALTY_ACCESS_TOKEN_MINUTES", "15")),
        "LOYALTY_REFRESH_TOKEN_DAYS": int(_env("LOYALTY_REFRESH_TOKEN_DAYS", "30")),
        "LOYALTY_CARD_TOKEN_MINUTES": int(_env("LOYALTY_CARD_TOKEN_MINUTES", "5")),
        "LOYALTY_CURRENCY": _env("LOYALTY_CURRENCY", "ILS"),
        "LOYALTY_TIMEZONE": _env("LOYALTY_TIMEZONE", "Asia/Jerusalem"),
        "LOYALTY_POINTS_EXPIRY_DAYS": int(_env("LOYALTY_POINTS_EXPIRY_DAYS", "365")),
        "LOYALTY_POINT_VALUE": _point_value(_env("LOYALTY_POINT_VALUE", "0.01")),
        "LOYALTY_PENDING_DAYS": int(_env("LOYALTY_PENDING_DAYS", "0")),
        "LOYALTY_REDEMPTION_ROLLBACK_MINUTES": int(_env("LOYALTY_REDEMPTION_ROLLBACK_MINUTES", "30")),
        "LOYALTY_INFLUENCE_WINDOW_DAYS": int(_env("LOYALTY_INFLUENCE_WINDOW_DAYS", "365")),
        "LOYALTY_INFLUENCE_SECOND_DEGREE": _env("LOYALTY_INFLUENCE_SECOND_DEGREE", "0.5"),
        "RATELIMIT_AUTH": _env("LOYALTY_RATELIMIT_AUTH", "20 per minute"),
        "RATELIMIT_ANONYMOUS": _env("LOYALTY_RATELIMIT_ANONYMOUS", "120 per minute"),
        "RATELIMIT_MEMBER": _env("LOYALTY_RATELIMIT_MEMBER", "300 per minute"),
        "RATELIMIT_CASHIER": _env("LOYALTY_RATELIMIT_CASHIER", "600 per minute"),
        "RATELIMIT_STAFF": _env("LOYALTY_RATELIMIT_STAFF", "600 per minute"),
        "RATELIMIT_STORAGE_URI": _env("LOYALTY_RATELIMIT_STORAGE_URI", f"host://{instance / 'ratelimits.shm'}"),
        # connections each process keeps open (its request threads: GUNICORN_THREADS); the pool opens up to 10 more
        "LOYALTY_DB_POOL_SIZE": int(_env("LOYALTY_DB_POOL_SIZE", _env("GUNICORN_THREADS", "8"))),
        "LOYALTY_METRICS": _env("LOYALTY_METRICS", "0") in ("1", "true", "yes"),
        "LOYALTY_PASSWORD_HASH_CONCURRENCY": int(_env("LOYALTY_PASSWORD_HASH_CONCURRENCY", "1")),
        "RATELIMIT_SWALLOW_ERRORS": _env("LOYALTY_RATELIMIT_FAIL_OPEN", "1") not in ("0", "false", "no"),
        "MAX_CONTENT_LENGTH": int(_env("LOYALTY_MAX_BODY_BYTES", "65536")),
        "LOYALTY_MAX_IMPORT_BYTES": int(_env("LOYALTY_MAX_IMPORT_BYTES", str(20 * 1024 * 1024))),
        "LOYALTY_SOCIAL_IMPORT_SYNC_BYTES": int(_env("LOYALTY_SOCIAL_IMPORT_SYNC_BYTES", str(2 * 1024 * 1024))),
        "LOYALTY_PHONE_REGION": _env("LOYALTY_PHONE_REGION", "IL").upper(),
        "LOYALTY_PROFILE_FIELDS": tuple(f.strip() for f in _env("LOYALTY_PROFILE_FIELDS", "name,birthday,phone,city")
                                        .split(",") if f.strip()),
        "LOYALTY_PASSWORD_HASH": _env("LOYALTY_PASSWORD_HASH", "scrypt:16384:8:1"),
        "LOYALTY_TRUSTED_PROXIES": int(_env("LOYALTY_TRUSTED_PROXIES", "0")),
        "LOYALTY_WEBHOOK_ALLOW_PRIVATE": _env("LOYALTY_WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
        "LOYALTY_WEBHOOK_TIMEOUT_SECONDS": float(_env("LOYALTY_WEBHOOK_TIMEOUT_SECONDS", "10")),
        "LOYALTY_WEBHOOK_LEASE_SECONDS": float(_env("LOYALTY_WEBHOOK_LEASE_SECONDS", "60")),
        "LOYALTY_WORKER_CONCURRENCY": int(_env("LOYALTY_WORKER_CONCURRENCY", "8")),
        "LOYALTY_EVENTS_NATS_URL": _env("LOYALTY_EVENTS_NATS_URL", ""),
        "LOYALTY_EVENTS_NATS_DUPLICATE_WINDOW": float(_env("LOYALTY_EVENTS_NATS_DUPLICATE_WINDOW", "7200")),
        "LOYALTY_PUBLIC_URL": _env("LOYALTY_PUBLIC_URL", "http://127.0.0.1:5000"),
        "LOYALTY_APPLE_PASS_TYPE_ID": _env("LOYALTY_APPLE_PASS_TYPE_ID", ""),
        "LOYALTY_APPLE_TEAM_ID": _env("LOYALTY_APPLE_TEAM_ID", ""),
        "LOYALTY_APPLE_CERT": _env("LOYALTY_APPLE_CERT", ""),
        "LOYALTY_APPLE_KEY": _env("LOYALTY_APPLE_KEY", ""),
        "LOYALTY_APPLE_KEY_PASSWORD": _env("LOYALTY_APPLE_KEY_PASSWORD", ""),
        "LOYALTY_APPLE_WWDR": _env("LOYALTY_APPLE_WWDR", ""),
        "LOYALTY_APPLE_APNS_HOST": _env("LOYALTY_APPLE_APNS_HOST", "api.push.apple.com"),
        "LOYALTY_GOOGLE_ISSUER_ID": _env("LOYALTY_GOOGLE_ISSUER_ID", ""),
        "LOYALTY_GOOGLE_SERVICE_ACCOUNT": _env("LOYALTY_GOOGLE_SERVICE_ACCOUNT", ""),
        "LOYALTY_PASSES_EVERY_SECONDS": float(_env("LOYALTY_PASSES_EVERY_SECONDS", "5")),
        "LOYALTY_MAX_PURCHASE_AMOUNT": Decimal(_env("LOYALTY_MAX_PURCHASE_AMOUNT", "1000000.00")),
        "LOYALTY_WELCOME_PENDING": _env("LOYALTY_WELCOME_PENDING", "1") not in ("0", "false", "no"),
        "LOYALTY_ENROLMENT_BURST": int(_env("LOYALTY_ENROLMENT_BURST", "10")),
        "LOYALTY_CLAIM_BURST": int(_env("LOYALTY_CLAIM_BURST", "30")),
        "LOYALTY_MAX_TRAVEL_KMH": float(_env("LOYALTY_MAX_TRAVEL_KMH", "300")),
        "LOYALTY_SMTP_URL": _env("LOYALTY_SMTP_URL", ""),
        "LOYALTY_MAIL_FROM": _env("LOYALTY_MAIL_FROM", ""),
        "LOYALTY_SMS_GATEWAY_URL": _env("LOYALTY_SMS_GATEWAY_URL", ""),
        "LOYALTY_PUSH_GATEWAY_URL": _env("LOYALTY_PUSH_GATEWAY_URL", ""),
        "LOYALTY_GATEWAY_SECRET": _env("LOYALTY_GATEWAY_SECRET", ""),
        "LOYALTY_MESSAGE_TIMEOUT_SECONDS": float(_env("LOYALTY_MESSAGE_TIMEOUT_SECONDS", "10")),
    }
