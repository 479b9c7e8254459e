"""Browser tests: headless Chromium from the system (Debian's ``chromium``) driven by Playwright, against a real
server on a loopback port. Never a browser download: where either is missing the tests skip, saying why."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("LOYALTY_SCREENSHOTS") or Path(__file__).parent / "screenshots")
_saved: list[Path] = []


def _missing() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no system Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]'; never `playwright install`)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live_server(make_app, tmp_path):
    """A real HTTP server (werkzeug, threaded) on 127.0.0.1 serving an app on its own SQLite file."""
    from werkzeug.serving import make_server
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'browser.db'}")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)`` saves a PNG (the window, or ``full_page``); the run's summary lists where."""
    def save(page, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        _saved.append(path)
        return path
    return save


def pytest_terminal_summary(terminalreporter):
    if _saved:
        terminalreporter.write_sep("-", "browser screenshots")
        for path in _saved:
            terminalreporter.write_line(str(path))
