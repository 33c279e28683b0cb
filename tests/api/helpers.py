"""Helpers of the API tests: a small GraphQL client, multipart uploads, reading rows back,
the nested call document, and results written the way the worker writes them."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.api.resources import Resources
from app.core.config import Settings
from app.core.ids import parse_global_id
from app.db.models import Call as CallModel
from app.ml.types import CallInsight, Transcript
from app.services import calls as call_service
from app.services.effects import unit_of_work
from app.services.results import RESULT_TABLES
from tests.factories import PASSWORD, Results, login, tone_bytes


@dataclass
class GraphQLResponse:
    status_code: int
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


@dataclass
class GraphQLClient:
    http: httpx.AsyncClient

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> GraphQLResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        return GraphQLResponse(response.status_code, body.get("data"), body.get("errors") or [])

    async def login(self, username: str, password: str = PASSWORD) -> str:
        return await login(self.http, username, password)


CALL_FIELDS = (
    "id filename status stage progress error durationSeconds channels sampleRate sizeBytes "
    "sha256 createdAt finishedAt agent { id username }"
)
UPLOAD = (
    "mutation($file: Upload!, $agentId: ID, $num: Int, $min: Int, $max: Int) { "
    "uploadCall(file: $file, agentId: $agentId, numSpeakers: $num, minSpeakers: $min, "
    f"maxSpeakers: $max) {{ {CALL_FIELDS} }} }}"
)
KEY_RE = re.compile(r"calls/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}")

Style = Literal["apollo", "formdata"]


# --- helpers shared by the call API tests ---------------------------------------------------


def multipart_body(
    operations: dict[str, Any],
    file_map: dict[str, list[str]],
    files: list[tuple[str, str, str, bytes]],
    boundary: str,
) -> bytes:
    """A multipart/form-data body written by hand, so a filename goes out byte for byte
    (httpx, like browsers, percent-escapes control characters in filenames)."""
    parts = [
        (b'Content-Disposition: form-data; name="operations"\r\n\r\n', json.dumps(operations)),
        (b'Content-Disposition: form-data; name="map"\r\n\r\n', json.dumps(file_map)),
    ]
    out = bytearray()
    for header, value in parts:
        out += f"--{boundary}\r\n".encode() + header + value.encode() + b"\r\n"
    for field, filename, content_type, content in files:
        out += f"--{boundary}\r\n".encode()
        out += (
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


async def upload(
    http: httpx.AsyncClient,
    content: bytes,
    filename: str = "call.wav",
    *,
    token: str | None,
    style: Style = "apollo",
    content_type: str = "audio/wav",
    **variables: Any,
) -> tuple[int, GraphQLResponse]:
    """POSTs `uploadCall` as a multipart request.

    "apollo" is what apollo-upload-client sends (the file variable set to null, map key "1");
    "formdata" is a hand-built FormData POST (map key "0", only the variables it needs).
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if style == "apollo":
        all_vars: dict[str, Any] = {"file": None, "agentId": None}
        all_vars.update(variables)
        field = "1"
        headers["Apollo-Require-Preflight"] = "true"
    else:
        all_vars = dict(variables)
        field = "0"
    operations = {"query": UPLOAD, "variables": all_vars, "operationName": None}
    response = await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({field: ["variables.file"]})},
        files={field: (filename, content, content_type)},
        headers=headers,
    )
    body = response.json()
    return response.status_code, GraphQLResponse(
        response.status_code, body.get("data"), body.get("errors") or []
    )


async def upload_ok(
    http: httpx.AsyncClient, content: bytes, filename: str = "call.wav", **kwargs: Any
) -> dict[str, Any]:
    status, result = await upload(http, content, filename, **kwargs)
    assert status == 200 and not result.errors, result.errors
    assert result.data is not None
    call: dict[str, Any] = result.data["uploadCall"]
    return call


