"""/api/v1/docs in a real browser, with every request outside the test server refused: Swagger UI starts under
the page's CSP, reads the OpenAPI 3.1 document and lists the operations, with no console error."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_docs_page_lists_the_operations_offline(browser, live_server, screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # Swagger UI renders an operation once it is near the viewport: a tall one shows the whole list at once
    page.set_viewport_size({"width": 1280, "height": 30000})
    problems: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} {req.failure}"))

    def offline(route):  # no internet: anything not served by our own server is refused, and noted
        if route.request.url.startswith(live_server + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()
    context.route("**/*", offline)
    try:
        response = page.goto(f"{live_server}/api/v1/docs", wait_until="load")
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        # a locator, not wait_for_function: an expression string would be an eval, which the CSP refuses
        page.locator(".opblock").nth(20).wait_for(timeout=60_000)
        operations = page.locator(".opblock").count()
        assert page.locator(".info .title").inner_text().startswith("Loyalty API")
        assert "OAS 3.1" in page.locator(".info").inner_text()
        page.wait_for_load_state("networkidle")
        path = screenshot(page, "docs")
        print(f"docs: {operations} operations; screenshot {path}")
    finally:
        context.close()
    assert operations > 20, operations
    assert outside == [], outside
    assert problems == [], problems
