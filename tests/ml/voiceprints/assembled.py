"""Two-party mono calls assembled from the shared single-speaker recordings: an agent's
voice and another voice taking turns, with pauses, at 16 kHz, and the reference of who
spoke when."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

SAMPLE_RATE = 16_000

USC_AGENT = [
    "usc_uz_1131474547_2_29207_1.wav",
    "usc_uz_1131474547_2_29208_1.wav",
    "usc_uz_1131474547_2_29209_1.wav",
    "usc_uz_1131474547_2_29210_1.wav",
]
EAGLE_AGENT = [
    "picovoice_eagle_speaker_1_utt_1.wav",
    "picovoice_eagle_speaker_1_utt_2.wav",
    "picovoice_eagle_speaker_1_test_utt.wav",
]
LIBRI_SPEAKERS = {
    speaker: [f"resemblyzer_libri_{speaker}-{utt:04d}.flac" for utt in range(6)]
    for speaker in ("1688-142285", "1998-15444", "2033-164914", "3080-5032", "3331-159605")
}


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class AssembledCall:
    samples: npt.NDArray[np.float32]
    turns: list[Turn]

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE

    def talk_s(self, speaker: str) -> float:
        return sum(t.end_s - t.start_s for t in self.turns if t.speaker == speaker)

    def write(self, path: Path) -> Path:
        sf.write(path, self.samples, SAMPLE_RATE, subtype="PCM_16")
        return path


def load_clip(path: Path, max_s: float | None = None) -> npt.NDArray[np.float32]:
    """A clip as 16 kHz mono float32 (resampled by linear interpolation when needed: the
    voices only have to stay recognisable), at most `max_s` long."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono: npt.NDArray[np.float32] = np.asarray(data.mean(axis=1), dtype=np.float32)
    if rate != SAMPLE_RATE:
        positions = np.arange(0, mono.size, rate / SAMPLE_RATE)
        mono = np.interp(positions, np.arange(mono.size), mono).astype(np.float32)
    if max_s is not None:
        mono = mono[: round(max_s * SAMPLE_RATE)]
    peak = float(np.abs(mono).max()) or 1.0
    return (0.5 * mono / peak).astype(np.float32)


def assemble(
    audio_dir: Path,
    parts: list[tuple[str, str]],
    *,
    pause_s: float = 0.6,
    max_clip_s: float = 8.0,
) -> AssembledCall:
    """`parts` are (speaker, file name) in speaking order, separated by `pause_s` of silence."""
    pieces: list[npt.NDArray[np.float32]] = []
    turns: list[Turn] = []
    clock = pause_s
    pieces.append(np.zeros(round(pause_s * SAMPLE_RATE), dtype=np.float32))
    for speaker, name in parts:
        clip = load_clip(audio_dir / name, max_clip_s)
        turns.append(Turn(speaker, clock, clock + clip.size / SAMPLE_RATE))
        pieces.append(clip)
        pieces.append(np.zeros(round(pause_s * SAMPLE_RATE), dtype=np.float32))
        clock += clip.size / SAMPLE_RATE + pause_s
    return AssembledCall(np.concatenate(pieces), turns)
