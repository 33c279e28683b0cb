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


@runtime_checkable
class SpeechToText(Protocol):
    def detect_language(
        self, audio: np.ndarray, regions: Sequence[tuple[float, float]]
    ) -> tuple[str, float] | None:
        """Language of the speech in `regions` as (ISO 639-1, probability); None if no speech."""
        ...

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        regions: Sequence[tuple[float, float]],
        language: str | None,
    ) -> SttResult:
        """Words spoken inside `regions`; `language` forces the language, None detects it."""
        ...
