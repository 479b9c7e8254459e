"""The real thing: `loyalty db upgrade`, then gunicorn with two workers on a loopback port, spoken to over HTTP."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROBLEM = "application/problem+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SECRET = "server-test-secret-0123456789-abcdefghij"
_LOGS: dict = {}


def start(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`loyalty db upgrade`, then gunicorn on a free port with the project's configuration plus ``args``; the process
    and its base URL, once it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LOYALTY_"))}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'loyalty.db'}", "LOYALTY_SECRET_KEY": SECRET,
            "PYTHONPATH": str(ROOT)} | (env_extra or {})  # the code under test, wherever the venv's install points
    upgrade = subprocess.run([str(BIN / "loyalty"), "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115  (closed by stop)
    proc = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *args, "api:create_app()"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    _LOGS[proc.pid] = log
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/api/v1/openapi.json", timeout=10).status_code == 200:
                return proc, base
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            text = log.read()
            stop(proc)
            pytest.fail(f"gunicorn did not start:\n{text}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> str:
    """Stop the server; what it logged."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    log = _LOGS.pop(proc.pid)
    log.seek(0)
    text = log.read()
    log.close()
    return text


@pytest.fixture
def server(tmp_path):
    proc, base = start(tmp_path, "--workers", "2", "--timeout", "30", "--graceful-timeout", "5")
    try:
        yield base
    finally:
        stop(proc)


@pytest.mark.slow
def test_a_real_server(server):
    http = requests.Session()
    r = http.post(f"{server}/api/v1/auth/register", json={"email": "Real@Example.com", "password": "correct horse",
                                                          "name": "רות 🎉"}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["member"]["email"] == "real@example.com"

    r = http.post(f"{server}/api/v1/auth/token", json={"email": "real@example.com", "password": "correct horse"},
                  timeout=10)
    assert r.status_code == 200, r.text
    tokens = r.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    # two workers: whichever answers, the wallet is the same (no per-process state)
    for _ in range(4):
        r = http.get(f"{server}/api/v1/me/wallet", headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["points"]["balance"] == 0 and len(r.json()["card"]["number"]) == 16

    r = http.post(f"{server}/api/v1/auth/token", json={"refresh_token": tokens["refresh_token"]}, timeout=10)
    assert r.status_code == 200
    r = http.post(f"{server}/api/v1/auth/token", json={"refresh_token": tokens["refresh_token"]}, timeout=10)
    assert (r.status_code, r.json()["code"]) == (401, "refresh_token_reused")

    # errors are problem+json over the wire too
    r = http.get(f"{server}/api/v1/me/wallet", timeout=10)
    assert (r.status_code, r.headers["Content-Type"], r.json()["code"]) == (401, PROBLEM, "unauthorized")
    r = http.post(f"{server}/api/v1/auth/register", data="{nope", headers={"Content-Type": "application/json"},
                  timeout=10)
    assert (r.status_code, r.json()["code"]) == (400, "malformed_json")
    r = http.get(f"{server}/api/v1/nowhere", timeout=10)
    assert (r.status_code, r.headers["Content-Type"], r.json()["code"]) == (404, PROBLEM, "not_found")
    r = http.post(f"{server}/api/v1/auth/register", data="x" * 100_000, headers={"Content-Type": "application/json"},
                  timeout=10)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")

    r = http.get(f"{server}/api/v1/docs", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
