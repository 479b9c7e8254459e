"""API access and refresh tokens: JWTs per RFC 8725 (pinned algorithm, exp/iss/aud/typ checked, kid for rotation)."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import ColumnElement, String, bindparam, delete, exists, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, rowcount
from .errors import InvalidToken, TokenExpired
from .fast_sql import execute, own_transaction
from .members import Member, Staff

ALGORITHM = "HS256"
ACCESS_TYP = "at+jwt"        # RFC 9068
REFRESH_TYP = "refresh+jwt"


@dataclass(frozen=True)
class KeyRing:
    """Signing key first; older keys still verify tokens they signed until those expire."""

    keys: tuple[bytes, ...]
    issuer: str = "loyalty"
    audience: str = "loyalty-api"
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)
    # Access tokens this ring verified: token -> (exp, principal). Everything _decode checks but the expiry
    # depends only on the token and the ring's keys, so a hit need only compare exp with the clock again.
    _verified: dict[str, tuple[int, Principal]] = field(default_factory=dict, init=False, repr=False,
                                                         compare=False, hash=False)

    @staticmethod
    def kid(key: bytes) -> str:
        return hashlib.sha256(key).hexdigest()[:12]

    def by_kid(self, kid: str) -> bytes | None:
        return next((k for k in self.keys if self.kid(k) == kid), None)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member or a staff account, with the role and (for cashiers) the store."""

    id: str
    role: str
    store_id: str | None = None
    session_id: str | None = None  # the sign-in (refresh chain) the token belongs to: what sign-out ends


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the jti
    family: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(32), index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignIn(Base):
    """One sign-in: every access and refresh token it gives carries its id (``sid``; the refresh chain's family).
    Ending it (sign-out, a password change elsewhere, a deactivated or closed account) stops those tokens on the
    next request anywhere: each request reads this row by its key (:func:`check_signed_in`)."""

    __tablename__ = "sign_ins"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


def principal_of(account: Member | Staff) -> Principal:
    if isinstance(account, Member):
        return Principal(id=account.id, role="member")
    return Principal(id=account.id, role=account.role, store_id=account.store_id)


def _encode(ring: KeyRing, claims: dict[str, Any], typ: str) -> str:
    key = ring.keys[0]
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": typ, "kid": ring.kid(key)})


