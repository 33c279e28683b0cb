"""One error root for the whole service.

Every error Ovozly raises on purpose derives from `OvozlyError` and says two things about
itself:

* `retryable`: whether trying the same work again later can help (a rate-limited API, a
  dropped connection), as opposed to a fault that would only repeat (a bad key, corrupt
  audio). The worker decides retries by asking the error, never by listing types.
* `call_error()`: the text a failed call shows its owner; written for people, with server
  paths removed.

`ClientError`s carry a contract `extensions.code` and are the only errors whose message
reaches GraphQL clients; anything else is masked as INTERNAL_SERVER_ERROR.
`ProcessingError`s are failures of the speech and analysis pipeline whose messages are
written for operators.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


# Two or more path components: enough to catch '/srv/data/x.wav' and not 'and/or'.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.\-~])(?:[A-Za-z]:)?(?:[/\\][\w.\-~]+){2,}[/\\]?")


def scrub_paths(message: str) -> str:
    """Keeps only the last component of any absolute path in `message`."""
    return _ABSOLUTE_PATH.sub(
        lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], message
    )


class OvozlyError(Exception):
    """Root of every error Ovozly raises on purpose."""

    retryable: bool = False
    """Class default; an instance may override it (an HTTP 503 is retryable, a 400 not)."""

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def call_error(self) -> str:
        """What a call that failed with this error tells its owner."""
        return unexpected_failure(self)


class ClientError(OvozlyError):
    """The caller's mistake or a denial; the message is safe to show to the caller."""

    code: ClassVar[ErrorCode] = ErrorCode.BAD_USER_INPUT


class Unauthenticated(ClientError):
    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(ClientError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "You are not allowed to do this") -> None:
        super().__init__(message)


class NotFound(ClientError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, what: str = "Object") -> None:
        super().__init__(f"{what} not found")


class BadUserInput(ClientError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(
        self, message: str, *, field: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.field = field
        """The argument or input field at fault (`extensions.field`), when there is one."""


class ProcessingError(OvozlyError):
    """The pipeline or the analyzer failed; the message is written for an operator and
    becomes the failed call's `error` (with server paths removed)."""

    def call_error(self) -> str:
        return scrub_paths(self.message) or type(self).__name__


def unexpected_failure(exc: BaseException) -> str:
    return f"Processing failed unexpectedly ({type(exc).__name__}); the error is in the worker log"


class TooManyRequests(ClientError):
    """Throttled (e.g. repeated failed logins); the caller may retry after `retry_after_s`."""

    code = ErrorCode.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


INVALID_CREDENTIALS = "Invalid username or password"
