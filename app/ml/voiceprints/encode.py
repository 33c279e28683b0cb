"""Voice centroids of speakers whose speech is known (a stereo call's channels), from the
local diarizer's speaker encoder: the same windows and the same model name, so a centroid
learned from a channel compares with one the local diarizer gives a mono call."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from app.ml.diarization.local import (
    EMBEDDING_MODEL,
    LocalDiarizationParams,
    ResemblyzerEmbedder,
    normalise_volume,
    window_starts,
)
from app.ml.speech.audio import SAMPLE_RATE
from app.ml.speech.vad import Region
from app.ml.types import SpeakerEmbeddings

FloatArray = npt.NDArray[np.float32]

MAX_WINDOWS = 240
"""Windows per speaker at most (2 minutes of speech at the 0.5 s step), evenly spread: a
centroid does not move after that, and a 4-hour channel must not cost minutes."""


def embed_speakers(
    embedder: ResemblyzerEmbedder,
    speech: Mapping[str, tuple[FloatArray, list[Region]]],
    params: LocalDiarizationParams | None = None,
) -> SpeakerEmbeddings:
    """Speaker -> (16 kHz samples, speech regions) -> each speaker's unit-length centroid.
    A speaker with no speech gets none."""
    p = params or LocalDiarizationParams()
    win = round(p.window_s * SAMPLE_RATE)
    frames = round(p.window_s / 0.01)
    vectors: dict[str, FloatArray] = {}
    speech_s: dict[str, float] = {}
    for speaker, (signal, regions) in speech.items():
        starts = [
            s for start, end in regions for s in window_starts(start, end, p.window_s, p.step_s)
        ]
        if not starts or signal.size == 0:
            continue
        if len(starts) > MAX_WINDOWS:
            starts = [
                starts[i] for i in np.linspace(0, len(starts) - 1, MAX_WINDOWS).round().astype(int)
            ]
        mels: list[FloatArray] = []
        for start in starts:
            first = max(0, min(round(start * SAMPLE_RATE), signal.size - win))
            chunk = signal[first : first + win]
            if chunk.size < win:
                chunk = np.pad(chunk, (0, win - chunk.size))
            mel = embedder.mel(normalise_volume(np.ascontiguousarray(chunk)))[:frames]
            if mel.shape[0] < frames:
                mel = np.pad(mel, ((0, frames - mel.shape[0]), (0, 0)))
            mels.append(mel)
        embeddings = np.concatenate(
            [
                embedder.embed(np.stack(mels[i : i + p.batch_size]))
                for i in range(0, len(mels), p.batch_size)
            ]
        )
        mean = embeddings.astype(np.float64).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm > 0:
            vectors[speaker] = (mean / norm).astype(np.float32)
            speech_s[speaker] = round(sum(end - start for start, end in regions), 3)
    return SpeakerEmbeddings(model=EMBEDDING_MODEL, vectors=vectors, speech_s=speech_s)
