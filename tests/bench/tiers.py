"""The tier review on a big club (PostgreSQL): every member's exact qualifying values and moves, timed; a first
review (the ladder is new: many move up) and a second one (the steady state: a few move).

    python -m tests.bench.tiers --generate --members 1000000 --purchases 10000000   # make the club, then review
    python -m tests.bench.tiers                                                      # review the club made before

The club comes from tests/bench/generate_club.py (seg's COPY generator, copied unchanged). Its members carry
``gender`` and ``city`` (migration 0008 of the segments branch); on a branch without them the columns are added
before generating (a no-op once both branches are merged). Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from sqlalchemy import create_engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from wallet import tiers
from wallet.members import Member
from wallet.program import Program

from .generate_club import _dsn, fresh, generate_club, migrate

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_tiers_bench"
LADDER = [  # code, name, rank, metric, threshold, window days, retain days
    ("silver", "Silver", 1, "spend", "2000.00", 365, 90),
    ("gold", "Gold", 2, "spend", "6000.00", 365, 90),
    ("vip", "VIP", 3, "referral_value", "25000.00", 365, 180),
]


def prepare(url: str) -> None:
    """A fresh database with this branch's migrations and the generator's two profile columns."""
    fresh(url)
    migrate(url)
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("ALTER TABLE members ADD COLUMN IF NOT EXISTS gender varchar(16), "
                     "ADD COLUMN IF NOT EXISTS city varchar(80)")


def set_ladder(session: Session, program: Program) -> None:
    session.execute(update(Member).values(tier=tiers.ENTRY_CODE))
    session.execute(delete(tiers.TierChange))
    session.execute(update(tiers.MemberTier).values(keeps_until=None, tier_since=None))
    for tier in tiers.list_tiers(session):
        if tier.rank > 0:
            session.delete(tier)
    session.flush()
    tiers.ensure_entry_tier(session, program)
    for code, name, rank, metric, threshold, window, retain in LADDER:
        tiers.create_tier(session, program, {"code": code, "name": name, "rank": rank, "retain_days": retain,
                                             "qualify": {"metric": metric, "threshold": threshold,
                                                         "window_days": window}})
    session.commit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_TIERS_URL", URL))
    parser.add_argument("--generate", action="store_true", help="make a fresh club at --url first")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--slice-size", type=int, default=50_000)
    args = parser.parse_args(argv)
    if args.generate:
        prepare(args.url)
        generate_club(args.url, members=args.members, purchases=args.purchases)
    engine = create_engine(args.url)
    program = Program(secret=b"bench", clock=lambda: datetime.now(UTC))
    with Session(engine) as session:
        members = session.scalar(select(func.count()).select_from(Member))
        purchases = session.scalar(text("SELECT count(*) FROM purchases"))
        print(f"club: {members:,} members, {purchases:,} purchases; PostgreSQL "
              f"{session.scalar(text('SHOW server_version'))}, work_mem {session.scalar(text('SHOW work_mem'))}",
              flush=True)
        set_ladder(session, program)
        print("ladder: " + ", ".join(f"{c} ({m} >= {t} in {w} days)" for c, _, _, m, t, w, _ in LADDER), flush=True)
        for name in ("first review (a new ladder: everyone placed)", "second review (the steady state)"):
            start = time.perf_counter()
            result = tiers.review(session, program, commit=session.commit, slice_size=args.slice_size)
            session.commit()
            seconds = time.perf_counter() - start
            print(f"{name:<48} {seconds:7.1f} s: {result.members:,} members, {result.up:,} up, "
                  f"{result.down:,} down, {result.kept:,} kept longer", flush=True)
        held = session.execute(select(Member.tier, func.count()).group_by(Member.tier).order_by(Member.tier)).all()
        print("members by tier: " + ", ".join(f"{code} {n:,}" for code, n in held))
        spend = session.scalar(select(func.max(tiers.MemberTier.spend)))
        print(f"largest running total of spend: {Decimal(spend or 0):,}")


if __name__ == "__main__":
    main()
