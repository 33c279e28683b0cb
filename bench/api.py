"""API benchmark: upload memory and nested-page cost.

    .venv/bin/python -m bench.api [--upload-mb 200] [--rounds 15]

Starts embedded PostgreSQL and Redis (app.dev.embedded), builds the schema with Alembic, and
runs the real API (`python -m app.cli.main api`, uvicorn) as a subprocess on 127.0.0.1. Then:

(a) uploads a generated WAV of `--upload-mb` MB through a streamed multipart request and
    samples the API process's RSS with psutil every 10 ms; target: peak increase < 50 MB;
(b) times nested `calls(first: 50)` against `calls(first: 5)` with every nested field on 50
    SUCCESS calls (results written by the calls service's save_results, as the worker does),
    interleaved in one run; target: median ratio < 2x;
(`callStatus` with many subscribers is bench.watchers; the big call detail is bench.transcript;
upload to SUCCESS through the worker is bench.worker.)

Results go to bench/results/api-<timestamp>.json and a table is printed. Runs in a few
minutes; everything stays on 127.0.0.1 and in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from arq import create_pool
from arq.connections import RedisSettings

from app.core.ids import parse_global_id
from app.core.queue import QUEUE_NAME, ArqJobQueue
from app.db.engine import SessionFactory, create_engine, create_session_factory
from app.db.migrations import upgrade_head
from app.db.models import Call, Role
from app.dev.embedded import EmbeddedServices, free_tcp_port
from app.services import calls as call_service
from app.services.effects import EffectTargets, unit_of_work
from app.services.status import RedisStatusPublisher
from app.storage import build_storage
from tests.factories import conversation_results, login, make_user

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = secrets.token_urlsafe(16)
UPLOAD_RSS_TARGET_MB = 50.0
NESTED_RATIO_TARGET = 2.0

UPLOAD = (
    "mutation($file: Upload!) { uploadCall(file: $file) "
    "{ id status stage durationSeconds sizeBytes sha256 } }"
)
NESTED = """
query($first: Int) { calls(first: $first) { totalCount edges { cursor node {
  id filename status stage progress error durationSeconds channels createdAt finishedAt
  agent { id username role }
  segments { speaker role channel start end text sentiment words { text start end confidence } }
  metrics { durationSeconds talkSeconds silenceSeconds overlapSeconds interruptions
            speakers { speaker role talkSeconds talkRatio wordsPerMinute turns } }
  analysis { language summary sentiment sentimentScore intents { name confidence }
             entities { type value speaker start } issues { title description }
             actions { description } keypoints { text } }
} } } }
"""


# --- helpers --------------------------------------------------------------------------------


def write_wav(path: Path, megabytes: int, sample_rate: int = 16000) -> Path:
    """A mono 16-bit tone of about `megabytes` MB, written in one-second blocks."""
    seconds = math.ceil(megabytes * 1024 * 1024 / (2 * sample_rate))
    t = np.arange(sample_rate) / sample_rate
    block = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        for _ in range(seconds):
            out.writeframesraw(block)
    return path


def small_wav(seconds: float = 0.5, sample_rate: int = 8000) -> bytes:
    import io

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class RssSampler:
    """Samples a process's RSS on a thread; `peak` is the largest value seen."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self._process = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self.rss()
        self.peak = self.baseline
        self.samples = 0

    def rss(self) -> int:
        value: int = self._process.memory_info().rss
        return value

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            time.sleep(self._interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@dataclass
class Api:
    base_url: str
    ws_url: str
    pid: int
    sessions: SessionFactory
    redis_url: str
    effects: EffectTargets
    results: dict[str, Any] = field(default_factory=dict)


@contextmanager
def api_process(
    root: Path, cpus: set[int] | None = None, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, str, int, str]]:
    """The API as a subprocess on embedded servers; `cpus` pins it (sched_setaffinity);
    `settings` are extra environment variables (e.g. a bench's connection limits)."""
    services = EmbeddedServices(root / "embedded")
    database_url, redis_url = services.start(None, None)
    process: subprocess.Popen[bytes] | None = None
    log = (root / "api.log").open("wb")
    try:
        upgrade_head(database_url)
        port = free_tcp_port()
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "JWT_KEY": secrets.token_urlsafe(48),
                "OVOZLY_DATA_DIR": str(root / "data"),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "OVOZLY_ENV": "development",
                "PYTHONUNBUFFERED": "1",
                **(settings or {}),
            }
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "api"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"API exited; see {root / 'api.log'}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API did not become ready in 60 s")
            time.sleep(0.2)
        yield base_url, database_url, process.pid, redis_url
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        services.stop()


async def make_users(sessions: SessionFactory) -> None:
    for name, role in (("bench-admin", Role.ADMIN), ("bench-agent", Role.AGENT)):
        await make_user(sessions, name, role, password=PASSWORD)


async def upload_bytes(
    client: httpx.AsyncClient, token: str, name: str, content: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (name, content, "audio/wav")},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"upload failed: {body['errors']}")
    call: dict[str, Any] = body["data"]["uploadCall"]
    return call


# --- (a) upload memory ----------------------------------------------------------------------


