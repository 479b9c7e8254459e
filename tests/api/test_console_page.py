"""/console/ as served, without a browser: the CSP of API.md, every module it imports served as UTF-8 JavaScript,
nothing loaded from elsewhere, no inline script, no HTML built from strings, no token in storage."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "static" / "console"
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
SOURCES = sorted(p for p in ROOT.rglob("*") if p.suffix in (".js", ".css", ".html"))
IMPORT = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']""")


def fetch(client, url: str):
    """The answer, its file closed (send_from_directory streams an open file)."""
    r = client.get(url)
    r.get_data()
    r.close()
    return r


def test_the_page_sends_the_csp_and_has_no_inline_script(client):
    r = fetch(client, "/console/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache"
    html = r.get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None
    assert re.search(r"<style", html) is None
    assert fetch(client, "/console").status_code == 308


def test_every_module_the_page_imports_is_served_as_utf8_javascript(client):
    seen, todo = set(), ["/console/app.js"]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = fetch(client, url)
        assert r.status_code == 200, url
        assert r.headers["Content-Type"] == "text/javascript; charset=utf-8", url
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        base = url.rsplit("/", 1)[0]
        for static, dynamic in IMPORT.findall(r.get_data(as_text=True)):
            target = static or dynamic
            assert target.startswith("./") or target.startswith("../"), (url, target)  # ours, relative
            parts = (base + "/" + target).split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            todo.append("/".join(resolved))
    assert len(seen) == len(list(ROOT.rglob("*.js"))), seen  # every file is reachable, none is dead
    assert fetch(client, "/console/console.css").headers["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("path", ["/console/../api/__init__.py", "/console/%2e%2e/api/config.py",
                                  "/console/index.html", "/console/nothing.js"])
def test_nothing_outside_the_console_folder_is_served(client, path):
    assert fetch(client, path).status_code == 404


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_load_nothing_from_elsewhere_and_never_build_html_from_strings(source):
    text = source.read_text(encoding="utf-8")
    assert re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text.replace("http://www.w3.org/2000/svg", "")) is None
    if source.suffix == ".css":
        assert "@import" not in text and "url(" not in text  # no font or image fetched by the styles
    if source.suffix == ".js":
        code = re.sub(r"(^|\s)//[^\n]*", r"\1", text)  # comments may name what the code never does
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                       "localStorage", "sessionStorage", "document.cookie", "window.confirm", "confirm(\"",
                       "alert(", "setTimeout(\"", "setAttribute(\"on"):
            assert banned not in code, (source.name, banned)


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_colours_meet_wcag_aa():
    css = (ROOT / "console.css").read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    text_pairs = [  # (text, background): 4.5:1 for text (WCAG 2.x AA)
        (var["ink"], var["paper"]), (var["ink"], var["wash"]), (var["muted"], var["paper"]),
        (var["muted"], var["wash"]), (var["brand"], var["paper"]), (var["brand"], var["wash"]),
        (var["brand-ink"], var["brand"]), (var["danger"], var["paper"]), (var["ok"], var["paper"]),
        ("#5c0b0e", "#fff5f5"), ("#ffffff", var["danger"]), (var["ok"], "#f1fbf3"),
    ]
    for fg, bg in text_pairs:
        assert contrast(fg, bg) >= 4.5, (fg, bg, round(contrast(fg, bg), 2))
    # the focus ring and the charts' lines against what they sit on: 3:1 for non-text (WCAG 1.4.11)
    assert contrast(var["focus"], var["paper"]) >= 3 and contrast(var["focus"], var["wash"]) >= 3
    charts = (ROOT / "charts.js").read_text()
    colours = re.search(r"const COLOURS = \[([^\]]+)\]", charts).group(1)
    for colour in re.findall(r"#[0-9a-f]{6}", colours):
        assert contrast(colour, "#ffffff") >= 4.5, colour  # also the colour of text in the legend's swatches
