"""Benchmark: webhook deliveries per second by one and by two workers, against a bare loop posting the same signed
bodies to the same receiver in the same run (not a test: it prints figures and asserts only that the backlog
drained).

    .venv/bin/python -m tests.bench.deliveries [--events 3000] [--rounds 3] [--concurrency 8]

On a fresh PostgreSQL database of its own (BENCH_PG, default postgresql://postgres@127.0.0.1:5432) with one
subscription to a receiver on 127.0.0.1 (a separate process: Python's threading HTTP server, 204 to every POST), each
round writes ``--events`` events, then in turn:
- bare: the same bodies, signed, POSTed by a thread pool of ``--concurrency`` (and of twice that) in this process,
  one connection per request as the worker does, no database;
- one worker, then two workers (separate processes running ``wallet.worker.run(once=True)``): fan-out, claim,
  POST, record, until the backlog is empty; timed from the first worker's start to the last one's end (process
  start-up not counted). After each, every delivery must be ``delivered`` and the receiver must have counted each
  event once per run.
Rounds alternate so the machine's drift touches each measure alike; the median of the rounds is printed.
Bounded: at most ``--events`` x 3 POSTs a round, and every phase gives up after 300 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from .common import ROOT, free_port, fresh_database

DATABASE = "loyalty_bench_deliveries"
SECRET = "bench-secret-key-not-for-production"
LIMIT = 300.0  # seconds any one phase may take


# ------------------------------------------------------------------ the receiver (its own process)

def serve(port: int) -> None:
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                count[0] += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            body = str(count[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # listen()'s backlog: the default 5 resets connections under load

    Server(("127.0.0.1", port), Handler).serve_forever()


def received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as answer:
        return int(answer.read())


# ------------------------------------------------------------------ a worker (its own process)

def work(url: str, concurrency: int) -> None:
    from datetime import timedelta

    from api import create_app
    from api.extensions import db
    from wallet import webhooks, worker
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET})
    settings = webhooks.Settings(allow_private=True, timeout=5, lease=timedelta(seconds=30), batch=64,
                                 concurrency=concurrency)
    with app.app_context():
        factory = sessionmaker(bind=db.engine)
        program = app.extensions["loyalty.program"]
        print("ready", flush=True)
        sys.stdin.readline()  # started together: every worker has booted before the clock runs
        started = time.time()
        stats = worker.run(factory, program, settings=settings, once=True)
        print(json.dumps({"started": started, "ended": time.time(), "delivered": stats.delivered,
                          "fanned_out": stats.fanned_out}), flush=True)


def run_workers(url: str, n: int, concurrency: int) -> tuple[float, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOYALTY_SECRET_KEY": SECRET}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.bench.deliveries", "--work", url, "--concurrency",
                               str(concurrency)], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=LIMIT)
        assert proc.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    return max(r["ended"] for r in results) - min(r["started"] for r in results), results


# ------------------------------------------------------------------ the bench

def setup(url: str, port: int) -> None:
    from flask_migrate import upgrade

    from api import create_app
    from api.extensions import db
    from wallet import webhooks
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET})
    with app.app_context():
        upgrade()
        webhooks.create(db.session, url=f"http://127.0.0.1:{port}/hook", events=["*"], allow_private=True,
                        now=datetime.now(UTC))
        db.session.commit()
        db.engine.dispose()


def write_events(engine, n: int) -> list[tuple[str, bytes]]:
    """A backlog of ``n`` new events (the workers' cursor is past the earlier ones); their ids and POST bodies."""
    from wallet import events
    from wallet.webhooks.deliveries import body_of
    with Session(engine) as session:
        made = [events.emit(session, "points.earned", member_id=f"mem_{i}", channel="till", actor="staff:stf_bench",
                            data={"entry_id": f"led_{i}", "points": 10, "balance_after": 10 * i},
                            occurred_at=datetime.now(UTC)) for i in range(n)]
        session.commit()
        return [(e.id, body_of(e)) for e in made]


def bare(port: int, bodies: list[tuple[str, bytes]], secret: str, concurrency: int) -> float:
    """The same signed bodies POSTed with no database: what the network and receiver allow."""
    from wallet.webhooks import http, sign
    url = f"http://127.0.0.1:{port}/hook"

    def post(item):
        event_id, body = item
        ts = int(time.time())
        answer = http.post(url, body, {"webhook-id": event_id, "webhook-timestamp": str(ts),
                                       "webhook-signature": sign(event_id, ts, body, [secret])},
                           timeout=5, max_body=65536, allow_private=True)
        assert answer.status == 204, answer
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.work:
        work(args.work, args.concurrency)
        return
    args.events = max(1, min(args.events, 20_000))  # bounded

    from sqlalchemy import create_engine

    import wallet.models  # noqa: F401
    from wallet.webhooks import Delivery, Subscription

    url = fresh_database(DATABASE)
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "tests.bench.deliveries", "--serve", str(port)], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(100):
            try:
                received(port)
                break
            except OSError:
                time.sleep(0.1)
        setup(url, port)
        engine = create_engine(url)
        with Session(engine) as session:
            secret = session.scalar(select(Subscription.secret))
        figures: dict[str, list[float]] = {f"bare x{args.concurrency}": [], f"bare x{2 * args.concurrency}": [],
                                           "one worker": [], "two workers": []}
        for round_ in range(1, args.rounds + 1):
            bodies = write_events(engine, args.events)  # posted bare, then delivered by one worker
            for c in (args.concurrency, 2 * args.concurrency):
                before = received(port)
                seconds = bare(port, bodies, secret, c)
                assert received(port) - before == args.events
                figures[f"bare x{c}"].append(args.events / seconds)
            for n, name in ((1, "one worker"), (2, "two workers")):
                if n == 2:
                    write_events(engine, args.events)  # a backlog of its own
                before = received(port)
                with Session(engine) as session:
                    session.execute(text("TRUNCATE webhook_deliveries"))  # the last run's, all delivered
                    session.commit()
                seconds, results = run_workers(url, n, args.concurrency)
                with Session(engine) as session:
                    states = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
                got = received(port) - before
                assert states == {"delivered": args.events}, states  # the backlog drained to zero
                assert got == args.events, got  # each event once
                figures[name].append(args.events / seconds)
                print(f"round {round_}: {name}: {args.events} in {seconds:.2f} s = {args.events / seconds:,.0f}/s "
                      f"(per worker: {[r['delivered'] for r in results]})", flush=True)
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items()), flush=True)
        print(f"\n{args.events} events a run, {args.rounds} rounds, {args.concurrency} deliveries in flight per worker")
        for name, values in figures.items():
            print(f"  {name:<14} median {statistics.median(values):>7,.0f}/s   rounds: "
                  + ", ".join(f"{v:,.0f}" for v in values))
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
