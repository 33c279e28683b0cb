"""The redacted copy of a recording: every masked span replaced by a tone or by silence,
every other sample as decoded from the original.

The copy is FLAC, 16-bit, at the original's sample rate and channel layout: lossless, so
outside the spans a 16-bit original comes back sample for sample (a lossy copy would change
every sample), and about half the size of WAV. Both passes over the recording (finding the
keypad tones, writing the copy) decode it block by block, so memory does not grow with the
call's length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from app.ml.redaction.dtmf import DETECTION_RATE, DtmfDetector, KeyTone
from app.ml.speech.audio import iter_chunks, probe

REDACTED_CONTENT_TYPE = "audio/flac"
BEEP_HZ = 1000.0
BEEP_AMPLITUDE = 0.2
"""-14 dBFS: clearly a beep, not painful on a headset turned up for a quiet caller."""
RAMP_S = 0.005
"""The beep fades in and out over 5 ms so the edges do not click."""


class Fill(StrEnum):
    TONE = "tone"
    SILENCE = "silence"


def find_key_tones(path: Path) -> list[KeyTone]:
    """Every keypad tone in the recording, read at 8 kHz (all of DTMF lies below 1.7 kHz)."""
    detector = DtmfDetector()
    for block in iter_chunks(path, sample_rate=DETECTION_RATE):
        detector.feed(block)
    return detector.tones()


def _to_pcm16(block: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    # Scaled by 32768, the inverse of how decoders read 16-bit PCM, so a 16-bit original
    # round-trips exactly (libsndfile's own float conversion scales by 32767).
    scaled = np.rint(block.astype(np.float64) * 32768.0)
    pcm: npt.NDArray[np.int16] = np.clip(scaled, -32768, 32767).astype(np.int16)
    return pcm


def _fill(
    kind: Fill, start: int, stop: int, span_start: int, span_stop: int, rate: int
) -> npt.NDArray[np.float64]:
    """The replacement for samples [start, stop) of a span covering [span_start, span_stop)."""
    if kind is Fill.SILENCE:
        return np.zeros(stop - start)
    index = np.arange(start, stop, dtype=np.float64)
    beep = BEEP_AMPLITUDE * np.sin(2.0 * np.pi * BEEP_HZ * index / rate)
    ramp = max(1, int(RAMP_S * rate))
    envelope = np.minimum(1.0, np.minimum(index - span_start + 1, span_stop - index) / ramp)
    result: npt.NDArray[np.float64] = beep * envelope
    return result


def _blocks(source: Path, rate: int, *, block_s: float = 1.0) -> Iterator[npt.NDArray[np.float32]]:
    """The decoder's small frames gathered into blocks of about `block_s`."""
    pending: list[npt.NDArray[np.float32]] = []
    size = 0
    for frame in iter_chunks(source, sample_rate=rate):
        pending.append(frame)
        size += frame.shape[1]
        if size >= block_s * rate:
            yield np.concatenate(pending, axis=1)
            pending, size = [], 0
    if pending:
        yield np.concatenate(pending, axis=1)


def write_redacted_copy(
    source: Path,
    destination: Path,
    spans: Sequence[tuple[float, float]],
    *,
    fill: Fill = Fill.TONE,
) -> int:
    """Writes the copy; returns its sample rate. `spans` are (start_s, end_s) of the original."""
    channels, rate, _ = probe(source)
    bounds = sorted(
        (max(0, int(np.floor(start * rate))), int(np.ceil(end * rate)))
        for start, end in spans
        if end > start
    )
    position = 0
    next_span = 0
    with sf.SoundFile(
        str(destination), "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16"
    ) as out:
        for block in _blocks(source, rate):
            n = block.shape[1]
            while next_span < len(bounds) and bounds[next_span][1] <= position:
                next_span += 1
            masked = block
            for span_start, span_stop in bounds[next_span:]:
                if span_start >= position + n:
                    break
                start = max(span_start, position)
                stop = min(span_stop, position + n)
                if start >= stop:
                    continue
                if masked is block:
                    masked = block.copy()
                masked[:, start - position : stop - position] = _fill(
                    fill, start, stop, span_start, span_stop, rate
                )
            out.write(_to_pcm16(masked).T)
            position += n
    return rate
