"""Worker heartbeats in Redis: each worker says it is alive and whether its models passed
the start-up check; `/readyz` and `ovozly worker --healthcheck` read them.

One key per worker process, `ovozly:worker:<host>:<pid>`, holding a JSON record and a TTL.
A running worker refreshes it every `HEARTBEAT_INTERVAL_S`; a worker that dies simply stops
refreshing and its key expires after `HEARTBEAT_TTL_S`; one that stops cleanly deletes it.
A worker whose model check failed leaves a record saying so (for `FAILED_TTL_S`) before it
exits, so `/readyz` can tell "no worker yet" from "the workers cannot load their models".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "ovozly:worker:"
HEARTBEAT_INTERVAL_S = 10.0
HEARTBEAT_TTL_S = 30
FAILED_TTL_S = 300


@dataclass(slots=True)
class WorkerHeartbeat:
    worker_id: str
    host: str
    pid: int
    ready: bool
    """The worker's models passed the start-up check and it takes jobs."""
    device: str | None
    started_at: float
    refreshed_at: float
    error: str | None = None
    check: dict[str, Any] = field(default_factory=dict)
    """The self-check report (`SelfCheckReport.as_dict()`): models, load times, memory."""

    @classmethod
    def for_this_process(
        cls, *, ready: bool, device: str | None, check: dict[str, Any], error: str | None = None
    ) -> WorkerHeartbeat:
        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        return cls(f"{host}:{pid}", host, pid, ready, device, now, now, error, check)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.worker_id

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerHeartbeat:
        return cls(**json.loads(raw))

    def summary(self) -> dict[str, Any]:
        """What `/readyz` shows of one worker."""
        return {
            "id": self.worker_id,
            "ready": self.ready,
            "device": self.device,
            "ageS": round(max(time.time() - self.refreshed_at, 0.0), 1),
            "error": self.error,
        }


async def write_heartbeat(redis: Redis, heartbeat: WorkerHeartbeat, ttl_s: int) -> None:
    heartbeat.refreshed_at = time.time()
    await redis.set(heartbeat.key, heartbeat.to_json(), ex=ttl_s)


async def read_heartbeats(redis: Redis) -> list[WorkerHeartbeat]:
    """Every live worker's record (expired ones are gone), oldest start first."""
    keys = [key async for key in redis.scan_iter(match=KEY_PREFIX + "*", count=100)]
    if not keys:
        return []
    records: list[WorkerHeartbeat] = []
    for raw in await redis.mget(keys):
        if raw is None:
            continue  # expired between SCAN and MGET
        try:
            records.append(WorkerHeartbeat.from_json(raw))
        except (ValueError, TypeError):
            logger.warning("ignoring an unreadable worker heartbeat: %r", raw[:200])
    return sorted(records, key=lambda record: record.started_at)


class HeartbeatPublisher:
    """Keeps one worker's record fresh until stopped."""

    def __init__(self, redis: Redis, heartbeat: WorkerHeartbeat) -> None:
        self._redis = redis
        self.heartbeat = heartbeat
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await write_heartbeat(self._redis, self.heartbeat, HEARTBEAT_TTL_S)
        self._task = asyncio.create_task(self._refresh(), name="worker-heartbeat")

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                await write_heartbeat(self._redis, self.heartbeat, HEARTBEAT_TTL_S)
            except Exception:
                # Redis away for a moment: the key may lapse, readiness says so, and the
                # next refresh restores it.
                logger.warning("could not refresh the worker heartbeat", exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._redis.delete(self.heartbeat.key)


def workers_readiness(heartbeats: list[WorkerHeartbeat]) -> dict[str, Any]:
    """`/readyz`'s view of the workers: counts and one line per worker."""
    return {
        "ready": sum(1 for h in heartbeats if h.ready),
        "failing": sum(1 for h in heartbeats if not h.ready),
        "workers": [h.summary() for h in heartbeats],
    }
