"""Generated audio: signals (a sine, hold music, line noise), recordings encoded with PyAV in
every upload format, and the odd files an upload must refuse."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import soundfile

Signal = npt.NDArray[np.float32]

FORMATS = {
    # suffix: (container, codec)
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "ogg": ("ogg", "libopus"),
    "m4a": ("ipod", "aac"),
    "webm": ("webm", "libopus"),
}

# --- signals ---------------------------------------------------------------------------------


def sine(hz: float, seconds: float, sample_rate: int = 16_000, amplitude: float = 0.3) -> Signal:
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * times)).astype(np.float32)


def music_on_hold(seconds: float, sample_rate: int = 16_000) -> Signal:
    """A four-note melody, two notes a second: tonal, steady, and no one's voice."""
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    notes = np.asarray([262.0, 330.0, 392.0, 523.0])
    which = (times * 2).astype(np.int64) % len(notes)
    return (0.2 * np.sin(2 * np.pi * notes[which] * times)).astype(np.float32)


def noise(seconds: float, *, level: float, seed: int, sample_rate: int = 16_000) -> Signal:
    """Gaussian line noise of standard deviation `level`, the same for the same `seed`."""
    samples = np.random.default_rng(seed).normal(0.0, level, round(seconds * sample_rate))
    return samples.astype(np.float32)


# --- recordings ------------------------------------------------------------------------------


def encode_audio(
    path: Path, samples: Signal, *, container: str, codec: str, sample_rate: int
) -> Path:
    """Encode `samples` (channels x frames, floats in [-1, 1]) with PyAV, in the codec's own
    first sample format."""
    channels = samples.shape[0]
    layout = {1: "mono", 2: "stereo", 4: "quad"}[channels]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats, f"{codec} lists no sample formats"
        sample_format = formats[0].name
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.shape[1], frame_size):
            block = samples[:, start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(
                _to_sample_format(block, sample_format), format=sample_format, layout=layout
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _to_sample_format(block: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    base = name.rstrip("p")
    clipped = np.clip(block, -1.0, 1.0)
    scaled: npt.NDArray[Any]
    if base == "flt":
        scaled = clipped.astype(np.float32)
    elif base == "s16":
        scaled = (clipped * 32767).astype(np.int16)
    elif base == "s32":
        scaled = (clipped * 2_147_483_000).astype(np.int32)
    else:
        raise ValueError(f"unexpected sample format {name}")
    if name.endswith("p"):
        return np.ascontiguousarray(scaled)
    # Packed formats interleave channels in a single row.
    return np.ascontiguousarray(scaled.T.reshape(1, -1))


def write_tone(
    path: Path,
    *,
    container: str,
    codec: str,
    sample_rate: int,
    channels: int,
    seconds: float = 1.0,
) -> Path:
    """Encode a sine tone (220 Hz on the first channel, 440 Hz on the second...) with PyAV."""
    tone = np.stack([sine(220 * (c + 1), seconds, sample_rate) for c in range(channels)])
    return encode_audio(path, tone, container=container, codec=codec, sample_rate=sample_rate)


def tone_file(
    directory: Path,
    suffix: str = "wav",
    *,
    sample_rate: int = 8000,
    channels: int = 1,
    seconds: float = 1.0,
) -> Path:
    """A sine-tone recording in the upload format named by `suffix` (see FORMATS)."""
    container, codec = FORMATS[suffix]
    return write_tone(
        directory / f"tone-{sample_rate}-{channels}-{seconds}.{suffix}",
        container=container,
        codec=codec,
        sample_rate=sample_rate,
        channels=channels,
        seconds=seconds,
    )


_TONES: dict[tuple[str, int, int, float], bytes] = {}


def tone_bytes(
    directory: Path,
    suffix: str = "wav",
    *,
    sample_rate: int = 8000,
    channels: int = 1,
    seconds: float = 1.0,
) -> bytes:
    """The bytes of `tone_file`, encoded once per process and shape."""
    key = (suffix, sample_rate, channels, seconds)
    if key not in _TONES:
        path = tone_file(
            directory, suffix, sample_rate=sample_rate, channels=channels, seconds=seconds
        )
        _TONES[key] = path.read_bytes()
    return _TONES[key]


def write_pcm16(path: Path, samples: npt.NDArray[np.floating[Any]], sample_rate: int) -> Path:
    """A 16-bit PCM WAV of `samples` (frames, or channels x frames), rounded to the nearest
    step: reading it back gives exactly the samples a decoder sees."""
    pcm = np.clip(np.rint(samples * 32768), -32768, 32767).astype(np.int16)
    soundfile.write(str(path), pcm.T if pcm.ndim == 2 else pcm, sample_rate, subtype="PCM_16")
    return path


def header_only_wav(path: Path) -> Path:
    """A valid WAV header with no samples (PyAV writes nothing for an empty stream; `wave`
    does)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
    return path
