"""A unit of work: one transaction, and the side effects it causes, run only after it commits.

Services take the session first and say what should happen once their changes are durable
(`after_commit(session).enqueue_job(...)`); the boundary that opened the unit of work (a
GraphQL mutation, a worker job) commits and then runs those effects, in the order they were
asked for, in one place. A worker never sees a call that is not in the database, a subscriber
that re-reads a call never sees an older state than the event it got, and stored audio is
removed only once its row is gone.

Effects are best effort, each on its own: the transaction already committed, so a failing
effect is logged and the rest still run. Nothing is lost by that: a call whose job could not
be enqueued stays RUNNING and the worker's recovery sweep enqueues it; a subscriber re-reads
the database when it reconnects; an orphaned object costs disk, not correctness.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import SessionFactory
from app.queue import JobQueue
from app.services.status import StatusEvent, StatusPublisher
from app.storage import ObjectStorage

logger = logging.getLogger(__name__)

_SESSION_KEY = "ovozly.after_commit"


class CredentialChanges(Protocol):
    async def announce(self, user_id: uuid.UUID) -> None:
        """The user's credentials changed: their open WebSockets close, in every process."""


@dataclass(frozen=True, slots=True)
class EffectTargets:
    """What after-commit effects act on; the API and the worker each hold one."""

    queue: JobQueue
    publisher: StatusPublisher
    storage: ObjectStorage
    credentials: CredentialChanges | None = None
    """The API's WebSocket registry; a worker has none (and changes no credentials)."""


@dataclass(frozen=True, slots=True)
class _Effect:
    description: str
    run: Callable[[EffectTargets], Awaitable[None]]


class AfterCommit:
    """The effects one unit of work has asked for, in order."""

    def __init__(self) -> None:
        self._effects: list[_Effect] = []

    def enqueue_job(
        self, call_id: uuid.UUID, job_token: str, duration_s: float | None = None
    ) -> None:
        """`duration_s` picks the queue: long calls have their own (LONG_CALL_SECONDS)."""

        async def run(targets: EffectTargets) -> None:
            await targets.queue.enqueue_process_call(call_id, job_token, duration_s)

        self._effects.append(_Effect(f"enqueue the job of call {call_id}", run))

    def publish_status(self, event: StatusEvent) -> None:
        async def run(targets: EffectTargets) -> None:
            await targets.publisher.publish(event)

        self._effects.append(_Effect(f"publish the status of call {event.call_id}", run))

    def enqueue_webhook_delivery(
        self, delivery_id: uuid.UUID, attempt: int, *, defer_s: float = 0.0
    ) -> None:
        async def run(targets: EffectTargets) -> None:
            await targets.queue.enqueue_webhook_delivery(delivery_id, attempt, defer_s=defer_s)

        self._effects.append(_Effect(f"enqueue attempt {attempt} of delivery {delivery_id}", run))

    def enqueue_rule_evaluation(self, run_id: uuid.UUID) -> None:
        async def run(targets: EffectTargets) -> None:
            await targets.queue.enqueue_rule_evaluation(run_id)

        self._effects.append(_Effect(f"enqueue rule evaluation {run_id}", run))

    def announce_credentials_changed(self, user_id: uuid.UUID) -> None:
        async def run(targets: EffectTargets) -> None:
            if targets.credentials is None:
                raise RuntimeError("no WebSocket registry to close the user's connections")
            await targets.credentials.announce(user_id)

        self._effects.append(_Effect(f"close the WebSockets of user {user_id}", run))

    def delete_audio(self, storage_key: str) -> None:
        async def run(targets: EffectTargets) -> None:
            await targets.storage.delete(storage_key)

        self._effects.append(_Effect(f"delete stored audio {storage_key}", run))

    async def run(self, targets: EffectTargets) -> None:
        effects, self._effects = self._effects, []
        for effect in effects:
            try:
                await effect.run(targets)
            except Exception:
                logger.exception("after commit: could not %s", effect.description)


def after_commit(session: AsyncSession) -> AfterCommit:
    """The effects collector of the unit of work `session` belongs to."""
    effects = session.info.get(_SESSION_KEY)
    if not isinstance(effects, AfterCommit):
        raise RuntimeError("this service must run inside unit_of_work(), which runs its effects")
    return effects


@asynccontextmanager
async def unit_of_work(
    sessions: SessionFactory, targets: EffectTargets
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that commits when the block ends without an error (and
    rolls back otherwise); the effects asked for run after the commit, never after a
    rollback."""
    effects = AfterCommit()
    async with sessions() as session:
        session.info[_SESSION_KEY] = effects
        async with session.begin():
            yield session
    await effects.run(targets)
