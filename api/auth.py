"""Who is calling: bearer-token parsing, role decorators and ownership helpers."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request

from wallet import tokens
from wallet.errors import Forbidden, Unauthorized

from .extensions import db
from .state import keyring, program


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def current_principal(*, defer_sign_in: bool = False) -> tokens.Principal:
    """The verified caller; Unauthorized if there is no valid access token.

    ``defer_sign_in``: the view reads the sign-in itself (:func:`sign_in_read_by_view`); see :func:`roles_required`."""
    if "principal" not in g:
        token = bearer_token()
        if token is None:
            raise Unauthorized("Send an access token: Authorization: Bearer <token>", code="unauthorized")
        principal = tokens.verify_access_token(keyring(), token, program().now())
        # The signature says who; the sign-in's row says whether it still stands (sign-out, password change,
        # deactivation, closure): one read by key per request, so a revoked token stops at once, on any host.
        if defer_sign_in:
            g.sign_in_deferred = True
        else:
            tokens.check_signed_in(db.session(), principal)
        g.principal = principal
    return g.principal


def sign_in_read_by_view() -> tokens.Principal:
    """The caller, for a view whose own first read checks the caller's sign-in with its data (the till's purchase:
    ``till.record_purchase(sign_in=...)``), a round trip fewer on the till's path."""
    g.sign_in_read = True
    return current_principal()


def _deferred_sign_in(failed: BaseException | None) -> None:
    """A view that deferred the sign-in check has it made here unless its own read made it and it answered: a
    replay (Idempotency-Key), refused input or any other failure gets 401 if the sign-in has ended."""
    read = g.pop("sign_in_read", False)
    if not g.pop("sign_in_deferred", False) or (failed is None and read):
        return
    if not isinstance(failed, Unauthorized):
        tokens.check_signed_in(db.session(), g.principal)


def roles_required(*roles: str, sign_in_read_by_view: bool = False) -> Callable:
    """Only these roles may call the view: 401 without a valid token, 403 with the wrong role.

    ``sign_in_read_by_view``: the view checks the sign-in in its own read (see :func:`sign_in_read_by_view`);
    whatever path the request takes, the check is made once."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal(defer_sign_in=sign_in_read_by_view)
            try:
                if principal.role not in roles:
                    raise Forbidden(f"This needs the role {' or '.join(roles)}", code="forbidden")
                if principal.role == "cashier" and not principal.store_id:
                    raise Forbidden("This cashier is not bound to a store", code="forbidden")
                answer = view(*args, **kwargs)
            except Exception as error:
                _deferred_sign_in(error)
                raise
            _deferred_sign_in(None)
            return answer

        wrapper._roles = roles  # type: ignore[attr-defined]
        return wrapper

    return decorator


member_required = roles_required("member")
cashier_required = roles_required("cashier")


def cashier_store() -> str:
    """The store of the signed-in cashier's till (its token names it)."""
    return current_principal().store_id
# The till's purchase: its one read checks the cashier's sign-in with the card (till.record_purchase(sign_in=...)).
cashier_till_required = roles_required("cashier", sign_in_read_by_view=True)
marketer_required = roles_required("marketer", "admin")
admin_required = roles_required("admin")
