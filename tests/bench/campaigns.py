"""Benchmark: campaign email sent by one worker against a bare smtplib loop, and a launch to a million members (not a
test: it prints figures and asserts only that every message arrived).

    .venv/bin/python -m tests.bench.campaigns [--messages 2000] [--rounds 3] [--members 1000000]

On a fresh PostgreSQL database (``loyalty_reach_bench``, BENCH_PG as for the other benchmarks), filled by
``tests.bench.generate_club`` (every member there consents to marketing email):
1. email: an SMTP server on 127.0.0.1 in a process of its own (aiosmtpd, "250 OK" to everything, counting
   messages); each round launches a campaign to ``--messages`` members (no holdout) and in turn:
   - bare: the very messages the worker sends (built by ``wallet.campaigns.email.build``), sent by one smtplib
     connection in a loop, no database;
   - worker: ``wallet.worker.run(once=True)`` in this process: claim, check, render, send on one connection, record
     each message (an UPDATE, its ``message.sent`` event, a commit) until the backlog is empty.
   Rounds alternate; medians are printed, and the worker's rate as a share of the bare loop's.
2. launch: a database of ``--members`` members; a campaign to all of them with a 10% holdout is launched (the
   audience fixed by one INSERT ... SELECT, the holdout drawn in SQL); the seconds it takes, commit included.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import smtplib
import statistics
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from wallet import campaigns, webhooks, worker
from wallet.campaigns import CampaignMessage, email
from wallet.members import Member
from wallet.program import Program

from .common import PG, free_port, fresh_database
from .generate_club import generate_club, migrate

DATABASE = "loyalty_reach_bench"


# ------------------------------------------------------------------ the SMTP server (its own process)

def serve_smtp(port: int, counter) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's API)
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.sleep(10 ** 6))
    finally:
        controller.stop()


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the SMTP server did not start")


# ------------------------------------------------------------------ the club

def club(url: str, members: int) -> None:
    """A fresh database of ``members`` members (generate_club), schema from this branch's migrations."""
    name = urlsplit(url.replace("postgresql+psycopg", "postgresql")).path.lstrip("/")
    fresh_database(name)
    migrate(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        # generate_club (from the segments branch) writes members' gender and city, which the segments migration
        # adds; until both branches are merged, add them here if they are missing.
        conn.execute("ALTER TABLE members ADD COLUMN IF NOT EXISTS gender varchar(16)")
        conn.execute("ALTER TABLE members ADD COLUMN IF NOT EXISTS city varchar(80)")
    generate_club(url, members=members, purchases=0, check_ins=0, log=lambda line: None)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def program() -> Program:
    return Program(secret=b"bench-secret-key-0123456789abcdef", public_url="https://club.example",
                   timezone="Asia/Jerusalem")


def new_campaign(factory, prog: Program, limit: int | None, holdout: int = 0) -> str:
    """A launched email campaign; with ``limit``, to that many members only (the others' consent is withdrawn
    for the launch and given back at once)."""
    with factory() as session:
        made = campaigns.create_campaign(session, prog, {"name": "Bench", "channel": "email",
                                                         "subject": "Hello {first_name}",
                                                         "body": "Dear {name},\nour winter coffee week starts "
                                                                 "today: twice the points on every bag.\n"},
                                         actor="bench")
        session.commit()
        return made.id


def launch_to(factory, prog: Program, campaign_id: str, window: tuple[int, int] | None) -> float:
    """Launch; with ``window`` (skip, take), only that slice of the audience (by member id) stays pending: a
    round's campaign reaches members no earlier round reached (the weekly cap is off, but the slices differ)."""
    with factory() as session:
        started = time.perf_counter()
        campaigns.launch(session, prog, campaign_id, actor="bench")
        if window is not None:
            session.execute(text(
                "UPDATE campaign_messages SET status = 'cancelled', next_attempt_at = NULL WHERE campaign_id = :c "
                "AND member_id NOT IN (SELECT member_id FROM campaign_messages WHERE campaign_id = :c "
                "ORDER BY member_id OFFSET :skip LIMIT :take)"), {"c": campaign_id, "skip": window[0],
                                                                   "take": window[1]})
        session.commit()
        return time.perf_counter() - started


def jobs_of(factory, prog: Program, campaign_id: str) -> list[campaigns.Job]:
    """The messages the worker would send, built the same way (for the bare loop)."""
    settings = campaigns.MessageSettings(smtp_url="smtp://x", batch=10 ** 6)
    with factory() as session:
        claimed = campaigns.claim(session, prog, settings, owner="bare", now=prog.now(), channels=("email",))
        session.rollback()  # nothing kept: the worker sends these for real
    return claimed.jobs


def bare(port: int, jobs: list[campaigns.Job]) -> float:
    started = time.perf_counter()
    connection = smtplib.SMTP("127.0.0.1", port, timeout=10)
    for job in jobs:
        connection.send_message(email.build(job, mail_from="club@club.example", host="club.example"),
                                from_addr="club@club.example", to_addrs=[job.to])
    connection.quit()
    return time.perf_counter() - started


def run_worker(factory, prog: Program, port: int) -> tuple[float, int]:
    settings = campaigns.MessageSettings(smtp_url=f"smtp://127.0.0.1:{port}", timeout=10,
                                         lease=timedelta(seconds=120), mail_from="club@club.example")
    started = time.perf_counter()
    stats = worker.run(factory, prog, settings=webhooks.Settings(timeout=5), once=True, messages=settings)
    return time.perf_counter() - started, stats.messages["sent"]


def email_rate(url: str, messages: int, rounds: int) -> None:
    engine = create_engine(url)
    factory = sessionmaker(bind=engine)
    prog = program()
    port = free_port()
    counter = multiprocessing.Value("l", 0)
    server = multiprocessing.Process(target=serve_smtp, args=(port, counter), daemon=True)
    server.start()
    wait_for(port)
    bare_rates, worker_rates = [], []
    try:
        for round_ in range(rounds):
            campaign_id = new_campaign(factory, prog, messages)
            launch_to(factory, prog, campaign_id, (round_ * messages, messages))
            jobs = jobs_of(factory, prog, campaign_id)
            assert len(jobs) == messages, len(jobs)
            before = counter.value
            seconds = bare(port, jobs)
            assert counter.value - before == messages
            bare_rates.append(messages / seconds)
            before = counter.value
            seconds, sent = run_worker(factory, prog, port)
            assert sent == messages and counter.value - before == messages, (sent, counter.value - before)
            worker_rates.append(messages / seconds)
            print(f"round {round_ + 1}: bare smtplib {bare_rates[-1]:,.0f} messages/s, "
                  f"one worker {worker_rates[-1]:,.0f} messages/s", flush=True)
    finally:
        server.terminate()
        engine.dispose()
    b, w = statistics.median(bare_rates), statistics.median(worker_rates)
    print(f"email, {messages} messages a round, median of {rounds}: bare smtplib loop {b:,.0f}/s, one worker "
          f"{w:,.0f}/s = {w / b:.0%} of the bare loop")


def launch_time(url: str, members: int) -> None:
    engine = create_engine(url)
    factory = sessionmaker(bind=engine)
    prog = program()
    with factory() as session:
        count = session.scalar(select(func.count()).select_from(Member))
    for holdout in (10,):
        campaign_id = new_campaign(factory, prog, None, holdout)
        with factory() as session:
            session.execute(text("UPDATE campaigns SET holdout_percent = :h WHERE id = :c"),
                            {"h": holdout, "c": campaign_id})
            session.commit()
        seconds = launch_to(factory, prog, campaign_id, None)
        with Session(engine) as session:
            audience, held = session.execute(select(func.count(), func.count().filter(CampaignMessage.holdout))
                                             .where(CampaignMessage.campaign_id == campaign_id)).one()
        print(f"launch to {count:,} members ({holdout}% holdout): audience {audience:,}, holdout {held:,}, "
              f"{seconds:.2f} s (one INSERT ... SELECT, commit included)", flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--skip-launch", action="store_true")
    parser.add_argument("--skip-email", action="store_true")
    args = parser.parse_args()
    url = f"postgresql+psycopg://{PG.split('://', 1)[1]}/{DATABASE}"
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    if not args.skip_email:
        club(url, args.messages * args.rounds * 3)  # generate_club: not every member consents
        email_rate(url, args.messages, args.rounds)
    if not args.skip_launch:
        started = time.perf_counter()
        club(url, args.members)
        print(f"generated {args.members:,} members in {time.perf_counter() - started:.0f} s", flush=True)
        launch_time(url, args.members)


if __name__ == "__main__":
    main()
