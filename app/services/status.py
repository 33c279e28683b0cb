"""Call status events: what is published to Redis after each committed change of a call
(by the API and the worker alike, through one `StatusPublisher`), on one channel per call,
and what the `callStatus` subscription relays."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Protocol, TypeVar

from redis.asyncio import Redis

from app.core.errors import NotFound
from app.db.models import Call, CallStatus, PipelineStage
from app.services.broadcast import FeedInterrupted, MessagesLost, StatusBroadcaster


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


class StatusView(Protocol):
    """What a subscriber is sent for one state: the stream reads only the state back."""

    @property
    def state(self) -> StatusEvent: ...


View = TypeVar("View", bound=StatusView)
Present = Callable[[StatusEvent, Call | None, bool], View]
"""(state, the call as just read or None, live) -> what subscribers are sent; `live` is
False for the last state repeated while the feed is interrupted."""


async def follow_call_status(
    broadcaster: StatusBroadcaster,
    call_id: uuid.UUID,
    read_call: Callable[[], Awaitable[Call]],
    present: Present[View],
) -> AsyncGenerator[View, None]:
    """The rules of the status stream: first the current state, then every change worth
    sending, ending after SUCCESS or FAIL. `read_call` reads the call as the viewer may see
    it (NOT_FOUND otherwise). Events of the same message are presented once per process and
    shared by its subscribers (`StatusBroadcaster.shared`)."""
    channel = status_channel(call_id)
    # Subscribe before reading the state, so no change can fall in between.
    async with broadcaster.subscribe(channel) as messages:
        current = await read_call()
        # Held until the next message: while any subscriber holds an update, the others
        # share it (see StatusBroadcaster.shared).
        update = present(StatusEvent.of(current), current, True)
        last = update.state
        # The job whose events are relayed: a late event of a superseded one is dropped.
        job = current.job_id
        yield update
        if last.is_final:
            return
        interrupted = False
        async for message in messages:
            if isinstance(message, FeedInterrupted):
                # Redis is gone: say so at once with the last state sent (the database may
                # be unreachable too), and keep the subscription open.
                interrupted = True
                yield present(last, None, False)
                continue
            if isinstance(message, MessagesLost):
                # Some events were dropped: the database has the current state.
                current = await read_call()
                job = current.job_id
                update = present(StatusEvent.of(current), current, True)
                if interrupted:
                    # The feed is back: said even when nothing changed meanwhile.
                    interrupted = False
                    last = update.state
                    yield update
                    if last.is_final:
                        return
                    continue
            else:
                update = broadcaster.shared(
                    channel, message, partial(_present_message, present, message)
                )
            event = update.state
            if event.deleted:
                raise NotFound("Call")
            if event.job != job:
                if not event.new_job:
                    continue  # published late by a job that no longer holds the call
                # Re-queued: the database says which job holds the call now (two requeues
                # may be announced out of order).
                job = (await read_call()).job_id
                if event.job != job:
                    continue
            if not is_news(event, last):
                continue
            last = event
            yield update
            if event.is_final:
                _hold_for_the_others(update)
                return


def is_news(event: StatusEvent, last: StatusEvent) -> bool:
    """Drops duplicates (the state read at subscribe time may arrive again as a message)
    and progress that is older than what the subscriber has already seen."""
    if event.status != last.status:
        return True
    return (event.stage, event.progress, event.error) != (
        last.stage,
        last.progress,
        last.error,
    ) and (event.stage != last.stage or event.progress >= last.progress)


def _present_message(present: Present[View], message: bytes) -> View:
    return present(StatusEvent.from_json(message), None, True)


def _hold_for_the_others(update: object) -> None:
    """A subscriber that ends with the final event drops the shared update at once; when
    its selection needs no I/O it may do so before the other subscribers of the call have
    taken the same message, and each would then build, execute and encode the update again.
    Held until the loop's next round: the others were woken by the same message, so they
    run before it."""
    asyncio.get_running_loop().call_soon(_release, update)


def _release(update: object) -> None:
    """Drops the reference `_hold_for_the_others` kept."""
