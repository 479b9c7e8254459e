"""The marketers' console (/console/) in headless Chromium against a real server, with every request to another
host refused: sign in, the screens, forms that create things, a confirmation before anything destructive, markup
from the API shown as text, no console error and no CSP violation."""
from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from tests.api.test_stores_import_cli import barcode
from tests.browser import documented_stubs

pytestmark = pytest.mark.slow

MARKUP = "<img src=x onerror=alert(1)>"
# Reported by the page's listener (an init script, which the CSP does not govern) as a console error.
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
}, true);"""


@pytest.fixture
def serve(make_app):
    """serve(stubs=False): a real threaded HTTP server on the test database (the factory's data is what the console
    sees); with stubs, API.md's documented shapes stand in for the KPI, segment and campaign endpoints that are not
    on this server yet."""
    from werkzeug.serving import make_server
    running = []

    def start(stubs: bool = False):
        app = make_app()
        if stubs:
            documented_stubs.received.update(previews=[], campaigns=[], launches=[])
            app.extensions["test.stubbed"] = documented_stubs.install(app)
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, name="console-server", daemon=True)
        thread.start()
        running.append((httpd, thread))
        return app, f"http://127.0.0.1:{httpd.server_port}"

    yield start
    for httpd, thread in running:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


@pytest.fixture
def server(serve):
    return serve()


class Console:
    """One browser context on the console: offline, every console error, page error and CSP violation noted."""

    def __init__(self, browser, base: str, expected_failures: tuple[str, ...] = ()):
        """``expected_failures``: patterns of the URL paths whose 4xx the test provokes or expects."""
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(CSP_LISTENER)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.outside: list[str] = []
        self.expected = expected_failures  # API paths whose 4xx answers the test provokes on purpose
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"native dialog: {d.message}"), d.dismiss()))
        self.context.route("**/*", self._offline)

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        path = urlsplit(url).path
        if msg.text.startswith("Failed to load resource") and any(re.fullmatch(p, path) for p in self.expected):
            return  # the browser's own note on a 4xx the test asked for (the page shows the problem)
        self.problems.append(f"console: {msg.text} ({url})")

    def _offline(self, route) -> None:
        if route.request.url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def sign_in(self, email: str, password: str = "staff password") -> None:
        page = self.page
        response = page.goto(f"{self.base}/console/", wait_until="load")
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Today", level=1).wait_for()

    def go(self, hash_: str, heading: str):
        self.page.goto(f"{self.base}/console/#/{hash_}")
        self.page.get_by_role("heading", name=heading, level=1).wait_for()

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], self.outside
        assert self.problems == [], self.problems


# Endpoints of API.md that other engineers are adding now: where one is not on the server, the console's call answers
# 404 (the browser notes it as a console error) and the screen says plainly that it is not there yet.
DOCUMENTED = ("/api/v1/admin/kpis", "/api/v1/admin/tiers", "/api/v1/admin/segments", "/api/v1/admin/segments/fields",
              "/api/v1/admin/campaigns", "/api/v1/admin/contests", "/api/v1/admin/flags", "/api/v1/admin/influencers",
              "/api/v1/admin/members/<member_id>/influence", "/api/v1/admin/members/<member_id>/tier")


def absent(app) -> tuple[str, ...]:
    """The documented endpoints this server lacks, as patterns of a URL's path."""
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule) for rule in app.url_map.iter_rules()}
    return tuple(re.escape(p).replace(re.escape("<member_id>"), "[^/]+") for p in DOCUMENTED if p not in routes)


def staff(factory, role: str) -> str:
    return factory.staff(role)["email"]


