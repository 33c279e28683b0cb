"""Session-wide fixtures. Domain fixtures live in the conftest of each test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_audio_dir() -> Path:
    return Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO_ROOT.parent / "shared" / "data" / "audio"))


@pytest.fixture(scope="session")
def test_audio_dir() -> Path:
    """The shared real-speech recordings; tests that need them skip where they are absent."""
    directory = shared_audio_dir()
    if not (directory / "SOURCES.md").is_file():
        pytest.skip(f"shared test audio not found at {directory} (set OVOZLY_TEST_AUDIO)")
    return directory
