"""Benchmark plumbing: fresh PostgreSQL databases, gunicorn on loopback, wrk at full load, a paced client.

Benchmarks print figures; they assert nothing about speed (the machines are noisy).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


_DATABASES: list[str] = []  # made by fresh_database in this run
_SERVERS: dict[str, int] = {}  # base URL -> the gunicorn master's pid, while it serves


def fresh_database(name: str) -> str:
    """Drop and create ``name``; returns its SQLAlchemy URL."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    if name not in _DATABASES:
        _DATABASES.append(name)
    return f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}"


def settle() -> None:
    """Before a measured run: ANALYZE the benchmark's databases, then write PostgreSQL's dirty pages out
    (CHECKPOINT), so every measured run starts from the same state.

    ANALYZE does what autovacuum does on a production server, and this machine's server runs with autovacuum
    off. Without it a table's statistics stay as they were when it was last analyzed (the purchases table:
    empty), and a connection's prepared statements keep plans made for that size: a sequential scan of the
    purchases on every purchase, slower with every purchase made (a run saw 541, then 539, 408, 375 and 331
    purchases/s). ANALYZE also makes those plans be made again. The CHECKPOINT keeps a checkpoint due in the
    next seconds from landing inside one measurement and not another."""
    for name in _DATABASES:
        with psycopg.connect(f"{PG}/{name}", autocommit=True) as conn:
            conn.execute("ANALYZE")
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int = 4, ready_path: str = "/api/v1/openapi.json") -> Iterator[str]:
    """Serve ``app`` with gunicorn on a free loopback port; yields the base URL once every worker answers."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(
        # --preload: the app is imported once and forked, so workers are ready together. Everything else is the
        # project's gunicorn.conf.py, as `make serve` has it: its threaded worker (api.serving.Worker), and
        # GUNICORN_THREADS threads a worker (a command line's --worker-class sync would be turned into gunicorn's
        # own gthread by those threads, silently: not how the API is served).
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--preload",
         "--backlog", "2048", app],
        cwd=ROOT, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        answered = 0
        while answered < workers * 4:  # a few answers per worker: every one of them has booted
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", ready_path)
                conn.getresponse().read()
                conn.close()
                answered += 1
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(Path(log.name).read_text()) from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        _SERVERS[url] = proc.pid
        yield url
    finally:
        _SERVERS.pop(f"http://127.0.0.1:{port}", None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(log.name)


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """Every process's (parent pid, user + system CPU in clock ticks), from /proc."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()  # after the command's name, which may hold spaces
        except OSError:
            continue  # gone meanwhile
        ticks[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return ticks


class CpuMeter:
    """CPU seconds spent during a measurement by a served app (its gunicorn master and workers) and by the
    PostgreSQL backends serving one database: where a request's cost lies, server or database. Linux only."""

    def __init__(self, base_url: str, database: str) -> None:
        self.base_url, self.database = base_url, database

    def _pids(self, ticks: dict[int, tuple[int, int]]) -> tuple[set[int], set[int]]:
        master = _SERVERS[self.base_url]
        server = {master} | {pid for pid, (parent, _) in ticks.items() if parent == master}
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            backends = {row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                                       (self.database,))}
        return server, backends

    def __enter__(self) -> CpuMeter:
        self._before = _cpu_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _cpu_ticks()
        server, backends = self._pids(after)  # backends opened during the run count from zero

        def spent(pids: set[int]) -> float:
            return sum(after[p][1] - self._before.get(p, (0, 0))[1] for p in pids if p in after) \
                / os.sysconf("SC_CLK_TCK")
        self.server_s, self.database_s = spent(server), spent(backends)


WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,"
    .. "\\"non2xx\\":%d,\\"socket_errors\\":%d}\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(url: str, script: str, args: list[str] = (), seconds: int = 10, connections: int = 16,
        threads: int = 2, database: str | None = None) -> dict:
    """Full-speed load with wrk; returns requests/s, p50/p99 in ms and error counts. With ``database`` (the app
    serving ``url`` was started by :func:`gunicorn`, on that PostgreSQL database), also the CPU milliseconds a
    request cost the server's processes (``server_cpu_ms``) and the database's backends (``db_cpu_ms``)."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    settle()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + WRK_DONE)
    base_url = next((base for base in _SERVERS if url.startswith(base)), None)
    meter = CpuMeter(base_url, database) if database and base_url else contextlib.nullcontext()
    try:
        with meter:
            out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                                  "--timeout", "10s", "-s", f.name, url, "--", *args],
                                 capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    line = next(row for row in out.splitlines() if row.startswith("WRKJSON"))
    data = json.loads(line[len("WRKJSON"):])
    result = {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50_ms": data["p50_us"] / 1000,
              "p99_ms": data["p99_us"] / 1000, "requests": data["requests"], "non2xx": data["non2xx"],
              "socket_errors": data["socket_errors"]}
    if isinstance(meter, CpuMeter) and data["requests"]:
        result["server_cpu_ms"] = meter.server_s * 1000 / data["requests"]
        result["db_cpu_ms"] = meter.database_s * 1000 / data["requests"]
    return result


def paced(base_url: str, request: Callable[[int], tuple[str, str, bytes, dict]], rate: float, seconds: float,
          workers: int = 16) -> dict:
    """Send ``rate`` requests a second for ``seconds``; latency counts from each request's scheduled time,
    so a slow server cannot hide its queueing (no coordinated omission)."""
    settle()
    host, port = base_url.split("://", 1)[1].split(":")
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(w: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for i in range(w, total, workers):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            method, path, body, headers = request(i)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            done = time.perf_counter()
            with lock:
                latencies.append((done - scheduled) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {"rate": rate, "requests": total, "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "statuses": statuses}


def fmt(name: str, r: dict) -> str:
    if "rps" in r:
        cpu = (f"   CPU/request: server {r['server_cpu_ms']:.2f} ms, PostgreSQL {r['db_cpu_ms']:.2f} ms"
               if "server_cpu_ms" in r else "")
        return (f"{name:<44} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
                f"   non-2xx {r['non2xx']}  socket errors {r['socket_errors']}{cpu}")
    return (f"{name:<44} {r['rate']:8.0f} req/s paced   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
            f"   statuses {r['statuses']}")
