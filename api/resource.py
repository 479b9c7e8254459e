"""The one place a request's transaction is committed, with Idempotency-Key replay (Stripe's design).

Every view is a ``Resource``: the view calls one domain function; here the session is committed if it
returned, rolled back if it raised. A unique-constraint race (two tills, one receipt) rolls back and runs the
request again, which then finds the winner's row and replays it. A POST with ``Idempotency-Key`` claims the
key first, in the same transaction as its effect, so two concurrent sends of one key make one effect.
"""
from __future__ import annotations

import hashlib
import re

from flask import Response, current_app, request
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError, OperationalError

from wallet import idempotency, tokens
from wallet.errors import Conflict, DomainError, Invalid

from .extensions import db
from .state import keyring, program

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ATTEMPTS = 4
REPLAYED = "Idempotency-Replayed"


def _retryable(error: Exception) -> bool:
    if isinstance(error, IntegrityError):
        return True
    # PostgreSQL serialization failure / deadlock; SQLite "database is locked".
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return isinstance(error, OperationalError) and (code in ("40001", "40P01") or "locked" in str(error))


def _idempotency_scope() -> tuple[str, str] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method != "POST":
        return None
    if not _KEY.match(key):
        raise Invalid("Idempotency-Key is 1 to 255 visible ASCII characters", code="invalid_idempotency_key",
                      errors={"Idempotency-Key": ["1 to 255 visible ASCII characters."]})
    # Keys are per caller: two members may pick the same key without meeting. Anonymous requests (enrolment,
    # sign-in) are not replayed: strangers would share one key space, and their answers carry tokens that
    # must not be stored. A retried enrolment gets 409 email_taken and signs in instead.
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    if not token:
        return None
    try:
        principal = tokens.verify_access_token(keyring(), token, program().now()).id
    except DomainError:
        return None  # the view's own auth check answers 401
    return principal, key


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}?{request.query_string.decode()}\n".encode())
    if request.mimetype == "multipart/form-data":
        # An upload sent again comes with a new random boundary: the same body is the same fields and files.
        for name, value in sorted(request.form.items(multi=True)):
            digest.update(f"field {len(name)}:{name} {len(value)}:".encode() + value.encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            content = upload.read()
            upload.seek(0)
            digest.update(f"file {len(name)}:{name} {upload.filename!r} {len(content)}:".encode() + content)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


class Resource(MethodView):
    def dispatch_request(self, **kwargs):
        session = db.session
        scope = _idempotency_scope()
        fingerprint = _fingerprint() if scope else ""
        for attempt in range(_ATTEMPTS):
            try:
                claimed = None
                if scope:
                    stored = idempotency.find(session, *scope, fingerprint)
                    if stored is not None:
                        session.rollback()
                        return _replay(stored)
                    claimed = idempotency.claim(session, *scope, fingerprint, program().now())
                response = current_app.make_response(super().dispatch_request(**kwargs))
                if claimed is not None and response.status_code < 400:
                    idempotency.record(session, claimed, response.status_code, response.get_data(),
                                       response.content_type)
                elif claimed is not None:
                    session.delete(claimed)  # an error answer is not kept: a retry runs again
                session.commit()
                return response
            except DomainError as error:
                if error.commit:  # a refusal that is itself recorded; the key stays free for a retry
                    if claimed is not None:
                        session.delete(claimed)
                    session.commit()
                else:
                    session.rollback()
                raise
            except (IntegrityError, OperationalError) as error:
                session.rollback()
                if not _retryable(error) or attempt == _ATTEMPTS - 1:
                    raise Conflict("Another request changed the same thing at the same time; try again",
                                   code="concurrent_update") from error
            except BaseException:
                session.rollback()
                raise
        raise AssertionError("unreachable")


def _replay(stored: idempotency.IdempotencyKey) -> Response:
    if stored.status is None:  # claimed by a request still running
        raise Conflict("A request with this Idempotency-Key is still being processed", code="idempotency_in_progress")
    response = Response(stored.body, status=stored.status, content_type=stored.content_type)
    response.headers[REPLAYED] = "true"
    return response
