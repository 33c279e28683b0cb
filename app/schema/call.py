"""GraphQL types of calls and their analysis. Types translate ORM rows; nested lists resolve
through the per-request DataLoaders."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any, NewType, NoReturn, Protocol

import orjson
import strawberry

from app.core.enums import RoleSource as RoleSourceModel
from app.core.enums import Sentiment as SentimentModel
from app.core.enums import SpeakerRole as SpeakerRoleModel
from app.core.errors import NotFound
from app.core.ids import parse_typed_id, to_global_id
from app.db.models import Call as CallModel
from app.db.models import CallStatus as CallStatusModel
from app.db.models import PipelineStage as PipelineStageModel
from app.rules.facts import SegmentFact, sentiment_trend
from app.schema.context import Info
from app.schema.desk import CallCategory, CallScorecard, SentimentTrendPoint
from app.schema.node import Node
from app.schema.retention import Redaction
from app.schema.rows import from_row
from app.schema.user import User
from app.services.audio_links import AudioLink, link_for, link_origin
from app.services.redacted_audio import served_recording

CallStatus = strawberry.enum(CallStatusModel, name="CallStatus")
PipelineStage = strawberry.enum(
    PipelineStageModel, name="PipelineStage", description="Where a RUNNING call is in the pipeline."
)
Sentiment = strawberry.enum(SentimentModel, name="Sentiment")
SpeakerRole = strawberry.enum(SpeakerRoleModel, name="SpeakerRole")
RoleSource = strawberry.enum(
    RoleSourceModel,
    name="RoleSource",
    description="CHANNEL: stereo, agent channel; VOICE: matched the agent's voiceprint; "
    "WORDS: what was said; NONE: unknown",
)


@strawberry.type
class Word:
    text: str
    start: float = strawberry.field(description="Seconds from the start of the recording.")
    end: float
    confidence: float | None


WordTimings = NewType("WordTimings", dict[str, list[Any]])
"""A turn's words as parallel arrays; served through `WORD_TIMINGS_SCALAR`."""


def _output_only(value: object) -> NoReturn:
    raise ValueError("WordTimings is an output type")


WORD_TIMINGS_SCALAR = strawberry.scalar(
    name="WordTimings",
    description=(
        "A turn's words as parallel arrays, one entry per word in time order: "
        '{"text": [String], "start": [Float], "end": [Float], "confidence": [Float or null]}, '
        "times in seconds from the start of the recording. The same data as `words`, served "
        "as one value: a 60-minute call (about 10,000 words) costs a fraction of `words`."
    ),
    serialize=lambda value: value,
    parse_value=_output_only,
)


@strawberry.type(description="One speaker turn of the transcript.")
class Segment:
    speaker: str
    role: SpeakerRole  # type: ignore[valid-type]
    channel: int | None
    start: float
    end: float
    text: str
    sentiment: Sentiment | None  # type: ignore[valid-type]
    language: str | None = strawberry.field(description="ISO 639-1 language of this turn.")
    confidence: float | None = strawberry.field(
        description=(
            "0..1, how sure the decoder was of this turn's text (exp of the mean word "
            "log-probability); null when not transcribed."
        )
    )
    # The stored JSON as PostgreSQL sent it, decoded only when a client selects words (a
    # 60-minute call's words are ~700 KB of JSON), and then once for both word fields.
    _words_json: strawberry.Private[str]
    _decoded_words: strawberry.Private[list[dict[str, Any]] | None] = None

    def _words(self) -> list[dict[str, Any]]:
        if self._decoded_words is None:
            self._decoded_words = orjson.loads(self._words_json)
        return self._decoded_words

    @strawberry.field
    def words(self) -> list[Word]:
        # Built directly rather than through from_row: a long call has ~10,000 words.
        return [
            Word(
                text=word["text"],
                start=word["start_s"],
                end=word["end_s"],
                confidence=word.get("confidence"),
            )
            for word in self._words()
        ]

    # `words` in one compact value (see the WordTimings scalar): the fast path for long calls.
    @strawberry.field
    def word_timings(self) -> WordTimings:
        words = self._words()
        return WordTimings(
            {
                "text": [word["text"] for word in words],
                "start": [word["start_s"] for word in words],
                "end": [word["end_s"] for word in words],
                "confidence": [word.get("confidence") for word in words],
            }
        )


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


@strawberry.type(description="Share of the call's talk time in one language.")
class LanguageShare:
    language: str = strawberry.field(description="ISO 639-1.")
    share: float = strawberry.field(description="0..1 of the call's talk time.")