def test_sign_in_today_offers_rules_and_the_simulator(browser, server, factory, screenshot):
    app, base = server
    marketer = staff(factory, "marketer")
    member = factory.member(name="Dana Levi")
    factory.rule(title="A point a shekel", reward={"points_per_currency_unit": 1})
    factory.rule(title="Big baskets", reward={"points": 50}, conditions={"min_amount": "500.00"})
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        # KPIs: the figures, or (while the endpoint is not on this server) a plain sentence saying so
        page.locator(".tiles, .unavailable").first.wait_for()
        if page.locator(".unavailable").count():
            assert "KPIs are not available on this server yet." in page.locator(".unavailable").inner_text()
        else:
            assert page.locator(".tile").count() >= 10
        screenshot(page, "console-today")
        assert page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]

        # an offer, created from the form, appears in the list
        console.go("offers", "Offers")
        page.get_by_label("Title", exact=True).fill("Ten percent off coffee")
        page.get_by_label("Value (percent, amount such as 5.00, or the free item's SKU)").fill("10")
        page.get_by_role("button", name="Create offer").click()
        page.get_by_text("Created “Ten percent off coffee” (10% off).").wait_for()
        page.get_by_role("cell", name="Ten percent off coffee").wait_for()
        screenshot(page, "console-offers")

        # the simulator: what a purchase of 120 would earn, and why the other rule would not
        console.go("rules", "Rules")
        page.get_by_role("cell", name="Big baskets").wait_for()
        simulator = page.locator("form", has_text="Simulator")
        simulator.get_by_label("Member id").fill(member["id"])
        simulator.get_by_label("Amount (a purchase)").fill("120.00")
        simulator.get_by_role("button", name="Simulate").click()
        page.get_by_role("heading", name="It would earn 120 points").wait_for()
        why_not = page.locator("table", has_text="Rules that would not")
        assert "Big baskets" in why_not.inner_text()
        assert "a condition is not met: min amount" in why_not.inner_text()
        screenshot(page, "console-rules", full_page=True)
    finally:
        console.close()


def test_a_member_named_with_markup_is_text_and_points_are_adjusted_after_asking(browser, server, factory,
                                                                                  screenshot):
    app, base = server
    marketer = staff(factory, "marketer")
    member = factory.member(name=MARKUP, email="markup@example.com")
    factory.earn(member["id"], 40)
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        console.go("members", "Members")
        page.get_by_label("Email, name, phone or card number").fill("markup@")
        page.get_by_role("button", name="Search").click()
        link = page.get_by_role("link", name=MARKUP)
        link.wait_for()
        assert page.locator("main img").count() == 0  # the name is text, not an element
        link.click()
        page.get_by_role("heading", name=f"Member: {MARKUP}").wait_for()
        assert page.locator("main img").count() == 0
        assert page.locator(".balance").inner_text() == "40"

        form = page.locator("form", has_text="Adjust points by hand")
        form.get_by_label("Points (negative to take points away)").fill("-15")
        form.get_by_label("Reason (kept in the ledger and the audit log)").fill("Goodwill correction")
        form.get_by_role("button", name="Adjust points").click()
        dialog = page.get_by_role("dialog", name="Adjust points?")
        dialog.wait_for()
        dialog.get_by_role("button", name="Cancel").click()  # asked first: cancelling changes nothing
        assert factory.balance(member["id"]) == 40
        form.get_by_role("button", name="Adjust points").click()
        page.get_by_role("dialog", name="Adjust points?").get_by_role("button", name="Adjust points").click()
        page.get_by_text("Done: -15 points; balance 25.").wait_for()
        assert factory.balance(member["id"]) == 25
        assert page.locator(".balance").inner_text() == "25"
        page.get_by_role("cell", name="Goodwill correction").first.wait_for()  # the timeline shows it
        screenshot(page, "console-member", full_page=True)
    finally:
        console.close()


def test_products_csv_import_shows_its_report_and_archiving_asks_first(browser, server, factory, screenshot, tmp_path):
    app, base = server
    marketer = staff(factory, "marketer")
    path = tmp_path / "catalogue.csv"
    path.write_bytes(("\ufeffsku,barcode,name,price\r\n"
                      f"COF-1,{barcode(1)},{MARKUP},12.50\r\n"
                      f"BAD-1,{barcode(2)[:-1]}0,Wrong digit,1\r\n"
                      f"=CMD(),{barcode(3)[:-1]}0,Formula SKU,2\r\n"
                      f"TEA-1,{barcode(4)},Tea,3\r\n").encode())
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        console.go("catalogue", "Stores and products")
        importer = page.locator("form", has_text="Import products from a CSV file")
        importer.locator("input[type=file]").set_input_files(str(path))
        importer.get_by_role("button", name="Import").click()
        report = page.locator(".import-report")
        report.wait_for()
        text = report.inner_text()
        assert "Refused rows (not saved)" in text
        row = report.get_by_role("row", name=re.compile("BAD-1"))
        assert "3" in row.inner_text() and "Check digit does not match." in row.inner_text()
        assert report.get_by_role("cell", name="'=CMD()").count() == 1  # echoed quoted, never as a formula
        products = page.locator("table", has_text="Products")
        products.get_by_role("cell", name=MARKUP).wait_for()  # a product named with markup is text
        assert page.locator("main img").count() == 0
        screenshot(page, "console-catalogue", full_page=True)

        # archiving asks first in a real <dialog>; cancelling keeps the product
        products.get_by_role("row", name=re.compile("COF-1")).get_by_role("button", name="Archive").click()
        dialog = page.get_by_role("dialog", name="Archive this product?")
        dialog.wait_for()
        assert dialog.evaluate("d => d.tagName") == "DIALOG"
        dialog.get_by_role("button", name="Cancel").click()
        assert page.get_by_role("dialog").count() == 0
        assert products.get_by_role("cell", name="COF-1").count() == 1
        products.get_by_role("row", name=re.compile("COF-1")).get_by_role("button", name="Archive").click()
        page.get_by_role("dialog", name="Archive this product?").get_by_role("button", name="Archive product").click()
        products.get_by_role("cell", name="COF-1").wait_for(state="detached")
        assert products.get_by_role("cell", name="TEA-1").count() == 1
    finally:
        console.close()


