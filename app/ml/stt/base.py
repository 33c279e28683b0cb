"""The speech-to-text interface the pipeline programs against.

Every backend takes the same input: float32 16 kHz mono audio plus the VAD speech regions
(seconds) inside it. Backends transcribe only inside those regions, so silence between them
cannot produce hallucinated words, and they return words with absolute times in the audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from app.core.errors import ProcessingError
from app.ml.types import Word

SAMPLE_RATE = 16_000

Regions = Sequence[tuple[float, float]]
"""Speech regions as (start_s, end_s), seconds within the audio."""


@dataclass(slots=True)
class SttResult:
    words: list[Word]
    """Words in time order; `start_s`/`end_s` are absolute seconds within the input audio."""
    language: str | None
    """ISO 639-1 code of the transcribed speech; None when there was no speech."""
    language_probability: float | None
    """1.0 when the language was forced; None when unknown."""


class SttError(ProcessingError):
    """A speech-to-text failure with a message safe and useful to show an operator.

    `retryable=True` when trying again later can help (a hosted API that was rate limited
    or down), as opposed to a misconfiguration (bad key, no model).
    """


def mono_float32(audio: np.ndarray) -> np.ndarray:
    """The contiguous float32 samples every backend decodes; more than one channel is an error."""
    if audio.ndim != 1:
        raise SttError(f"speech-to-text expects mono audio, got an array of shape {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def no_speech(language: str | None) -> SttResult:
    """The result for audio whose regions hold no speech to transcribe."""
    return SttResult(words=[], language=language, language_probability=None)


@runtime_checkable
class SpeechToText(Protocol):
    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """Language of the speech in `regions` as (ISO 639-1, probability); None if no speech."""
        ...

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        """Words spoken inside `regions`; `language` forces the language, None detects it."""
        ...


def spoken_language(
    stt: SpeechToText, audio: np.ndarray, regions: Regions, language: str | None
) -> tuple[str | None, float | None]:
    """A forced `language` with probability 1.0; else the language `stt` detects in the
    regions, or (None, None) when it finds none."""
    if language is not None:
        return language, 1.0
    return stt.detect_language(audio, regions) or (None, None)