def resources_of(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


async def call_row(app: FastAPI, global_id: str) -> CallModel | None:
    _, call_id = parse_global_id(global_id)
    async with resources_of(app).sessions() as session:
        return await session.get(CallModel, call_id)


async def call_count(app: FastAPI) -> int:
    async with resources_of(app).sessions() as session:
        return (await session.execute(select(func.count()).select_from(CallModel))).scalar_one()


def stored_files(settings: Settings) -> list[Path]:
    """Files in local object storage and in the upload temp directory."""
    found: list[Path] = []
    for sub in ("objects", "tmp"):
        root = settings.data_dir / sub
        if root.exists():
            found.extend(p for p in root.rglob("*") if p.is_file())
    return sorted(found)


async def user_id(gql: GraphQLClient, token: str) -> str:
    me = await gql("{ me { id } }", token=token)
    assert me.data is not None, me.errors
    uid: str = me.data["me"]["id"]
    return uid


NESTED = """
  id filename status stage progress error durationSeconds channels sampleRate createdAt finishedAt
  agent { id username role }
  segments { speaker role channel start end text sentiment language confidence
             words { text start end confidence } }
  metrics { durationSeconds talkSeconds silenceSeconds overlapSeconds interruptions
            speakers { speaker role channel talkSeconds talkRatio wordsPerMinute turns
                       longestMonologueSeconds } }
  analysis { language summary sentiment sentimentScore
             intents { name confidence evidence }
             entities { type value speaker start }
             issues { title description evidence }
             actions { description }
             keypoints { text } }
"""
CALL = f"query($id: ID!) {{ call(id: $id) {{ {NESTED} }} }}"
CALLS = (
    "query($first: Int, $after: String, $last: Int, $before: String, $filter: CallFilter) { "
    "calls(first: $first, after: $after, last: $last, before: $before, filter: $filter) { "
    "totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { id createdAt } } } }"
)
CALLS_NESTED = (
    "query($first: Int) { calls(first: $first) { totalCount "
    f"edges {{ cursor node {{ {NESTED} }} }} }} }}"
)


# --- building SUCCESS calls the way the worker does ----------------------------------------


async def write_results(
    app: FastAPI, global_id: str, transcript: Transcript, insight: CallInsight
) -> bool:
    """What the worker does at the end of a job: save_results under the call's job token."""
    row = await call_row(app, global_id)
    assert row is not None and row.job_id is not None
    resources = resources_of(app)
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        saved = await call_service.save_results(
            session, row.id, row.job_id, transcript, insight, analysis_backend="test"
        )
    return saved is not None


async def success_call(
    app: FastAPI,
    http: httpx.AsyncClient,
    token: str,
    audio_dir: Path,
    results: Results,
    **upload_kwargs: Any,
) -> dict[str, Any]:
    call = await upload_ok(
        http, tone_bytes(audio_dir, seconds=0.5), "call.wav", token=token, **upload_kwargs
    )
    assert await write_results(app, call["id"], *results)
    return call


async def result_row_counts(app: FastAPI, call_id: uuid.UUID) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with resources_of(app).sessions() as session:
        for table in RESULT_TABLES:
            column = table.__table__.c.call_id
            counts[table.__tablename__] = (
                await session.execute(select(func.count()).where(column == call_id))
            ).scalar_one()
    return counts


def expected_segments(insight: CallInsight) -> list[dict[str, Any]]:
    return [
        {
            "speaker": s.speaker,
            "role": s.role.value,
            "channel": s.channel,
            "start": s.start_s,
            "end": s.end_s,
            "text": s.text,
            "sentiment": s.sentiment.value if s.sentiment else None,
            "language": s.language,
            "confidence": s.confidence,
            "words": [
                {"text": w.text, "start": w.start_s, "end": w.end_s, "confidence": w.confidence}
                for w in s.words
            ],
        }
        for s in insight.segments
    ]


def expected_analysis(insight: CallInsight) -> dict[str, Any]:
    a = insight.analysis
    return {
        "language": a.language,
        "summary": a.summary,
        "sentiment": a.sentiment.value,
        "sentimentScore": a.sentiment_score,
        "intents": [
            {"name": i.name, "confidence": i.confidence, "evidence": list(i.evidence)}
            for i in a.intents
        ],
        "entities": [
            {"type": e.type, "value": e.value, "speaker": e.speaker, "start": e.start_s}
            for e in a.entities
        ],
        "issues": [
            {"title": i.title, "description": i.description, "evidence": list(i.evidence)}
            for i in a.issues
        ],
        "actions": [{"description": x.description} for x in a.actions],
        "keypoints": [{"text": k.text} for k in a.keypoints],
    }


def expected_metrics(transcript: Transcript, insight: CallInsight) -> dict[str, Any]:
    m = insight.metrics
    return {
        "durationSeconds": m.duration_s,
        "talkSeconds": m.talk_s,
        "silenceSeconds": m.silence_s,
        "overlapSeconds": m.overlap_s,
        "interruptions": m.interruptions,
        "speakers": [
            {
                "speaker": s.speaker,
                "role": s.role.value,
                "channel": transcript.speaker_channels.get(s.speaker),
                "talkSeconds": s.talk_s,
                "talkRatio": s.talk_ratio,
                "wordsPerMinute": s.words_per_minute,
                "turns": s.turns,
                "longestMonologueSeconds": s.longest_monologue_s,
            }
            for s in m.speakers
        ],
    }
