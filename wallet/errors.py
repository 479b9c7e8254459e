"""Domain errors. Each carries a stable machine-readable ``code``; api/errors.py maps the family to HTTP."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    title = "The request could not be carried out"

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 errors: dict[str, list[str]] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.errors = errors
        # A refusal that must still be recorded (a refused check-in, a revoked token family) sets commit=True.
        self.commit = bool(extra.pop("commit", False))
        self.extra = extra


class NotFound(DomainError):
    code = "not_found"
    title = "Not found"


class Invalid(DomainError):
    """The input is well-formed but its values can't be accepted (422)."""
    code = "validation_error"
    title = "Invalid input"


class Rejected(DomainError):
    """The state of the club refuses the request (422): not enough points, too far from the store..."""
    code = "rejected"
    title = "Request refused"


class Conflict(DomainError):
    """The request conflicts with something already recorded (409)."""
    code = "conflict"
    title = "Conflict"


class Unauthorized(DomainError):
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(DomainError):
    code = "forbidden"
    title = "Forbidden"


class InsufficientPoints(Rejected):
    code = "insufficient_points"
    title = "Not enough points"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid token"


class TokenExpired(Unauthorized):
    code = "token_expired"
    title = "Token expired"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    title = "Idempotency key reused with a different request"


# ---------------------------------------------------------------- offers and coupons

class OfferNotActive(Rejected):
    code = "offer_not_active"
    title = "This offer can't be claimed now"


class OfferExhausted(Rejected):
    code = "offer_exhausted"
    title = "This offer has run out"


class LimitReached(Rejected):
    code = "limit_reached"
    title = "You already have as many of these as the offer allows"


class CouponAlreadyRedeemed(Conflict):
    code = "coupon_already_redeemed"
    title = "This coupon was already redeemed"


class CouponExpired(Rejected):
    code = "coupon_expired"
    title = "This coupon has expired"


class CouponVoid(Rejected):
    code = "coupon_void"
    title = "This coupon was cancelled"


class CouponNotValidHere(Rejected):
    code = "coupon_not_valid_here"
    title = "This coupon can't be redeemed in this store"


class CouponOwnerMismatch(Rejected):
    code = "coupon_owner_mismatch"
    title = "This coupon belongs to another member"


class InvalidCoupon(Invalid):
    """What was scanned or typed is not a coupon this club issued (forged, tampered or mistyped)."""
    code = "invalid_coupon"
    title = "Not a valid coupon code"


# ---------------------------------------------------------------- the phone's wallet

class PassUnavailable(NotFound):
    """Apple Wallet or Google Wallet is not configured here (or its certificate is not valid now)."""
    code = "wallet_pass_unavailable"
    title = "Wallet passes are not available"


# ---------------------------------------------------------------- defences against farming points

class Throttled(DomainError):
    """Slowed down: try again after ``retry_after`` seconds (HTTP 429 with Retry-After). Every 429 of the domain is
    one of these; each kind keeps its own code."""

    code = "rate_limited"
    title = "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))


class TooManyAttempts(Throttled):
    """Failed sign-ins for one account: it is closed for a growing while."""
    code = "too_many_attempts"


class TooManyRequests(Throttled):
    """A burst of enrolments or claims (the caller's ``code``), flagged for review; the answer says its
    ``retry_after`` and ``limit`` too."""

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **kwargs)
        self.extra = {"retry_after": retry_after, **self.extra}


class Busy(DomainError):
    """The server is at capacity for this kind of work: try again shortly (HTTP 503 with Retry-After)."""

    code = "busy"
    title = "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))
