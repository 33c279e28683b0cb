"""Seconds from upload to answer, through the real API and worker.

    .venv/bin/python -m bench.worker [--calls 3] [--long-minutes 60] [--four-hours]
                                     [--skip-long] [--no-peer] [--worker-log PATH]

Starts embedded PostgreSQL and Redis, the API (`python -m app.cli.main api`) and one worker
(`python -m app.cli.main worker`, default configuration) as subprocesses, then:

- worker start-up to ready (its heartbeat in `/readyz`, models loaded; target < 5 s), then
  the first 30 s call (`pyannote_sample.wav`): start-up to SUCCESS;
- `--calls` more uploads of it to the now warm worker, one after the other: upload to SUCCESS
  (the status polled every 50 ms). Target: the median at most 0.11 x the call's duration;
- a `--long-minutes` call built from the shared clips: upload to SUCCESS as a real-time
  factor (target <= 0.07) and the worker's peak RSS (target < 1.5 GB), and with
  `--four-hours` the same for a 4-hour call (its peak RSS < 1.5 GB too);
- the peer beside each of those calls, in the same run: faster-whisper alone transcribing
  the same file (`WhisperModel.transcribe` with word timestamps and its VAD, the worker's
  English model, compute type and thread count, in a subprocess with the model loaded
  first), with its own default beam (5) and with the worker's CPU beam (1). `--no-peer`
  leaves it out.

The worker's RSS is sampled every 50 ms throughout. Results go to
bench/results/worker-<timestamp>.json. With only 2 shared cores, compare ratios.
`--skip-long` measures start-up and the 30 s calls only (the 60-minute call takes ~5 min);
`--worker-log` keeps the worker's log (timestamped lines: where start-up time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from app.db.engine import create_engine, create_session_factory
from bench.api import PASSWORD, RssSampler, api_process, make_users, upload_bytes
from tests.factories import login

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
AUDIO = Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO.parent / "shared" / "data" / "audio"))
SHORT_CALL = AUDIO / "pyannote_sample.wav"
SHORT_TARGET = 0.11
LONG_RTF_TARGET = 0.07
PEER_BEAMS = (5, 1)
"""faster-whisper's own default beam (what a user running it alone gets), then the beam the
worker decodes with on CPU."""
RSS_TARGET_MB = 1536.0
STATUS = "query($id: ID!) { call(id: $id) { status stage progress error durationSeconds } }"


@contextmanager
def worker_process(root: Path, database_url: str, redis_url: str) -> Iterator[int]:
    """One worker with the default configuration, sharing the API's servers and storage."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "OVOZLY_DATA_DIR": str(root / "data"),
            "OVOZLY_ENV": "development",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with (root / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def say(message: str) -> None:
    print(f"bench.worker: {message}", file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def peer_child(path: Path, beam_size: int, repeats: int = 1) -> dict[str, Any]:
    """faster-whisper alone on `path`, as a user would run it: the worker's English model,
    compute type and threads; seconds from the file to the last word (decoding the audio
    included, loading the model not: the worker is warm too), the median of `repeats`."""
    from faster_whisper import WhisperModel

    from app.ml.compute import effective_threads
    from app.ml.settings import PipelineSettings
    from app.ml.stt.faster_whisper_backend import BUNDLED_MODEL_NAME, bundled_model_dir
    from bench.diarization import peak_rss_mb

    settings = PipelineSettings()
    compute_type = "int8" if settings.stt_compute_type == "auto" else settings.stt_compute_type
    threads = effective_threads(settings.cpu_threads)
    model = WhisperModel(
        str(bundled_model_dir()), device="cpu", compute_type=compute_type, cpu_threads=threads
    )
    runs: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        segments, info = model.transcribe(
            str(path), beam_size=beam_size, word_timestamps=True, vad_filter=True
        )
        words = sum(len(segment.words or []) for segment in segments)
        runs.append(time.perf_counter() - started)
    seconds = statistics.median(runs)
    return {
        "model": BUNDLED_MODEL_NAME,
        "compute_type": compute_type,
        "threads": threads,
        "beam_size": beam_size,
        "seconds": round(seconds, 2),
        "rtf": round(seconds / info.duration, 4),
        "words": words,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def peer(path: Path, repeats: int = 1) -> list[dict[str, Any]]:
    """The peer on `path`, one subprocess per beam, while the worker sits idle."""
    rows = []
    for beam_size in PEER_BEAMS:
        child = ["--peer-child", str(path), str(beam_size), str(repeats)]
        result = subprocess.run(
            [sys.executable, "-m", "bench.worker", *child],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        say(f"peer on {path.name}, beam {beam_size}: {rows[-1]['seconds']} s")
    return rows


async def until_worker_ready(
    client: httpx.AsyncClient, started: float, timeout_s: float
) -> float | None:
    """Seconds from `started` until `/readyz?require_worker=true` says a worker has loaded
    its models (the heartbeat in Redis); None when this API reports no worker readiness."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await client.get("/readyz", params={"require_worker": "true"})
        if "workers" not in response.json():
            return None
        if response.status_code == 200:
            return round(time.perf_counter() - started, 2)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no worker ready after {timeout_s} s")


async def until_final(
    client: httpx.AsyncClient, token: str, call_id: str, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.post(
            "/graphql",
            json={"query": STATUS, "variables": {"id": call_id}},
            headers={"Authorization": f"Bearer {token}"},
        )
        call: dict[str, Any] = response.json()["data"]["call"]
        if call["status"] != "RUNNING":
            if call["status"] != "SUCCESS":
                raise RuntimeError(f"call {call_id} ended {call['status']}: {call['error']}")
            return call
        if time.monotonic() > deadline:
            raise RuntimeError(f"call {call_id} still {call['stage']} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def upload_to_success(
    client: httpx.AsyncClient, token: str, path: Path, timeout_s: float
) -> tuple[float, float]:
    """Seconds from the start of the upload to SUCCESS seen, and the call's duration."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        call = await upload_bytes(client, token, path.name, handle)
    final = await until_final(client, token, call["id"], timeout_s)
    return time.perf_counter() - started, float(final["durationSeconds"])


async def run(
    args: argparse.Namespace, root: Path, base_url: str, database_url: str, redis_url: str
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        await make_users(create_session_factory(engine))
    finally:
        await engine.dispose()
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        token = await login(client, "bench-agent", PASSWORD)
        started = time.perf_counter()
        with worker_process(root, database_url, redis_url) as pid:
            with RssSampler(pid, interval_s=0.05) as rss:
                ready_s = await until_worker_ready(client, started, timeout_s=600)
                results["worker_start_to_ready_s"] = ready_s
                # CPU seconds, unlike wall time, barely move with other work on the machine.
                results["worker_cpu_to_ready_s"] = round(cpu_s(pid), 2)
                if ready_s is not None:
                    say(f"worker ready {ready_s} s after start")
                cpu_before = cpu_s(pid)
                first_s, duration = await upload_to_success(client, token, SHORT_CALL, 600)
                results["first_call_after_start_s"] = round(time.perf_counter() - started, 2)
                # The first call's CPU includes the analysis models' load, which overlaps it.
                results["first_call_worker_cpu_s"] = round(cpu_s(pid) - cpu_before, 2)
                say(f"first call SUCCESS {results['first_call_after_start_s']} s after start")
                warm: list[float] = []
                warm_cpu: list[float] = []
                for _ in range(args.calls):
                    cpu_before = cpu_s(pid)
                    seconds, duration = await upload_to_success(client, token, SHORT_CALL, 600)
                    warm.append(seconds)
                    warm_cpu.append(cpu_s(pid) - cpu_before)
                    say(f"warm call: {seconds:.2f} s, worker CPU {warm_cpu[-1]:.2f} s")
            median = statistics.median(warm)
            results["short"] = {
                "file": SHORT_CALL.name,
                "duration_s": round(duration, 2),
                "first_upload_to_success_s": round(first_s, 2),
                "warm_upload_to_success_s": [round(s, 2) for s in warm],
                "warm_median_s": round(median, 2),
                "warm_ratio": round(median / duration, 3),
                # CPU seconds the worker spent per call (all its threads): unlike wall time,
                # barely inflated by other work on a shared machine.
                "warm_worker_cpu_s": round(statistics.median(warm_cpu), 2),
                "target_ratio": SHORT_TARGET,
                "pass": median / duration <= SHORT_TARGET,
                "worker_peak_rss_mb": round(rss.peak / 2**20, 1),
            }
            if args.peer:
                results["short"]["peer"] = peer(SHORT_CALL, repeats=max(args.calls, 1))
            long_runs = [(f"long_{args.long_minutes:g}min", args.long_minutes)]
            if args.four_hours:
                long_runs.append(("long_4h", 240.0))
            for name, minutes in long_runs:
                if minutes <= 0:
                    continue
                from bench.pipeline import build_long_call

                path = root / f"{name}.flac"
                build_long_call(path, minutes)
                with RssSampler(pid, interval_s=0.05) as rss:
                    cpu_before = cpu_s(pid)
                    seconds, duration = await upload_to_success(
                        client, token, path, timeout_s=minutes * 60
                    )
                    cpu = cpu_s(pid) - cpu_before
                say(f"{name}: {seconds:.1f} s, worker CPU {cpu:.1f} s")
                peer_rows = peer(path) if args.peer else None
                path.unlink()
                rtf = seconds / duration
                results[name] = {
                    "duration_s": round(duration, 1),
                    "upload_to_success_s": round(seconds, 1),
                    "rtf": round(rtf, 4),
                    "worker_cpu_s": round(cpu, 1),
                    "target_rtf": LONG_RTF_TARGET,
                    "rtf_pass": rtf <= LONG_RTF_TARGET,
                    "worker_peak_rss_mb": round(rss.peak / 2**20, 1),
                    "target_rss_mb": RSS_TARGET_MB,
                    "rss_pass": rss.peak / 2**20 < RSS_TARGET_MB,
                }
                if peer_rows is not None:
                    results[name]["peer"] = peer_rows
    return results


def peer_rows(
    call: str, worker_s: float, peers: list[dict[str, Any]] | None
) -> list[tuple[str, str, str]]:
    """Table rows: the peer's seconds on the call beside the worker's upload to SUCCESS."""
    return [
        (
            f"{call}: faster-whisper alone, beam {row['beam_size']}",
            f"{row['seconds']} s",
            f"RTF {row['rtf']}; worker upload -> SUCCESS {worker_s} s = "
            f"{worker_s / row['seconds']:.2f} x it; peak RSS {row['peak_rss_mb']} MB",
        )
        for row in peers or []
    ]


def print_table(results: dict[str, Any]) -> None:
    short = results["short"]
    ready = results["worker_start_to_ready_s"]
    rows = [
        (
            "worker start -> ready (models loaded)",
            "n/a" if ready is None else f"{ready} s",
            "target < 5 s" + ("" if ready is None else f": {'PASS' if ready < 5 else 'FAIL'}"),
        ),
        ("worker CPU, start -> ready", f"{results['worker_cpu_to_ready_s']} s", "all threads"),
        ("worker start -> first 30 s call SUCCESS", f"{results['first_call_after_start_s']} s", ""),
        (
            "first call after ready: upload -> SUCCESS",
            f"{short['first_upload_to_success_s']} s",
            f"worker CPU {results['first_call_worker_cpu_s']} s (with the analysis models' load)",
        ),
        (
            "warm worker: upload -> SUCCESS, 30 s call",
            f"{short['warm_median_s']} s",
            f"{short['warm_ratio']} x duration, target <= {short['target_ratio']}: "
            f"{'PASS' if short['pass'] else 'FAIL'}",
        ),
        ("worker CPU per warm 30 s call", f"{short['warm_worker_cpu_s']} s", "all threads"),
        ("worker peak RSS, 30 s calls", f"{short['worker_peak_rss_mb']} MB", ""),
    ]
    for name, row in results.items():
        if not name.startswith("long_"):
            continue
        rows += [
            (
                f"{name}: upload -> SUCCESS",
                f"RTF {row['rtf']}",
                f"target <= {row['target_rtf']}: {'PASS' if row['rtf_pass'] else 'FAIL'}",
            ),
            (
                f"{name}: worker peak RSS",
                f"{row['worker_peak_rss_mb']} MB",
                f"< {row['target_rss_mb']:.0f} MB: {'PASS' if row['rss_pass'] else 'FAIL'}",
            ),
        ]
    rows += peer_rows("30 s call", short["warm_median_s"], short.get("peer"))
    for name, row in results.items():
        if name.startswith("long_"):
            rows += peer_rows(name, row["upload_to_success_s"], row.get("peer"))
    width = max(len(r[0]) for r in rows)
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:>12}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--four-hours", action="store_true")
    parser.add_argument(
        "--skip-long", action="store_true", help="no long calls: start-up and 30 s calls only"
    )
    parser.add_argument("--worker-log", type=Path, help="copy the worker's log here")
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="no faster-whisper-alone runs"
    )
    parser.add_argument("--peer-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_child:
        path, beam_size, repeats = args.peer_child
        print(json.dumps(peer_child(Path(path), int(beam_size), int(repeats))))
        return 0
    if args.skip_long:
        args.long_minutes, args.four_hours = 0.0, False
    with tempfile.TemporaryDirectory(prefix="ovozly-bench-worker-") as tmp:
        root = Path(tmp)
        with api_process(root) as (base_url, database_url, _pid, redis_url):
            try:
                results = asyncio.run(run(args, root, base_url, database_url, redis_url))
            finally:
                if args.worker_log is not None and (root / "worker.log").is_file():
                    shutil.copyfile(root / "worker.log", args.worker_log)
    results["when"] = datetime.now(UTC).isoformat()
    results["cpus"] = os.cpu_count()
    results["machine_note"] = "2-core machine shared with other work; compare ratios"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"worker-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
