"""Apple's PassKit web service at ``<public base>/api/passkit/v1/...``: Apple's paths, methods, status codes and
bodies (``wallet.passes.webservice``), answered in Apple's way, never as problem+json: JSON where Apple defines a
body, otherwise a short plain-text reason. Unconfigured (or the certificate expired): 404 everywhere."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

from wallet.errors import DomainError
from wallet.passes import apple, google, images, webservice

from ..extensions import db
from ..resource import Resource
from ..state import program

blp = Blueprint("passkit", __name__, url_prefix="/api/passkit/v1")

_REGISTRATION = "/devices/<string:device_id>/registrations/<string:pass_type_id>/<string:serial>"


def _plain(status: int, message: str = "") -> Response:
    return Response(message + ("\n" if message else ""), status=status, mimetype="text/plain")


@blp.errorhandler(webservice.Refused)
def _refused(error: webservice.Refused) -> Response:
    return _plain(error.status, error.message)


@blp.errorhandler(DomainError)
def _domain(error: DomainError) -> Response:  # PassUnavailable above all: Apple passes are off here
    return _plain(404 if error.code in ("wallet_pass_unavailable", "not_found") else 400, error.detail)


@blp.errorhandler(HTTPException)
def _http(error: HTTPException) -> Response:  # 413 for an oversized body (a 5 MB push token), 405, 415 ...
    return _plain(error.code or 500, error.name)


@blp.after_request
def _never_problem_json(response: Response) -> Response:
    """The app's own guards (a body that is not JSON, a NUL in a path) answer before the views, as problem+json;
    here they are said Apple's way too: the same status, the reason in plain text."""
    if response.mimetype == "application/problem+json":
        detail = (response.get_json(silent=True) or {}).get("detail") or ""
        return _plain(response.status_code, str(detail))
    return response


class Registration(Resource):
    def post(self, device_id: str, pass_type_id: str, serial: str):
        """Register a device for a pass's updates: 201 new, 200 already registered, 401 wrong token."""
        status = webservice.register(db.session, program(), device_id=device_id, pass_type_id=pass_type_id,
                                     serial=serial, authorization=request.headers.get("Authorization"),
                                     body=request.get_json(silent=True))
        return _plain(status)

    def delete(self, device_id: str, pass_type_id: str, serial: str):
        """Unregister a device from a pass's updates: 200."""
        status = webservice.unregister(db.session, program(), device_id=device_id, pass_type_id=pass_type_id,
                                       serial=serial, authorization=request.headers.get("Authorization"))
        return _plain(status)


class Registrations(Resource):
    def get(self, device_id: str, pass_type_id: str):
        """The serial numbers of the device's passes changed since ``passesUpdatedSince``: 200, or 204 for none."""
        found = webservice.updated_serials(db.session, program(), device_id=device_id, pass_type_id=pass_type_id,
                                           since=request.args.get("passesUpdatedSince"))
        if found is None:
            return Response(status=204)
        return jsonify(found)


class LatestPass(Resource):
    def get(self, pass_type_id: str, serial: str):
        """The latest version of a pass, with Last-Modified; 304 when unchanged since If-Modified-Since."""
        found = webservice.latest_pass(db.session, program(), pass_type_id=pass_type_id, serial=serial,
                                       authorization=request.headers.get("Authorization"),
                                       if_modified_since=request.if_modified_since)
        response = Response(status=304) if found.data is None else Response(found.data, mimetype=apple.MEDIA_TYPE)
        response.headers["Last-Modified"] = http_date(found.modified)
        response.headers["Cache-Control"] = "no-cache"  # always ask again: Wallet sends If-Modified-Since
        return response


class Log(Resource):
    def post(self):
        """Devices' error messages about this service: logged, 200."""
        webservice.record_logs(request.get_json(silent=True))
        return _plain(200)


blp.add_url_rule(_REGISTRATION, view_func=Registration.as_view("registration"))
blp.add_url_rule("/devices/<string:device_id>/registrations/<string:pass_type_id>",
                 view_func=Registrations.as_view("registrations"))
blp.add_url_rule("/passes/<string:pass_type_id>/<string:serial>", view_func=LatestPass.as_view("latest_pass"))
blp.add_url_rule("/log", view_func=Log.as_view("log"))


def _program_logo() -> Response:
    """The club's logo as Google Wallet shows it: a public image Google fetches, not an API operation."""
    response = Response(images.program_logo(), mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def register(app: Flask) -> None:
    app.register_blueprint(blp)
    app.add_url_rule(google.LOGO_PATH, "wallet_logo", _program_logo, methods=["GET"])
