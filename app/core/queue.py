"""A small job-queue interface of our own, so arq (in maintenance mode) stays swappable.

The API (which enqueues) and the worker (which re-enqueues stalled calls and asks whether a
job is alive) both receive a `JobQueue`; neither imports the other to reach the queue."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Protocol

from arq.connections import ArqRedis

PROCESS_CALL_JOB = "process_call"
EVALUATE_RULES_JOB = "evaluate_rules"
DELIVER_WEBHOOK_JOB = "deliver_webhook"
QUEUE_NAME = "ovozly:queue"
LONG_QUEUE_NAME = "ovozly:queue:long"
"""Calls longer than LONG_CALL_SECONDS wait here, served by a slot of their own in every
worker, so a 1-minute call never waits behind a 2-hour one."""


class JobState(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    UNKNOWN = "unknown"
    """Never enqueued, finished, or lost with Redis data."""


def new_job_token(call_id: uuid.UUID) -> str:
    """A fresh job id per processing request; a job whose id no longer matches the call's
    `job_id` has been superseded (reprocessed or recovered) and does nothing."""
    return f"call:{call_id}:{uuid.uuid4().hex[:12]}"


class JobQueue(Protocol):
    async def enqueue_process_call(
        self, call_id: uuid.UUID, job_token: str, duration_s: float | None = None
    ) -> None:
        """Queues the call's job; by `duration_s` on the short or the long queue."""
        ...

    async def enqueue_rule_evaluation(self, run_id: uuid.UUID) -> None: ...

    async def enqueue_webhook_delivery(
        self, delivery_id: uuid.UUID, attempt: int, *, defer_s: float = 0.0
    ) -> None: ...

    async def job_state(self, job_token: str) -> JobState:
        """Whether the job waits in the queue, has been started, or is unknown."""
        ...


class ArqJobQueue:
    def __init__(
        self,
        pool: ArqRedis,
        queue_name: str = QUEUE_NAME,
        *,
        long_queue_name: str = LONG_QUEUE_NAME,
        long_call_s: float | None = None,
    ) -> None:
        self._pool = pool
        self._queue_name = queue_name
        self._long_queue_name = long_queue_name
        self._long_call_s = long_call_s

    def queue_for(self, duration_s: float | None) -> str:
        is_long = (
            self._long_call_s is not None
            and duration_s is not None
            and duration_s > self._long_call_s
        )
        return self._long_queue_name if is_long else self._queue_name

    async def enqueue_process_call(
        self, call_id: uuid.UUID, job_token: str, duration_s: float | None = None
    ) -> None:
        await self._pool.enqueue_job(
            PROCESS_CALL_JOB,
            str(call_id),
            job_token,
            _job_id=job_token,
            _queue_name=self.queue_for(duration_s),
        )

    async def enqueue_rule_evaluation(self, run_id: uuid.UUID) -> None:
        await self._pool.enqueue_job(
            EVALUATE_RULES_JOB,
            str(run_id),
            _job_id=f"rules:{run_id}",
            _queue_name=self._queue_name,
        )

    async def enqueue_webhook_delivery(
        self, delivery_id: uuid.UUID, attempt: int, *, defer_s: float = 0.0
    ) -> None:
        # One job id per attempt: enqueueing the same attempt twice sends it once.
        await self._pool.enqueue_job(
            DELIVER_WEBHOOK_JOB,
            str(delivery_id),
            _job_id=f"webhook:{delivery_id}:{attempt}",
            _queue_name=self._queue_name,
            _defer_by=defer_s if defer_s > 0 else None,
        )

    async def job_state(self, job_token: str) -> JobState:
        from arq.constants import in_progress_key_prefix, job_key_prefix

        if await self._pool.exists(in_progress_key_prefix + job_token):
            return JobState.STARTED
        if await self._pool.exists(job_key_prefix + job_token):
            return JobState.QUEUED
        return JobState.UNKNOWN