def test_a_webhook_secret_is_shown_once(browser, server, factory, screenshot):
    app, base = server
    app.config["LOYALTY_WEBHOOK_ALLOW_PRIVATE"] = False
    admin = staff(factory, "admin")
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(admin)
        console.go("webhooks", "Webhooks")
        page.get_by_label("URL (https)").fill("https://93.184.215.14/hooks/club")
        page.get_by_label("Description").fill(MARKUP)
        page.get_by_role("button", name="Create webhook").click()
        secret = page.locator(".secret-once .secret")
        secret.wait_for()
        value = secret.inner_text()
        assert value.startswith("whsec_") and len(value) > 20
        page.get_by_role("cell", name=MARKUP).wait_for()
        screenshot(page, "console-webhooks")
        page.get_by_role("button", name="I have copied it: hide it").click()
        assert page.locator(".secret-once").count() == 0
        console.go("today", "Today")
        console.go("webhooks", "Webhooks")
        page.get_by_role("cell", name="https://93.184.215.14/hooks/club").wait_for()
        assert value not in page.content()  # never shown again
    finally:
        console.close()


def test_screens_whose_api_is_not_there_say_so(browser, server, factory, screenshot):
    app, base = server
    marketer = staff(factory, "marketer")
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    screens = [("tiers", "Tiers", "/api/v1/admin/tiers"), ("segments", "Segments", "/api/v1/admin/segments"),
               ("campaigns", "Campaigns", "/api/v1/admin/campaigns"), ("contests", "Contests", "/api/v1/admin/contests"),
               ("flags", "Flags to review", "/api/v1/admin/flags")]
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        for hash_, heading, path in screens:
            console.go(hash_, heading)
            page.locator(".unavailable, table, .empty").first.wait_for()
            if path not in routes:
                assert f"{heading.split()[0]} are not available on this server yet." in page.locator(
                    ".unavailable").first.inner_text(), hash_
            screenshot(page, f"console-{hash_}")
    finally:
        console.close()


def test_a_session_that_ends_mid_form_keeps_what_was_typed(browser, server, factory):
    app, base = server
    marketer = staff(factory, "marketer")
    console = Console(browser, base, expected_failures=absent(app) + ("/api/v1/admin/offers", "/api/v1/auth/token"))
    page = console.page
    program = app.extensions["loyalty.program"]
    try:
        console.sign_in(marketer)
        console.go("offers", "Offers")
        page.get_by_label("Title", exact=True).fill("Typed before the session ended")
        page.get_by_label("Value (percent, amount such as 5.00, or the free item's SKU)").fill("15")
        real_clock = program.clock
        later = real_clock() + timedelta(days=60)  # both tokens have expired by then
        program.clock = lambda: later
        page.get_by_role("button", name="Create offer").click()
        dialog = page.get_by_role("dialog", name="Sign in again")
        dialog.wait_for()
        assert page.get_by_label("Title", exact=True).input_value() == "Typed before the session ended"
        dialog.get_by_label("Password").fill("staff password")
        dialog.get_by_role("button", name="Sign in").click()
        page.get_by_text("Created “Typed before the session ended” (15% off).").wait_for()
    finally:
        program.clock = real_clock if "real_clock" in locals() else program.clock
        console.close()


