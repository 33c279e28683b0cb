"""Decoding: any container/codec PyAV (FFmpeg) reads -> float32, 16 kHz, one row per channel.

Memory: frames are decoded, resampled and copied into the output array one packet at a
time, so apart from the output itself (4 bytes x 16 000 x seconds x channels) only one
codec frame and the resampler's small filter state are alive at once. The output is
preallocated from the container's declared duration; when a container under-declares
(some MP3/WebM files), it grows geometrically, which is the only case where a transient
copy exists.

A call longer than `SPILL_AFTER_S` is decoded into a file-backed array (an unlinked
temporary file, mapped): the stages read it as any array, and `release_pages()`, which the
pipeline calls as it moves on, drops the pages already read from the worker's resident
memory. So resident memory stays bounded by what a stage touches between two releases
(seconds of audio), not by the call's duration: a 4-hour call's 920 MB of samples live in
the file and the page cache, which the kernel reclaims as needed.
"""

from __future__ import annotations

import mmap
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt

from app.core.errors import ProcessingError

SAMPLE_RATE = 16_000

FloatArray = npt.NDArray[np.float32]

# Channels correlated this strongly are one signal: a mono source copied to two channels
# differs only by codec noise, dither or a gain change (openai_whisper_jfk.flac: 0.9996),
# while two parties on separate channels correlate near 0, and crosstalk stays far below.
_DUAL_MONO_CORRELATION = 0.98
_DUAL_MONO_BLOCK = SAMPLE_RATE * 60

SPILL_AFTER_S = 600.0
"""Calls longer than this are decoded into a file-backed array (see the module docstring);
shorter ones (under 40 MB of samples per channel) stay in memory."""
_RELEASE_EVERY = SAMPLE_RATE * 60
"""Decoding drops its resident pages every minute of audio."""


def allocate_samples(channels: int, frames: int, *, file_backed: bool) -> FloatArray:
    """An uninitialised (channels, frames) float32 array, in memory or file-backed."""
    if not file_backed:
        return np.empty((channels, frames), dtype=np.float32)
    # Unlinked at once: the space is freed when the last view of the array is gone.
    with tempfile.TemporaryFile(prefix="ovozly-samples-") as backing:
        mapped: FloatArray = np.memmap(
            backing, dtype=np.float32, mode="w+", shape=(channels, frames)
        )
    return mapped


def release_pages(samples: npt.NDArray[np.generic]) -> None:
    """Drop a file-backed array's pages from this process's resident memory; the data stays
    in the file and is read back on the next access. Does nothing to an in-memory array."""
    mapping: mmap.mmap | None = getattr(samples, "_mmap", None)
    if mapping is not None and not mapping.closed:
        mapping.madvise(mmap.MADV_DONTNEED)


class AudioDecodeError(ProcessingError):
    """The file is not audio PyAV can decode (no audio stream, corrupt or empty)."""

    def call_error(self) -> str:
        return (
            "The recording could not be decoded: it is corrupt, truncated or in an "
            "unsupported format"
        )


@dataclass(slots=True)
class DecodedAudio:
    """Decoded audio. `samples` has shape (channels, frames), float32 in [-1, 1], 16 kHz."""

    samples: FloatArray
    source_channels: int
    """Channels in the file, before dual-mono folding."""
    source_sample_rate: int
    dual_mono: bool = False
    """The file had several channels carrying the same signal; `samples` holds one of them."""

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[1]) / SAMPLE_RATE

    @property
    def file_backed(self) -> bool:
        return getattr(self.samples, "_mmap", None) is not None

    def release_pages(self) -> None:
        """See `release_pages`: call it as a stage moves on through a long call."""
        release_pages(self.samples)

    def mono(self) -> FloatArray:
        """One channel: the only one, or the mean of all (a copy only when there are several,
        file-backed like the samples, mixed a minute at a time)."""
        if self.channels == 1:
            mono: FloatArray = self.samples[0]
            return mono
        frames = self.samples.shape[1]
        mixed: FloatArray = allocate_samples(1, frames, file_backed=self.file_backed)[0]
        for start in range(0, frames, _RELEASE_EVERY):
            block = self.samples[:, start : start + _RELEASE_EVERY]
            mixed[start : start + block.shape[1]] = block.mean(axis=0, dtype=np.float32)
            release_pages(mixed)
            self.release_pages()
        return mixed