@strawberry.type(
    description="Something the user should know about a finished call, e.g. speech in a "
    "language no model could transcribe."
)
class CallWarning:
    code: str = strawberry.field(
        description="LANGUAGE_NOT_TRANSCRIBED, ANALYSIS_PARTIAL or NOT_REDACTED (speech that "
        "could not be searched for spoken card numbers; more may be added)."
    )
    message: str


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
    role_source: RoleSource  # type: ignore[valid-type]
    role_confidence: float | None = strawberry.field(
        description="0..1; null when roleSource is NONE"
    )


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
    _duration_s: strawberry.Private[float]

    # Per role per quarter of the call, from the turns' sentiment; only where the role spoke.
    @strawberry.field
    async def sentiment_trend(self, info: Info) -> list[SentimentTrendPoint]:
        rows = await info.context.loaders.segments.load(self._call_id)
        facts = [
            SegmentFact(r.position, r.role, r.start_s, r.end_s, r.text, r.sentiment_score)
            for r in rows
        ]
        return [
            SentimentTrendPoint(
                role=p.role, quarter=p.quarter, score=p.score, sentiment=p.sentiment, turns=p.turns
            )
            for p in sentiment_trend(facts, self._duration_s)
        ]

    @strawberry.field
    async def intents(self, info: Info) -> list[Intent]:
        rows = await info.context.loaders.intents.load(self._call_id)
        return [from_row(Intent, row) for row in rows]

    @strawberry.field
    async def entities(self, info: Info) -> list[Entity]:
        rows = await info.context.loaders.entities.load(self._call_id)
        return [from_row(Entity, row) for row in rows]

    @strawberry.field
    async def issues(self, info: Info) -> list[Issue]:
        rows = await info.context.loaders.issues.load(self._call_id)
        return [from_row(Issue, row) for row in rows]

    @strawberry.field
    async def actions(self, info: Info) -> list[Action]:
        rows = await info.context.loaders.actions.load(self._call_id)
        return [from_row(Action, row) for row in rows]

    @strawberry.field
    async def keypoints(self, info: Info) -> list[Keypoint]:
        rows = await info.context.loaders.keypoints.load(self._call_id)
        return [from_row(Keypoint, row) for row in rows]


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
    legal_hold: bool = strawberry.field(description="Retention never deletes a call on hold.")
    audio_deleted_at: datetime | None = strawberry.field(
        description="Set once retention removed the recording (audioUrl is then null)."
    )
    _model: strawberry.Private[CallModel]
    _memo: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_row(cls, call: CallModel) -> Call:
        return from_row(
            cls, call, id=strawberry.ID(to_global_id("Call", call.id)), _model=call, _memo={}
        )

    # The user the call belongs to (its owner; `agent` in the contract).
    @strawberry.field
    async def agent(self, info: Info) -> User:
        user = await info.context.loaders.user_by_id.load(self._model.owner_id)
        assert user is not None, "calls.owner_id is a restricting foreign key"
        return User.from_row(user)

    # Time-ordered speaker turns; empty until SUCCESS.
    @strawberry.field
    async def segments(self, info: Info) -> list[Segment]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        # The transcript read by a person: audited before the answer goes out.
        await info.context.calls_viewed.load(self._model.id)
        rows = await info.context.loaders.segments.load(self._model.id)
        # Built directly rather than through from_row: a 60-minute call has ~600 turns.
        return [
            Segment(
                speaker=row.speaker,
                role=row.role,
                channel=row.channel,
                start=row.start_s,
                end=row.end_s,
                text=row.text,
                sentiment=row.sentiment,
                language=row.language,
                confidence=row.confidence,
                _words_json=row.words_json,
            )
            for row in rows
        ]

    # By talk time, largest first; empty until SUCCESS.
    @strawberry.field
    def languages(self) -> list[LanguageShare]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        return [
            LanguageShare(language=item["language"], share=item["share"])
            for item in self._model.languages
        ]

    # Empty when there is nothing to say (and until SUCCESS).
    @strawberry.field
    def warnings(self) -> list[CallWarning]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        return [
            CallWarning(code=item["code"], message=item["message"]) for item in self._model.warnings
        ]

    @strawberry.field
    async def metrics(self, info: Info) -> CallMetrics | None:
        if self._model.status is not CallStatusModel.SUCCESS:
            return None
        row = await info.context.loaders.metrics.load(self._model.id)
        if row is None:
            return None
        speakers = await info.context.loaders.speakers.load(self._model.id)
        return from_row(
            CallMetrics,
            row,
            speakers=[from_row(SpeakerStats, s, speaker=s.label) for s in speakers],
        )

    @strawberry.field
    async def analysis(self, info: Info) -> Analysis | None:
        if self._model.status is not CallStatusModel.SUCCESS:
            return None
        await info.context.calls_viewed.load(self._model.id)
        row = await info.context.loaders.analysis.load(self._model.id)
        if row is None:
            return None
        return from_row(
            Analysis, row, _call_id=self._model.id, _duration_s=self._model.duration_s or 0.0
        )

    # A short-lived signed URL streaming the recording (HTTP Range): the redacted copy,
    # or for admins the original while it is kept; null once retention removed it.
    # Issuing it is audited.
    @strawberry.field
    async def audio_url(self, info: Info) -> str | None:
        link = await self._audio_link(info)
        return link.url if link is not None else None

    @strawberry.field
    async def audio_url_expires_at(self, info: Info) -> datetime | None:
        link = await self._audio_link(info)
        return link.expires_at if link is not None else None

    async def _audio_link(self, info: Info) -> AudioLink | None:
        # Both fields resolve concurrently; they must describe one and the same link.
        if "audio" not in self._memo:
            self._memo["audio"] = asyncio.ensure_future(_make_audio_link(info, self._model))
        link: AudioLink | None = await self._memo["audio"]
        return link

    # Spans masked in the transcript and in the audio served by audioUrl; empty until SUCCESS.
    @strawberry.field
    def redactions(self) -> list[Redaction]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        return [
            Redaction(type=item["type"], start=item["start_s"], end=item["end_s"])
            for item in self._model.redactions
        ]

    # Categories this finished call matched, with the evidence; empty until SUCCESS.
    @strawberry.field
    async def categories(self, info: Info) -> list[CallCategory]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        rows = await info.context.loaders.call_categories.load(self._model.id)
        return [CallCategory.from_row(tag, category) for tag, category in rows]

    # The call scored against every scorecard; empty until SUCCESS.
    @strawberry.field
    async def scorecards(self, info: Info) -> list[CallScorecard]:
        if self._model.status is not CallStatusModel.SUCCESS:
            return []
        rows = await info.context.loaders.call_scorecards.load(self._model.id)
        return [CallScorecard.from_row(result, card) for result, card in rows]

    # The call scored against one scorecard (by default the first one defined).
    @strawberry.field
    async def scorecard(
        self, info: Info, scorecard_id: strawberry.ID | None = None
    ) -> CallScorecard | None:
        if self._model.status is not CallStatusModel.SUCCESS:
            return None
        rows = await info.context.loaders.call_scorecards.load(self._model.id)
        if scorecard_id is not None:
            wanted = parse_typed_id(scorecard_id, "Scorecard")
            rows = [(result, card) for result, card in rows if card.id == wanted]
        return CallScorecard.from_row(*rows[0]) if rows else None


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, page: PageFlags, cursors: Sequence[str]) -> PageInfo:
        """A page's flags, and the cursors of its first and last edge."""
        return cls(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


class PageFlags(Protocol):
    """What a service's page says about the pages around it."""

    @property
    def has_next_page(self) -> bool: ...

    @property
    def has_previous_page(self) -> bool: ...


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
    category: strawberry.ID | None = strawberry.field(
        default=None, description="Calls tagged with this category."
    )


class CallSnapshot:
    """The call row behind one status event, read at most once, by `read`.

    A process shares one status event (and so one snapshot) among all its subscribers of the
    call, so 500 subscribers selecting `call` cost one read, not 500; each subscriber's right
    to see the call is checked against the shared row in memory.
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[CallModel | None]],
        row: CallModel | None = None,
    ) -> None:
        self._read_row = read
        self._read: asyncio.Future[CallModel | None] | None = None
        if row is not None:
            self._read = asyncio.get_running_loop().create_future()
            self._read.set_result(row)

    async def get(self) -> CallModel | None:
        if self._read is None:
            self._read = asyncio.ensure_future(self._read_row())
            # Retrieved here too, so a failure nobody awaited any more is not logged as lost.
            self._read.add_done_callback(lambda read: read.cancelled() or read.exception())
        # Shielded: a subscriber that goes away must not cancel the read the others await.
        return await asyncio.shield(self._read)


@strawberry.type
class CallStatusEvent:
    call_id: strawberry.ID
    status: CallStatus  # type: ignore[valid-type]
    stage: PipelineStage  # type: ignore[valid-type]
    progress: float
    error: str | None
    at: datetime
    _snapshot: strawberry.Private[CallSnapshot]
    # Filled by SharingExecutor: each subscriber's selection set runs once per process.
    shared_results: strawberry.Private[dict[Hashable, Any]] = dataclasses.field(
        default_factory=dict
    )
    live: bool = strawberry.field(
        default=True,
        description=(
            "False while the server has lost its live feed of status changes (Redis is "
            "unreachable): the event repeats the last known state, and no update arrives "
            "until an event with live: true, re-read from the database, says the feed is "
            "back. The subscription stays open throughout."
        ),
    )

    # The call as it is now, read when the event is sent.
    @strawberry.field
    async def call(self, info: Info) -> Call:
        row = await self._snapshot.get()
        if row is None or not await info.context.may_see_call(row):
            raise NotFound("Call")
        return Call.from_row(row)


async def _make_audio_link(info: Info, call: CallModel) -> AudioLink | None:
    served = served_recording(await info.context.require_viewer(), call)
    if served is None:
        return None
    settings = info.context.settings
    request = info.context.request
    base_url = link_origin(
        settings.public_base_url,
        settings.allowed_hosts,
        request_origin=str(request.base_url) if request is not None else None,
        request_host=request.headers.get("host") if request is not None else None,
    )
    viewer = await info.context.require_viewer()
    link = await link_for(
        info.context.resources.storage,
        jwt_key=settings.signing_key,
        base_url=base_url,
        call_id=call.id,
        storage_key=served.storage_key,
        filename=call.filename if served.original else _redacted_name(call.filename),
        ttl=timedelta(seconds=settings.audio_url_ttl_s),
        viewer_id=viewer.id,
    )
    await info.context.audio_opened.load(call.id)
    return link


def _redacted_name(filename: str) -> str:
    """The download name of the redacted copy (always FLAC)."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return f"{stem}.redacted.flac"
