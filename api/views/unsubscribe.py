"""One-click unsubscribe (RFC 8058) at ``/api/v1/unsubscribe/<token>``: GET shows a confirmation page and changes
nothing (mail scanners follow links); POST with the form body ``List-Unsubscribe=One-Click`` (what a mail client
sends, and what the page's button sends) withdraws that channel's marketing consent, idempotently. No sign-in and no
cookies: the signed token is the authority. Answers are HTML pages for people (a standard fixes this format),
with the API's Content-Security-Policy and no script."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from markupsafe import escape

from wallet.campaigns import unsubscribe
from wallet.errors import DomainError

from .. import pages
from ..extensions import db
from ..state import program

blp = Blueprint("unsubscribe", __name__, url_prefix="/api/v1/unsubscribe")

_WHAT = {"email": "marketing emails", "sms": "marketing text messages", "push": "marketing push notifications"}


def _refused(error: DomainError) -> Response:
    if error.code == "membership_ended":
        return pages.page(410, "Nothing to unsubscribe from", "This membership has ended: the club sends it nothing.")
    return pages.page(404, "This link is not valid", "This unsubscribe link is not one the club sent, or it was altered. "
                                                "You can change what you receive in the app's settings.")


@blp.route("/<path:token>", methods=["GET", "POST"], endpoint="page")  # api.FORM_ENDPOINTS names it
def page(token: str) -> Response:
    if len(token) > 200:
        return _refused(unsubscribe.InvalidLink())
    try:
        link = unsubscribe.read(program(), token)
        if request.method == "GET":
            unsubscribe.member_of(db.session, link)
            db.session.rollback()
            action = escape(request.path)
            form = (f'<form method="post" action="{action}">'
                    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                    '<button type="submit">Unsubscribe</button></form>')
            return pages.page(200, "Unsubscribe?", f"Stop {_WHAT[link.channel]} from the club? Press the button to "
                                              "confirm; nothing changes until you do.", form)
        if request.form.get("List-Unsubscribe") != "One-Click":
            return pages.page(400, "Nothing was changed", "An unsubscribe request carries List-Unsubscribe=One-Click.")
        _, changed = unsubscribe.withdraw(db.session, program(), token)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _refused(error)
    except BaseException:
        db.session.rollback()
        raise
    return pages.page(200, "You are unsubscribed", f"You will receive no more {_WHAT[link.channel]} from the club."
                 + ("" if changed else " (You had unsubscribed already.)"))


def register(app: Flask) -> None:
    app.register_blueprint(blp)


_HTML = {"description": "an HTML page for the person who followed the link", "content": {"text/html": {}}}
_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _refusal(what: str) -> dict:
    return {"description": f"an HTML page: {what}", "content": {"text/html": {}}}


# The page's own refusals are pages too (a person follows the link); only the limits and a failure are problem+json.
_REFUSALS = {"404": _refusal("not a link the club sent, or altered"), "410": _refusal("the membership has ended"),
             "429": _PROBLEM, "500": _PROBLEM}


def document(spec) -> None:
    """The two operations in the OpenAPI document (the view is a plain Flask route: its answers are pages)."""
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}}
    # apispec's Flask plugin wants a view to describe; this page has no schemas, so the operations go in as written
    spec._paths["/api/v1/unsubscribe/{token}"] = {
        "get": {"summary": "RFC 8058: a confirmation page; changes nothing", "tags": ["Unsubscribe"],
                "security": [], "parameters": [token], "responses": {"200": _HTML, **_REFUSALS}},
        "post": {"summary": "RFC 8058 one-click: withdraws the channel's marketing consent; idempotent",
                 "tags": ["Unsubscribe"], "security": [], "parameters": [token],
                 "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "required": ["List-Unsubscribe"],
                     "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}}}},
                 "responses": {"200": _HTML, "400": _refusal("the form did not say List-Unsubscribe=One-Click"),
                               **_REFUSALS, "413": _PROBLEM}}}
