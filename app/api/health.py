"""`/healthz` (liveness, from the event loop itself) and `/readyz` (database, Redis and the
workers' model checks)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from app.api.resources import Resources
from app.core.heartbeat import read_heartbeats, workers_readiness

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_S = 2.0


async def healthz() -> dict[str, str]:
    """Liveness: answered by the event loop itself (an `async def` with no I/O, so no
    thread pool and no database), hence it fails exactly when the loop stops running
    requests. `ovozly dev` and the compose healthcheck restart the API on it."""
    return {"status": "ok"}


async def readyz(
    request: Request, response: Response, require_worker: bool = False
) -> dict[str, object]:
    """Database and Redis reachable (503 otherwise), and the workers' heartbeats: how
    many passed their model check. With `?require_worker=true`, also 503 until at
    least one worker is ready (what a smoke test or a deploy gate waits for)."""
    resources: Resources = request.app.state.resources
    checks = {"database": "ok", "redis": "ok"}
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S), resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        checks["database"] = "unreachable"
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await resources.redis.ping()
    except Exception:
        logger.warning("readiness: redis unreachable", exc_info=True)
        checks["redis"] = "unreachable"
    workers: dict[str, object] = {"ready": 0, "failing": 0, "workers": []}
    if checks["redis"] == "ok":
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_S):
                workers = workers_readiness(await read_heartbeats(resources.redis))
        except Exception:
            logger.warning("readiness: worker heartbeats unreadable", exc_info=True)
            checks["redis"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    if require_worker and not workers["ready"]:
        ready = False
    response.status_code = 200 if ready else 503
    return {"status": "ok" if ready else "unavailable", **checks, "workers": workers}


def add_health_routes(app: FastAPI) -> None:
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
