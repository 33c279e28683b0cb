"""One place that makes users, calls, results and audio for every test and benchmark.

Factories write rows directly (as a migration-built database would hold them) and take a
session factory: no engine is opened per object. Lifecycle rules are the calls service's and
are tested there; these only set the stage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import httpx
import numpy as np

from app.core.enums import Sentiment, SpeakerRole
from app.core.queue import JobQueue
from app.db.engine import SessionFactory
from app.db.models import Call, Role, User
from app.ml.analysis.sentiment import label as polarity_label
from app.ml.types import (
    Action,
    AnalysisResult,
    CallInsight,
    CallMetrics,
    Entity,
    Intent,
    Issue,
    Keypoint,
    SpeakerHints,
    SpeakerStats,
    Transcript,
    TranscriptSegment,
    Word,
)
from app.services.calls import new_call, save_results
from app.services.effects import EffectTargets, unit_of_work
from app.services.redacted_audio import REDACTED_PREFIX, MaskedSpan, StoredRedaction
from app.services.uploads import AudioInfo, StoredUpload, probe_audio
from app.services.users import NewUser, create_user
from app.storage import ObjectStorage, new_object_key

PASSWORD = "correct-horse-battery"

Results = tuple[Transcript, CallInsight]

# --- users -----------------------------------------------------------------------------------


async def make_user(
    sessions: SessionFactory,
    username: str,
    role: Role = Role.AGENT,
    password: str = PASSWORD,
) -> User:
    async with sessions() as session, session.begin():
        return await create_user(
            session,
            NewUser(username=username, password=password, role=role),
            password_min_length=8,
        )


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """An access token from the `login` mutation: the one login helper of tests and bench."""
    response = await http.post(
        "/graphql",
        json={
            "query": "mutation($u: String!, $p: String!) { login(username: $u, password: $p) "
            "{ accessToken } }",
            "variables": {"u": username, "p": password},
        },
    )
    body = response.json()
    assert not body.get("errors"), body.get("errors")
    token: str = body["data"]["login"]["accessToken"]
    return token


# --- calls -----------------------------------------------------------------------------------


async def make_call(
    sessions: SessionFactory,
    storage: ObjectStorage,
    owner_id: uuid.UUID,
    audio: Path,
    *,
    probe: bool = True,
    queue: JobQueue | None = None,
    hints: SpeakerHints | None = None,
) -> Call:
    """A stored recording and its RUNNING/QUEUED call, as an upload leaves them. Its job is
    enqueued when `queue` is given (without, it stands for a call whose enqueue was lost).
    `probe=False` plants a file the upload would have rejected."""
    key = new_object_key()
    await storage.put_file(key, audio)
    info = (
        probe_audio(audio)
        if probe
        else AudioInfo(duration_s=1.0, channels=1, sample_rate=16000, codec="unknown", container="")
    )
    upload = StoredUpload(key, audio.name, audio.stat().st_size, "0" * 64, info)
    async with sessions() as session, session.begin():
        call = new_call(owner_id, upload, hints or SpeakerHints())
        session.add(call)
        await session.flush()
        await session.refresh(call)
    if queue is not None:
        assert call.job_id is not None
        await queue.enqueue_process_call(call.id, call.job_id, call.duration_s)
    return call


# --- results ---------------------------------------------------------------------------------


def rich_results() -> Results:
    """Three Uzbek turns on two channels with every optional field set and unset somewhere."""
    segments = [
        TranscriptSegment(
            speaker="SPEAKER_00",
            start_s=0.0,
            end_s=2.5,
            text="Assalomu alaykum, kredit bo'yicha savolingiz bormi",
            words=[
                Word("Assalomu", 0.0, 0.45, 0.93),
                Word("alaykum,", 0.5, 0.9, 0.88),
                Word("kredit", 1.0, 1.4, 0.97),
                Word("bo'yicha", 1.45, 1.9, None),
                Word("savolingiz", 1.95, 2.3, 0.71),
                Word("bormi", 2.3, 2.5, 0.8),
            ],
            channel=0,
            role=SpeakerRole.AGENT,
            sentiment=Sentiment.NEUTRAL,
            sentiment_score=0.0,
            language="uz",
            confidence=0.8612,
        ),
        TranscriptSegment(
            speaker="SPEAKER_01",
            start_s=2.7,
            end_s=5.0,
            text="Ha, jarima juda katta, 5 000 000 so'm",
            words=[Word("Ha,", 2.7, 2.9), Word("jarima", 3.0, 3.4, 0.5)],
            channel=1,
            role=SpeakerRole.CUSTOMER,
            sentiment=Sentiment.NEGATIVE,
            sentiment_score=-0.6,
            language="uz",
            confidence=0.5,
        ),
        TranscriptSegment(
            speaker="SPEAKER_00",
            start_s=5.2,
            end_s=7.0,
            text="Tushunarli, ertaga qayta qo'ng'iroq qilamiz",
            channel=0,
            role=SpeakerRole.AGENT,
            sentiment=None,
            language=None,
        ),
    ]
    analysis = AnalysisResult(
        language="uz",
        summary="Mijoz kredit jarimasi haqida shikoyat qildi.",
        sentiment=Sentiment.NEGATIVE,
        sentiment_score=-0.4,
        intents=[Intent("loan_inquiry", 0.87, (0, 1)), Intent("complaint", 0.6, (1,))],
        entities=[
            Entity("MONEY", "5 000 000 so'm", "SPEAKER_01", 3.1, 1),
            Entity("PHONE", "+998 90 123 45 67"),
        ],
        issues=[Issue("Late payment fee", "The customer disputes the fee.", (1,))],
        actions=[Action("Call the customer back tomorrow"), Action("Send the payment schedule")],
        keypoints=[Keypoint("Customer asks about the loan", 0), Keypoint("Fee is disputed")],
    )
    metrics = CallMetrics(
        duration_s=7.0,
        talk_s=6.6,
        silence_s=0.4,
        overlap_s=0.0,
        interruptions=1,
        speakers=[
            SpeakerStats("SPEAKER_00", SpeakerRole.AGENT, 4.3, 0.65, 120.5, 2, 2.5),
            SpeakerStats("SPEAKER_01", SpeakerRole.CUSTOMER, 2.3, 0.35, None, 1, 2.3),
        ],
    )
    transcript = Transcript(
        segments=segments,
        duration_s=7.0,
        language="uz",
        channels=2,
        speaker_channels={"SPEAKER_00": 0, "SPEAKER_01": 1},
    )
    return transcript, CallInsight(segments=segments, analysis=analysis, metrics=metrics)


def simple_results(
    text: str, language: str = "en", sentiment: Sentiment = Sentiment.NEUTRAL
) -> Results:
    """One agent turn saying `text`, with an analysis in `language` and `sentiment`."""
    words = text.split()
    segment = TranscriptSegment(
        speaker="SPEAKER_00",
        start_s=0.0,
        end_s=float(len(words)),
        text=text,
        words=[Word(w, float(i), i + 0.9, 0.9) for i, w in enumerate(words)],
        role=SpeakerRole.AGENT,
        sentiment=sentiment,
        sentiment_score=0.0,
        language=language,
    )
    analysis = AnalysisResult(
        language=language,
        summary=text[:40],
        sentiment=sentiment,
        sentiment_score={"POSITIVE": 0.5, "NEUTRAL": 0.0, "NEGATIVE": -0.5}[sentiment.value],
        intents=[Intent("greeting", 0.9, (0,))],
        entities=[Entity("PERSON", "Aziz", "SPEAKER_00", 0.0, 0)],
        issues=[Issue("None", "Nothing wrong.")],
        actions=[Action("Nothing to do")],
        keypoints=[Keypoint(text[:20], 0)],
    )
    metrics = CallMetrics(
        duration_s=float(len(words)),
        talk_s=float(len(words)),
        silence_s=0.0,
        overlap_s=0.0,
        interruptions=0,
        speakers=[SpeakerStats("SPEAKER_00", SpeakerRole.AGENT, 1.0, 1.0, 60.0, 1, 1.0)],
    )
    transcript = Transcript(segments=[segment], duration_s=float(len(words)), language=language)
    return transcript, CallInsight(segments=[segment], analysis=analysis, metrics=metrics)


def conversation_results(turns: int = 12) -> Results:
    """A two-party English conversation of `turns` turns, every nested list filled: the
    benchmark's page of results."""
    segments = [
        TranscriptSegment(
            speaker=f"SPEAKER_0{n % 2}",
            start_s=n * 3.0,
            end_s=n * 3.0 + 2.5,
            text=f"segment {n} about the loan payment schedule and the late fee",
            words=[
                Word(w, n * 3.0 + i * 0.3, n * 3.0 + i * 0.3 + 0.25, 0.9)
                for i, w in enumerate(f"segment {n} about the loan payment schedule".split())
            ],
            channel=n % 2,
            role=SpeakerRole.AGENT if n % 2 == 0 else SpeakerRole.CUSTOMER,
            sentiment=Sentiment.NEUTRAL,
            sentiment_score=0.0,
            language="en",
        )
        for n in range(turns)
    ]
    analysis = AnalysisResult(
        language="en",
        summary="The customer asks about the loan schedule.",
        sentiment=Sentiment.NEUTRAL,
        sentiment_score=0.0,
        intents=[Intent("loan_inquiry", 0.9, (0,)), Intent("complaint", 0.5, (1,))],
        entities=[Entity("MONEY", "$500", "SPEAKER_01", 3.0, 1)],
        issues=[Issue("Late fee", "Disputed.", (1,))],
        actions=[Action("Send the schedule")],
        keypoints=[Keypoint("Loan schedule", 0)],
    )
    duration = turns * 3.0
    metrics = CallMetrics(
        duration_s=duration,
        talk_s=turns * 2.5,
        silence_s=turns * 0.5,
        overlap_s=0.0,
        interruptions=0,
        speakers=[
            SpeakerStats(
                "SPEAKER_00", SpeakerRole.AGENT, turns * 1.25, 0.5, 150.0, turns // 2, 2.5
            ),
            SpeakerStats(
                "SPEAKER_01", SpeakerRole.CUSTOMER, turns * 1.25, 0.5, 140.0, turns // 2, 2.5
            ),
        ],
    )
    transcript = Transcript(
        segments=segments,
        duration_s=duration,
        language="en",
        channels=2,
        speaker_channels={"SPEAKER_00": 0, "SPEAKER_01": 1},
    )
    return transcript, CallInsight(segments=segments, analysis=analysis, metrics=metrics)