def test_the_console_page_and_its_files(server):
    import requests
    app, base = server
    r = requests.get(f"{base}/console/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"] == ("default-src 'self'; img-src 'self' data: blob:; "
                                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None  # no inline script
    assert re.search(r"\son[a-z]+\s*=", r.text) is None  # no inline handler
    js = requests.get(f"{base}/console/app.js", timeout=10)
    assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert requests.get(f"{base}/console/../api/__init__.py", timeout=10).status_code == 404
    assert requests.get(f"{base}/console", timeout=10, allow_redirects=False).status_code == 308


def test_today_draws_the_kpis_as_tiles_and_svg_charts(browser, serve, factory, screenshot):
    app, base = serve(stubs=True)
    marketer = staff(factory, "marketer")
    console = Console(browser, base)
    page = console.page
    try:
        console.sign_in(marketer)
        page.locator(".chart-figure").nth(4).wait_for()
        tiles = dict(zip(page.locator(".tile-label").all_inner_texts(), page.locator(".tile-value").all_inner_texts(),
                         strict=True))
        if "/api/v1/admin/kpis" in app.extensions["test.stubbed"]:  # the documented shape, as the stand-in answers
            assert (tiles["Members"], tiles["Redemption rate"], tiles["Liability"]) == ("1,200", "45.6%", "8600.00")
        assert len(tiles) == 17
        captions = page.locator(".chart-figure figcaption").all_inner_texts()
        assert captions == ["Members active", "Purchases", "Points", "Redemption and response rates",
                            "Activity by channel"]
        # 1 + 1 + 3 + 2 series; on this empty club the real endpoint's two rates are null (no coupon issued, no
        # campaign launched), and a chart draws no line for a series without a value
        stubbed = "/api/v1/admin/kpis" in app.extensions["test.stubbed"]
        assert page.locator("svg.chart polyline").count() == (7 if stubbed else 5)
        assert page.locator("svg.chart[role=img] > title").first.text_content() == "Members active"
        screenshot(page, "console-today-kpis", full_page=True)
        page.get_by_label("Chart by").select_option("")
        page.get_by_role("button", name="Show").click()
        page.get_by_text("Choose an interval").wait_for()
        assert page.locator("svg.chart polyline").count() == 0
    finally:
        console.close()


def test_a_segment_with_its_live_count_and_a_campaign_created_and_launched(browser, serve, factory, screenshot):
    app, base = serve(stubs=True)
    marketer = staff(factory, "marketer")
    for points in (40, 12, 0):
        member = factory.member()
        if points:
            factory.earn(member["id"], points)
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        console.go("segments", "Segments")
        page.get_by_label("Field").select_option("points_balance")
        page.get_by_label("Comparison").select_option(">=")
        page.get_by_label("Value").fill("10")
        page.get_by_text("2 members match now").wait_for()
        page.get_by_label("Name", exact=True).fill("Regulars")
        page.get_by_role("button", name="Save segment").click()
        page.get_by_text("Saved the segment “Regulars”.").wait_for()
        page.get_by_role("cell", name="Regulars", exact=True).wait_for()
        screenshot(page, "console-segments", full_page=True)

        console.go("campaigns", "Campaigns")
        page.get_by_label("Name", exact=True).fill("Spring hello")
        page.get_by_label("Segment").select_option(label="Regulars")
        page.get_by_label("Subject (email)").fill("Spring is here")
        page.get_by_label("Message", exact=True).fill("Come and see what is new.")
        page.get_by_role("button", name="Create campaign").click()
        page.get_by_text("Created “Spring hello”.").wait_for()
        row = page.get_by_role("row", name=re.compile("Spring hello"))
        row.get_by_role("button", name="Launch").click()
        dialog = page.get_by_role("dialog", name="Launch this campaign?")
        dialog.get_by_role("button", name="Cancel").click()
        if "/api/v1/admin/campaigns" in app.extensions["test.stubbed"]:
            assert documented_stubs.received["launches"] == []  # asked first: nothing launched
        row.get_by_role("button", name="Launch").click()
        page.get_by_role("dialog", name="Launch this campaign?").get_by_role("button", name="Launch campaign").click()
        page.get_by_text("Launched “Spring hello”.").wait_for()
        page.get_by_role("link", name="Spring hello").click()
        page.get_by_role("heading", name="Campaign: Spring hello").wait_for()
        page.get_by_text("Lift, 95% interval").wait_for()
        page.get_by_text("Tracked (profiling consent)").wait_for()
        if "/api/v1/admin/campaigns" in app.extensions["test.stubbed"]:
            assert documented_stubs.received["campaigns"][0] | {"segment_id": None} == {
                "name": "Spring hello", "segment_id": None, "channel": "email",
                "message": {"body": "Come and see what is new.", "subject": "Spring is here"},
                "holdout_percent": 10, "response_days": 14}
            assert len(documented_stubs.received["launches"]) == 1
            assert "2% to 18%" in page.locator(".report").inner_text()  # the lift's interval
        screenshot(page, "console-campaign", full_page=True)
    finally:
        console.close()


def test_the_csp_violation_check_can_fail(browser, server, factory):
    """The listener the other tests rely on does hear a violation (an inline script refused by the page's CSP)."""
    app, base = server
    console = Console(browser, base)
    try:
        console.page.goto(f"{base}/console/", wait_until="load")
        console.page.evaluate("""() => { const s = document.createElement("script");
            s.textContent = "window.ranInline = true"; document.head.append(s); }""")
        console.page.wait_for_timeout(300)
        assert console.page.evaluate("() => window.ranInline === undefined")
        assert any(p.startswith("console: CSP violation: script-src") for p in console.problems), console.problems
    finally:
        console.problems.clear()
        console.close()


def test_lists_page_forwards_and_back(browser, server, factory):
    app, base = server
    marketer = staff(factory, "marketer")
    for i in range(27):
        factory.member(name=f"Pager member {i:02d}")
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    try:
        console.sign_in(marketer)
        console.go("members", "Members")
        members = page.locator(".paged").first
        members.get_by_text("Page 1").wait_for()
        first = members.locator("tbody tr").all_inner_texts()
        assert len(first) == 25
        members.get_by_role("button", name="Next page").click()
        members.get_by_text("Page 2").wait_for()
        assert len(members.locator("tbody tr").all_inner_texts()) == 2
        assert members.get_by_role("button", name="Next page").is_disabled()
        members.get_by_role("button", name="Previous page").click()
        members.get_by_text("Page 1").wait_for()
        assert members.locator("tbody tr").all_inner_texts() == first
    finally:
        console.close()


def test_a_tour_of_the_demo_club_as_its_admin(browser, server, screenshot):
    """The demo club (`loyalty demo`) in the console: every screen opens, with the demo's data where its API is here
    and the plain "not available" sentence where it is not; a screenshot of each."""
    from api.extensions import db
    from wallet import demo
    app, base = server
    with app.app_context():
        demo.load(db.session, app.extensions["loyalty.program"])
        db.session.commit()
        db.session.remove()
    console = Console(browser, base, expected_failures=absent(app))
    page = console.page
    seen = {"offers": "Offers", "rules": "1 point for every shekel", "catalogue": "House blend coffee 250 g",
            "members": "member@demo.club"}
    try:
        console.sign_in("admin@demo.club", "demo-admin-1")
        page.locator(".tiles, .unavailable").first.wait_for()
        for hash_, heading in [("members", "Members"), ("offers", "Offers"), ("rules", "Rules"), ("tiers", "Tiers"),
                               ("segments", "Segments"), ("campaigns", "Campaigns"), ("contests", "Contests"),
                               ("catalogue", "Stores and products"), ("webhooks", "Webhooks"),
                               ("flags", "Flags to review")]:
            console.go(hash_, heading)
            page.locator("table, .unavailable, .empty").first.wait_for()
            if hash_ in seen:
                page.get_by_text(seen[hash_]).first.wait_for()
            assert page.locator(".problem").count() == 0, (hash_, page.locator(".problem").all_inner_texts())
            page.wait_for_load_state("networkidle")
            screenshot(page, f"tour-{hash_}", full_page=True)
        # an admin blocks a member's card, after a dialog
        console.go("members", "Members")
        page.get_by_role("link", name="Dana Demo").first.click()
        page.get_by_role("button", name="Block card").click()
        page.get_by_role("dialog", name="Block this card?").get_by_role("button", name="Block card").click()
        page.get_by_text("The card is blocked.").wait_for()
        assert page.locator(".facts dd").nth(4).inner_text() == "blocked"
        screenshot(page, "tour-member", full_page=True)

        # keyboard: the skip link leads to the content, without leaving the screen
        console.go("offers", "Offers")
        page.locator(".skip").focus()
        assert page.locator(".skip").is_visible()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
        assert page.url.endswith("#/offers")
        # and Tab from the screen's heading reaches its first control
        page.get_by_role("heading", name="Offers", level=1).focus()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.tagName") in ("BUTTON", "A", "INPUT")
    finally:
        console.close()