def _decode(ring: KeyRing, token: str, typ: str, now: datetime) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidToken("Malformed token") from None
    # The header is attacker-controlled: check typ and alg before trusting anything else.
    if header.get("typ") != typ:
        raise InvalidToken("Wrong kind of token")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("Unsupported token algorithm")
    key = ring.by_kid(str(header.get("kid", "")))
    if key is None:
        raise InvalidToken("Unknown signing key")
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=ring.audience, issuer=ring.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                     "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"Invalid token: {exc}") from None
    # Expiry is checked against the programme's clock, not the machine's, so one clock rules (and tests move it).
    # iat is informative only: the signature vouches for it and exp bounds the token's life.
    exp, iat = claims["exp"], claims["iat"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
        raise InvalidToken("Invalid token: exp and iat must be integers")
    if exp <= now.timestamp():
        raise TokenExpired("The token has expired")
    return claims


def issue_access_token(ring: KeyRing, principal: Principal, now: datetime) -> str:
    claims = {
        "iss": ring.issuer, "aud": ring.audience, "sub": principal.id, "role": principal.role,
        "iat": int(now.timestamp()), "exp": int((now + ring.access_ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    if principal.store_id:
        claims["store"] = principal.store_id
    if principal.session_id:
        claims["sid"] = principal.session_id
    return _encode(ring, claims, ACCESS_TYP)


VERIFIED_CACHE_SIZE = 4096


def verify_access_token(ring: KeyRing, token: str, now: datetime) -> Principal:
    cached = ring._verified.get(token)
    if cached is not None:
        exp, principal = cached
        if exp <= now.timestamp():  # the same test as _decode's, against the same clock
            raise TokenExpired("The token has expired")
        return principal
    claims = _decode(ring, token, ACCESS_TYP, now)
    sid = claims.get("sid")
    principal = Principal(id=claims["sub"], role=claims.get("role", ""), store_id=claims.get("store"),
                          session_id=sid if isinstance(sid, str) else None)
    verified = ring._verified
    while len(verified) >= VERIFIED_CACHE_SIZE:  # bounded: forget the oldest
        try:
            del verified[next(iter(verified))]
        except (KeyError, RuntimeError, StopIteration):  # another thread changed it meanwhile
            break
    verified[token] = (claims["exp"], principal)
    return principal


def sign_in(session: Session, principal: Principal, now: datetime) -> Principal:
    """Start a sign-in for this account: the principal its tokens carry."""
    sid = secrets.token_hex(16)
    session.add(SignIn(id=sid, subject=principal.id, created_at=now))
    return Principal(principal.id, principal.role, principal.store_id, session_id=sid)


_ENDED = select(SignIn.ended_at, SignIn.subject).where(SignIn.id == bindparam("sid"))


def signed_out() -> InvalidToken:
    return InvalidToken("This sign-in has ended; sign in again", code="signed_out")


def check_signed_in(session: Session, principal: Principal) -> None:
    """InvalidToken unless the token's sign-in is still going: one read by primary key, outside any transaction
    on PostgreSQL (a purchase still needs no BEGIN), on every request that carries a token (the till's purchase
    reads it with its card instead: :func:`still_signed_in`)."""
    if not principal.session_id:
        raise InvalidToken("This token belongs to no sign-in; sign in again", code="signed_out")
    with own_transaction(session):
        row = execute(session, _ENDED, {"sid": principal.session_id}).first()
    if row is None or row[0] is not None or row[1] != principal.id:
        raise signed_out()


def still_signed_in(session_id: Any, subject: Any) -> ColumnElement[bool]:
    """The same test as :func:`check_signed_in` as a column, for a hot path's own read (the till's purchase): true
    while the sign-in ``session_id`` of ``subject`` stands, or when no sign-in is asked about (``session_id`` null:
    a purchase recorded by the demo or a command, with no token)."""
    return or_(session_id.is_(None), exists().where(SignIn.id == session_id, SignIn.subject == subject,
                                                    SignIn.ended_at.is_(None)))


def sign_out(session: Session, session_id: str, now: datetime) -> None:
    """End one sign-in: its access tokens stop at once, its refresh chain is revoked."""
    session.execute(update(SignIn).where(SignIn.id == session_id, SignIn.ended_at.is_(None)).values(ended_at=now))
    session.execute(update(RefreshToken).where(RefreshToken.family == session_id).values(revoked=True))


def sign_out_everywhere(session: Session, subject: str, now: datetime, *, keep: str | None = None) -> int:
    """End every sign-in of this account (but ``keep``); how many were going."""
    where = [SignIn.subject == subject, SignIn.ended_at.is_(None)]
    if keep:
        where.append(SignIn.id != keep)
    ended = rowcount(session.execute(update(SignIn).where(*where).values(ended_at=now)))
    revoke = [RefreshToken.subject == subject]
    if keep:
        revoke.append(RefreshToken.family != keep)
    session.execute(update(RefreshToken).where(*revoke).values(revoked=True))
    return ended


def issue_refresh_token(session: Session, ring: KeyRing, principal: Principal, now: datetime,
                        family: str | None = None) -> str:
    jti = secrets.token_hex(16)
    family = family or principal.session_id
    session.add(RefreshToken(id=jti, family=family or jti, subject=principal.id,
                             expires_at=now + ring.refresh_ttl, created_at=now))
    claims = {
        "iss": ring.issuer, "aud": ring.audience, "sub": principal.id,
        "iat": int(now.timestamp()), "exp": int((now + ring.refresh_ttl).timestamp()), "jti": jti,
    }
    return _encode(ring, claims, REFRESH_TYP)


def rotate_refresh_token(session: Session, ring: KeyRing, token: str, now: datetime) -> tuple[Principal, str]:
    """Spend a refresh token once; a second use revokes its whole family (it was stolen or replayed)."""
    claims = _decode(ring, token, REFRESH_TYP, now)
    row = session.get(RefreshToken, claims["jti"])
    if row is None or row.revoked:
        raise InvalidToken("This refresh token is no longer valid")
    # A conditional update: of two concurrent uses, exactly one wins.
    won = rowcount(session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None)).values(used_at=now)
    ))
    if not won:  # stolen or replayed: the whole sign-in ends, its access tokens too
        sign_out(session, row.family, now)
        raise InvalidToken("This refresh token was already used", code="refresh_token_reused", commit=True)
    account: Member | Staff | None = session.get(Member, row.subject) or session.get(Staff, row.subject)
    if account is None or (isinstance(account, Staff) and not account.active) or \
            (isinstance(account, Member) and account.status != "active"):
        raise InvalidToken("The account is closed")
    signed_in = session.get(SignIn, row.family)
    if signed_in is None:  # a chain begun before sign-ins were recorded: it becomes one now
        session.add(SignIn(id=row.family, subject=account.id, created_at=now))
    elif signed_in.ended_at is not None:
        raise InvalidToken("This sign-in has ended; sign in again", code="signed_out")
    account_principal = principal_of(account)
    principal = Principal(account_principal.id, account_principal.role, account_principal.store_id,
                          session_id=row.family)
    return principal, issue_refresh_token(session, ring, principal, now, family=row.family)


def purge_expired(session: Session, now: datetime) -> int:
    """Delete refresh tokens past their expiry; they can never be used again."""
    return rowcount(session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now)))
