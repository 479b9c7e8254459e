"""The served API cannot be stalled by idle or slow clients: gunicorn as `make serve` runs it (gunicorn.conf.py)."""
from __future__ import annotations

import os
import socket
import time

import pytest
import requests

from .test_server import ROOT, start, stop


@pytest.mark.slow
def test_idle_connections_beyond_the_threads_do_not_stall_a_request(tmp_path):
    # One worker with two threads (the project's worker class and settings from gunicorn.conf.py), then ten idle
    # connections that never send a byte, then five that sent half a request line: more than the threads, twice.
    proc, base = start(tmp_path, "--workers", "1", "--threads", "2")
    port = int(base.rsplit(":", 1)[1])
    idle = []
    try:
        for i in range(15):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i >= 10:
                s.sendall(b"GET /api/v1/openapi.json HT")
            idle.append(s)
        time.sleep(0.5)  # every idle connection is accepted and waiting
        for _ in range(3):
            t0 = time.monotonic()
            r = requests.get(f"{base}/api/v1/openapi.json", timeout=20)
            took = time.monotonic() - t0
            assert r.status_code == 200
            assert took < 5, f"a request behind idle connections took {took:.1f} s"
    finally:
        for s in idle:
            s.close()
        stop(proc)


@pytest.mark.slow
def test_the_project_configuration_uses_threaded_workers_with_timeouts():
    config: dict = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), config)
    assert config["worker_class"] == "api.serving.Worker"
    assert config["threads"] >= 4 and 0 < config["keepalive"] <= 15 and config["timeout"] <= 60
    assert "--worker-class" not in (ROOT / "Makefile").read_text()  # make serve takes the file's worker class


@pytest.mark.slow
def test_two_workers_count_one_auth_budget(tmp_path):
    """The /auth limit (20 per minute per address) holds for the host, not per worker process: the default storage
    is one file every worker maps. Each sign-in on a new connection, so both workers take their share."""
    proc, base = start(tmp_path, "--workers", "2", env_extra={
        "LOYALTY_RATELIMIT_STORAGE_URI": f"host://{tmp_path / 'limits.shm'}"})
    try:
        codes = [requests.post(f"{base}/api/v1/auth/token", json={"email": f"nobody{i}@example.com", "password": "x"},
                               headers={"Connection": "close"}, timeout=20).status_code for i in range(40)]
    finally:
        log = stop(proc)
    assert codes.count(401) == 20 and codes.count(429) == 20, codes
    assert len({line.split("[")[2] for line in log.splitlines() if "Booting worker" in line}) == 2


@pytest.mark.slow
def test_metrics_add_up_every_worker(tmp_path):
    """Prometheus multiprocess mode: whichever worker answers /metrics counts every worker's requests."""
    (tmp_path / "prom").mkdir()
    proc, base = start(tmp_path, "--workers", "2", env_extra={
        "LOYALTY_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "LOYALTY_RATELIMIT_STORAGE_URI": f"host://{tmp_path / 'limits.shm'}"})
    def writers() -> set[str]:
        return {name.split("_")[-1] for name in os.listdir(tmp_path / "prom") if name.startswith("counter_")}

    try:
        sent = 0
        # New connections until both workers have answered some (which one accepts is the kernel's choice): bounded
        while sent < 20 or (len(writers()) < 2 and sent < 400):
            assert requests.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=20).status_code == 200
            sent += 1
        text = requests.get(f"{base}/metrics", timeout=20).text
        files = os.listdir(tmp_path / "prom")
    finally:
        stop(proc)
    assert f'loyalty_http_requests_total{{method="GET",route="/healthz",status="200"}} {sent}.0' in text
    assert len({name.split("_")[-1] for name in files if name.startswith("counter_")}) == 2, files  # both wrote
