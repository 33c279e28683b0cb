"""CallInsight -> dicts shaped exactly like the GraphQL contract's Analysis, CallMetrics and
Segment types (camelCase keys, enum values as names), for the CLI and anyone storing JSON."""

from __future__ import annotations

from typing import Any

from app.ml.types import (
    AnalysisResult,
    CallInsight,
    CallMetrics,
    SpeakerStats,
    TranscriptSegment,
    Word,
)


def word_to_dict(word: Word) -> dict[str, Any]:
    return {
        "text": word.text,
        "start": word.start_s,
        "end": word.end_s,
        "confidence": word.confidence,
    }


def segment_to_dict(segment: TranscriptSegment) -> dict[str, Any]:
    return {
        "speaker": segment.speaker,
        "role": segment.role.value,
        "channel": segment.channel,
        "start": segment.start_s,
        "end": segment.end_s,
        "text": segment.text,
        "words": [word_to_dict(word) for word in segment.words],
        "sentiment": segment.sentiment.value if segment.sentiment is not None else None,
        "language": segment.language,
    }


def speaker_stats_to_dict(stats: SpeakerStats) -> dict[str, Any]:
    return {
        "speaker": stats.speaker,
        "role": stats.role.value,
        "talkSeconds": stats.talk_s,
        "talkRatio": stats.talk_ratio,
        "wordsPerMinute": stats.words_per_minute,
        "turns": stats.turns,
        "roleSource": stats.role_source.value,
        "roleConfidence": stats.role_confidence,
    }


def metrics_to_dict(metrics: CallMetrics) -> dict[str, Any]:
    return {
        "durationSeconds": metrics.duration_s,
        "talkSeconds": metrics.talk_s,
        "silenceSeconds": metrics.silence_s,
        "overlapSeconds": metrics.overlap_s,
        "interruptions": metrics.interruptions,
        "speakers": [speaker_stats_to_dict(stats) for stats in metrics.speakers],
    }


def analysis_to_dict(analysis: AnalysisResult) -> dict[str, Any]:
    return {
        "language": analysis.language,
        "summary": analysis.summary,
        "sentiment": analysis.sentiment.value,
        "sentimentScore": analysis.sentiment_score,
        "intents": [{"name": i.name, "confidence": i.confidence} for i in analysis.intents],
        "entities": [
            {"type": e.type, "value": e.value, "speaker": e.speaker, "start": e.start_s}
            for e in analysis.entities
        ],
        "issues": [{"title": i.title, "description": i.description} for i in analysis.issues],
        "actions": [{"description": a.description} for a in analysis.actions],
        "keypoints": [{"text": k.text} for k in analysis.keypoints],
    }


def insight_to_contract_dict(insight: CallInsight) -> dict[str, Any]:
    """{"analysis": Analysis, "metrics": CallMetrics, "segments": [Segment]} as the contract
    spells them."""
    return {
        "analysis": analysis_to_dict(insight.analysis),
        "metrics": metrics_to_dict(insight.metrics),
        "segments": [segment_to_dict(segment) for segment in insight.segments],
    }
