"""Log lines an operator reads once: liveness probes that got their answer are not logged,
failed ones are."""

from __future__ import annotations

import logging

from app.core.logs import HealthProbeFilter


def _access(path: str, status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:40000", "GET", path, "1.1", status),
        None,
    )


def test_answered_health_probes_are_not_logged() -> None:
    probes = HealthProbeFilter()
    assert not probes.filter(_access("/healthz", 200))
    assert probes.filter(_access("/healthz", 500))
    assert probes.filter(_access("/readyz", 200))
    assert probes.filter(_access("/graphql", 200))
