"""The interactive API docs at ``/api/v1/docs``: Swagger UI 5 (it reads OpenAPI 3.1), served by the app itself.

Everything the page loads is ours: the vendored ``swagger-ui-dist`` files under ``static/vendor/swagger-ui/``
(rebuilt by ``tools/fetch-swagger-ui``) and the start-up script ``static/docs/init.js``. No CDN, so the docs
work with no internet, and no inline script, so they work under the Content-Security-Policy of API.md.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, url_for
from markupsafe import escape

# API.md, "Operating it": what every HTML page of the API sends.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                           "frame-ancestors 'none'")
HTML_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
VENDOR = "vendor/swagger-ui"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: interactive docs</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" sizes="32x32" href="{icon32}">
<link rel="icon" type="image/png" sizes="16x16" href="{icon16}">
<script defer src="{bundle}" charset="utf-8"></script>
<script defer src="{init}" charset="utf-8"></script>
</head>
<body>
<noscript><p>These docs need JavaScript. The OpenAPI document itself is at <a href="{spec}">{spec}</a>.</p></noscript>
<div id="swagger-ui" data-spec-url="{spec}"></div>
</body>
</html>
"""

docs = Blueprint("docs", __name__)


@docs.get("/docs")
def page() -> Response:
    def static(filename: str) -> str:
        return escape(url_for("static", filename=filename))

    html = PAGE.format(
        title=escape(current_app.config["API_TITLE"]), css=static(f"{VENDOR}/swagger-ui.css"),
        icon32=static(f"{VENDOR}/favicon-32x32.png"), icon16=static(f"{VENDOR}/favicon-16x16.png"),
        bundle=static(f"{VENDOR}/swagger-ui-bundle.js"), init=static("docs/init.js"),
        spec=escape(url_for("api-docs.openapi_json")))
    return Response(html, mimetype="text/html", headers=HTML_HEADERS)


def register(app: Flask) -> None:
    """Serve the docs page under the OpenAPI prefix (``/api/v1/docs``), next to ``openapi.json``."""
    app.register_blueprint(docs, url_prefix=app.config["OPENAPI_URL_PREFIX"])
