"""What a call's languages mean for its results: talk-time shares, warnings, and the analysis
completed with the turns no model could transcribe.

No invented speech: a turn in a language without a capable model is never sent to a model.
It stays in the transcript with speaker, times and language and empty text, and the call
gets one warning per such language plus one saying the analysis is partial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from app.core.enums import SpeakerRole
from app.ml.analysis.metrics import compute_metrics
from app.ml.speech.turns import SpeechTurn
from app.ml.stt.languages import language_name
from app.ml.types import CallInsight, CallWarning, LanguageShare, Transcript, TranscriptSegment

LANGUAGE_NOT_TRANSCRIBED = "LANGUAGE_NOT_TRANSCRIBED"
ANALYSIS_PARTIAL = "ANALYSIS_PARTIAL"


def language_shares(turns: Sequence[SpeechTurn]) -> list[LanguageShare]:
    """Share of speech per language, largest first (ties by code, for stable output)."""
    seconds: dict[str, float] = {}
    for turn in turns:
        if turn.language:
            seconds[turn.language] = seconds.get(turn.language, 0.0) + turn.speech_s
    total = sum(seconds.values())
    if total <= 0:
        return []
    return [
        LanguageShare(code, round(value / total, 4))
        for code, value in sorted(seconds.items(), key=lambda item: (-item[1], item[0]))
    ]


def untranscribed_warnings(
    shares: Sequence[LanguageShare], untranscribed: set[str]
) -> list[CallWarning]:
    warnings = [
        CallWarning(
            LANGUAGE_NOT_TRANSCRIBED,
            f"{language_name(share.language)} speech ({share.share:.0%} of talk time) was not "
            f"transcribed: no {language_name(share.language)} model is configured; "
            "see docs/languages.md",
        )
        for share in shares
        if share.language in untranscribed
    ]
    if warnings:
        warnings.append(
            CallWarning(
                ANALYSIS_PARTIAL,
                "The analysis covers only the transcribed speech "
                f"({sum(s.share for s in shares if s.language not in untranscribed):.0%} of "
                "talk time)",
            )
        )
    return warnings


def complete_insight(
    transcript: Transcript, insight: CallInsight, *, interruption_threshold_s: float
) -> CallInsight:
    """The analyzer's result with the untranscribed turns put back in time order.

    The analyzer reads text only, so it never sees empty turns; they are merged back here,
    every segment index in the analysis (evidence, entities, keypoints) is remapped, the
    metrics are recomputed over all speech, the call's language is the one with most talk
    time, and the transcript's warnings are carried over.
    """
    empty = [s for s in transcript.segments if not s.text.strip()]
    segments = list(insight.segments)
    analysis = insight.analysis
    if transcript.languages:
        analysis = replace(analysis, language=transcript.languages[0].language)
    if not empty:
        return replace(insight, analysis=analysis, warnings=list(transcript.warnings))

    roles: dict[str, SpeakerRole] = {s.speaker: s.role for s in insight.metrics.speakers}
    roles.update({s.speaker: s.role for s in segments})
    tagged: list[tuple[TranscriptSegment, int | None]] = [
        (s, index) for index, s in enumerate(segments)
    ]
    for segment in empty:
        role = roles.get(segment.speaker, segment.role)
        tagged.append((replace(segment, role=role, words=[]), None))
    tagged.sort(key=lambda item: (item[0].start_s, item[0].end_s))
    new_index = {old: new for new, (_, old) in enumerate(tagged) if old is not None}
    merged = [segment for segment, _ in tagged]

    def remap(indices: Sequence[int]) -> tuple[int, ...]:
        return tuple(new_index[i] for i in indices if i in new_index)

    def remap_one(index: int | None) -> int | None:
        return None if index is None else new_index.get(index)

    analysis = replace(
        analysis,
        intents=[replace(i, evidence=remap(i.evidence)) for i in analysis.intents],
        issues=[replace(i, evidence=remap(i.evidence)) for i in analysis.issues],
        entities=[replace(e, segment_index=remap_one(e.segment_index)) for e in analysis.entities],
        keypoints=[
            replace(k, segment_index=remap_one(k.segment_index)) for k in analysis.keypoints
        ],
    )
    metrics = compute_metrics(
        merged,
        transcript.duration_s,
        {**roles, **_roles_of(merged)},
        interruption_threshold_s=interruption_threshold_s,
    )
    return CallInsight(
        segments=merged, analysis=analysis, metrics=metrics, warnings=list(transcript.warnings)
    )


def _roles_of(segments: Sequence[TranscriptSegment]) -> Mapping[str, SpeakerRole]:
    return {s.speaker: s.role for s in segments if s.role is not SpeakerRole.UNKNOWN}
