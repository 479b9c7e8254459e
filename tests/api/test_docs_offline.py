"""/api/v1/docs works with no internet: Swagger UI 5 from our own static files, under API.md's CSP."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = "/api/v1/docs"
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
JS = {"text/javascript; charset=utf-8", "application/javascript; charset=utf-8"}


class Page(HTMLParser):
    """The URLs a page makes the browser load, and the bodies of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []  # (tag, url)
        self.inline_scripts: list[str] = []
        self.inline_handlers: list[str] = []
        self.spec_urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline_handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script":
            self._in_script = True
            if attrs.get("src"):
                self.assets.append((tag, attrs["src"]))
        elif tag == "link" and attrs.get("href"):
            self.assets.append((tag, attrs["href"]))
        elif tag in ("img", "iframe", "embed", "source") and attrs.get("src"):
            self.assets.append((tag, attrs["src"]))
        if attrs.get("data-spec-url"):
            self.spec_urls.append(attrs["data-spec-url"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


@pytest.fixture
def docs(client):
    r = client.get(DOCS)
    assert r.status_code == 200, r.status_code
    page = Page()
    page.feed(r.get_data(as_text=True))
    return r, page


def get(client, url: str):
    r = client.get(url)
    r.get_data()
    r.close()  # static files answer with an open file
    return r


def test_the_docs_page_is_html_under_the_csp(docs):
    r, page = docs
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert page.inline_scripts == [] and page.inline_handlers == []
    assert page.spec_urls == ["/api/v1/openapi.json"]


def test_every_asset_is_same_origin_and_served_with_its_charset(client, docs):
    _, page = docs
    kinds = {}
    for tag, url in page.assets:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url  # no CDN, no //host
        r = get(client, url)
        assert r.status_code == 200, url
        path = parts.path
        if path.endswith(".js"):
            assert tag == "script" and r.headers["Content-Type"] in JS, (url, r.headers["Content-Type"])
        elif path.endswith(".css"):
            assert r.headers["Content-Type"] == "text/css; charset=utf-8", url
        elif path.endswith(".png"):
            assert r.headers["Content-Type"] == "image/png", url
        else:
            pytest.fail(f"unexpected asset {url}")
        kinds[Path(path).name] = r
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "init.js"} <= set(kinds)
    # the start-up script is a static file and asks only for our own document, with no badge from the internet
    init = kinds["init.js"].get_data(as_text=True)
    assert "SwaggerUIBundle(" in init and "data-spec-url" in init and "validatorUrl: null" in init
    assert "http://" not in init and "https://" not in init


def test_the_page_points_at_an_openapi_3_1_document(client, docs):
    _, page = docs
    r = client.get(page.spec_urls[0])
    assert r.status_code == 200 and r.get_json()["openapi"].startswith("3.1")


def version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split("."))


def test_swagger_ui_is_version_5_or_later_and_the_one_pinned(client):
    bundle = get(client, "/static/vendor/swagger-ui/swagger-ui-bundle.js").get_data(as_text=True)
    found = re.search(r'PACKAGE_VERSION:"(\d+\.\d+\.\d+)"', bundle)
    assert found, "no version in swagger-ui-bundle.js"
    assert version(found[1]) >= (5, 0, 0), found[1]  # 4.x cannot read OpenAPI 3.1
    pinned = re.search(r"^VERSION=(\S+)$", (ROOT / "tools/fetch-swagger-ui").read_text(), re.M)
    assert pinned and pinned[1] == found[1]  # the committed files are what the script would fetch
    package = get(client, "/static/vendor/swagger-ui/package.json").get_json()
    assert package["name"] == "swagger-ui-dist" and package["version"] == found[1]
    assert (ROOT / "static/vendor/swagger-ui/LICENSE").is_file()


def test_redoc_and_the_cdn_are_gone(client, app):
    assert client.get("/api/v1/redoc").status_code == 404
    assert not any(str(v).startswith(("http://", "https://")) for k, v in app.config.items() if k.startswith("OPENAPI"))