def iter_chunks(path: Path, *, sample_rate: int = SAMPLE_RATE) -> Iterator[FloatArray]:
    """Yield (channels, n) float32 blocks at `sample_rate`, one decoded frame at a time."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise AudioDecodeError(f"cannot open {path.name}: {error}") from error
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name} has no audio stream")
        stream = container.streams.audio[0]
        # Keep the source layout: stereo call recordings carry one party per channel.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().astype(np.float32, copy=False)
            for out in resampler.resample(None):
                yield out.to_ndarray().astype(np.float32, copy=False)
        except av.error.FFmpegError as error:
            raise AudioDecodeError(f"cannot decode {path.name}: {error}") from error


def probe(path: Path) -> tuple[int, int, float | None]:
    """(channels, sample rate, declared duration in seconds or None) without decoding."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path.name} has no audio stream")
            stream = container.streams.audio[0]
            duration: float | None = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            return stream.channels, stream.sample_rate, duration
    except (av.error.FFmpegError, OSError) as error:
        raise AudioDecodeError(f"cannot open {path.name}: {error}") from error


def decode_audio(
    path: Path,
    *,
    fold_dual_mono: bool = True,
    progress: Callable[[float, float], None] | None = None,
    spill_after_s: float = SPILL_AFTER_S,
) -> DecodedAudio:
    """Decode `path` to 16 kHz float32 per channel; fold identical channels into one.

    `progress(decoded_s, total_s)` is called about once per second of audio decoded: a
    long decode reports how far it got, and the caller may stop it by raising from there.
    Calls longer than `spill_after_s` are decoded into a file-backed array (module
    docstring)."""
    channels, source_rate, declared_s = probe(path)
    capacity = int((declared_s or 60.0) * SAMPLE_RATE) + SAMPLE_RATE
    file_backed = capacity > spill_after_s * SAMPLE_RATE
    out = allocate_samples(channels, capacity, file_backed=file_backed)
    filled = 0
    reported = 0
    released_at = 0
    for block in iter_chunks(path):
        if progress is not None and filled - reported >= SAMPLE_RATE:
            reported = filled
            progress(filled / SAMPLE_RATE, max(declared_s or 0.0, filled / SAMPLE_RATE))
        n = block.shape[1]
        if filled + n > capacity:
            capacity = max(filled + n, int(capacity * 1.5))
            file_backed = file_backed or capacity > spill_after_s * SAMPLE_RATE
            grown = allocate_samples(channels, capacity, file_backed=file_backed)
            grown[:, :filled] = out[:, :filled]
            out = grown
        out[:, filled : filled + n] = block
        filled += n
        if filled - released_at >= _RELEASE_EVERY:
            release_pages(out)
            released_at = filled
    if filled == 0:
        raise AudioDecodeError(f"{path.name} contains no audio samples")
    # A view, not a copy: the slack past `filled` is released with the array.
    samples = out[:, :filled]
    for start in range(0, filled, _RELEASE_EVERY):
        block = samples[:, start : start + _RELEASE_EVERY]
        np.clip(block, -1.0, 1.0, out=block)
        release_pages(samples)
    dual_mono = fold_dual_mono and channels > 1 and is_dual_mono(samples)
    if dual_mono:
        samples = samples[:1]
    return DecodedAudio(
        samples=samples,
        source_channels=channels,
        source_sample_rate=source_rate,
        dual_mono=dual_mono,
    )


def is_dual_mono(samples: FloatArray, *, min_correlation: float = _DUAL_MONO_CORRELATION) -> bool:
    """Whether every channel carries (nearly) the same signal as channel 0, up to gain.

    Accumulated block by block so no full-length temporary is ever allocated.
    """
    reference = samples[0]
    for other in samples[1:]:
        cross = energy_a = energy_b = 0.0
        for start in range(0, reference.shape[0], _DUAL_MONO_BLOCK):
            a = reference[start : start + _DUAL_MONO_BLOCK].astype(np.float64)
            b = other[start : start + _DUAL_MONO_BLOCK].astype(np.float64)
            cross += float(np.dot(a, b))
            energy_a += float(np.dot(a, a))
            energy_b += float(np.dot(b, b))
            release_pages(samples)
        if energy_a == 0.0 and energy_b == 0.0:
            continue
        if energy_a == 0.0 or energy_b == 0.0:
            return False
        if cross / np.sqrt(energy_a * energy_b) < min_correlation:
            return False
    return True
