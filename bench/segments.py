"""The segments users read against the diarization they come from: DER of each.

    .venv/bin/python -m bench.segments [--files NAME ...] [--backend neural]

Runs the speech pipeline (default configuration, automatic speaker count) on each shared
diarization file, then scores with pyannote.metrics (collar 0, overlap scored) both the
diarizer's speaker turns (`Transcript.speaker_turns`, what `ovozly process` writes as RTTM)
and the transcript's segments as an RTTM would hold them. Target: the segments' DER within
2 points of the diarizer's, per file and pooled. Results go to bench/results/segments-<ts>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TARGET_POINTS = 2.0
FILES = [
    "pyannote_sample",
    "pyannote_ami_dev00",
    "pyannote_ami_dev01",
    "pyannote_ami_tst00",
    "picovoice_falcon_test",
    "pyaa_diarizationExample",
    "pyaa_diarizationExample2",
]
RESULTS = Path(__file__).resolve().parent / "results"


def audio_dir() -> Path:
    return Path(os.environ.get("OVOZLY_TEST_AUDIO", "/work/shared/data/audio"))


def _annotation(spans: list[tuple[str, float, float]]) -> Any:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for index, (speaker, start, end) in enumerate(spans):
        if end > start:
            annotation[Segment(start, end), index] = speaker
    return annotation


def _reference(path: Path) -> Any:
    spans = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            spans.append((fields[7], start, start + duration))
    return _annotation(spans)


def measure(names: list[str], backend: str | None = None) -> dict[str, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline

    settings = PipelineSettings(_env_file=None)
    if backend:
        settings = settings.model_copy(update={"diarization_backend": backend})
    pipeline = SpeechPipeline(settings)
    pooled = {"turns": DiarizationErrorRate(collar=0.0, skip_overlap=False),
              "segments": DiarizationErrorRate(collar=0.0, skip_overlap=False)}  # fmt: skip
    files: list[dict[str, Any]] = []
    for name in names:
        wav = audio_dir() / f"{name}.wav"
        rttm = audio_dir() / f"{name}.rttm"
        if not wav.is_file() or not rttm.is_file():
            print(f"{name}: missing, skipped", file=sys.stderr)
            continue
        transcript = pipeline(wav)
        reference = _reference(rttm)
        turns = _annotation([(t.speaker, t.start_s, t.end_s) for t in transcript.speaker_turns])
        segments = _annotation([(s.speaker, s.start_s, s.end_s) for s in transcript.segments])
        row = {
            "file": name,
            "diarizer_der": round(100 * pooled["turns"](reference, turns), 2),
            "segments_der": round(100 * pooled["segments"](reference, segments), 2),
            "segments": len(transcript.segments),
            "empty_segments": sum(1 for s in transcript.segments if not s.text.strip()),
        }
        row["gap_points"] = round(row["segments_der"] - row["diarizer_der"], 2)
        files.append(row)
        print(
            f"{name:28s} diarizer {row['diarizer_der']:6.2f} %  segments "
            f"{row['segments_der']:6.2f} %  (gap {row['gap_points']:+.2f} points, target "
            f"<= {TARGET_POINTS:+.1f}; {row['segments']} segments, {row['empty_segments']} "
            "without words)",
            flush=True,
        )
    diarizer = 100 * abs(pooled["turns"])
    segments = 100 * abs(pooled["segments"])
    summary = {
        "pooled_diarizer_der": round(diarizer, 2),
        "pooled_segments_der": round(segments, 2),
        "pooled_gap_points": round(segments - diarizer, 2),
        "target_gap_points": TARGET_POINTS,
        "met": bool(
            all(abs(r["gap_points"]) <= TARGET_POINTS for r in files)
            and segments - diarizer <= TARGET_POINTS
        ),
    }
    print(
        f"pooled: diarizer {diarizer:.2f} %, segments {segments:.2f} % (gap "
        f"{segments - diarizer:+.2f} points; target <= {TARGET_POINTS:.1f}): "
        f"{'met' if summary['met'] else 'MISSED'}",
        flush=True,
    )
    return {"files": files, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="*", default=FILES)
    parser.add_argument("--backend", help="DIARIZATION_BACKEND for this run (default: settings)")
    args = parser.parse_args(argv if argv is not None else [])
    result = measure(args.files, args.backend)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"segments-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["summary"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
