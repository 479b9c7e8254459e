"""Segments and influence on a big club (PostgreSQL): a three-condition segment preview, one member's segment test,
a member's influence and the influencers' ranking, each timed over a few runs after one warm-up.

    python -m tests.bench.segments --url postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_seg_bench
    python -m tests.bench.segments --generate --members 100000 --purchases 1000000 --url ...   # make the club first

The club comes from tests/bench/generate_club.py. Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, delete, func, select, text
from sqlalchemy.orm import Session

from wallet import influence, segments
from wallet.members import Member
from wallet.program import Program
from wallet.segments import SegmentActivity, activity

from .generate_club import generate_club

PREVIEW = {"all": [{"field": "spend_90d", "op": ">=", "value": "300.00"},
                   {"field": "visits_90d", "op": ">=", "value": 1},
                   {"field": "city", "op": "=", "value": "Haifa"}]}


def timed(name: str, work: Callable[[], Any], runs: int) -> Any:
    work()  # warm-up: plans and the pages it reads
    seconds, answer = [], None
    for _ in range(runs):
        start = time.perf_counter()
        answer = work()
        seconds.append(time.perf_counter() - start)
    print(f"{name:<58} median {statistics.median(seconds) * 1000:8.0f} ms   best {min(seconds) * 1000:8.0f} ms"
          f"   ({runs} runs)", flush=True)
    return answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_CLUB_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_seg_bench"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--generate", action="store_true", help="make a fresh club at --url first")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--explain", action="store_true", help="print the preview's plan")
    parser.add_argument("--no-activity", action="store_true",
                        help="count the preview's windows live (no activity summary): what the summary saves")
    parser.add_argument("--live", action="store_true", help="also time the ranking computed with no summary")
    parser.add_argument("--preview-only", action="store_true", help="only the segment's preview and one member's test")
    parser.add_argument("--reads-only", action="store_true",
                        help="only the ranking and a member's influence, read from the summary already written")
    args = parser.parse_args(argv)
    if args.generate:
        generate_club(args.url, members=args.members, purchases=args.purchases, make_fresh=True)
    engine = create_engine(args.url)
    influence.InfluenceScore.__table__.create(engine, checkfirst=True)  # a club made before the table was
    program = Program(secret=b"bench", clock=lambda: datetime.now(UTC))
    with Session(engine) as session:
        members = session.scalar(select(func.count()).select_from(Member))
        purchases = session.scalar(text("SELECT count(*) FROM purchases"))
        print(f"club: {members:,} members, {purchases:,} purchases; PostgreSQL "
              f"{session.scalar(text('SHOW server_version'))}, work_mem {session.scalar(text('SHOW work_mem'))}")
        someone = session.scalar(select(Member.id).order_by(Member.id).offset(members // 3).limit(1))
        if args.no_activity:
            session.execute(delete(SegmentActivity))
        elif not args.reads_only:
            start = time.perf_counter()
            written = activity.refresh(session, program)
            session.commit()
            print(f"{'segments activity refresh (the worker, hourly)':<58} {time.perf_counter() - start:8.1f} s"
                  f"          ({written:,} rows)", flush=True)
            session.execute(text("ANALYZE segment_activity"))
            session.commit()
        if args.explain:
            ids = segments.member_ids(session, PREVIEW, program=program)
            query = select(func.count()).select_from(ids.subquery())
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            for (line,) in session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")):
                print("   ", line)
        if args.reads_only:
            _reads(session, program, args.runs)
            return
        found = timed("segment preview: spend_90d, visits_90d, city (count+sample)",
                      lambda: segments.preview(session, program, PREVIEW), args.runs)
        print(f"    {found.count:,} members in it")
        timed("one member in that segment? (rules, offers)",
              lambda: segments.contains(session, PREVIEW, someone, program=program), args.runs)
        if args.preview_only:
            return
        session.rollback()
        if args.live:
            session.execute(delete(influence.InfluenceScore))
            timed("influence ranking computed now (no summary): first 50", lambda: influence.influencers(
                session, program, limit=50), 1)
            session.rollback()
        start = time.perf_counter()
        written = influence.refresh(session, program)
        session.commit()
        print(f"{'influence summary refresh (the worker, hourly)':<58} {time.perf_counter() - start:8.1f} s"
              f"          ({written:,} rows)", flush=True)
        session.execute(text("ANALYZE influence_scores"))
        session.commit()
        _reads(session, program, args.runs)


def _reads(session: Session, program: Program, runs: int) -> None:
    if True:
        ranked = timed("influence ranking: the first 50 by referral value",
                       lambda: influence.influencers(session, program, limit=50), runs)
        last = ranked[-1]
        timed("influence ranking: a later page (cursor)", lambda: influence.influencers(
            session, program, after=(last.referral_value, last.member_id), limit=50), runs)
        top = ranked[0]
        print(f"    top: {top.member_id} referral value {top.referral_value} from {top.referrals} referrals, "
              f"{top.influence}")
        timed("one member's influence", lambda: influence.influence_of(session, program, top.member_id), runs)
        session.rollback()


if __name__ == "__main__":
    main()