# --- audio -----------------------------------------------------------------------------------


def write_tone(
    path: Path,
    *,
    container: str,
    codec: str,
    sample_rate: int,
    channels: int,
    seconds: float = 1.0,
) -> Path:
    """Encode a sine tone (a different pitch per channel) with PyAV."""
    layout = {1: "mono", 2: "stereo", 4: "quad"}[channels]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats, f"{codec} lists no sample formats"
        sample_format = formats[0]
        frame_size = stream.codec_context.frame_size or 1024
        total = round(sample_rate * seconds)
        t = np.arange(total) / sample_rate
        tone = np.stack(
            [0.3 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)]
        ).astype(np.float32)
        pts = 0
        for start in range(0, total, frame_size):
            block = tone[:, start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(
                _to_sample_format(block, sample_format.name),
                format=sample_format.name,
                layout=layout,
            )
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += frame.samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _to_sample_format(block: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    base = name.rstrip("p")
    scaled: np.ndarray[Any, Any]
    if base == "flt":
        scaled = block.astype(np.float32)
    elif base == "s16":
        scaled = (block * 32767).astype(np.int16)
    elif base == "s32":
        scaled = (block * 2_147_483_000).astype(np.int32)
    else:
        raise ValueError(f"unexpected sample format {name}")
    if name.endswith("p"):
        return np.ascontiguousarray(scaled)
    # Packed formats interleave channels in a single row.
    return np.ascontiguousarray(scaled.T.reshape(1, -1))


# --- finished calls with chosen results (the supervisor's desk) -------------------------------


@dataclass(frozen=True)
class Turn:
    role: SpeakerRole
    start_s: float
    end_s: float
    text: str
    score: float | None = 0.0


@dataclass
class CallSpec:
    """What a finished call should show: its turns, analysis and metrics."""

    turns: list[Turn]
    language: str = "en"
    sentiment_score: float = 0.0
    intents: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    interruptions: int = 0
    silence_s: float = 0.0
    duration_s: float | None = None
    agent_talk_ratio: float = 0.5
    created_at: datetime | None = None


def spec_results(spec: CallSpec, duration_s: float) -> Results:
    segments = [
        TranscriptSegment(
            speaker="SPEAKER_00" if t.role is SpeakerRole.AGENT else "SPEAKER_01",
            start_s=t.start_s,
            end_s=t.end_s,
            text=t.text,
            role=t.role,
            sentiment=polarity_label(t.score) if t.score is not None else None,
            sentiment_score=t.score,
            language=spec.language,
        )
        for t in spec.turns
    ]
    talk = sum(t.end_s - t.start_s for t in spec.turns)
    agent, customer = spec.agent_talk_ratio, 1 - spec.agent_talk_ratio
    insight = CallInsight(
        segments=segments,
        analysis=AnalysisResult(
            language=spec.language,
            summary="",
            sentiment=polarity_label(spec.sentiment_score),
            sentiment_score=spec.sentiment_score,
            intents=[Intent(name, 0.9) for name in spec.intents],
            issues=[Issue(title, "") for title in spec.issues],
        ),
        metrics=CallMetrics(
            duration_s=duration_s,
            talk_s=talk,
            silence_s=spec.silence_s,
            overlap_s=0.0,
            interruptions=spec.interruptions,
            speakers=[
                SpeakerStats("SPEAKER_00", SpeakerRole.AGENT, 1.0, agent, None, 1, 1.0),
                SpeakerStats("SPEAKER_01", SpeakerRole.CUSTOMER, 1.0, customer, None, 1, 1.0),
            ],
        ),
    )
    return Transcript(segments=segments, duration_s=duration_s), insight


async def finished_call(
    sessions: SessionFactory,
    targets: EffectTargets,
    owner_id: uuid.UUID,
    spec: CallSpec,
    *,
    storage: ObjectStorage | None = None,
    audio: Path | None = None,
    redacted_audio: Path | None = None,
    redactions: list[MaskedSpan] | None = None,
) -> Call:
    """A SUCCESS call whose results the calls service saved, as the worker's job does: its
    categories and scorecards evaluated and its webhook deliveries enqueued after the commit.
    With `storage` and `audio`, the recording is stored too; with `redacted_audio`, a
    redacted copy (what agents hear) and its `redactions`."""
    key = new_object_key()
    if storage is not None and audio is not None:
        await storage.put_file(key, audio)
    redaction: StoredRedaction | None = None
    if storage is not None and redacted_audio is not None:
        redacted_key = new_object_key(REDACTED_PREFIX)
        await storage.put_file(redacted_key, redacted_audio)
        redaction = StoredRedaction(redacted_key, tuple(redactions or ()))
    duration = spec.duration_s or max((t.end_s for t in spec.turns), default=1.0)
    info = AudioInfo(
        duration_s=duration, channels=1, sample_rate=16000, codec="pcm_s16le", container="wav"
    )
    size = audio.stat().st_size if audio is not None else 1000
    upload = StoredUpload(key, audio.name if audio else "call.wav", size, "ab" * 32, info)
    async with sessions() as session, session.begin():
        call = new_call(owner_id, upload, SpeakerHints())
        session.add(call)
        await session.flush()
        if spec.created_at is not None:
            call.created_at = spec.created_at
        await session.flush()
        await session.refresh(call)
    assert call.job_id is not None
    transcript, insight = spec_results(spec, duration)
    async with unit_of_work(sessions, targets) as session:
        saved = await save_results(
            session,
            call.id,
            call.job_id,
            transcript,
            insight,
            analysis_backend="test",
            redaction=redaction,
        )
    assert saved is not None
    return saved


# --- people who sign in -----------------------------------------------------------------------

if TYPE_CHECKING:
    from tests.api.helpers import GraphQLClient


@dataclass(frozen=True)
class Person:
    """A user row and a token of theirs."""

    id: uuid.UUID
    token: str


async def make_person(
    gql: GraphQLClient, sessions: SessionFactory, name: str, role: Role = Role.AGENT
) -> Person:
    user = await make_user(sessions, name, role)
    return Person(user.id, await gql.login(name))


# --- waits ------------------------------------------------------------------------------------


async def wait_until_a_query_waits_for_a_lock(
    sessions: SessionFactory, timeout_s: float = 10
) -> None:
    """Returns once another session of this database is blocked on a row or table lock (so a
    test knows the concurrent transaction it started has reached the lock it must wait for)."""
    import asyncio

    from sqlalchemy import text

    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with sessions() as session:
        while (await session.execute(query)).scalar_one() == 0:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no query waited for a lock within {timeout_s} s")
            await asyncio.sleep(0.01)
