"""A tracked message's links and open pixel, under ``/api/v1/m/`` (wallet.campaigns.tracking): no sign-in and no
cookies, the signed token is the authority. A link answers 302 to the link of the campaign's message that its token
names, and to nothing else; a token the club did not sign, or one altered, is a 404: an HTML page for a browser (the
person who followed it), problem+json ``invalid_tracking_link`` for anyone else. The pixel answers a 1x1 GIF (a bad
token: problem+json, 404). HEAD counts nothing."""
from __future__ import annotations

import base64

from flask import Blueprint, Flask, Response, redirect, request

from wallet.campaigns import tracking
from wallet.errors import DomainError

from .. import pages
from ..errors import problem
from ..extensions import db
from ..state import program

blp = Blueprint("tracking", __name__, url_prefix="/api/v1/m")

MAX_TOKEN = 200
# A transparent 1x1 GIF (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the token is in the URL

def _invalid() -> Response:
    title = "This link is not valid"
    text = "This link is not one the club sent, or it was altered, so it leads nowhere."
    if request.accept_mimetypes.best_match(["application/problem+json", "text/html"]) != "text/html":
        response = problem(404, tracking.InvalidTrackingLink.code, title, text)
    else:  # a browser: a page for the person who followed the link
        response = pages.page(404, title, text + " The club's messages and offers are in the app.")
    response.headers.update(_PRIVATE)
    return response


@blp.get("/<token>", endpoint="click")
def click(token: str) -> Response:
    """Follow a tracked link: the first click is recorded (not on HEAD), then 302 to the message's own link."""
    if len(token) > MAX_TOKEN:
        return _invalid()
    try:
        target = tracking.follow(db.session, program(), token, record=request.method == "GET")
        db.session.commit()
    except DomainError:
        db.session.rollback()
        return _invalid()
    except BaseException:
        db.session.rollback()
        raise
    response = redirect(target, 302)
    response.headers.update(_PRIVATE)
    return response


@blp.get("/<token>/open.gif", endpoint="pixel")
def pixel(token: str) -> Response:
    """An email's open pixel: the first open is recorded (not on HEAD)."""
    try:
        if len(token) > MAX_TOKEN:
            raise tracking.InvalidTrackingLink()
        tracking.pixel_loaded(db.session, program(), token, record=request.method == "GET")
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise  # a DomainError: problem+json (api.errors); nobody reads a pixel's answer
    response = Response(PIXEL, mimetype="image/gif")
    response.headers.update(_PRIVATE)
    return response


def register(app: Flask) -> None:
    app.register_blueprint(blp)


_PROBLEM = {"$ref": "#/components/responses/Problem"}
_LIMITS = {"429": _PROBLEM, "500": _PROBLEM}  # the anonymous budget, and a failure


def document(spec) -> None:
    """The two operations in the OpenAPI document (plain Flask routes: a redirect and an image)."""
    token = {"name": "token", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": MAX_TOKEN}}
    spec._paths["/api/v1/m/{token}"] = {"get": {
        "summary": "A tracked link of a campaign's message: 302 to that link",
        "description": (
            "The links of a message to a member who gave the `profiling` consent go through here (email and SMS); "
            "everyone else's go straight to their target. The token (`<campaign>.<member>.<n>.<mac>`, signed by the "
            "club) names the n-th link of the campaign's message, and the answer redirects there and nowhere else. "
            "The first click of a message is counted (it counts as an open too: the report's `clicked` and "
            "`opened`) while the member still gives the consent; later clicks change nothing. A token the club did "
            "not sign, or one altered, is a 404 and never a redirect: an HTML page for a browser (`Accept` prefers "
            "text/html), problem+json `invalid_tracking_link` otherwise. HEAD counts nothing."),
        "tags": ["Messages"], "security": [], "parameters": [token],
        "responses": {"302": {"description": "to the message's link", "headers": {
            "Location": {"schema": {"type": "string", "format": "uri"}}}},
            "404": {"description": "not a link the club sent, or altered: a page for a browser, problem+json "
                                   "`invalid_tracking_link` otherwise",
                    "content": {"text/html": {}, "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}}},
            **_LIMITS}}}
    spec._paths["/api/v1/m/{token}/open.gif"] = {"get": {
        "summary": "The open pixel of an email to a member who gave the profiling consent",
        "description": (
            "A transparent 1x1 GIF in the HTML part of an email to a tracked member; loading it counts the "
            "message as opened once (the report's `opened`). Mail clients that load every image on delivery "
            "(Apple Mail Privacy Protection) count as opens, and clients that block images do not: `opened` is an "
            "estimate, `clicked` the firmer figure."),
        "tags": ["Messages"], "security": [], "parameters": [token],
        "responses": {"200": {"description": "a 1x1 GIF", "content": {"image/gif": {
                          "schema": {"type": "string", "format": "binary"}}}},
                      "404": _PROBLEM, **_LIMITS}}}
