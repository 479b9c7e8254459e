"""Benchmark: what one password hash costs with the configured method (LOYALTY_PASSWORD_HASH, default
scrypt:16384:8:1), hashing and checking, against the issue's budget of about 100 ms of a core.

    .venv/bin/python -m tests.bench.password_hash [--rounds 15] [--method scrypt:16384:8:1]

Prints the median and the fastest and slowest of each. One process, one thread: what a sign-in costs the core
it runs on (the server computes LOYALTY_PASSWORD_HASH_CONCURRENCY of them at once per process).
"""
from __future__ import annotations

import argparse
import statistics
import time

from werkzeug.security import check_password_hash, generate_password_hash


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--method", default="scrypt:16384:8:1")
    args = parser.parse_args()
    password = "correct horse battery staple"
    hashes, checks = [], []
    stored = generate_password_hash(password, method=args.method)
    for _ in range(max(1, min(args.rounds, 200))):  # bounded
        started = time.perf_counter()
        generate_password_hash(password, method=args.method)
        hashes.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert check_password_hash(stored, password)
        checks.append((time.perf_counter() - started) * 1000)
    for what, times in (("hash", hashes), ("check", checks)):
        print(f"{args.method} {what}: median {statistics.median(times):.1f} ms "
              f"(fastest {min(times):.1f}, slowest {max(times):.1f}; {len(times)} rounds; budget about 100 ms)")


if __name__ == "__main__":
    main()
