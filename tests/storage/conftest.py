"""Storage fixtures: a temp root for the local backend, a real GCS emulator for the GCS one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.storage import GcsStorage, LocalDiskStorage
from tests.factories import wait_until_blocking

EMULATOR_BUCKET = "ovozly-test"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def gcs_emulator_host() -> Iterator[str]:
    """`http://127.0.0.1:<port>` of an in-memory gcp-storage-emulator, run for the session."""
    port = _free_port()
    executable = Path(sys.executable).with_name("gcp-storage-emulator")
    process = subprocess.Popen(
        [
            str(executable),
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
            "--in-memory",
            f"--default-bucket={EMULATOR_BUCKET}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"gcp-storage-emulator exited early: {stderr[-2000:]}")
            try:
                return httpx.get(f"{host}/storage/v1/b/{EMULATOR_BUCKET}", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_until_blocking(answers, "gcp-storage-emulator to answer", 20, interval_s=0.1)
        yield host
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@pytest.fixture(scope="session")
def gcs_client(gcs_emulator_host: str) -> Iterator[Any]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    # The client library reads the emulator address from the environment when it is built
    # and when it forms upload URLs, so it stays set for the whole session.
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_emulator_host
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = storage.Client(project="ovozly-test", credentials=anonymous)
    try:
        yield client
    finally:
        client.close()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def gcs_storage(gcs_client: Any) -> GcsStorage:
    # The smallest legal chunk makes a 9 MB file cross many resumable chunks.
    return GcsStorage(EMULATOR_BUCKET, gcs_client, chunk_size=256 * 1024)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalDiskStorage:
    return LocalDiskStorage(tmp_path / "objects")


def write_random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data
