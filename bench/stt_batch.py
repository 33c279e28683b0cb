"""Whisper batch size on CPU: speed against memory.

    .venv/bin/python -m bench.stt_batch [--minutes 10] [--sizes 1,2,4,8]

The bundled Whisper tiny.en transcribes the speech of a call built from the shared clips
(`bench.pipeline.build_long_call`, VAD regions, 300 s chunks as the pipeline sends them)
once per `STT_BATCH_SIZE`, each in its own process on 2 threads, one after the other:
wall and CPU seconds, peak RSS above the loaded model, and the words found. The default
(`STT_BATCH_SIZE`) trades the memory of a larger decoder batch for speed; the encoder and
word alignment run one item at a time on CPU whatever the batch (their attention memory
grows with the batch, their speed does not). Results go to bench/results/stt_batch-<ts>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
THREADS = 2

MEASURE = """
import json, resource, sys, time
from pathlib import Path
import numpy as np
from app.ml.speech.audio import decode_audio
from app.ml.speech.pipeline import TRANSCRIBE_CHUNK_SPEECH_S, chunk_regions
from app.ml.settings import PipelineSettings
from app.ml.stt.faster_whisper_backend import FasterWhisperStt
from app.ml.speech.vad import SileroVad
signal = np.asarray(decode_audio(Path(sys.argv[1])).mono())
regions = SileroVad()(signal)
settings = PipelineSettings(
    _env_file=None, device="cpu", cpu_threads=int(sys.argv[3]), stt_batch_size=int(sys.argv[2])
)
stt = FasterWhisperStt.from_settings(settings, "cpu")
loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu = time.perf_counter(), time.process_time()
words = 0
for chunk in chunk_regions(regions, TRANSCRIBE_CHUNK_SPEECH_S):
    words += len(stt.transcribe(signal, regions=chunk, language="en").words)
print(json.dumps({
    "speech_s": round(sum(end - start for start, end in regions), 1),
    "wall_s": round(time.perf_counter() - started, 2),
    "cpu_s": round(time.process_time() - cpu, 2),
    "peak_above_loaded_mb": round(
        (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - loaded_kb) / 1024, 1
    ),
    "words": words,
}))
"""


def measure(path: Path, batch_size: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(batch_size), str(THREADS)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=REPO,
    )
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    row["batch_size"] = batch_size
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stt_batch")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sizes", default="1,2,4,8")
    args = parser.parse_args(argv if argv is not None else [])
    from bench.pipeline import build_long_call

    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ovozly-bench-stt-batch-") as tmp:
        path = Path(tmp) / "call.flac"
        build_long_call(path, args.minutes)
        rows = [measure(path, size) for size in sizes]
    sequential = next((row for row in rows if row["batch_size"] == 1), None)
    for row in rows:
        if sequential is not None:
            row["speed_vs_sequential"] = round(sequential["wall_s"] / row["wall_s"], 2)
    report = {
        "minutes": args.minutes,
        "threads": THREADS,
        "rows": rows,
        "when": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"stt_batch-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Whisper tiny.en over a {args.minutes:g}-minute call's speech, {THREADS} threads:")
    for row in rows:
        print(
            f"  STT_BATCH_SIZE {row['batch_size']}: {row['wall_s']:6.1f} s wall, "
            f"{row['cpu_s']:6.1f} s CPU, x{row.get('speed_vs_sequential', 1.0):.2f} vs 1, "
            f"peak +{row['peak_above_loaded_mb']:.0f} MB above the loaded model, "
            f"{row['words']} words ({row['speech_s']:.0f} s speech)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
