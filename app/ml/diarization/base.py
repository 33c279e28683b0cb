"""The diarizer contract: who spoke when, as speaker turns over a decoded recording."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from app.errors import ProcessingError
from app.ml.audio import DecodedAudio
from app.ml.types import ProgressCallback, SpeakerHints, no_progress
from app.ml.vad import Region


class DiarizationError(ProcessingError):
    """A diarization backend failed; the message is safe to show to an operator."""


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    speaker: str
    start_s: float
    end_s: float
    channel: int | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(slots=True)
class Diarization:
    """Turns sorted by start. Turns of different speakers may overlap (crosstalk)."""

    turns: list[SpeakerTurn]
    speaker_channels: dict[str, int] = field(default_factory=dict)
    """Speaker -> channel, when speakers were separated by channel."""

    @property
    def speakers(self) -> list[str]:
        return sorted({turn.speaker for turn in self.turns})


class Diarizer(Protocol):
    """Mono backends: `neural` (offline default), `local`, `pyannote`, `pyannoteai`.

    Progress is reported as `Stage.DIARIZING`. `takes_speech_regions` states whether the
    backend diarizes the speech regions the pipeline's VAD found (so the VAD runs once per
    call) or finds speech itself and ignores `regions`."""

    takes_speech_regions: ClassVar[bool]

    def __call__(
        self,
        audio: DecodedAudio,
        *,
        hints: SpeakerHints,
        progress: ProgressCallback = no_progress,
        regions: list[Region] | None = None,
    ) -> Diarization: ...


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def speaker_bounds(hints: SpeakerHints, *, default_max: int) -> tuple[int, int]:
    """(min, max) speaker count allowed by `hints`."""
    if hints.num_speakers is not None:
        return hints.num_speakers, hints.num_speakers
    low = hints.min_speakers or 1
    high = hints.max_speakers or max(default_max, low)
    return low, high
