"""GraphQL types of calls and their analysis. Types translate ORM rows; nested lists resolve
through the per-request DataLoaders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.db.models import Call as CallModel
from app.db.models import CallStatus as CallStatusModel
from app.db.models import PipelineStage as PipelineStageModel
from app.ml.types import Sentiment as SentimentModel
from app.ml.types import SpeakerRole as SpeakerRoleModel
from app.schema.context import Info
from app.schema.ids import to_global_id
from app.schema.node import Node
from app.schema.user import User

CallStatus = strawberry.enum(CallStatusModel, name="CallStatus")
PipelineStage = strawberry.enum(
    PipelineStageModel, name="PipelineStage", description="Where a RUNNING call is in the pipeline."
)
Sentiment = strawberry.enum(SentimentModel, name="Sentiment")
SpeakerRole = strawberry.enum(SpeakerRoleModel, name="SpeakerRole")


@strawberry.type
class Word:
    text: str
    start: float = strawberry.field(description="Seconds from the start of the recording.")
    end: float
    confidence: float | None

    @classmethod
    def from_json(cls, word: dict[str, Any]) -> Word:
        return cls(
            text=word["text"],
            start=word["start_s"],
            end=word["end_s"],
            confidence=word.get("confidence"),
        )


@strawberry.type(description="One speaker turn of the transcript.")
class Segment:
    speaker: str
    role: SpeakerRole  # type: ignore[valid-type]
    channel: int | None
    start: float
    end: float
    text: str
    words: list[Word]
    sentiment: Sentiment | None  # type: ignore[valid-type]
    language: str | None = strawberry.field(description="ISO 639-1 language of this turn.")


@strawberry.type
class Intent:
    name: str
    confidence: float
    evidence: list[int] = strawberry.field(description="Indices of the supporting segments.")


@strawberry.type
class Entity:
    type: str
    value: str
    speaker: str | None
    start: float | None


@strawberry.type
class Issue:
    title: str
    description: str
    evidence: list[int] = strawberry.field(description="Indices of the supporting segments.")


@strawberry.type
class Action:
    description: str


@strawberry.type
class Keypoint:
    text: str


@strawberry.type
class SpeakerStats:
    speaker: str
    role: SpeakerRole  # type: ignore[valid-type]
    channel: int | None
    talk_seconds: float
    talk_ratio: float
    words_per_minute: float | None
    turns: int
    longest_monologue_seconds: float


@strawberry.type
class CallMetrics:
    duration_seconds: float
    talk_seconds: float
    silence_seconds: float
    overlap_seconds: float
    interruptions: int
    speakers: list[SpeakerStats]


@strawberry.type
class Analysis:
    language: str
    summary: str
    sentiment: Sentiment  # type: ignore[valid-type]
    sentiment_score: float
    _call_id: strawberry.Private[Any]

    @strawberry.field
    async def intents(self, info: Info) -> list[Intent]:
        rows = await info.context.loaders.intents.load(self._call_id)
        return [Intent(name=r.name, confidence=r.confidence, evidence=r.evidence) for r in rows]

    @strawberry.field
    async def entities(self, info: Info) -> list[Entity]:
        rows = await info.context.loaders.entities.load(self._call_id)
        return [
            Entity(type=r.type, value=r.value, speaker=r.speaker, start=r.start_s) for r in rows
        ]

    @strawberry.field
    async def issues(self, info: Info) -> list[Issue]:
        rows = await info.context.loaders.issues.load(self._call_id)
        return [Issue(title=r.title, description=r.description, evidence=r.evidence) for r in rows]

    @strawberry.field
    async def actions(self, info: Info) -> list[Action]:
        rows = await info.context.loaders.actions.load(self._call_id)
        return [Action(description=r.description) for r in rows]

    @strawberry.field
    async def keypoints(self, info: Info) -> list[Keypoint]:
        rows = await info.context.loaders.keypoints.load(self._call_id)
        return [Keypoint(text=r.text) for r in rows]


@strawberry.type(name="Call")
class Call(Node):
    filename: str
    status: CallStatus  # type: ignore[valid-type]
    stage: PipelineStage  # type: ignore[valid-type]
    progress: float
    error: str | None
    duration_seconds: float | None
    channels: int | None
    sample_rate: int | None
    size_bytes: float = strawberry.field(
        description="Bytes; a Float because GraphQL Int is 32-bit."
    )
    sha256: str
    created_at: datetime
    finished_at: datetime | None
    _model: strawberry.Private[CallModel]

    @classmethod
    def from_model(cls, call: CallModel) -> Call:
        return cls(
            id=strawberry.ID(to_global_id("Call", call.id)),
            filename=call.filename,
            status=call.status,
            stage=call.stage,
            progress=call.progress,
            error=call.error,
            duration_seconds=call.duration_s,
            channels=call.channels,
            sample_rate=call.sample_rate,
            size_bytes=call.size_bytes,
            sha256=call.sha256,
            created_at=call.created_at,
            finished_at=call.finished_at,
            _model=call,
        )

    # The user the call belongs to (its owner; `agent` in the contract).
    @strawberry.field
    async def agent(self, info: Info) -> User:
        user = await info.context.loaders.user_by_id.load(self._model.owner_id)
        assert user is not None, "calls.owner_id is a restricting foreign key"
        return User.from_model(user)

    # Time-ordered speaker turns; empty until SUCCESS.
    @strawberry.field
    async def segments(self, info: Info) -> list[Segment]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        rows = await info.context.loaders.segments.load(self._model.id)
        return [
            Segment(
                speaker=r.speaker,
                role=r.role,
                channel=r.channel,
                start=r.start_s,
                end=r.end_s,
                text=r.text,
                words=[Word.from_json(word) for word in r.words],
                sentiment=r.sentiment,
                language=r.language,
            )
            for r in rows
        ]

    @strawberry.field
    async def metrics(self, info: Info) -> CallMetrics | None:
        if self._model.status is not CallStatusModel.SUCCESS:
            return None
        row = await info.context.loaders.metrics.load(self._model.id)
        if row is None:
            return None
        speakers = await info.context.loaders.speakers.load(self._model.id)
        return CallMetrics(
            duration_seconds=row.duration_s,
            talk_seconds=row.talk_s,
            silence_seconds=row.silence_s,
            overlap_seconds=row.overlap_s,
            interruptions=row.interruptions,
            speakers=[
                SpeakerStats(
                    speaker=s.label,
                    role=s.role,
                    channel=s.channel,
                    talk_seconds=s.talk_s,
                    talk_ratio=s.talk_ratio,
                    words_per_minute=s.words_per_minute,
                    turns=s.turns,
                    longest_monologue_seconds=s.longest_monologue_s,
                )
                for s in speakers
            ],
        )

    @strawberry.field
    async def analysis(self, info: Info) -> Analysis | None:
        if self._model.status is not CallStatusModel.SUCCESS:
            return None
        row = await info.context.loaders.analysis.load(self._model.id)
        if row is None:
            return None
        return Analysis(
            language=row.language,
            summary=row.summary,
            sentiment=row.sentiment,
            sentiment_score=row.sentiment_score,
            _call_id=self._model.id,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class CallEdge:
    cursor: str
    node: Call


@strawberry.type
class CallConnection:
    edges: list[CallEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input(description="Newest first. All fields are optional and combine with AND.")
class CallFilter:
    status: CallStatus | None = None  # type: ignore[valid-type]
    agent_id: strawberry.ID | None = None
    language: str | None = None
    sentiment: Sentiment | None = None  # type: ignore[valid-type]
    search: str | None = strawberry.field(
        default=None, description="Full-text search over transcript text."
    )
    created_after: datetime | None = None
    created_before: datetime | None = None


@strawberry.type
class CallStatusEvent:
    call_id: strawberry.ID
    status: CallStatus  # type: ignore[valid-type]
    stage: PipelineStage  # type: ignore[valid-type]
    progress: float
    error: str | None
    at: datetime
    _call: strawberry.Private[CallModel | None]
    _call_uuid: strawberry.Private[Any]

    # The call as it is now, read when the event is sent.
    @strawberry.field
    async def call(self, info: Info) -> Call:
        if self._call is not None:
            return Call.from_model(self._call)
        from app.services.calls import get_visible_call

        viewer = await info.context.require_viewer()
        async with info.context.session() as session:
            return Call.from_model(await get_visible_call(session, viewer, self._call_uuid))
