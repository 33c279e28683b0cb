"""Process-wide resources of the API: engine, sessions, Redis, storage, the job queue, the
status publisher and the subscription broadcaster."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.ws_connections import AnnouncedClosing, WebSocketRegistry
from app.auth.throttle import LoginThrottle, ThrottlePolicy
from app.core.config import Settings
from app.core.queue import QUEUE_NAME, ArqJobQueue, JobQueue
from app.db.engine import SessionFactory, create_engine, create_session_factory
from app.services.audio_probe import ProbeLimits, ProbePool
from app.services.broadcast import StatusBroadcaster
from app.services.effects import EffectTargets
from app.services.status import RedisStatusPublisher, StatusPublisher, supersedes_queued
from app.storage import ObjectStorage, storage_for


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: ArqRedis
    storage: ObjectStorage
    queue: JobQueue
    publisher: StatusPublisher
    broadcaster: StatusBroadcaster
    login_throttle: LoginThrottle
    websockets: WebSocketRegistry
    probes: ProbePool
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be resolved before start-up")
        engine = create_engine(settings.database_url)
        redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        broadcaster = StatusBroadcaster(settings.redis_url, supersedes=supersedes_queued)
        await broadcaster.start()
        resources = cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis,
            storage=storage_for(settings),
            queue=ArqJobQueue(redis, QUEUE_NAME, long_call_s=settings.long_call_seconds),
            publisher=RedisStatusPublisher(redis),
            broadcaster=broadcaster,
            login_throttle=LoginThrottle(
                redis,
                ThrottlePolicy(
                    free_failures_per_pair=settings.login_free_failures,
                    failures_per_pair=settings.login_failures_per_pair,
                    max_pair_delay_s=settings.login_max_delay_s,
                    checks_per_account=settings.login_checks_per_account,
                    trusted_checks_per_account=settings.login_trusted_checks_per_account,
                    unknown_usernames_per_address=settings.login_unknown_usernames_per_address,
                    window_s=settings.login_window_s,
                ),
            ),
            websockets=WebSocketRegistry(
                max_connections=settings.ws_max_connections,
                max_per_user=settings.ws_max_connections_per_user,
            ),
            probes=ProbePool(
                ProbeLimits(
                    concurrency=settings.probe_concurrency,
                    per_user=settings.uploads_in_flight_per_user,
                    timeout_s=settings.probe_timeout_s,
                )
            ),
        )
        resources._background.append(
            asyncio.create_task(
                resources.websockets.follow_credential_changes(broadcaster, resources.sessions)
            )
        )
        return resources

    @property
    def effect_targets(self) -> EffectTargets:
        return EffectTargets(
            queue=self.queue,
            publisher=self.publisher,
            storage=self.storage,
            connections=AnnouncedClosing(self.websockets, self.redis),
        )

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.probes.close()
        await self.broadcaster.stop()
        await self.storage.close()
        await self.redis.aclose()
        await self.engine.dispose()