async def bench_upload(
    api: Api, client: httpx.AsyncClient, token: str, root: Path, mb: int
) -> None:
    path = write_wav(root / "big.wav", mb)
    size = path.stat().st_size
    await asyncio.sleep(1.0)  # let the API settle after start-up
    started = time.perf_counter()
    with RssSampler(api.pid) as sampler, path.open("rb") as handle:
        call = await upload_bytes(client, token, "big.wav", handle)
    elapsed = time.perf_counter() - started
    assert call["sizeBytes"] == size, call
    increase_mb = (sampler.peak - sampler.baseline) / (1024 * 1024)
    api.results["upload"] = {
        "file_mb": round(size / (1024 * 1024), 1),
        "seconds": round(elapsed, 2),
        "throughput_mb_s": round(size / (1024 * 1024) / elapsed, 1),
        "rss_baseline_mb": round(sampler.baseline / (1024 * 1024), 1),
        "rss_peak_mb": round(sampler.peak / (1024 * 1024), 1),
        "rss_peak_increase_mb": round(increase_mb, 1),
        "rss_samples": sampler.samples,
        "target_mb": UPLOAD_RSS_TARGET_MB,
        "pass": increase_mb < UPLOAD_RSS_TARGET_MB,
        "call": {k: call[k] for k in ("status", "stage", "durationSeconds")},
    }
    path.unlink()


# --- (b) nested page ratio ------------------------------------------------------------------


async def bench_nested(api: Api, client: httpx.AsyncClient, token: str, rounds: int) -> None:
    audio = small_wav()
    transcript, result = conversation_results()
    for n in range(50):
        call = await upload_bytes(client, token, f"call-{n}.wav", audio)
        _, call_id = parse_global_id(call["id"])
        async with unit_of_work(api.sessions, api.effects) as session:
            row = await session.get(Call, call_id)
            assert row is not None and row.job_id is not None
            saved = await call_service.save_results(
                session, call_id, row.job_id, transcript, result, analysis_backend="bench"
            )
            assert saved is not None
    headers = {"Authorization": f"Bearer {token}"}

    async def timed(first: int) -> float:
        started = time.perf_counter()
        response = await client.post(
            "/graphql", json={"query": NESTED, "variables": {"first": first}}, headers=headers
        )
        elapsed = time.perf_counter() - started
        body = response.json()
        assert not body.get("errors"), body.get("errors")
        assert len(body["data"]["calls"]["edges"]) == first
        return elapsed

    for first in (5, 50, 5, 50):  # warm-up
        await timed(first)
    zero: list[float] = []
    five: list[float] = []
    fifty: list[float] = []
    for _ in range(rounds):
        zero.append(await timed(0))
        five.append(await timed(5))
        fifty.append(await timed(50))
    ratio = statistics.median(fifty) / statistics.median(five)
    api.results["nested"] = {
        "rounds": rounds,
        "first0_median_ms": round(statistics.median(zero) * 1000, 1),
        "first5_median_ms": round(statistics.median(five) * 1000, 1),
        "first50_median_ms": round(statistics.median(fifty) * 1000, 1),
        "first5_p90_ms": round(percentile(five, 90) * 1000, 1),
        "first50_p90_ms": round(percentile(fifty, 90) * 1000, 1),
        "ratio_median": round(ratio, 2),
        "target_ratio": NESTED_RATIO_TARGET,
        "pass": ratio < NESTED_RATIO_TARGET,
        "segments_per_call": len(transcript.segments),
    }


# --- main -----------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, root: Path, base_url: str, database_url: str, pid: int, redis_url: str
) -> dict[str, Any]:
    if True:
        engine = create_engine(database_url, pool_size=2)
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            api = Api(
                base_url=base_url,
                ws_url=base_url.replace("http://", "ws://") + "/graphql",
                pid=pid,
                sessions=create_session_factory(engine),
                redis_url=redis_url,
                effects=EffectTargets(
                    queue=ArqJobQueue(pool, QUEUE_NAME),
                    publisher=RedisStatusPublisher(pool),
                    storage=build_storage("local", root / "data"),
                ),
            )
            await make_users(api.sessions)
            async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
                admin = await login(client, "bench-admin", PASSWORD)
                agent = await login(client, "bench-agent", PASSWORD)
                await bench_upload(api, client, admin, root, args.upload_mb)
                await bench_nested(api, client, agent, args.rounds)
            api.results["api_rss_end_mb"] = round(
                psutil.Process(pid).memory_info().rss / (1024 * 1024), 1
            )
            return api.results
        finally:
            await pool.aclose()
            await engine.dispose()


def print_table(results: dict[str, Any]) -> None:
    up, nested = results["upload"], results["nested"]
    rows = [
        ("upload size", f"{up['file_mb']} MB in {up['seconds']} s", ""),
        (
            "upload: API peak RSS increase",
            f"{up['rss_peak_increase_mb']} MB",
            f"< {up['target_mb']} MB: {'PASS' if up['pass'] else 'FAIL'}",
        ),
        ("nested calls(first: 0) median", f"{nested['first0_median_ms']} ms", "fixed cost"),
        ("nested calls(first: 5) median", f"{nested['first5_median_ms']} ms", ""),
        ("nested calls(first: 50) median", f"{nested['first50_median_ms']} ms", ""),
        (
            "ratio 50/5",
            f"{nested['ratio_median']}x",
            f"< {nested['target_ratio']}x: {'PASS' if nested['pass'] else 'FAIL'}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:>22}  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ovozly-bench-api-") as tmp:
        root = Path(tmp)
        # Migrations run their own event loop, so the servers start before ours does.
        with api_process(root) as (base_url, database_url, pid, redis_url):
            results = asyncio.run(run(args, root, base_url, database_url, pid, redis_url))
    results["when"] = datetime.now(UTC).isoformat()
    results["cpus"] = os.cpu_count()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"api-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
