"""uploadCall over real multipart requests (GraphQL multipart request spec): accepted formats,
storage, the queued job, and every refusal leaving nothing behind."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.api.main import create_app
from app.core.config import Settings
from app.core.ids import parse_global_id, to_global_id
from app.core.queue import QUEUE_NAME
from app.db.engine import SessionFactory
from app.db.models import Role
from tests.api.helpers import (
    KEY_RE,
    UPLOAD,
    GraphQLClient,
    Style,
    call_count,
    call_row,
    multipart_body,
    resources_of,
    stored_files,
    upload,
    upload_ok,
    user_id,
)
from tests.factories import FORMATS, header_only_wav, make_user, tone_bytes

# --- accepted uploads -----------------------------------------------------------------------


def _rates(suffix: str) -> tuple[int, int]:
    # Opus encodes only at 8/12/16/24/48 kHz, so 48 kHz stands in for 44.1 kHz; it always
    # decodes at 48 kHz whatever it was encoded from.
    return (8000, 48000) if FORMATS[suffix][1] == "libopus" else (8000, 44100)


@pytest.mark.parametrize("suffix", list(FORMATS))
async def test_upload_every_supported_format(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
    suffix: str,
) -> None:
    resources = resources_of(app)
    agent = await user_id(gql, agent_token)
    variants = [(rate, channels) for rate in _rates(suffix) for channels in (1, 2)]
    for n, (rate, channels) in enumerate(variants):
        content = tone_bytes(audio_dir, suffix, sample_rate=rate, channels=channels)
        style: Style = "apollo" if n % 2 == 0 else "formdata"
        call = await upload_ok(
            http, content, f"customer call {n}.{suffix}", token=agent_token, style=style
        )
        case = (suffix, rate, channels, style)
        assert call["status"] == "RUNNING" and call["stage"] == "QUEUED", case
        assert call["progress"] == 0.0 and call["error"] is None and call["finishedAt"] is None
        assert call["filename"] == f"customer call {n}.{suffix}"
        assert call["channels"] == channels, case
        assert call["sampleRate"] == (48000 if FORMATS[suffix][1] == "libopus" else rate), case
        assert call["durationSeconds"] == pytest.approx(1.0, abs=0.08), case
        assert call["sizeBytes"] == len(content)
        assert call["sha256"] == hashlib.sha256(content).hexdigest()
        assert call["agent"]["id"] == agent
        assert parse_global_id(call["id"])[0] == "Call"

        row = await call_row(app, call["id"])
        assert row is not None and row.job_id is not None
        # Stored byte for byte under a generated key that owes nothing to the filename.
        assert KEY_RE.fullmatch(row.storage_key), row.storage_key
        assert await resources.storage.exists(row.storage_key)
        assert await resources.storage.size(row.storage_key) == len(content)
        stored = resources.storage.path_for(row.storage_key)  # type: ignore[attr-defined]
        assert hashlib.sha256(Path(stored).read_bytes()).hexdigest() == call["sha256"]
        # The job is in arq's queue, under the call's job token.
        assert await resources.redis.zscore(QUEUE_NAME, row.job_id) is not None
    assert await call_count(app) == len(variants)


async def test_same_file_twice_makes_two_calls_with_distinct_keys(
    app: FastAPI, http: httpx.AsyncClient, agent_token: str, audio_dir: Path
) -> None:
    content = tone_bytes(audio_dir)
    first = await upload_ok(http, content, token=agent_token)
    second = await upload_ok(http, content, token=agent_token, style="formdata")
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    rows = [await call_row(app, c["id"]) for c in (first, second)]
    assert rows[0] is not None and rows[1] is not None
    assert rows[0].storage_key != rows[1].storage_key
    assert rows[0].job_id != rows[1].job_id


# --- refusals: nothing stored, no call ------------------------------------------------------


def _truncated(content: bytes) -> bytes:
    return content[: len(content) // 2]


async def test_bad_audio_is_refused_and_leaves_nothing(
    app: FastAPI, http: httpx.AsyncClient, agent_token: str, settings: Settings, audio_dir: Path
) -> None:
    wav = tone_bytes(audio_dir, "wav", seconds=3.0)
    flac = tone_bytes(audio_dir, "flac", seconds=3.0)
    cases = {
        "empty": b"",
        "text": b"hello, this is not a recording\n" * 100,
        "png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20,
        "truncated wav": _truncated(wav),
        "wav header without data": wav[:200],
        "truncated flac": _truncated(flac),
        "zero-length wav": header_only_wav(audio_dir / "header-only.wav").read_bytes(),
    }
    before = stored_files(settings)
    queued_before = await resources_of(app).redis.zcard(QUEUE_NAME)
    for name, content in cases.items():
        for style in ("apollo", "formdata"):
            status, result = await upload(
                http, content, f"{name}.wav", token=agent_token, style=style
            )
            assert status == 200, (name, status)
            assert result.codes == ["BAD_USER_INPUT"], (name, result.errors)
            assert result.data is None
            message = result.errors[0]["message"]
            assert "Traceback" not in message and "/" not in message, message
    assert await call_count(app) == 0
    assert stored_files(settings) == before
    assert await resources_of(app).redis.zcard(QUEUE_NAME) == queued_before


async def test_unauthenticated_upload_is_refused(
    app: FastAPI, http: httpx.AsyncClient, settings: Settings, audio_dir: Path
) -> None:
    before = stored_files(settings)
    for token in (None, "not-a-jwt"):
        _, result = await upload(http, tone_bytes(audio_dir), token=token)
        assert result.codes == ["UNAUTHENTICATED"], result.errors
    assert await call_count(app) == 0
    assert stored_files(settings) == before


async def test_hostile_filenames_get_generated_keys_and_clean_display_names(
    app: FastAPI, http: httpx.AsyncClient, agent_token: str, audio_dir: Path
) -> None:
    content = tone_bytes(audio_dir)
    names = {
        "../../etc/passwd\x07\x1b[31m.wav": "passwd[31m.wav",
        "C:\\Users\\agent\\Desktop\\call\x01\x02.wav": "call.wav",
        "/abs/path/evil\u202egpj.wav": "evilgpj.wav",
        "..": "recording",
        "\x00\x1f": "recording",
        "  spaced\tout\x0bname  .wav": "spaced out name .wav",
    }
    boundary = "ovozly-test-boundary-7d3f"
    resources = resources_of(app)
    for raw, expected in names.items():
        body = multipart_body(
            {"query": UPLOAD, "variables": {"file": None}},
            {"0": ["variables.file"]},
            [("0", raw, "audio/wav", content)],
            boundary,
        )
        response = await http.post(
            "/graphql",
            content=body,
            headers={
                "Authorization": f"Bearer {agent_token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        payload = response.json()
        assert response.status_code == 200 and not payload.get("errors"), (raw, payload)
        call = payload["data"]["uploadCall"]
        display = call["filename"]
        assert display == expected, (raw, display)
        assert not any(ord(ch) < 32 or ch in "/\\\u202e" for ch in display)
        row = await call_row(app, call["id"])
        assert row is not None and KEY_RE.fullmatch(row.storage_key)
        assert await resources.storage.exists(row.storage_key)


# --- too large ------------------------------------------------------------------------------


@pytest.fixture
async def small_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A second app instance whose upload limit is 1 MB."""
    application = create_app(settings.model_copy(update={"max_upload_mb": 1}))
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class CountingBody:
    """A request body handed out in chunks, counting how much the server pulled."""

    body: bytes
    chunk: int = 64 * 1024
    sent: int = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.sent += len(piece)
            yield piece


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_too_large_uploads_are_refused_early(
    small_app: FastAPI,
    http: httpx.AsyncClient,
    agent_token: str,
    settings: Settings,
    audio_dir: Path,
) -> None:
    # `http` supplies the per-test clean database; the login token works on any instance.
    before = stored_files(settings)
    transport = httpx.ASGITransport(app=small_app)
    big = tone_bytes(audio_dir, "wav", sample_rate=44100, channels=2, seconds=36.0)  # ~6.3 MB
    assert len(big) > 6 * 1024 * 1024
    boundary = "ovozly-big-boundary"
    body = multipart_body(
        {"query": UPLOAD, "variables": {"file": None}},
        {"0": ["variables.file"]},
        [("0", "big.wav", "audio/wav", big)],
        boundary,
    )
    headers = {
        "Authorization": f"Bearer {agent_token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    limit_with_envelope = 2 * 1024 * 1024
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # A declared Content-Length over the limit: refused before a byte of the body is read.
        declared = CountingBody(body)
        response = await client.post(
            "/graphql",
            content=declared,
            headers={**headers, "Content-Length": str(len(body))},
        )
        assert response.status_code == 413
        payload = response.json()
        assert [e["extensions"]["code"] for e in payload["errors"]] == ["BAD_USER_INPUT"]
        assert "1 MB" in payload["errors"][0]["message"]
        assert declared.sent == 0

        # No Content-Length (chunked): reading stops at the first chunk over the limit.
        streamed = CountingBody(body)
        response = await client.post("/graphql", content=streamed, headers=headers)
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert streamed.sent <= limit_with_envelope + 2 * streamed.chunk, streamed.sent
        assert streamed.sent < len(body) // 2

        # Over the file limit but inside the multipart envelope allowance: the resolver's
        # streaming intake refuses it.
        medium = tone_bytes(audio_dir, "wav", sample_rate=44100, channels=1, seconds=14.0)
        assert 1024 * 1024 < len(medium) < limit_with_envelope - 64 * 1024
        status, result = await upload(client, medium, "medium.wav", token=agent_token)
        assert status == 200 and result.codes == ["BAD_USER_INPUT"], result.errors
        assert "1 MB" in result.errors[0]["message"] or "1.0 MB" in result.errors[0]["message"]

        # Just under the limit is accepted by the same instance.
        fits = tone_bytes(audio_dir, "wav", sample_rate=44100, channels=1, seconds=11.0)
        assert len(fits) < 1024 * 1024
        call = await upload_ok(client, fits, "fits.wav", token=agent_token)
        assert call["sizeBytes"] == len(fits)
    assert await call_count(small_app) == 1
    row = await call_row(small_app, call["id"])
    assert row is not None
    assert [p for p in stored_files(settings) if p not in before] == [
        resources_of(small_app).storage.path_for(row.storage_key)  # type: ignore[attr-defined]
    ]


# --- speaker hints --------------------------------------------------------------------------


async def test_speaker_hints(
    app: FastAPI, http: httpx.AsyncClient, agent_token: str, settings: Settings, audio_dir: Path
) -> None:
    content = tone_bytes(audio_dir)
    before = stored_files(settings)
    invalid: list[dict[str, Any]] = [
        {"min": 3, "max": 2},
        {"min": 0},
        {"max": 0},
        {"num": 0},
        {"num": 100},
        {"max": 100},
        {"min": -1},
        {"num": 5, "min": 1, "max": 3},
        {"num": 1, "min": 2},
    ]
    for hints in invalid:
        _, result = await upload(http, content, token=agent_token, **hints)
        assert result.codes == ["BAD_USER_INPUT"], (hints, result.errors)
    assert await call_count(app) == 0
    assert stored_files(settings) == before

    valid: list[dict[str, Any]] = [
        {},
        {"num": 2},
        {"min": 1, "max": 3},
        {"min": 2, "max": 2},
        {"num": 2, "min": 1, "max": 4},
        {"max": 32},
    ]
    for hints in valid:
        call = await upload_ok(http, content, token=agent_token, style="formdata", **hints)
        row = await call_row(app, call["id"])
        assert row is not None
        stored = {"num": row.num_speakers, "min": row.min_speakers, "max": row.max_speakers}
        assert stored == {k: hints.get(k) for k in ("num", "min", "max")}, hints


# --- who the call belongs to ----------------------------------------------------------------


async def test_upload_on_behalf_of_an_agent(
    sessions: SessionFactory,
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    agent_token: str,
    settings: Settings,
    audio_dir: Path,
) -> None:
    content = tone_bytes(audio_dir)
    agent1 = await user_id(gql, agent_token)
    admin = await user_id(gql, admin_token)
    await make_user(sessions, "agent2")
    agent2_token = await gql.login("agent2")
    agent2 = await user_id(gql, agent2_token)

    # ADMIN for an agent: the call is the agent's, and the agent sees it.
    call = await upload_ok(http, content, token=admin_token, agentId=agent1)
    assert call["agent"] == {"id": agent1, "username": "agent1"}
    seen = await gql(
        "query($id: ID!) { call(id: $id) { id } }", {"id": call["id"]}, token=agent_token
    )
    assert seen.data == {"call": {"id": call["id"]}}
    # ADMIN without agentId: their own.
    own = await upload_ok(http, content, token=admin_token)
    assert own["agent"]["id"] == admin
    # AGENT naming themselves: fine.
    self_named = await upload_ok(http, content, token=agent_token, agentId=agent1)
    assert self_named["agent"]["id"] == agent1
    assert await call_count(app) == 3

    before = stored_files(settings)
    # AGENT naming someone else: FORBIDDEN, whether that user exists or not.
    for other in (agent2, admin, to_global_id("User", uuid.uuid4())):
        _, result = await upload(http, content, token=agent_token, agentId=other)
        assert result.codes == ["FORBIDDEN"], result.errors
    # ADMIN naming a user that does not exist, or an ID of another type: NOT_FOUND.
    for missing in (to_global_id("User", uuid.uuid4()), call["id"]):
        _, result = await upload(http, content, token=admin_token, agentId=missing)
        assert result.codes == ["NOT_FOUND"], result.errors
    # A malformed agentId: BAD_USER_INPUT.
    _, result = await upload(http, content, token=admin_token, agentId="%%%not-an-id")
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert await call_count(app) == 3
    assert stored_files(settings) == before
    assert agent2 not in {c["agent"]["id"] for c in (call, own, self_named)}


async def test_upload_for_a_deactivated_agent_is_not_found(
    sessions: SessionFactory,
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    settings: Settings,
    audio_dir: Path,
) -> None:
    from app.db.models import User

    await make_user(sessions, "gone-agent", Role.AGENT)
    async with resources_of(app).sessions() as session, session.begin():
        user = (
            await session.execute(select(User).where(User.username == "gone-agent"))
        ).scalar_one()
        user.is_active = False
        gone = to_global_id("User", user.id)
    _, result = await upload(http, tone_bytes(audio_dir), token=admin_token, agentId=gone)
    assert result.codes == ["NOT_FOUND"], result.errors
    assert await call_count(app) == 0


# --- all or nothing: every call created is answered with its id -----------------------------


async def _multipart(
    http: httpx.AsyncClient, query: str, content: bytes, token: str, **variables: Any
) -> tuple[int, dict[str, Any]]:
    operations = {"query": query, "variables": {"f": None, **variables}}
    response = await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("call.wav", content, "audio/wav")},
        headers={"Authorization": f"Bearer {token}", "Apollo-Require-Preflight": "true"},
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "query",
    [
        # The adversary's document: one file feeding two uploadCall fields.
        "mutation($f:Upload!){a:uploadCall(file:$f){id} b:uploadCall(file:$f){id}}",
        # The same through a fragment, and beside another mutation that fails afterwards.
        "mutation($f:Upload!){...U b:uploadCall(file:$f){id}} "
        "fragment U on Mutation{a:uploadCall(file:$f){id}}",
        'mutation($f:Upload!){a:uploadCall(file:$f){id} b:deleteCall(id:"Q2FsbDow")}',
    ],
)
async def test_an_upload_sharing_its_request_is_refused_before_any_call_is_created(
    app: FastAPI,
    http: httpx.AsyncClient,
    agent_token: str,
    settings: Settings,
    audio_dir: Path,
    query: str,
) -> None:
    before = stored_files(settings)
    queued_before = await resources_of(app).redis.zcard(QUEUE_NAME)
    _, body = await _multipart(http, query, tone_bytes(audio_dir), agent_token)
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
    assert "only field of its mutation" in body["errors"][0]["message"]
    assert await call_count(app) == 0
    assert stored_files(settings) == before
    assert await resources_of(app).redis.zcard(QUEUE_NAME) == queued_before


async def test_one_upload_per_request_with_typename_is_served(
    app: FastAPI, http: httpx.AsyncClient, agent_token: str, audio_dir: Path
) -> None:
    query = "mutation($f:Upload!){__typename a:uploadCall(file:$f){id} a:uploadCall(file:$f){id}}"
    status, body = await _multipart(http, query, tone_bytes(audio_dir), agent_token)
    assert status == 200 and not body.get("errors"), body
    assert await call_row(app, body["data"]["a"]["id"]) is not None
    assert await call_count(app) == 1
