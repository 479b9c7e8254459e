"""A plain page for a person who followed a link from a message (unsubscribe, a tracked link): not indexed, not
cached, and its URL (which carries a token) not sent on as a referrer."""
from __future__ import annotations

from flask import Response
from markupsafe import Markup, escape

from .docs import HTML_HEADERS

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>{text}</p>
{form}
</body>
</html>
"""


def page(status: int, title: str, text: str, form: Markup | str = "") -> Response:
    """The page: ``title`` and ``text`` escaped; ``form`` is markup the caller built (escaped itself)."""
    body = _PAGE.format(title=escape(title), text=escape(text), form=form)
    response = Response(body, status=status, mimetype="text/html")
    response.headers.update(HTML_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response
