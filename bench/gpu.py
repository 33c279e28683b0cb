"""GPU benchmark: the speech pipeline with DEVICE=cuda on the bundled models.

    make bench-gpu            # or: .venv/bin/python -m bench.gpu [--long-minutes 60]

Fails loudly, with exit status 2 and the reason on stderr, when CUDA is not usable: no
NVIDIA driver (nvidia-smi), a CPU-only torch, or a CTranslate2 that sees no CUDA device.
Otherwise it builds the pipeline with DEVICE=cuda, then reports for the 30 s call (first and
next job) and a long call built from the shared clips: real-time factor, the STT compute type
actually chosen (float16 / int8_float16 / int8), and GPU memory (peak of the process as
nvidia-smi sees it, which includes CTranslate2, plus torch's own peak allocation). No network;
a hard deadline keeps it under 8 minutes. Not part of `make bench` (CI has no GPU).
Results go to bench/results/gpu-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
AUDIO = Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO.parent / "shared" / "data" / "audio"))
RESULTS = Path(__file__).resolve().parent / "results"
DEADLINE_S = 8 * 60
NO_CUDA_EXIT = 2


@dataclass
class CudaCheck:
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def check_cuda() -> CudaCheck:
    """Everything DEVICE=cuda needs, each missing piece named with its remedy."""
    check = CudaCheck()
    smi = shutil.which("nvidia-smi")
    if smi is None:
        check.problems.append(
            "nvidia-smi not found: no NVIDIA driver on this machine (or the container was "
            "started without the NVIDIA runtime)"
        )
    else:
        try:
            gpus = subprocess.run(
                [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            check.facts["gpus"] = gpus.splitlines()
            if not gpus:
                check.problems.append("nvidia-smi lists no GPU")
        except (subprocess.SubprocessError, OSError) as error:
            check.problems.append(f"nvidia-smi failed: {error}")
    try:
        import torch

        check.facts["torch"] = torch.__version__
        check.facts["torch_cuda"] = torch.version.cuda
        if not torch.cuda.is_available():
            check.problems.append(
                f"torch {torch.__version__} sees no CUDA GPU"
                + (
                    " (a CPU-only build: install the CUDA build of torch)"
                    if torch.version.cuda is None
                    else ""
                )
            )
    except ImportError as error:
        check.problems.append(f"torch cannot be imported: {error}")
    try:
        import ctranslate2

        count = ctranslate2.get_cuda_device_count()
        check.facts["ctranslate2"] = ctranslate2.__version__
        check.facts["ctranslate2_cuda_devices"] = count
        if count == 0:
            check.problems.append(
                "CTranslate2 (faster-whisper) sees no CUDA device: check the driver and the "
                "CUDA 12 / cuDNN 9 libraries"
            )
    except ImportError as error:
        check.problems.append(f"ctranslate2 cannot be imported: {error}")
    return check


class GpuMemorySampler:
    """Peak GPU memory of this process per nvidia-smi (CTranslate2 included), every 0.2 s."""

    def __init__(self) -> None:
        self.peak_mib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        output = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        used = 0
        for line in output.splitlines():
            pid, _, memory = line.partition(",")
            if pid.strip() == str(os.getpid()):
                used += int(memory.strip().split()[0])
        return used

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._sample())
            self._stop.wait(0.2)

    def __enter__(self) -> GpuMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _deadline(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"bench-gpu ran past its {DEADLINE_S} s deadline")


def _compute_type(pipeline: Any) -> str:
    """What CTranslate2 actually runs (float16 on most GPUs, int8_float16 if asked, ...)."""
    stt = pipeline.stt
    model = getattr(getattr(stt, "_model", None), "model", None)
    chosen = getattr(model, "compute_type", None)
    return str(chosen) if chosen else f"{type(stt).__name__}: not a CTranslate2 model"


def run(long_minutes: float) -> dict[str, Any]:
    import torch

    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline
    from bench.pipeline import build_long_call

    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    with GpuMemorySampler() as memory:
        started = time.perf_counter()
        pipeline = SpeechPipeline(PipelineSettings(_env_file=None, device="cuda"))
        report["load_s"] = round(time.perf_counter() - started, 2)
        report["device"] = pipeline.device
        report["stt_compute_type"] = _compute_type(pipeline)
        files = {"pyannote_sample_30s": AUDIO / "pyannote_sample.wav"}
        if long_minutes > 0:
            long_path = RESULTS / "long_call_gpu.flac"
            build_long_call(long_path, long_minutes)
            files[f"long_{long_minutes:g}min"] = long_path
        speed: dict[str, Any] = {}
        for name, path in files.items():
            first = time.perf_counter()
            transcript = pipeline(path)
            second = time.perf_counter()
            pipeline(path)
            done = time.perf_counter()
            speed[name] = {
                "duration_s": round(transcript.duration_s, 1),
                "rtf": round((second - first) / transcript.duration_s, 4),
                "rtf_warm": round((done - second) / transcript.duration_s, 4),
                "segments": len(transcript.segments),
            }
        report["speed"] = speed
    report["gpu_peak_process_mib"] = memory.peak_mib
    report["torch_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    report["torch_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"device {report['device']}, STT compute type {report['stt_compute_type']}")
    print(f"pipeline load {report['load_s']} s")
    for name, row in report["speed"].items():
        print(
            f"  {name:22s} {row['duration_s']:8.1f} s audio  RTF {row['rtf']:.4f} "
            f"(next job {row['rtf_warm']:.4f})"
        )
    print(
        f"GPU memory: process peak {report['gpu_peak_process_mib']} MiB (nvidia-smi), "
        f"torch peak allocated {report['torch_peak_allocated_mib']} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    check = check_cuda()
    if check.problems:
        print("bench-gpu: CUDA is not available, nothing was measured.", file=sys.stderr)
        for problem in check.problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"  found: {json.dumps(check.facts)}", file=sys.stderr)
        return NO_CUDA_EXIT
    # No network: the bundled models only, and a hub lookup would be an error here.
    os.environ["HF_HUB_OFFLINE"] = "1"
    signal.signal(signal.SIGALRM, _deadline)
    signal.alarm(DEADLINE_S)
    try:
        report = run(args.long_minutes)
    finally:
        signal.alarm(0)
    report["cuda"] = check.facts
    report["when"] = datetime.now(UTC).isoformat()
    out = RESULTS / f"gpu-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
