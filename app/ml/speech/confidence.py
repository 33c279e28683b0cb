"""How sure the decoder was: a confidence per transcript segment and the call's POOR_AUDIO
warning when much of its speech was decoded with low confidence.

A segment's confidence is the geometric mean of its words' probabilities (the decoder's mean
token probability per word), i.e. exp of the mean log-probability over the segment's words:
one badly heard word pulls it down more than a plain mean would, as it pulls down the
transcript's usefulness. Segments with no words carrying a probability (untranscribed turns,
backends that give none) have no confidence (None), never a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.ml.types import CallWarning, TranscriptSegment, Word

POOR_AUDIO = "POOR_AUDIO"

LOW_CONFIDENCE = 0.5
"""A segment below this was decoded with low confidence. On the bench's degradation ladder
clean and mildly degraded English (Whisper tiny.en) gave segments at 0.75-0.99 and the 5 dB
SNR line 0.38-0.52; clean Russian (Whisper base) sits lower, about 0.6, so a higher bar
would call every Russian call poor (docs/languages.md)."""

POOR_AUDIO_SHARE = 0.3
"""POOR_AUDIO when at least this share of the transcribed speech time is in low-confidence
segments: a clean call's few hesitant short segments stay below it."""

_FLOOR = 1e-4
"""Probabilities are floored before the log: one word at probability 0 must not make the
whole segment's confidence 0."""


def segment_confidence(words: Sequence[Word]) -> float | None:
    """exp(mean log-probability) over the words that carry one, 0..1; None when none does."""
    probabilities = [word.confidence for word in words if word.confidence is not None]
    if not probabilities:
        return None
    mean_log = sum(math.log(max(p, _FLOOR)) for p in probabilities) / len(probabilities)
    return round(min(1.0, math.exp(mean_log)), 4)


def low_confidence_share(segments: Sequence[TranscriptSegment]) -> float | None:
    """Share of the transcribed speech time (segments with a confidence) whose segment is
    below `LOW_CONFIDENCE`; None when no segment has a confidence."""
    total = low = 0.0
    for segment in segments:
        if segment.confidence is None:
            continue
        duration = max(segment.end_s - segment.start_s, 0.0)
        total += duration
        if segment.confidence < LOW_CONFIDENCE:
            low += duration
    if total <= 0:
        return None
    return low / total


def poor_audio_warning(segments: Sequence[TranscriptSegment]) -> CallWarning | None:
    """POOR_AUDIO naming the share of speech decoded with low confidence, or None."""
    share = low_confidence_share(segments)
    if share is None or share < POOR_AUDIO_SHARE:
        return None
    return CallWarning(
        POOR_AUDIO,
        f"{share:.0%} of the transcribed speech was decoded with low confidence (segment "
        f"confidence below {LOW_CONFIDENCE:.2f}): the line was probably too poor for a "
        "reliable transcript; check those segments against the audio",
    )
