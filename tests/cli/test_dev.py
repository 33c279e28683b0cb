"""`make run` smoke test: the real `ovozly dev` with embedded servers, API and worker as
child processes, driven over HTTP, then stopped with SIGTERM leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from app.embedded import free_tcp_port
from tests.conftest import REPO_ROOT

START_TIMEOUT_S = 120


def _listening(port: int) -> bool:
    return any(
        conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
        for conn in psutil.net_connections("tcp")
    )


def _processes_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in process.info["cmdline"] or []):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _start_dev(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "JWT_KEY", "OVOZLY_ADMIN_PASSWORD"}
    }
    env.update({"OVOZLY_DATA_DIR": str(data_dir), "PORT": str(port), "PYTHONUNBUFFERED": "1"})
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str, log: list[str]) -> None:
    """Reads output until `marker`, then keeps draining it in the background: the children
    share this pipe and would block once it filled up."""
    assert process.stdout is not None
    stdout = process.stdout
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = stdout.readline()
        if not line:
            break
        log.append(line)
        if marker in line:
            threading.Thread(target=lambda: log.extend(stdout), daemon=True).start()
            return
    raise AssertionError("ovozly dev did not start:\n" + "".join(log[-60:]))


def _wait_ready(port: int, process: subprocess.Popen[str], log: list[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("API never became ready:\n" + "".join(log[-80:]))


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"


@pytest.mark.slow
def test_make_run_serves_graphiql_logs_in_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    try:
        _read_until(process, "Stop:", log)
        output = "".join(log)
        assert f"http://127.0.0.1:{port}/graphql" in output
        password_match = re.search(r"Password:\s+(\S+)\s+\(shown once", output)
        assert password_match, output
        password = password_match.group(1)
        redis_port = int(re.search(r"Redis:\s+redis://127.0.0.1:(\d+)", output).group(1))  # type: ignore[union-attr]
        _wait_ready(port, process, log)
        url = f"http://127.0.0.1:{port}/graphql"
        assert "graphiql" in httpx.get(url, headers={"Accept": "text/html"}).text.lower()
        login = httpx.post(url, json={"query": LOGIN, "variables": {"u": "admin", "p": password}})
        token = login.json()["data"]["login"]["accessToken"]
        created = httpx.post(
            url,
            json={
                "query": 'mutation { createUser(input: {username: "agent7", '
                'password: "agent7-password"}) { username role } }'
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.json()["data"]["createUser"] == {"username": "agent7", "role": "AGENT"}
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-40:])
    time.sleep(0.5)
    assert _processes_using(data_dir) == []
    assert not _listening(redis_port)
    assert not _listening(port)

    # A second start reuses the data: the admin is left alone, the agent is still there.
    process = _start_dev(data_dir, port)
    log = []
    try:
        _read_until(process, "Stop:", log)
        assert "shown once" not in "".join(log)
        _wait_ready(port, process, log)
        login = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": LOGIN, "variables": {"u": "agent7", "p": "agent7-password"}},
        )
        assert login.json()["data"]["login"]["accessToken"]
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-60:])
    time.sleep(0.5)
    assert _processes_using(data_dir) == []
