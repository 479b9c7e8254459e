"""Opens and clicks, end to end: a campaign sent by the worker to a real SMTP server on 127.0.0.1 (aiosmtpd) and a
real SMS gateway, the link taken from the message as received and followed with the test client; the redirect goes
to the message's own link and nowhere else, a click counts once, a forged or altered token leads nowhere, members
without the profiling consent get the links as written and stay out of the counts, a push's open is reported by
the member's app."""
from __future__ import annotations

import json
import re

import pytest
from flask import g
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.extensions import db
from wallet import campaigns, events, tokens
from wallet.campaigns import tracking, unsubscribe

from .conftest import assert_problem, run_together
from .receivers import receiver
from .smtp import smtp_server
from .test_campaign_sending import campaign, launch, member, patch_me, rows, settings, work

PUBLIC = "http://127.0.0.1:5000"
# A tracked link in a text, without the punctuation that follows it in the sentence ("see <link>.")
TRACKED = re.compile(r"http://127\.0\.0\.1:5000(/api/v1/m/[A-Za-z0-9_.-]+[A-Za-z0-9_-])")
MENU = "https://shop.example/menu?a=1&b=2"
WINTER = "https://shop.example/winter"
BODY = "Hi {name}! Our menu: " + MENU + ". And the winter range (" + WINTER + ")."


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def get(client, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    g.pop("principal", None)
    response = client.open(path, method=method, headers=headers)
    g.pop("principal", None)
    return response


def report_of(session, campaign_id: str) -> dict:
    session.commit()
    return campaigns.report(session, campaign_id)


def counts(session, campaign_id: str) -> tuple:
    report = report_of(session, campaign_id)
    return report["tracked"], report["opened"], report["clicked"]


def tracking_events(session) -> list[tuple[str, str, dict]]:
    session.commit()
    return [(e.type, e.member_id, e.data) for e in session.scalars(
        select(events.Event).where(events.Event.type.in_(("message.opened", "message.clicked")))
        .order_by(events.Event.position))]


def mails_by_rcpt(smtp) -> dict:
    return {mail.rcpt_tos[0]: mail.message for mail in smtp.received}


def test_a_tracked_email_s_links_redirect_to_the_message_s_own_links_and_a_click_counts_once(session, program,
                                                                                             factory, client):
    tracked = member(factory, consents=("marketing_email", "profiling"), name="Dana <b> https://evil.example/x")
    plain = member(factory)  # marketing email only: no profiling consent
    made = launch(session, program, campaign(session, program, body=BODY))
    with smtp_server() as smtp:
        assert work(program, settings(smtp=smtp.url)).messages["sent"] == 2
        mails = mails_by_rcpt(smtp)
    key = f"{made.id}.{tracked['id']}"
    mail = mails[tracked["email"]]
    # the headers are as without tracking: RFC 8058's unsubscribe link and the stable Message-ID
    assert mail["Message-ID"].strip() == f"<{key}@127.0.0.1>"
    assert mail["List-Unsubscribe"].strip() == f"<{unsubscribe.url(program, made.id, tracked['id'], 'email')}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    first, second = (tracking.click_url(program, made.id, tracked["id"], n) for n in (0, 1))
    # the name is a value: escaped in HTML and never a link, tracked or not
    assert text.startswith(f"Hi Dana <b> https://evil.example/x! Our menu: {first}. And the winter range ({second}).")
    assert MENU not in text and WINTER not in text
    assert (f"Hi Dana &lt;b&gt; https://evil.example/x! Our menu: <a href=\"{first}\">"
            "https://shop.example/menu?a=1&amp;b=2</a>. And the winter range "
            f"(<a href=\"{second}\">{WINTER}</a>).") in html
    assert 'href="https://evil.example' not in html and "<b>" not in html
    pixel = tracking.open_url(program, made.id, tracked["id"])
    assert f'<img src="{pixel}" width="1" height="1" alt=""' in html
    assert f'<a href="{unsubscribe.url(program, made.id, tracked["id"], "email")}">Unsubscribe</a>' in html
    # without the consent: the links as written, no pixel, nothing through the club
    other = mails[plain["email"]]
    other_text, other_html = other.get_body(("plain",)).get_content(), other.get_body(("html",)).get_content()
    assert f"Our menu: {MENU}. And the winter range ({WINTER})." in other_text
    assert '<a href="https://shop.example/menu?a=1&amp;b=2">' in other_html and f'<a href="{WINTER}">' in other_html
    assert "/api/v1/m/" not in other_text + other_html and "<img" not in other_html
    assert counts(session, made.id) == (1, 0, 0)  # one tracked message delivered, nothing opened yet

    [path, path2] = TRACKED.findall(text)
    response = get(client, path)
    assert response.status_code == 302 and response.headers["Location"] == MENU
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert counts(session, made.id) == (1, 1, 1)  # a click is an open too
    clicked_at = rows(session, made.id)[tracked["id"]].clicked_at
    # again (with the sentence's full stop taken into the link, as some phones do), and the other link: each goes
    # where it says; the message was clicked once
    assert get(client, path + ".").headers["Location"] == MENU
    assert get(client, path2).headers["Location"] == WINTER
    assert get(client, pixel[len(PUBLIC):]).status_code == 200
    assert counts(session, made.id) == (1, 1, 1)
    row = rows(session, made.id)[tracked["id"]]
    assert (row.tracked, row.clicked_at, row.opened_at) == (True, clicked_at, clicked_at)
    assert tracking_events(session) == [
        ("message.opened", tracked["id"], {"message_id": key, "campaign_id": made.id, "medium": "email",
                                           "source": "click"}),
        ("message.clicked", tracked["id"], {"message_id": key, "campaign_id": made.id, "medium": "email", "link": 0})]
    assert rows(session, made.id)[plain["id"]].tracked is False
    # the member's export says what was recorded about them
    export = get_export(client, factory, tracked)
    [message] = export["messages"]
    assert (message["tracked"], message["clicked_at"], message["opened_at"]) == (
        True, clicked_at.isoformat().replace("+00:00", "Z"), clicked_at.isoformat().replace("+00:00", "Z"))


def get_export(client, factory, who: dict) -> dict:
    g.pop("principal", None)
    response = client.get("/api/v1/me/export", headers=factory.headers(tokens.Principal(who["id"], "member")))
    g.pop("principal", None)
    assert response.status_code == 200
    return response.get_json()


def _swap(token: str, at: int) -> str:
    """The token with one character of its MAC changed."""
    body, mac = token.rsplit(".", 1)
    mac = mac[:at] + ("A" if mac[at] != "A" else "B") + mac[at + 1:]
    return f"{body}.{mac}"


def test_a_forged_or_altered_link_leads_nowhere_and_counts_nothing(session, program, factory, client):
    tracked = member(factory, consents=("marketing_email", "profiling"))
    made = launch(session, program, campaign(session, program, body=BODY))
    with smtp_server() as smtp:
        work(program, settings(smtp=smtp.url))
        [mail] = smtp.received
    [path, _] = TRACKED.findall(mail.message.get_body(("plain",)).get_content())
    token = path.rsplit("/", 1)[1]
    campaign_id, member_id, index, mac = token.split(".")
    assert (campaign_id, member_id, index) == (made.id, tracked["id"], "0")
    other = member(factory, consents=("marketing_email", "profiling"))
    forged = [
        _swap(token, 0), _swap(token, 21),  # the MAC altered
        f"{campaign_id}.{member_id}.1.{mac}",  # another link of the message under the first one's MAC
        f"{campaign_id}.{other['id']}.0.{mac}",  # another member
        tracking.token(program, campaign_id, member_id, "2"),  # signed, but the message has two links
        tracking.token(program, campaign_id, member_id, "open"),  # the pixel's token as a link
        unsubscribe.token(program, campaign_id, member_id, "email"),  # another signed token of the club
        "https:evil.example", token + "x", "x" * 201,
    ]
    for value in forged:
        # a browser (the person who followed the link) gets a page; anyone else problem+json
        response = get(client, f"/api/v1/m/{value}", headers=BROWSER)
        assert response.status_code == 404, value
        assert "Location" not in response.headers and response.mimetype == "text/html"
        assert "This link is not valid" in response.get_data(as_text=True)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        response = get(client, f"/api/v1/m/{value}", headers={"Accept": "*/*"})
        assert "Location" not in response.headers
        assert_problem(response, 404, "invalid_tracking_link")
    # a link is not redirected by what a query string says
    response = get(client, f"{path}?url=https://evil.example/&next=https://evil.example/")
    assert response.status_code == 302 and response.headers["Location"] == MENU
    assert counts(session, made.id) == (1, 1, 1)  # only that last, real click
    # a forged pixel: problem+json, nothing counted
    response = get(client, f"/api/v1/m/{_swap(tracking.token(program, campaign_id, member_id, 'open'), 3)}/open.gif")
    assert_problem(response, 404, "invalid_tracking_link")
    assert_problem(get(client, f"{path}/open.gif"), 404, "invalid_tracking_link")  # a link's token as the pixel's
    assert len(tracking_events(session)) == 2


def test_the_open_pixel_counts_once_head_counts_nothing_and_a_withdrawn_consent_stops_counting(session, program,
                                                                                                factory, client):
    a = member(factory, consents=("marketing_email", "profiling"))
    b = member(factory, consents=("marketing_email", "profiling"))
    made = launch(session, program, campaign(session, program, body=BODY))
    with smtp_server() as smtp:
        work(program, settings(smtp=smtp.url))
        mails = mails_by_rcpt(smtp)
    pixel_a = re.search(r'<img src="http://127\.0\.0\.1:5000([^"]+)"', mails[a["email"]].get_body(("html",))
                        .get_content())[1]
    response = get(client, pixel_a, "HEAD")
    assert response.status_code == 200
    link_b = TRACKED.findall(mails[b["email"]].get_body(("plain",)).get_content())[0]
    assert get(client, link_b, "HEAD").status_code == 302
    assert counts(session, made.id) == (2, 0, 0)  # HEAD (a link checker) counts nothing
    response = get(client, pixel_a)
    assert (response.status_code, response.mimetype, response.data[:6]) == (200, "image/gif", b"GIF89a")
    assert response.headers["Cache-Control"] == "no-store"
    assert get(client, pixel_a).status_code == 200
    assert counts(session, made.id) == (2, 1, 0)
    # b withdraws the profiling consent: the link still works, nothing is recorded
    assert patch_me(client, factory, b, {"consents": {"profiling": False}}).status_code == 200
    assert get(client, link_b).headers["Location"] == MENU
    assert counts(session, made.id) == (2, 1, 0)
    assert [(t, m, d["source"]) for t, m, d in tracking_events(session)] == [("message.opened", a["id"], "pixel")]


def test_an_sms_link_is_tracked_and_its_opens_are_not_reported(session, program, factory, client):
    with_link = member(factory, consents=("marketing_sms", "profiling"), phone="+972501234567",
                       preferences={"sms": True})
    untracked = member(factory, consents=("marketing_sms",), phone="+972501234568", preferences={"sms": True})
    made = launch(session, program, campaign(session, program, channel="sms", subject=None,
                                             body="Menu: " + MENU))
    plain = launch(session, program, campaign(session, program, channel="sms", subject=None, body="No link, {name}"))
    with receiver() as gateway:
        assert work(program, settings(sms=gateway.url)).messages["sent"] == 4
        texts = {(body := json.loads(r.body))["to"] + body["campaign_id"]: body["text"] for r in gateway.received}
    link = tracking.click_url(program, made.id, with_link["id"], 0)
    assert texts["+972501234567" + made.id] == f"Menu: {link}"
    assert texts["+972501234568" + made.id] == f"Menu: {MENU}"
    response = get(client, link[len(PUBLIC):])
    assert response.status_code == 302 and response.headers["Location"] == MENU
    assert counts(session, made.id) == (1, None, 1)  # an SMS's opens can't be seen
    # an SMS without a link has nothing to track: out of the denominator
    assert counts(session, plain.id) == (0, None, 0)
    assert rows(session, plain.id)[with_link["id"]].tracked is False
    _ = untracked


def test_the_app_reports_a_push_opened_once_and_only_its_own_member_may(session, program, factory, client):
    pusher = member(factory, consents=("marketing_push", "profiling"))
    untracked = member(factory, consents=("marketing_push",))
    for who, device in ((pusher, "a"), (untracked, "b")):
        g.pop("principal", None)
        assert client.post("/api/v1/me/devices", json={"platform": "ios", "token": device * 64},
                           headers=who["headers"]).status_code == 201
    g.pop("principal", None)
    made = launch(session, program, campaign(session, program, channel="push", subject="News",
                                             body="Menu: " + MENU))
    email = launch(session, program, campaign(session, program, body="Hello"))
    with receiver() as gateway:
        assert work(program, settings(push=gateway.url)).messages["sent"] == 2
        bodies = [json.loads(r.body) for r in gateway.received]
    # a push's links are the app's: its body goes as written
    assert {b["body"] for b in bodies} == {"Menu: " + MENU}
    mine = f"{made.id}.{pusher['id']}"
    assert mine in {b["id"] for b in bodies}

    def opened(who: dict, message_id: str):
        g.pop("principal", None)
        response = client.post(f"/api/v1/me/messages/{message_id}/opened",
                               headers=factory.headers(tokens.Principal(who["id"], "member")))
        g.pop("principal", None)
        return response

    assert counts(session, made.id) == (1, 0, None)
    assert opened(pusher, mine).status_code == 204
    assert opened(pusher, mine).status_code == 204  # again: nothing more
    assert counts(session, made.id) == (1, 1, None)
    assert_problem(opened(untracked, mine), 404, "message_not_found")  # another member's message
    assert_problem(opened(pusher, f"{made.id}.{untracked['id']}"), 404, "message_not_found")
    assert_problem(opened(pusher, f"{email.id}.{pusher['id']}"), 404, "message_not_found")  # not a push (not sent)
    assert_problem(opened(pusher, "cmp_nothing"), 404, "message_not_found")
    # a member without the consent may say so; it is not counted
    assert opened(untracked, f"{made.id}.{untracked['id']}").status_code == 204
    assert counts(session, made.id) == (1, 1, None)
    assert rows(session, made.id)[untracked["id"]].opened_at is None
    assert [(t, d["source"]) for t, _, d in tracking_events(session)] == [("message.opened", "app")]
    assert_problem(client.post(f"/api/v1/me/messages/{mine}/opened"), 401, "unauthorized")


@pytest.mark.postgres
def test_two_clicks_at_once_count_one_and_announce_one(session, program, factory):
    tracked = member(factory, consents=("marketing_email", "profiling"))
    made = launch(session, program, campaign(session, program, body=BODY))
    with smtp_server() as smtp:
        work(program, settings(smtp=smtp.url))
    token = tracking.token(program, made.id, tracked["id"], "0")
    make = sessionmaker(bind=db.engine)

    def click(i: int) -> str:
        with make() as s:
            target = tracking.follow(s, program, token)
            s.commit()
            return target
    assert run_together(4, click) == [MENU] * 4
    assert counts(session, made.id) == (1, 1, 1)
    assert [t for t, _, _ in tracking_events(session)] == ["message.opened", "message.clicked"]


def test_a_link_that_runs_into_a_field_goes_untracked_and_the_rest_are_counted(session, program, factory, client):
    from wallet import coupons
    offer = coupons.create_offer(session, program, {"title": "Coffee", "benefit": {"kind": "percent_off",
                                                                                   "value": "10"}})
    session.commit()
    tracked = member(factory, consents=("marketing_email", "profiling"))
    made = launch(session, program, campaign(session, program, offer_id=offer.id,
                                             body="Use https://shop.example/c?code={coupon_code} or " + WINTER))
    with smtp_server() as smtp:
        work(program, settings(smtp=smtp.url))
        [mail] = smtp.received
    text = mail.message.get_body(("plain",)).get_content()
    code = rows(session, made.id)[tracked["id"]].coupon_id
    assert code and re.search(r"Use https://shop\.example/c\?code=[0-9A-Z-]+ or http://127\.0\.0\.1:5000/api/v1/m/",
                              text)
    [path] = TRACKED.findall(text)
    assert get(client, path).headers["Location"] == WINTER
    assert counts(session, made.id) == (1, 1, 1)
