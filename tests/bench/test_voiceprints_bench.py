"""The voiceprint bench's smallest case runs the worker's learning and matching path: two
agents enrolled from three earlier calls each, their new calls (a stranger, then the other
agent as customer) told by voice."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.db.engine import SessionFactory
from bench.voiceprints import TARGET, build_diarizer, measure

pytestmark = pytest.mark.usefixtures("clean_database")


async def test_two_agents_are_enrolled_and_told_by_voice_on_their_new_calls(
    sessions: SessionFactory, test_audio_dir: Path
) -> None:
    report = await measure(sessions, "local", build_diarizer("local"), agent_count=2)
    assert report["enrolled"] == {"usc-uzbek": True, "picovoice-1": True}
    summary = report["summary"]
    assert summary["calls"] == 4 and summary["calls_other_agent"] == 2
    assert summary["no_voice_match"] == 0
    assert summary["agent_as_agent_of_found"] >= TARGET
    assert summary["false_matches_other_agent"] == 0
    for row in report["calls"]:
        assert row["agent_s"] > 3.0 and row["customer_s"] > 2.0
