"""What decided each speaker's role, attached to the call's speaker statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from app.core.enums import RoleSource, SpeakerRole
from app.ml.types import CallInsight, RoleDecision, Transcript

WORDS_CONFIDENCE = 0.5
"""Phrases ("how can I help") are evidence, not a measurement: a fixed middling confidence."""


def with_role_sources(
    transcript: Transcript,
    insight: CallInsight,
    voice: Mapping[str, RoleDecision],
) -> CallInsight:
    """`insight` with each speaker's `role_source` and `role_confidence` filled in: CHANNEL
    on a stereo call (the agent's channel), VOICE where the voiceprint decided, WORDS where
    what was said did, NONE where nothing did (the role stays UNKNOWN)."""
    stereo = transcript.channels > 1 and len(set(transcript.speaker_channels.values())) > 1
    speakers = []
    for stats in insight.metrics.speakers:
        confidence: float | None
        if stereo and stats.speaker in transcript.speaker_channels:
            source, confidence = RoleSource.CHANNEL, 1.0
        elif stats.speaker in voice and voice[stats.speaker].role is stats.role:
            source, confidence = RoleSource.VOICE, voice[stats.speaker].confidence
        elif stats.role is not SpeakerRole.UNKNOWN:
            source, confidence = RoleSource.WORDS, WORDS_CONFIDENCE
        else:
            source, confidence = RoleSource.NONE, None
        speakers.append(replace(stats, role_source=source, role_confidence=confidence))
    return replace(insight, metrics=replace(insight.metrics, speakers=speakers))
