"""The FastAPI application: GraphQL at /graphql (GraphiQL on GET), health endpoints, CORS."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api.audio_route import router as audio_router
from app.api.graphql_http import OvozlyGraphQLRouter
from app.api.health import add_health_routes
from app.api.http_limits import BodyLimitMiddleware
from app.api.resources import Resources
from app.auth import passwords
from app.auth.passwords import warm_up
from app.core.config import Settings
from app.schema.build import build_schema
from app.schema.context import Context

logger = logging.getLogger(__name__)

# Young-generation threshold of the serving process's garbage collector (CPython's default
# is 700 allocations). See `tune_garbage_collection`.
GC_YOUNG_THRESHOLD = 50_000
GC_OLDER_THRESHOLDS = (20, 100)


def tune_garbage_collection() -> None:
    """For the API server process, once its application is built.

    Measured with 500 `callStatus` subscribers (bench.watchers): with CPython's default
    thresholds the collector took about half the API's CPU time while events fanned out,
    and its full collections, which walk every live object (the schema, the modules, every
    connection's state), were the latency spikes (p99 1.3 s against p50 150 ms).
    Freezing what exists at start-up keeps it out of every later collection (it lives as
    long as the process anyway), and a larger young generation lets a fan-out's
    short-lived objects die between collections instead of being promoted and walked
    again. Reference cycles are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        passwords.configure_from(settings)
        resources = await Resources.open(settings)
        app.state.resources = resources
        await asyncio.to_thread(warm_up)
        try:
            yield
        finally:
            await resources.close()

    # The OpenAPI document describes only the health endpoints, but in production nothing
    # about the service is served that a client does not need.
    app = FastAPI(
        title="Ovozly",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )

    app.include_router(_graphql_router(settings), prefix="/graphql")
    app.include_router(audio_router)
    _add_middleware(app, settings)
    add_health_routes(app)
    return app


def _graphql_router(settings: Settings) -> OvozlyGraphQLRouter:
    async def context_getter(connection: HTTPConnection) -> Context:
        return Context(
            connection.app.state.resources,
            connection.headers.get("authorization"),
            client_address=connection.client.host if connection.client else None,
            connection=connection,
        )

    return OvozlyGraphQLRouter(
        build_schema(settings),
        context_getter=context_getter,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        # Auth is a bearer header, never a cookie, so a cross-site form cannot act as a
        # user: multipart uploads need no CSRF token.
        multipart_uploads_enabled=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        allowed_origins=settings.cors_origins,
        request_budget_s=settings.graphql_request_budget_s,
        upload_budget_s=settings.graphql_upload_budget_s,
        # A socket that never says who it is closes (4408) instead of holding a slot.
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
    )


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_upload_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Apollo-Require-Preflight",
            "Range",
            "If-Range",
        ],
        expose_headers=["Accept-Ranges", "Content-Range", "Content-Length", "ETag"],
        allow_credentials=False,
    )
    if settings.forwarded_allow_ips:
        # Outermost: X-Forwarded-For and -Proto are believed only from these proxies, and
        # everything inside (throttling, audio links) sees the forwarded client.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
