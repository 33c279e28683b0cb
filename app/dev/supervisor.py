"""`ovozly dev` as a supervisor: the API and the worker run as child processes that are
restarted with backoff when they die, the embedded servers are restarted at the same address
when they die, and nothing outlives `ovozly dev`.

* A child that exits is logged and started again after 1, 2, 4... up to 30 s (back to 1 s
  once it has run for a minute). The API never goes down because the worker did.
* A child that is alive but stops answering is treated as dead: the API's `/healthz` is
  probed every 2 s, and after 3 failed probes in a row (once it has answered, or once its
  start-up grace is over) it is killed with SIGKILL (a blocked event loop would never run
  a SIGTERM handler), logged with the reason, and restarted as above.
* Children get SIGTERM when `ovozly dev` dies, even by SIGKILL (PR_SET_PDEATHSIG). The
  embedded servers daemonize, so a small guard process, which also gets a signal when
  `ovozly dev` dies, stops them then.
* A lock file in the data dir refuses a second `ovozly dev` on the same data, and a state
  file lists the processes of the running one: if a start finds the state of a run that
  ended without cleaning up (everything SIGKILLed at once), it stops what is left first, so
  it never announces an address it is not using.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from app.core.processes import parent_death_signal
from app.dev.embedded import EmbeddedServices, stop_leftover_servers

logger = logging.getLogger("ovozly.dev")

LOCK_FILE = "dev.lock"
STATE_FILE = "dev.json"
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_AFTER_S = 60.0
POLL_INTERVAL_S = 0.5
CHILD_STOP_TIMEOUT_S = 15.0
LIVENESS_PROBE_INTERVAL_S = 2.0
LIVENESS_PROBE_TIMEOUT_S = 2.0
LIVENESS_FAILURES = 3
LIVENESS_STARTUP_GRACE_S = 120.0
"""A child that never answered is given this long to start before probes count."""


class DevAlreadyRunning(Exception):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"another `ovozly dev`{who} is already using {data_dir}")


@dataclass
class SupervisedChild:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    liveness_url: str | None = None
    """Probed while the child runs; None: only its exit is watched."""
    failed_probes: int = 0
    answered: bool = False
    next_probe_at: float = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            # Its own session: a Ctrl-C reaches only `ovozly dev`, which stops the children
            # in order; and the child dies with `ovozly dev` whatever kills it.
            start_new_session=True,
            preexec_fn=functools.partial(parent_death_signal, os.getpid()),
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        self.failed_probes = 0
        self.answered = False
        self.next_probe_at = self.started_at + LIVENESS_PROBE_INTERVAL_S

    def check_liveness(self, now: float) -> None:
        """Probes the child when due; kills it (the next `poll` restarts it) after
        LIVENESS_FAILURES failed probes in a row."""
        process = self.process
        if (
            self.liveness_url is None
            or process is None
            or self.restart_at is not None
            or now < self.next_probe_at
            or process.poll() is not None
        ):
            return
        self.next_probe_at = now + LIVENESS_PROBE_INTERVAL_S
        failure = probe_failure(self.liveness_url, LIVENESS_PROBE_TIMEOUT_S)
        if failure is None:
            self.answered = True
            self.failed_probes = 0
            return
        if not self.answered and now - self.started_at < LIVENESS_STARTUP_GRACE_S:
            return
        self.failed_probes += 1
        if self.failed_probes < LIVENESS_FAILURES:
            return
        logger.warning(
            "%s (pid %d) is running but stopped answering %s (%d probes %.0f s apart "
            "failed, the last: %s); killing it to restart it",
            self.name,
            process.pid,
            self.liveness_url,
            self.failed_probes,
            LIVENESS_PROBE_INTERVAL_S,
            failure,
        )
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=CHILD_STOP_TIMEOUT_S)

    def poll(self, now: float) -> bool:
        """Restarts the child when due; True when its process changed."""
        if self.process is not None and self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return False
            if now - self.started_at >= HEALTHY_AFTER_S:
                self.failures = 0
            delay = RESTART_BACKOFF_S[min(self.failures, len(RESTART_BACKOFF_S) - 1)]
            self.failures += 1
            self.restart_at = now + delay
            logger.warning(
                "%s (pid %d) exited with code %s; restarting in %.0f s (restart %d)",
                self.name,
                self.process.pid,
                code,
                delay,
                self.failures,
            )
            return False
        if self.restart_at is not None and now >= self.restart_at:
            self.start()
            assert self.process is not None
            logger.info("%s restarted (pid %d)", self.name, self.process.pid)
            return True
        return False

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %d) did not stop in time; killing it", self.name, self.process.pid
            )
            self.process.kill()
            self.process.wait()


@dataclass
class DevSession:
    """The lock, the state file, the guard and the supervised children of one `ovozly dev`."""

    data_dir: Path
    children: list[SupervisedChild] = field(default_factory=list)
    _lock_fd: int | None = None
    _guard: subprocess.Popen[bytes] | None = None

    # -- lock and state ------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def __enter__(self) -> DevSession:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self._previous_state().get("pid")
            raise DevAlreadyRunning(self.data_dir, pid if isinstance(pid, int) else None) from None
        # The kernel drops the lock when this process dies, however it dies.
        self._lock_fd = fd
        previous = self._previous_state()
        if previous:
            logger.warning(
                "the previous `ovozly dev` (pid %s) did not shut down cleanly; "
                "stopping what it left running",
                previous.get("pid"),
            )
            _stop_recorded_processes(previous.get("processes", []))
            stop_leftover_servers(self.data_dir)
        self._write_state()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _previous_state(self) -> dict[str, object]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self) -> None:
        processes = [
            process.pid
            for process in [self._guard, *(child.process for child in self.children)]
            if process is not None
        ]
        state = {"pid": os.getpid(), "processes": [_identity(pid) for pid in processes]}
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_path)

    # -- guard ---------------------------------------------------------------------------

    def arm_guard(self) -> None:
        """Starts the process that stops the embedded servers if `ovozly dev` dies."""
        self._guard = subprocess.Popen(
            [sys.executable, "-m", "app.dev.supervisor", "guard", str(self.data_dir)],
            start_new_session=True,
            preexec_fn=functools.partial(_prepare_guard, os.getpid()),
        )
        self._write_state()

    def disarm_guard(self) -> None:
        """Orderly shutdown: the servers are stopped by `ovozly dev` itself."""
        if self._guard is not None and self._guard.poll() is None:
            self._guard.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._guard.wait(timeout=5)
        self._guard = None

    # -- children ------------------------------------------------------------------------

    def start_children(
        self,
        commands: dict[str, list[str]],
        env: dict[str, str],
        liveness_urls: dict[str, str] | None = None,
    ) -> None:
        for name, argv in commands.items():
            child = SupervisedChild(name, argv, env, liveness_url=(liveness_urls or {}).get(name))
            child.start()
            self.children.append(child)
        self._write_state()

    def supervise(self, services: EmbeddedServices) -> None:
        """Runs until interrupted (the caller's signal handler raises)."""
        while True:
            time.sleep(POLL_INTERVAL_S)
            try:
                revived = services.revive_dead()
            except Exception:
                logger.exception("could not restart an embedded server; retrying")
                revived = []
            if revived:
                logger.warning("restarted embedded %s", " and ".join(revived))
            now = time.monotonic()
            for child in self.children:
                child.check_liveness(now)
            # Every child is polled (no short-circuit), then the state is saved once.
            restarted = [child.poll(time.monotonic()) for child in self.children]
            if any(restarted):
                self._write_state()

    def stop_children(self) -> None:
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for child in self.children:
            child.wait(deadline)


def probe_failure(url: str, timeout_s: float) -> str | None:
    """None when `url` answers 200 within the time; otherwise what went wrong."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (our own http URL)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except TimeoutError:
        return f"no answer within {timeout_s:.0f} s"
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout_s:.0f} s"
        return f"unreachable ({reason})"
    return None if status == 200 else f"HTTP {status}"


def liveness_url(host: str, port: int) -> str:
    """The API's /healthz as the supervisor reaches it (a wildcard bind is probed locally)."""
    if host in {"0.0.0.0", "", "*"}:  # noqa: S104 (a bind address compared, not bound)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def _identity(pid: int) -> dict[str, float | int]:
    """A pid with its start time, so a later start never signals a reused pid."""
    import psutil

    try:
        return {"pid": pid, "started": psutil.Process(pid).create_time()}
    except psutil.NoSuchProcess:
        return {"pid": pid, "started": 0.0}


def _stop_recorded_processes(recorded: object) -> None:
    import psutil

    if not isinstance(recorded, list):
        return
    for entry in recorded:
        if not isinstance(entry, dict):
            continue
        try:
            process = psutil.Process(int(entry["pid"]))
            if abs(process.create_time() - float(entry["started"])) > 1.0:
                continue
            logger.warning("stopping leftover process %d", process.pid)
            process.terminate()
            try:
                process.wait(CHILD_STOP_TIMEOUT_S)
            except psutil.TimeoutExpired:
                process.kill()
        except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
            continue


# -- the guard process -----------------------------------------------------------------------

_GUARD_SIGNALS = {signal.SIGTERM, signal.SIGUSR1}


def _prepare_guard(parent_pid: int) -> None:
    """In the guard's child before exec: its signals stay pending (the mask survives exec)
    until it has installed its handlers, so `ovozly dev` dying while the guard is still
    starting is not missed."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _GUARD_SIGNALS)
    parent_death_signal(parent_pid)


def guard(data_dir: Path) -> int:
    """Waits; SIGUSR1 (orderly shutdown) exits quietly, SIGTERM (sent by the kernel when
    `ovozly dev` dies) stops the embedded servers on the data dir first."""

    def disarm(signum: int, frame: object) -> None:
        raise SystemExit(0)

    def parent_died(signum: int, frame: object) -> None:
        # A repeated signal must not interrupt the clean-up half-way (it can arrive twice).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        stop_leftover_servers(data_dir)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, disarm)
    signal.signal(signal.SIGTERM, parent_died)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GUARD_SIGNALS)
    while True:
        signal.pause()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "guard":
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        sys.exit(guard(Path(sys.argv[2])))
    sys.exit("usage: python -m app.dev.supervisor guard DATA_DIR")
