"""How the worker reads a job's exception: whether to retry, and what the failed call says.

Our own errors answer both themselves (`OvozlyError.retryable`, `OvozlyError.call_error`);
only other libraries' connection faults, which cannot carry our attribute, are listed here.
"""

from __future__ import annotations

import sqlalchemy.exc
from redis import exceptions as redis_errors

from app.core.errors import OvozlyError, unexpected_failure

TRANSIENT_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
)


def is_retryable(exc: BaseException) -> bool:
    """Faults that another try may not meet: connections, timeouts, rate-limited APIs."""
    if isinstance(exc, OvozlyError):
        return exc.retryable
    return isinstance(exc, TRANSIENT_INFRASTRUCTURE_ERRORS)


def describe_failure(exc: BaseException) -> str:
    """The human-readable `error` of a call that failed with `exc`. Known failures describe
    themselves; anything else names only the exception type (the full exception goes to the
    worker log)."""
    if isinstance(exc, OvozlyError):
        return exc.call_error()
    if isinstance(exc, TRANSIENT_INFRASTRUCTURE_ERRORS):
        return "A service the worker needs was unreachable; try reprocessing the call"
    return unexpected_failure(exc)
