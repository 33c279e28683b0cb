"""`ovozly worker --check` and `ovozly worker --healthcheck`.

`--check` loads every configured model on the configured device, runs each on a second of
generated speech-like audio and prints load time, device and memory; exit 0 when all pass.
It needs no database or Redis: run it on a fresh GPU machine before starting the worker.

`--healthcheck` is the container healthcheck: exit 0 when a worker on this host has a
fresh heartbeat in Redis saying its models passed the same check at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from app.ml.models.selfcheck import SelfCheckReport


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--check",
        action="store_true",
        help="load and run every configured model on ~1 s of generated audio; exit 0/1",
    )
    modes.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 when a worker on this host reports ready in Redis (container healthcheck)",
    )
    parser.add_argument("--json", action="store_true", help="with --check: a JSON report")


def run_check(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.models.selfcheck import run_self_check
    from app.ml.settings import PipelineSettings

    try:
        pipeline, analysis = PipelineSettings(), AnalysisSettings()
    except ValidationError as exc:
        print(f"error: the settings are invalid: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"Checking the models of this configuration (DEVICE={pipeline.device})...")
    report = run_self_check(pipeline, analysis)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.ok else 1


def print_report(report: SelfCheckReport, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    print(report.table(), file=out)
    print(("OK: " if report.ok else "") + report.summary(), file=out)
    if not report.ok:
        print(
            "Fix the models (`ovozly models list` shows what is missing; "
            "`ovozly models fetch` downloads it) or the DEVICE setting, then run this again.",
            file=out,
        )


def record_failed_check(redis_url: str | None, report: SelfCheckReport) -> None:
    """Leaves a failing heartbeat in Redis (when one is configured), so `/readyz` tells
    "the workers cannot load their models" apart from "no worker yet"."""
    from redis.asyncio import Redis

    from app.core.heartbeat import FAILED_TTL_S, WorkerHeartbeat, write_heartbeat

    if not redis_url:
        return
    heartbeat = WorkerHeartbeat.for_this_process(
        ready=False, device=report.device, check=report.as_dict(), error=report.summary()
    )

    async def write() -> None:
        redis = Redis.from_url(redis_url, socket_timeout=5)
        try:
            await write_heartbeat(redis, heartbeat, FAILED_TTL_S)
        finally:
            await redis.aclose()

    try:
        asyncio.run(write())
    except Exception as exc:
        print(f"(could not record the failed check in Redis: {exc})", file=sys.stderr)


def run_healthcheck(redis_url: str | None) -> int:
    from redis.asyncio import Redis

    from app.core.heartbeat import read_heartbeats

    if not redis_url:
        print("error: REDIS_URL is not set; the heartbeat lives in Redis", file=sys.stderr)
        return 1
    host = socket.gethostname()

    async def mine() -> list[bool]:
        redis = Redis.from_url(redis_url, socket_timeout=5)
        try:
            return [h.ready for h in await read_heartbeats(redis) if h.host == host]
        finally:
            await redis.aclose()

    try:
        states = asyncio.run(mine())
    except Exception as exc:
        print(f"unhealthy: Redis unreachable ({exc})", file=sys.stderr)
        return 1
    if any(states):
        print(f"healthy: a worker on {host} is ready")
        return 0
    reason = "its model check failed" if states else "no live heartbeat"
    print(f"unhealthy: worker on {host}: {reason}", file=sys.stderr)
    return 1
