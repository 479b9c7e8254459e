"""A big club for benchmarks, generated into PostgreSQL with COPY: members (with cards, balances, gender, city,
birthdays, consents), referrals two levels deep, purchases and check-ins over a window of days.

    python -m tests.bench.generate_club --url postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_seg_bench \\
        --fresh --members 1000000 --purchases 10000000

or, from another benchmark, ``generate_club(url, members=..., purchases=...)`` (returns a :class:`Club`).

What the data looks like (deterministic for a ``seed``):
- members enrol evenly over ``2 * days`` before ``now``, member ``i`` before member ``i + 1``; ids
  ``mem_G<i, 25 digits>``, emails ``m<i>@bench.example``, password ``bench-pass`` (a cheap hash), card numbers
  ``9<i, 15 digits>`` (not Luhn-checked: type them only where that is not checked), one current card each;
- a ``referral_share`` of members joined through an earlier member's code, earlier members far more often (a few
  influencers bring many), with their ``referrals`` row and ``members.referred_by_id``;
- purchases spread evenly over the last ``days`` days and written in time order (as a till writes them), each by
  a member enrolled by then, the older members buying more often; amounts from 5 to a few hundred, heavy-tailed;
  ``completed``, one point per unit; ids ``pur_P<k>`` in time order;
- accepted check-ins (default: two per member) over the last ``days`` days;
- balances: a points figure per member WITHOUT ledger entries (the ledger's own benchmark seeds those): a
  benchmark that earns or spends on these members works, one that checks ``balance == sum(entries)`` does not;
- ``stores`` stores in ``CITIES``, a marketer ``marketer@bench.example`` / ``bench-pass``.
The database is migrated first (``loyalty db upgrade``); it must hold no members (``--fresh`` drops it first).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-not-for-production-0123456789"
FAST_HASH = "pbkdf2:sha256:1000"
PASSWORD = "bench-pass"
CITIES = (("Tel Aviv", 25), ("Jerusalem", 18), ("Haifa", 14), ("Rishon LeZion", 9), ("Petah Tikva", 8),
          ("Ashdod", 7), ("Netanya", 7), ("Beersheba", 6), ("Holon", 4), ("Eilat", 2))
GENDERS = (("female", 48), ("male", 47), ("other", 2), (None, 3))
FIRST_NAMES = ("Noa", "Yael", "Maya", "Tamar", "Shira", "Dana", "Avi", "Yossi", "Omer", "Itai", "Lior", "Ariel",
               "Nadia", "Rami", "Sami", "Lea")
CHUNK = 20_000
NULL = "\\N"  # COPY's text format


@dataclass
class Club:
    url: str
    now: datetime
    days: int
    members: int
    referrals: int
    purchases: int
    check_ins: int
    stores: list[str]
    seconds: float


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def fresh(url: str) -> None:
    """Drop and create the database the URL names."""
    base, _, name = _dsn(url).rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def migrate(url: str) -> None:
    env = os.environ | {"DATABASE_URL": url, "LOYALTY_SECRET_KEY": SECRET}
    subprocess.run([str(BIN / "loyalty"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)


def _weighted(pairs: tuple[tuple, ...]) -> list:
    return [value for value, weight in pairs for _ in range(weight)]


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: Iterator[str]) -> int:
    """COPY text-format lines (already escaped, tab-separated, ``\\N`` for null) in slices; returns the count."""
    count = 0
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        batch: list[str] = []
        for line in rows:
            batch.append(line)
            if len(batch) >= CHUNK:
                copy.write("".join(batch))
                count += len(batch)
                batch = []
        if batch:
            copy.write("".join(batch))
            count += len(batch)
    return count


def _stamp(epoch: float) -> str:
    """Naive UTC, as the columns hold it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def generate_club(url: str, *, members: int = 1_000_000, purchases: int = 10_000_000, check_ins: int | None = None,
                  referral_share: float = 0.2, days: int = 365, stores: int = 20, seed: int = 13,
                  now: datetime | None = None, make_fresh: bool = False,
                  log: Callable[[str], None] = print) -> Club:
    """Fill the PostgreSQL database at ``url`` with a club of ``members`` members and ``purchases`` purchases."""
    started = time.perf_counter()
    if make_fresh:
        fresh(url)
    migrate(url)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    end = now.timestamp()
    enrol_start = end - 2 * days * 86400
    shop_start = end - days * 86400
    check_ins = 2 * members if check_ins is None else check_ins
    rng = random.Random(seed)
    cities, genders = _weighted(CITIES), _weighted(GENDERS)
    password_hash = generate_password_hash(PASSWORD, method=FAST_HASH)

    def mid(i: int) -> str:
        return f"mem_G{i:025d}"

    def enrolled_at(i: int) -> float:
        return enrol_start + (end - enrol_start) * i / members

    with psycopg.connect(_dsn(url)) as conn:
        if conn.execute("SELECT count(*) FROM members").fetchone()[0]:  # type: ignore[index]
            raise SystemExit(f"{url} already holds members: give --fresh to start again")
        store_ids = [f"sto_B{s:025d}" for s in range(stores)]
        store_rows = [f"{sid}\tBENCH{s:02d}\tBench store {s}\t{cities[s * 7 % len(cities)]}\t"
                      f"{32.0 + s / 100}\t{34.8 + s / 100}\t150\tAsia/Jerusalem\t240\tt\t{_stamp(enrol_start)}\t"
                      f"{_stamp(enrol_start)}\n" for s, sid in enumerate(store_ids)]
        _copy(conn, "stores", ("id", "code", "name", "address", "lat", "lon", "radius_m", "timezone",
                               "check_in_cooldown_minutes", "active", "created_at", "updated_at"), iter(store_rows))
        conn.execute("INSERT INTO staff (id, email, password_hash, name, role, active, created_at) "
                     "VALUES ('stf_BENCHMARKETER000000000000', 'marketer@bench.example', %s, 'Bench marketer', "
                     "'marketer', true, now())", (password_hash,))
        log(f"stores: {stores}")

        referrer = [-1] * members
        for i in range(1, members):
            if rng.random() < referral_share:
                referrer[i] = int(i * rng.random() ** 3)
        preferences = json.dumps({"email": True, "sms": False, "push": True, "wallet": False})

        def member_rows() -> Iterator[str]:
            for i in range(members):
                at = _stamp(enrolled_at(i))
                gender = rng.choice(genders) or NULL
                city = rng.choice(cities) if rng.random() < 0.9 else NULL
                birthday = (f"{now.year - 18 - int(rng.random() * 62)}-{1 + i % 12:02d}-{1 + i % 28:02d}"
                            if rng.random() < 0.8 else "\\N")
                consents = json.dumps({"marketing_email": {"granted": True, "at": at.replace(" ", "T") + "Z"}}
                                      if rng.random() < 0.6 else {})
                ref = mid(referrer[i]) if referrer[i] >= 0 else "\\N"
                yield (f"{mid(i)}\tm{i}@bench.example\t{password_hash}\t{FIRST_NAMES[i % len(FIRST_NAMES)]} B{i}\t"
                       f"\\N\t{birthday}\tactive\tbasic\t{preferences}\t{consents}\tR{i:010d}\t{ref}\tapp\t{at}\t"
                       f"{gender}\t{city}\n")
        count = _copy(conn, "members", ("id", "email", "password_hash", "name", "phone", "birthday", "status", "tier",
                                        "preferences", "consents", "referral_code", "referred_by_id", "channel",
                                        "created_at", "gender", "city"), member_rows())
        log(f"members: {count} ({time.perf_counter() - started:.0f} s)")
        _copy(conn, "cards", ("id", "member_id", "number", "status", "issued_at"),
              (f"crd_G{i:025d}\t{mid(i)}\t9{i:015d}\tactive\t{_stamp(enrolled_at(i))}\n" for i in range(members)))
        _copy(conn, "balances", ("member_id", "points", "pending", "seq", "updated_at"),
              (f"{mid(i)}\t{int(rng.random() ** 2 * 2000)}\t0\t0\t{_stamp(end)}\n" for i in range(members)))
        referrals = _copy(conn, "referrals", ("id", "referrer_id", "referred_id", "email_key", "channel", "created_at"),
                          (f"ref_G{i:025d}\t{mid(referrer[i])}\t{mid(i)}\tm{i}@bench.example\tapp\t"
                           f"{_stamp(enrolled_at(i))}\n" for i in range(members) if referrer[i] >= 0))
        log(f"cards, balances, referrals: {referrals} referred ({time.perf_counter() - started:.0f} s)")

        def purchase_rows() -> Iterator[str]:
            fingerprint = "0" * 64
            step = (end - shop_start) / max(purchases, 1)
            for k in range(purchases):
                at = shop_start + k * step
                enrolled = min(members, max(1, int(members * (at - enrol_start) / (end - enrol_start))))
                who = int(enrolled * rng.random() ** 1.5)
                amount = 5 + min(rng.expovariate(1 / 120), 2000)
                yield (f"pur_P{k:025d}\t{store_ids[k % stores]}\t{mid(who)}\t{k}\t{amount:.2f}\tILS\t{int(amount)}\t[]\t"
                       f"completed\t{fingerprint}\ttill\t{_stamp(at)}\n")
        count = _copy(conn, "purchases", ("id", "store_id", "member_id", "receipt_id", "amount", "currency",
                                          "points_awarded", "rewards", "status", "fingerprint", "channel", "created_at"),
                      purchase_rows())
        log(f"purchases: {count} ({time.perf_counter() - started:.0f} s)")

        def check_in_rows() -> Iterator[str]:
            step = (end - shop_start) / max(check_ins, 1)
            for k in range(check_ins):
                at = shop_start + k * step
                enrolled = min(members, max(1, int(members * (at - enrol_start) / (end - enrol_start))))
                who = int(enrolled * rng.random() ** 1.5)
                # visit_number: unique per (member, store, visit) is all the schema asks; k is, trivially
                yield (f"chk_C{k:025d}\t{mid(who)}\t{store_ids[k % stores]}\taccepted\t32.0\t34.8\t10.0\t{k + 1}\t"
                       f"0\tapp\t{_stamp(at)}\n")
        visits = _copy(conn, "check_ins", ("id", "member_id", "store_id", "status", "lat", "lon", "distance_m",
                                           "visit_number", "points_awarded", "channel", "created_at"),
                       check_in_rows())
        conn.commit()
        log(f"check-ins: {visits} ({time.perf_counter() - started:.0f} s)")
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        for table in ("members", "cards", "balances", "referrals", "purchases", "check_ins", "stores"):
            conn.execute(f"VACUUM ANALYZE {table}")  # statistics, the visibility map, BRIN summaries
    seconds = time.perf_counter() - started
    log(f"done in {seconds:.0f} s")
    return Club(url=url, now=now, days=days, members=members, referrals=referrals, purchases=purchases,
                check_ins=visits, stores=store_ids, seconds=seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_CLUB_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/loyalty_bench_club"))
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--check-ins", type=int, default=None, help="default: two per member")
    parser.add_argument("--referral-share", type=float, default=0.2)
    parser.add_argument("--days", type=int, default=365, help="purchases and check-ins span this many days")
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--fresh", action="store_true", help="drop and create the database first")
    args = parser.parse_args(argv)
    generate_club(args.url, members=args.members, purchases=args.purchases, check_ins=args.check_ins,
                  referral_share=args.referral_share, days=args.days, stores=args.stores, seed=args.seed,
                  make_fresh=args.fresh)


if __name__ == "__main__":
    main()
