"""/healthz is the API's liveness: it is answered on the event loop itself, with no thread
and no database, so it fails exactly when the loop stops serving."""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from fastapi.routing import APIRoute


def test_healthz_is_answered_on_the_event_loop_without_io(app: FastAPI) -> None:
    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/healthz")
    # FastAPI runs a plain `def` endpoint in its thread pool; a coroutine runs on the loop.
    assert inspect.iscoroutinefunction(route.endpoint)
    source = inspect.getsource(route.endpoint)
    assert "await" not in source and "session" not in source
