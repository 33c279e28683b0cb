"""Call status events: what is published to Redis after each committed change of a call
(by the API and the worker alike, through one `StatusPublisher`), on one channel per call,
and what the `callStatus` subscription relays."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from app.db.models import Call, CallStatus, PipelineStage


def status_channel(call_id: object) -> str:
    """The one channel a call's status changes are published on."""
    return f"ovozly:call-status:{call_id}"


SUPERSEDES_KEY = "supersedes"
_SUPERSEDES_MARK = f'"{SUPERSEDES_KEY}": true'.encode()


def supersedes_queued(message: bytes) -> bool:
    """For the broadcaster, once per message (not per subscriber): whether this published
    event makes the events queued before it obsolete. A byte test on what `to_json` writes,
    so the hot path decodes nothing; any other payload (another channel's) is not."""
    return _SUPERSEDES_MARK in message


@dataclass(frozen=True, slots=True)
class StatusEvent:
    call_id: uuid.UUID
    status: CallStatus
    stage: PipelineStage
    progress: float
    error: str | None
    at: datetime
    deleted: bool = False
    """The call is gone: subscribers stop."""
    job: str | None = None
    """The job token the call had when this was published: events of a superseded job
    (published late, after a reprocess or recovery) are dropped by subscribers."""
    new_job: bool = False
    """The call was (re)queued under a new job token: every earlier event is obsolete."""

    @property
    def is_final(self) -> bool:
        return self.deleted or self.status is not CallStatus.RUNNING

    @property
    def supersedes_earlier(self) -> bool:
        """Whether every event published before this one is obsolete (the call is gone,
        finished, or runs under a new job): a subscriber's queued events are dropped."""
        return self.is_final or self.new_job

    @classmethod
    def of_deleted(cls, call: Call) -> StatusEvent:
        return replace(cls.of(call), deleted=True, at=datetime.now(UTC))

    @classmethod
    def of_new_job(cls, call: Call) -> StatusEvent:
        return replace(cls.of(call), new_job=True)

    @classmethod
    def of(cls, call: Call) -> StatusEvent:
        return cls(
            call_id=call.id,
            status=call.status,
            stage=call.stage,
            progress=call.progress,
            error=call.error,
            at=call.updated_at or datetime.now(UTC),
            job=call.job_id,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "callId": str(self.call_id),
                "status": self.status.value,
                "stage": self.stage.value,
                "progress": self.progress,
                "error": self.error,
                "at": self.at.isoformat(),
                "deleted": self.deleted,
                "job": self.job,
                "newJob": self.new_job,
                SUPERSEDES_KEY: self.supersedes_earlier,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> StatusEvent:
        data = json.loads(raw)
        return cls(
            call_id=uuid.UUID(data["callId"]),
            status=CallStatus(data["status"]),
            stage=PipelineStage(data["stage"]),
            progress=float(data["progress"]),
            error=data.get("error"),
            at=datetime.fromisoformat(data["at"]),
            deleted=bool(data.get("deleted", False)),
            job=data.get("job"),
            new_job=bool(data.get("newJob", False)),
        )


class StatusPublisher(Protocol):
    async def publish(self, event: StatusEvent) -> None:
        """After commit only: a subscriber that reloads the call must see this state."""
        ...


class RedisStatusPublisher:
    """Publishes on an ordinary pooled client; publishing needs no subscription."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, event: StatusEvent) -> None:
        await self._redis.publish(status_channel(event.call_id), event.to_json())
