"""What audio redaction costs per call: finding keypad tones and spoken numbers, and writing
the redacted copy, for calls of 30 s, 10 and 60 minutes built from the shared audio (a real
phone conversation repeated, 8 kHz stereo as a PBX records it, a card number keyed every
two minutes and one said every minute).

Reports seconds per call, the real-time factor (seconds of work per second of audio; the
speech pipeline's is about 0.065 on these machines) and the peak memory the step adds,
and checks every keyed digit was found. Target: at most 0.5 s per call plus 0.01 x real
time (a sixth of the pipeline's cost on a long call, a tenth of it on a 30 s call), and
memory that does not grow with the call's length.

    python -m bench.redaction [--minutes 0.5 10 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from app.ml.redaction.audio import Fill
from app.ml.redaction.dtmf import COLUMN_HZ, KEYS, ROW_HZ
from app.ml.redaction.recording import DTMF, redact_recording
from app.ml.types import Transcript, TranscriptSegment, Word

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RTF = 0.01
TARGET_FIXED_S = 0.5
RATE = 8000
KEYED = "8600123456789012"
CARD_WORDS = ["my", "card", "number", "is", "8600", "1234", "5678", "9012", "thank", "you"]


def audio_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
    return Path(os.environ.get("OVOZLY_TEST_AUDIO", default))


def _speech() -> npt.NDArray[np.float64]:
    from scipy.signal import resample_poly

    data, rate = sf.read(str(audio_dir() / "pyannote_sample.wav"), dtype="float64")
    narrow: npt.NDArray[np.float64] = resample_poly(data, RATE, rate)
    return narrow


def _keyed(rate: int) -> npt.NDArray[np.float64]:
    pieces = []
    for key in KEYED:
        row = next(i for i, keys in enumerate(KEYS) if key in keys)
        column = KEYS[row].index(key)
        t = np.arange(int(0.07 * rate)) / rate
        tone = 0.12 * (
            np.sin(2 * np.pi * ROW_HZ[row] * t) + np.sin(2 * np.pi * COLUMN_HZ[column] * t)
        )
        pieces += [tone, np.zeros(int(0.08 * rate))]
    return np.concatenate(pieces)


def build_call(path: Path, seconds: float) -> tuple[Transcript, int]:
    """Writes the call block by block; returns its transcript and how many keys it holds."""
    speech = _speech()
    keyed = _keyed(RATE)
    total = int(seconds * RATE)
    keys = 0
    segments: list[TranscriptSegment] = []
    with sf.SoundFile(str(path), "w", RATE, 2, subtype="PCM_16", format="WAV") as out:
        for start in range(0, total, speech.size):
            block = speech[: min(speech.size, total - start)]
            customer = block * 0.03
            minute = start / RATE
            if int(minute) % 120 < 30 and block.size > keyed.size + RATE:
                customer = customer.copy()
                customer[RATE : RATE + keyed.size] += keyed
                keys += len(KEYED)
            out.write(np.stack([block, customer]).T)
            first = start / RATE + 5.0
            if first + 6 < (start + block.size) / RATE:
                words = [
                    Word(text, first + i * 0.5, first + i * 0.5 + 0.4, 0.9)
                    for i, text in enumerate(CARD_WORDS)
                ]
                segments.append(
                    TranscriptSegment(
                        "SPEAKER_01", first, words[-1].end_s, " ".join(CARD_WORDS), words=words
                    )
                )
    return Transcript(segments=segments, duration_s=seconds), keys


class PeakRss:
    """The process's resident memory sampled every 20 ms while a step runs."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _current_kib(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() // 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self._current_kib())
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self.base_kib = self._current_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(seconds: float) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="ovozly-bench-redaction-") as directory:
        source = Path(directory) / "call.wav"
        transcript, keys = build_call(source, seconds)
        copy = Path(directory) / "redacted.flac"
        with PeakRss() as memory:
            started = time.perf_counter()
            result = redact_recording(source, copy, transcript, fill=Fill.TONE)
            elapsed = time.perf_counter() - started
        found = sum(1 for r in result.redactions if r.type == DTMF)
        return {
            "audio_s": seconds,
            "total_s": round(elapsed, 3),
            "detect_s": round(result.detect_s, 3),
            "write_s": round(result.write_s, 3),
            "rtf": round(elapsed / seconds, 5),
            "peak_added_mib": round((memory.peak_kib - memory.base_kib) / 1024, 1),
            "keys": keys,
            "keys_found": found,
            "spoken_spans": sum(1 for r in result.redactions if r.type != DTMF),
            "original_mb": round(source.stat().st_size / 1e6, 1),
            "copy_mb": round(copy.stat().st_size / 1e6, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, nargs="+", default=[0.5, 10, 60])
    args = parser.parse_args(argv if argv is not None else [])
    if not (audio_dir() / "pyannote_sample.wav").is_file():
        print(f"shared audio not found at {audio_dir()} (set OVOZLY_TEST_AUDIO); skipped")
        return 0
    figures = [measure(minutes * 60) for minutes in args.minutes]
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"redaction-{stamp}.json").write_text(json.dumps(figures, indent=2))
    ok = True
    for row in figures:
        budget = TARGET_FIXED_S + TARGET_RTF * row["audio_s"]
        fine = row["total_s"] <= budget and row["keys_found"] == row["keys"]
        ok = ok and fine
        print(
            f"{row['audio_s'] / 60:g} min: {row['total_s']} s (find {row['detect_s']} s, write "
            f"{row['write_s']} s; target <= {budget:.2f} s), RTF {row['rtf']}, peak +"
            f"{row['peak_added_mib']} MiB, keys {row['keys_found']}/{row['keys']}, spoken spans "
            f"{row['spoken_spans']}, copy {row['copy_mb']} MB of {row['original_mb']} MB"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
