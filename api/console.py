"""The marketers' console at ``/console/``: a single page of static files (``static/console/``) over the public API.

No build step and nothing from elsewhere: plain JavaScript modules, our own CSS and SVG charts, served here with
the Content-Security-Policy of API.md (no inline script). The page keeps its tokens in memory only.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, redirect, send_from_directory
from werkzeug.exceptions import NotFound

from .docs import HTML_HEADERS

ROOT = Path(__file__).resolve().parent.parent / "static" / "console"
# The page and its modules change with the code: always revalidated (ETag), never served stale from a cache.
HEADERS = HTML_HEADERS | {"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}

console = Blueprint("console", __name__)


@console.get("/console")
def bare() -> Response:
    return redirect("/console/", code=308)  # type: ignore[return-value]


@console.get("/console/")
def page() -> Response:
    return _send("index.html")


@console.get("/console/<path:filename>")
def asset(filename: str) -> Response:
    if filename.endswith(".html"):
        raise NotFound()  # one page: every screen is a hash route of /console/
    return _send(filename)


def _send(filename: str) -> Response:
    response = send_from_directory(ROOT, filename, max_age=0)  # a path outside ROOT is a 404
    response.headers.update(HEADERS)
    if response.mimetype in ("text/javascript", "application/javascript", "text/css", "text/html"):
        response.headers["Content-Type"] = f"{response.mimetype}; charset=utf-8"
    return response


def register(app: Flask) -> None:
    app.register_blueprint(console)
