"""Rate limits for every audience (API.md "Sessions, accounts and limits"), and sign-in attempts per account.

| audience | setting | default | counted per |
|---|---|---|---|
| /api/v1/auth/* | LOYALTY_RATELIMIT_AUTH | 20 per minute | address (flask-limiter, :func:`api.views.auth.limit_auth`) |
| no valid token | LOYALTY_RATELIMIT_ANONYMOUS | 120 per minute | address |
| member | LOYALTY_RATELIMIT_MEMBER | 300 per minute | token (its sign-in: every token a refresh chain gives) |
| cashier | LOYALTY_RATELIMIT_CASHIER | 600 per minute | token |
| marketer, admin | LOYALTY_RATELIMIT_STAFF | 600 per minute | token |

Counters live in ``LOYALTY_RATELIMIT_STORAGE_URI``: by default ``host://`` (:mod:`api.host_limits`, one count per
host whatever the number of worker processes), ``redis://`` for one count across hosts. A limited request is
refused before any view runs: it reads and writes nothing (a refused check-in stores no row). The check is one
counter increment: a dictionary look-up for the token (:func:`wallet.tokens.verify_access_token` remembers the
tokens it verified) and microseconds in the host storage. Health, readiness, metrics and static files are not
limited.

Failed sign-ins for one account (any address) slow that account's sign-in down: after ``FREE_FAILURES`` within a
day, each further failure closes sign-in for 1, 2, 4 ... seconds, at most ``MAX_BLOCK_SECONDS`` (429
``too_many_attempts`` with ``Retry-After``), so the account is never locked for good; a success forgets them.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
import unicodedata

from flask import Flask, request
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from wallet import tokens
from wallet.errors import DomainError, Throttled, TooManyAttempts

from . import host_limits  # noqa: F401  (registers the host:// storage scheme)
from .errors import problem
from .state import keyring, program

log = logging.getLogger(__name__)

SETTINGS = {"anonymous": "RATELIMIT_ANONYMOUS", "member": "RATELIMIT_MEMBER", "cashier": "RATELIMIT_CASHIER",
            "staff": "RATELIMIT_STAFF"}
UNLIMITED_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
FREE_FAILURES = 5
MAX_BLOCK_SECONDS = 900
FAILURE_MEMORY_SECONDS = 86_400


class Limits:
    """The audiences' limits and the sign-in attempts of one app, over one storage."""

    def _account_key(self, kind: str, email: str) -> str:
        return _account_key(self.prefix, kind, email)

    def __init__(self, app: Flask) -> None:
        self.enabled = bool(app.config.get("RATELIMIT_ENABLED", True))
        self.fail_open = bool(app.config.get("RATELIMIT_SWALLOW_ERRORS", True))
        self.storage: Storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"])
        self.window = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {a: parse(app.config[s]) for a, s in SETTINGS.items()}
        # flask-limiter's RATELIMIT_KEY_PREFIX: several apps (or test runs) on one Redis keep their counts apart
        self.prefix: tuple[str, ...] = (app.config["RATELIMIT_KEY_PREFIX"],) if app.config.get("RATELIMIT_KEY_PREFIX") \
            else ()

    # ------------------------------------------------------------------ every request
    def check_request(self):
        """Before any view: 429 if the caller's audience budget is spent."""
        req = request._get_current_object()
        if req.blueprint == "auth" or req.path.startswith(UNLIMITED_PREFIXES):
            return None  # /auth has its own budget per address
        audience, key = _audience(req)
        item = self.items[audience]
        try:
            if self.window.hit(item, *self.prefix, audience, key):
                return None
            reset = self.window.get_window_stats(item, *self.prefix, audience, key).reset_time
        except Exception:  # the storage is unreachable
            if not self.fail_open:
                raise
            log.warning("rate-limit storage unreachable; request let through", exc_info=True)
            return None
        return too_many(reset, "rate_limited", f"Too many requests: {item} for this "
                        f"{'address' if audience == 'anonymous' else 'token'}")

    # ------------------------------------------------------------------ sign-in attempts
    def refuse_sign_in(self, email: str) -> None:
        """TooManyAttempts while this account's sign-in is closed after failures."""
        if not self.enabled:
            return
        key = self._account_key("signin-block", email)
        try:
            if self.storage.get(key) <= 0:
                return
            reset = self.storage.get_expiry(key)
        except Exception:
            if not self.fail_open:
                raise
            return
        seconds = max(1, math.ceil(reset - time.time()))
        raise TooManyAttempts(f"Too many failed sign-ins for this account; try again in {seconds} s",
                              retry_after=seconds)

    def sign_in_failed(self, email: str) -> None:
        if not self.enabled:
            return
        try:
            failures = self.storage.incr(self._account_key("signin-failures", email), FAILURE_MEMORY_SECONDS)
            if failures > FREE_FAILURES:
                seconds = min(MAX_BLOCK_SECONDS, 2 ** (failures - FREE_FAILURES - 1))
                self.storage.incr(self._account_key("signin-block", email), seconds)
        except Exception:
            if not self.fail_open:
                raise

    def sign_in_succeeded(self, email: str) -> None:
        if not self.enabled:
            return
        try:
            self.storage.clear(self._account_key("signin-failures", email))
        except Exception:
            if not self.fail_open:
                raise


def too_many(reset_at: float, code: str, detail: str):
    seconds = max(1, math.ceil(reset_at - time.time()))
    return problem(429, code, Throttled.title, detail, headers={"Retry-After": str(seconds)})


def _audience(req) -> tuple[str, str]:
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        try:
            principal = tokens.verify_access_token(keyring(), value.strip(), program().now())
        except DomainError:
            principal = None
        if principal is not None:
            audience = principal.role if principal.role in ("member", "cashier") else "staff"
            return audience, principal.session_id or principal.id
    return "anonymous", req.remote_addr or "-"


def _account_key(prefix: tuple[str, ...], kind: str, email: str) -> str:
    # normalise_email's spelling (NFKC, trimmed, lower-cased): every spelling of one mailbox shares one count
    email = unicodedata.normalize("NFKC", email).strip().lower()
    return "/".join((*prefix, kind, hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()[:32]))


def init_app(app: Flask) -> Limits:
    limits = Limits(app)
    app.extensions["loyalty.limits"] = limits
    if limits.enabled:
        app.before_request(limits.check_request)
    return limits


def limits_of(app: Flask) -> Limits:
    return app.extensions["loyalty.limits"]
