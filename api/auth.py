"""Who is calling: bearer-token parsing, role decorators and ownership helpers."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request

from wallet import members, tokens
from wallet.errors import Forbidden, InvalidToken, Unauthorized

from .extensions import db
from .state import keyring, program


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def current_principal() -> tokens.Principal:
    """The verified caller; Unauthorized if there is no valid access token."""
    if "principal" not in g:
        token = bearer_token()
        if token is None:
            raise Unauthorized("Send an access token: Authorization: Bearer <token>", code="unauthorized")
        principal = tokens.verify_access_token(keyring(), token, program().now())
        if principal.role == "member":  # erased or closed (wallet.erasure.revoke_member_sessions): tokens stop at once
            status = members.membership_status(db.session, principal.id)
            if status is None:
                raise InvalidToken("The account this token was issued for no longer exists")
            if status != "active":
                raise Unauthorized("This membership is closed", code="account_disabled")
        g.principal = principal
    return g.principal


def roles_required(*roles: str) -> Callable:
    """Only these roles may call the view: 401 without a valid token, 403 with the wrong role."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal.role not in roles:
                raise Forbidden(f"This needs the role {' or '.join(roles)}", code="forbidden")
            if principal.role == "cashier" and not principal.store_id:
                raise Forbidden("This cashier is not bound to a store", code="forbidden")
            return view(*args, **kwargs)

        wrapper._roles = roles  # type: ignore[attr-defined]
        return wrapper

    return decorator


member_required = roles_required("member")
cashier_required = roles_required("cashier")
marketer_required = roles_required("marketer", "admin")
admin_required = roles_required("admin")
