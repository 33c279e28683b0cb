"""One error taxonomy for the whole service, mapped to the contract's `extensions.code`.

Only these errors carry their message to clients; anything else is masked as
INTERNAL_SERVER_ERROR by the GraphQL layer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class OvozlyError(Exception):
    """Base for errors whose message is safe to show to the caller."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(OvozlyError):
    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(OvozlyError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "You are not allowed to do this") -> None:
        super().__init__(message)


class NotFound(OvozlyError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, what: str = "Object") -> None:
        super().__init__(f"{what} not found")


class BadUserInput(OvozlyError):
    code = ErrorCode.BAD_USER_INPUT


INVALID_CREDENTIALS = "Invalid username or password"
