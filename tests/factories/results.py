"""Results as the pipeline produces them: a transcript and its insight, from a rich Uzbek
call with every optional field set somewhere to a finished call described turn by turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.core.enums import Sentiment, SpeakerRole
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
    SpeakerStats,
    Transcript,
    TranscriptSegment,
    Word,
)

Results = tuple[Transcript, CallInsight]


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
