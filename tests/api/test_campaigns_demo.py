"""The demo club shows campaigns working: shoppers who consented and some who did not, a campaign launched with a
holdout whose messages are visible, and the worker sending them to a real SMTP server."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import sessionmaker

from api.extensions import db
from wallet import campaigns, demo, kpis, webhooks, worker
from wallet.kpis.figures import campaign_response_rate

from ..smtp import smtp_server


def test_the_demo_launches_a_campaign_with_a_holdout_and_its_messages_go_out(app, client, session, program):
    demo.load(session, program)
    session.commit()
    demo.load(session, program)  # safe twice: one campaign
    session.commit()
    token = client.post("/api/v1/auth/token", json={"email": "marketer@demo.club",
                                                    "password": "demo-marketer-1"}).get_json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    [made] = client.get("/api/v1/admin/campaigns", headers=h).get_json()["items"]
    assert (made["name"], made["status"], made["holdout_percent"]) == (campaigns.DEMO_CAMPAIGN, "launched", 25)
    # Dana (the demo member) and the seven shoppers who said yes; not the one who said no nor the one never asked
    assert (made["audience"], made["holdout"]) == (8, 2)
    messages = client.get(f"/api/v1/admin/campaigns/{made['id']}/messages", headers=h).get_json()["items"]
    assert sorted(m["status"] for m in messages) == ["holdout"] * 2 + ["pending"] * 6
    with smtp_server() as smtp:
        settings = campaigns.MessageSettings(smtp_url=smtp.url, timeout=2, lease=timedelta(seconds=30))
        stats = worker.run(sessionmaker(bind=db.engine), program, settings=webhooks.Settings(allow_private=True),
                           once=True, messages=settings)
        assert stats.messages["sent"] == 6 and len(smtp.received) == 6
        assert all("Your code: " in m.message.get_body(("plain",)).get_content() for m in smtp.received)
    report = client.get(f"/api/v1/admin/campaigns/{made['id']}/report", headers=h).get_json()
    assert (report["treated"], report["delivered"], report["holdout"]) == (6, 6, 2)


def test_the_kpis_response_rate_is_the_launched_campaigns_responders_over_their_treated(app, session, program):
    today = program.now().date()
    assert campaign_response_rate(session, today, today) is None  # nothing launched
    demo.load(session, program)
    session.commit()
    [made] = session.scalars(select(campaigns.Campaign)).all()
    report = campaigns.report(session, made.id)
    assert report["treated"] == 6
    assert campaign_response_rate(session, today, today) == report["responders"] / 6
    assert campaign_response_rate(session, today - timedelta(days=30), today - timedelta(days=1)) is None


def test_a_daily_series_reads_the_campaigns_once_and_puts_each_rate_on_its_launch_day(app, session, program):
    """A year by day is 365 blocks: the launched campaigns' reports are read once for the whole series (they were
    read once per block: 365 reports), and each day's block has the rate of the campaigns launched that day."""
    demo.load(session, program)
    session.commit()
    [made] = session.scalars(select(campaigns.Campaign)).all()
    rate = campaigns.report(session, made.id)["responders"] / 6
    today = program.now().date()
    period = kpis.period(program, today - timedelta(days=29), today, "day")
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM campaigns" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        figures = kpis.kpis(session, program, period)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    rates = {block["date"]: block["campaigns"]["response_rate"] for block in figures["series"]}
    assert len(rates) == 30 and rates[today] == rate
    assert all(r is None for day, r in rates.items() if day != today)
    assert figures["campaigns"]["response_rate"] == rate
    assert len(reads) == 2  # the campaigns launched in the period (once), and the one campaign's report
