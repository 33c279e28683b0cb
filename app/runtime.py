"""Process-wide resources of the API: engine, session factory, Redis, storage, queue."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.engine import SessionFactory, create_engine, create_session_factory


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be resolved before start-up")
        engine = create_engine(settings.database_url)
        redis = Redis.from_url(settings.redis_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis,
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
