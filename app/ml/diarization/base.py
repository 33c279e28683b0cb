"""The diarizer contract: who spoke when, as speaker turns over a decoded recording."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from app.core.errors import ProcessingError
from app.ml.speech.audio import DecodedAudio
from app.ml.speech.vad import Region
from app.ml.types import ProgressCallback, SpeakerEmbeddings, SpeakerHints, no_progress


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
    speaker_embeddings: SpeakerEmbeddings | None = None
    """Each speaker's centroid from the backend's speaker encoder, when it has one (voice
    roles and voiceprints use it; a backend without one leaves it None)."""

    @property
    def speakers(self) -> list[str]:
        return sorted({turn.speaker for turn in self.turns})


@dataclass(frozen=True, slots=True)
class DiarizationRequest:
    """One recording to diarize, as the `Diarizer` interface receives it."""

    audio: DecodedAudio
    hints: SpeakerHints
    progress: ProgressCallback
    regions: list[Region] | None
    """The pipeline's speech regions; only a backend that `takes_speech_regions` reads them."""


class Diarizer(ABC):
    """Mono backends: `neural`, `local` (offline default), `pyannote`, `pyannoteai`.

    Progress is reported as `Stage.DIARIZING`. `takes_speech_regions` states whether the
    backend diarizes the speech regions the pipeline's VAD found (so the VAD runs once per
    call) or finds speech itself and ignores `regions`. The call is taken apart here once;
    a backend implements `diarize`."""

    takes_speech_regions: ClassVar[bool]

    def __call__(
        self,
        audio: DecodedAudio,
        *,
        hints: SpeakerHints,
        progress: ProgressCallback = no_progress,
        regions: list[Region] | None = None,
    ) -> Diarization:
        return self.diarize(DiarizationRequest(audio, hints, progress, regions))

    @abstractmethod
    def diarize(self, request: DiarizationRequest) -> Diarization:
        """Progress is reported as `Stage.DIARIZING` through `request.progress`."""


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def speaker_bounds(hints: SpeakerHints, *, default_max: int) -> tuple[int, int]:
    """(min, max) speaker count allowed by `hints`."""
    if hints.num_speakers is not None:
        return hints.num_speakers, hints.num_speakers
    low = hints.min_speakers or 1
    high = hints.max_speakers or max(default_max, low)
    return low, high


def centroid_embeddings(
    model: str,
    turns: list[SpeakerTurn],
    centers_s: npt.NDArray[np.float32],
    embeddings: npt.NDArray[np.float32],
    step_s: float,
) -> SpeakerEmbeddings:
    """Each speaker's unit-length mean of the window embeddings (rows of `embeddings`, one
    window centred at each of `centers_s`) whose centre lies inside one of that speaker's
    final `turns`, so the centroid follows the turns after any smoothing. A window inside
    two speakers' overlapping turns is left out: it holds both voices. Windows are `step_s`
    apart, so each stands for `step_s` of speech."""
    ordered = sorted(turns, key=lambda t: t.start_s)
    owners: dict[str, list[int]] = {}
    for index, centre in enumerate(centers_s.tolist()):
        speakers = {t.speaker for t in ordered if t.start_s <= centre <= t.end_s}
        if len(speakers) == 1:
            owners.setdefault(speakers.pop(), []).append(index)
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    speech_s: dict[str, float] = {}
    for speaker, rows in owners.items():
        mean = embeddings[rows].astype(np.float64).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm > 0:
            vectors[speaker] = (mean / norm).astype(np.float32)
            speech_s[speaker] = round(len(rows) * step_s, 3)
    return SpeakerEmbeddings(model=model, vectors=vectors, speech_s=speech_s)
