"""Languages through the whole product: a call that switches between Uzbek and Russian is
uploaded, processed by the worker with the default models, and read over GraphQL with each
turn's language, the call's language shares, its warnings and a partial analysis."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import soundfile

from app.api.resources import Resources
from app.core.config import Settings
from app.db.engine import SessionFactory
from app.db.models import Role
from app.workers.processor import CallProcessor
from bench.phone_audio import code_switched_call
from tests.api.helpers import GraphQLClient, upload
from tests.factories import make_user
from tests.workers.helpers import run_worker_burst

pytestmark = pytest.mark.slow

QUERY = """
query($id: ID!) {
  call(id: $id) {
    status error
    languages { language share }
    warnings { code message }
    segments { speaker role start end text language words { text } }
    metrics { talkSeconds }
    analysis { language summary intents { name evidence } }
  }
}
"""


async def test_an_uzbek_and_russian_call_reads_back_with_languages_and_warnings(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
    tmp_path: Path,
) -> None:
    await make_user(sessions, "multilingual", Role.AGENT)
    token = await gql.login("multilingual")
    signal, parts = code_switched_call(
        test_audio_dir,
        [
            ("uz", "usc_uz_1126542829_1_33727_1.wav"),
            ("ru", "pisets_test_sound_ru.wav"),
            ("uz", "usc_uz_1131474547_2_29209_1.wav"),
        ],
    )
    path = tmp_path / "uz-ru.wav"
    soundfile.write(path, signal, 16000)
    status, uploaded = await upload(http, path.read_bytes(), "uz-ru.wav", token=token)
    assert status == 200, uploaded.errors
    assert uploaded.data is not None
    call_id = uploaded.data["uploadCall"]["id"]

    running = await gql(QUERY, {"id": call_id}, token=token)
    assert running.data is not None
    assert running.data["call"]["languages"] == [] and running.data["call"]["warnings"] == []

    await run_worker_burst(settings, processor)
    result = await gql(QUERY, {"id": call_id}, token=token)
    assert not result.errors, result.errors
    assert result.data is not None
    call = result.data["call"]
    assert call["status"] == "SUCCESS", call["error"]

    languages = call["languages"]
    assert [item["language"] for item in languages] == ["uz", "ru"]
    assert languages[0]["share"] > languages[1]["share"] > 0
    assert sum(item["share"] for item in languages) == pytest.approx(1.0, abs=1e-3)
    assert call["analysis"]["language"] == "uz"

    codes = [warning["code"] for warning in call["warnings"]]
    # Untranscribed speech cannot be searched for spoken card numbers: said, not assumed clean.
    assert codes == ["LANGUAGE_NOT_TRANSCRIBED", "ANALYSIS_PARTIAL", "NOT_REDACTED"]
    uz_share = round(languages[0]["share"] * 100)
    assert call["warnings"][0]["message"].startswith(
        f"Uzbek speech ({uz_share}% of talk time) was not transcribed"
    )

    segments = call["segments"]
    uzbek = [s for s in segments if s["language"] == "uz"]
    russian = [s for s in segments if s["language"] == "ru"]
    assert uzbek and all(s["text"] == "" and s["words"] == [] for s in uzbek)
    assert "нейрон" in " ".join(s["text"] for s in russian).lower()
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    # Talk time counts the untranscribed Uzbek speech too.
    assert call["metrics"]["talkSeconds"] > sum(p.end_s - p.start_s for p in parts) * 0.6
    for intent in call["analysis"]["intents"]:
        assert all(segments[i]["text"] for i in intent["evidence"]), intent
