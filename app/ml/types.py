"""Result types shared by the speech pipeline, the analyzer, the worker and the CLI.

Plain dataclasses with units in their names: the ML code never imports the database or
GraphQL layers, and those layers translate from these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from app.core.enums import RoleSource, Sentiment, SpeakerRole
from app.core.errors import BadUserInput

if TYPE_CHECKING:
    from app.ml.diarization.base import SpeakerTurn


class Stage(StrEnum):
    """Pipeline stages that report progress (the contract's PipelineStage, minus QUEUED/DONE)."""

    DECODING = "DECODING"
    DIARIZING = "DIARIZING"
    TRANSCRIBING = "TRANSCRIBING"
    ANALYZING = "ANALYZING"


# Share of the overall progress bar each stage fills, in pipeline order.
STAGE_SPANS: dict[Stage, tuple[float, float]] = {
    Stage.DECODING: (0.0, 0.05),
    Stage.DIARIZING: (0.05, 0.35),
    Stage.TRANSCRIBING: (0.35, 0.85),
    Stage.ANALYZING: (0.85, 1.0),
}


def overall_progress(stage: Stage, completed: float, total: float) -> float:
    """Where a report of `stage` puts the whole call, 0 .. 1."""
    start, end = STAGE_SPANS[stage]
    fraction = min(max(completed / total, 0.0), 1.0) if total > 0 else 0.0
    return start + (end - start) * fraction


class ProgressCallback(Protocol):
    """The one progress shape, from the VAD up to the worker (pyannote's hook shape):
    called as a stage advances; `completed`/`total` are in any unit the reporter likes.
    Reports of one stage never step backwards."""

    def __call__(self, stage: Stage, completed: float, total: float) -> None: ...


def no_progress(stage: Stage, completed: float, total: float) -> None:
    """A callback that ignores progress."""


def part_of(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """A step that fills the share [start, end] of its stage: its reports are scaled into
    that share (as fractions of the stage), so steps run one after another stay monotonic."""

    def report(stage: Stage, completed: float, total: float) -> None:
        fraction = min(max(completed / total, 0.0), 1.0) if total > 0 else 0.0
        progress(stage, start + (end - start) * fraction, 1.0)

    return report


@dataclass(frozen=True, slots=True)
class RoleDecision:
    role: SpeakerRole
    source: RoleSource
    confidence: float | None = None
    """0..1; None when `source` is NONE."""


@dataclass(frozen=True, slots=True)
class SpeakerEmbeddings:
    """One centroid voice embedding per speaker of a call, from the speaker encoder named by
    `model` (vectors of different models are never compared). Internal to the worker: never
    stored with the call's results nor shown by the API."""

    model: str
    vectors: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    """Speaker label -> unit-length centroid."""
    speech_s: dict[str, float] = field(default_factory=dict)
    """Speaker label -> seconds of speech the centroid was computed from."""


MAX_SPEAKERS = 32


class InvalidSpeakerHints(BadUserInput):
    """Hints no diarization can honour."""


@dataclass(frozen=True, slots=True)
class SpeakerHints:
    """Speaker-count hints; when given they are honoured exactly by the diarizer."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def problem(self) -> str | None:
        """What makes these hints impossible to honour, or None: the one set of rules for
        the API, the settings and the pipeline."""
        counts = (self.num_speakers, self.min_speakers, self.max_speakers)
        if any(value is not None and not 1 <= value <= MAX_SPEAKERS for value in counts):
            return f"Speaker counts must be between 1 and {MAX_SPEAKERS}"
        low, high, exact = self.min_speakers, self.max_speakers, self.num_speakers
        if low is not None and high is not None and low > high:
            return "The minimum speaker count must not exceed the maximum"
        if exact is not None and (
            (low is not None and exact < low) or (high is not None and exact > high)
        ):
            return "The exact speaker count must lie between the minimum and the maximum"
        return None

    def validated(self) -> SpeakerHints:
        """These hints, or `InvalidSpeakerHints` before any work is done."""
        problem = self.problem()
        if problem is not None:
            raise InvalidSpeakerHints(problem)
        return self


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass(slots=True)
class TranscriptSegment:
    """One speaker turn. The analyzer fills `role`, `sentiment` and `language`."""

    speaker: str
    start_s: float
    end_s: float
    text: str
    words: list[Word] = field(default_factory=list)
    channel: int | None = None
    role: SpeakerRole = SpeakerRole.UNKNOWN
    sentiment: Sentiment | None = None
    sentiment_score: float | None = None
    language: str | None = None
    confidence: float | None = None
    """0..1, how sure the decoder was of this segment's text (app.ml.speech.confidence); None when
    it was not transcribed or the model gives no word probabilities."""


@dataclass(frozen=True, slots=True)
class LanguageShare:
    language: str
    """ISO 639-1."""
    share: float
    """Fraction of the call's talk time (0..1)."""


@dataclass(frozen=True, slots=True)
class CallWarning:
    code: str
    """Stable identifier, e.g. `LANGUAGE_NOT_TRANSCRIBED`, `ANALYSIS_PARTIAL`."""
    message: str


@dataclass(slots=True)
class Transcript:
    """What the speech pipeline produces for one recording."""

    segments: list[TranscriptSegment]
    duration_s: float
    language: str | None = None
    """ISO 639-1 code with the most talk time; None if no speech."""
    channels: int = 1
    """Channels as diarized: 1 for mono or dual-mono, 2+ when diarized by channel."""
    speaker_channels: dict[str, int] = field(default_factory=dict)
    """Speaker label -> source channel, for recordings diarized by channel."""
    languages: list[LanguageShare] = field(default_factory=list)
    """Share of talk time per language, largest first; empty when there is no speech."""
    warnings: list[CallWarning] = field(default_factory=list)
    speaker_turns: list[SpeakerTurn] = field(default_factory=list)
    """The diarization the segments follow: who spoke when (the RTTM of the call)."""
    speaker_embeddings: SpeakerEmbeddings | None = field(default=None, repr=False, compare=False)
    """Per-speaker voice centroids, for voiceprints; never part of the call's results."""


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    confidence: float
    evidence: tuple[int, ...] = ()
    """Indices into the transcript's segments."""


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    value: str
    speaker: str | None = None
    start_s: float | None = None
    segment_index: int | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    title: str
    description: str
    evidence: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    description: str


@dataclass(frozen=True, slots=True)
class Keypoint:
    text: str
    segment_index: int | None = None


@dataclass(slots=True)
class AnalysisResult:
    language: str
    """ISO 639-1, or "und" when there is no speech."""
    summary: str
    sentiment: Sentiment
    sentiment_score: float
    """-1 .. 1"""
    intents: list[Intent] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    keypoints: list[Keypoint] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SpeakerStats:
    speaker: str
    role: SpeakerRole
    talk_s: float
    talk_ratio: float
    words_per_minute: float | None
    turns: int
    longest_monologue_s: float
    role_source: RoleSource = RoleSource.NONE
    role_confidence: float | None = None


@dataclass(slots=True)
class CallMetrics:
    duration_s: float
    talk_s: float
    silence_s: float
    overlap_s: float
    interruptions: int
    speakers: list[SpeakerStats] = field(default_factory=list)


@dataclass(slots=True)
class CallInsight:
    """What the analyzer produces: segments annotated (and PII-redacted), analysis, metrics."""

    segments: list[TranscriptSegment]
    analysis: AnalysisResult
    metrics: CallMetrics
    warnings: list[CallWarning] = field(default_factory=list)
    """The call's warnings: the transcript's, and the analysis being partial."""
