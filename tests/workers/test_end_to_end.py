"""The product's spine in one test: an agent uploads a real recording through the GraphQL
multipart mutation, a worker processes it, the agent reads the nested analysis, and another
agent cannot see any of it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.api.resources import Resources
from app.core.config import Settings
from app.db.engine import SessionFactory
from app.db.models import Role
from app.workers.processor import CallProcessor
from tests.api.helpers import GraphQLClient, upload
from tests.factories import make_user
from tests.workers.helpers import run_worker_burst

pytestmark = pytest.mark.slow

NESTED = """
query($id: ID!) {
  call(id: $id) {
    status stage progress error durationSeconds channels agent { username }
    segments { speaker role start end text words { text start end } }
    metrics { durationSeconds talkSeconds speakers { speaker talkRatio turns } }
    analysis { language summary sentiment sentimentScore intents { name confidence }
               entities { type value } keypoints { text } }
  }
}
"""


async def test_upload_process_and_read_the_nested_analysis(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
) -> None:
    await make_user(sessions, "agent1", Role.AGENT)
    await make_user(sessions, "agent2", Role.AGENT)
    owner = await gql.login("agent1")
    stranger = await gql.login("agent2")

    audio = (test_audio_dir / "openai_whisper_jfk.flac").read_bytes()
    status, uploaded = await upload(http, audio, "jfk.flac", token=owner, content_type="audio/flac")
    assert status == 200, uploaded.errors
    assert uploaded.data is not None
    call_id = uploaded.data["uploadCall"]["id"]

    await run_worker_burst(settings, processor)

    result = await gql(NESTED, {"id": call_id}, token=owner)
    assert not result.errors, result.errors
    assert result.data is not None
    call = result.data["call"]
    assert (call["status"], call["stage"], call["progress"]) == ("SUCCESS", "DONE", 1.0)
    assert call["agent"] == {"username": "agent1"}
    assert call["durationSeconds"] == pytest.approx(11.0, abs=0.1)
    text = " ".join(segment["text"] for segment in call["segments"]).lower()
    assert "ask not what your country can do for you" in text
    words = [word for segment in call["segments"] for word in segment["words"]]
    assert words
    assert all(0 <= w["start"] <= w["end"] <= 11.1 for w in words)
    assert call["analysis"]["language"] == "en"
    assert call["analysis"]["summary"]
    assert -1 <= call["analysis"]["sentimentScore"] <= 1
    assert call["metrics"]["talkSeconds"] > 5
    assert sum(s["talkRatio"] for s in call["metrics"]["speakers"]) == pytest.approx(1, abs=0.01)

    hidden = await gql(NESTED, {"id": call_id}, token=stranger)
    assert hidden.codes == ["NOT_FOUND"]
    listing = await gql("{ calls { totalCount } }", token=stranger)
    assert listing.data == {"calls": {"totalCount": 0}}
