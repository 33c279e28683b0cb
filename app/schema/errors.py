"""Maps every GraphQL error to the contract's `extensions.code` and masks the unexpected."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Protocol, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult
from strawberry.types.execution import StreamExecutionResult

from app.core.errors import ClientError, ErrorCode, TooManyRequests


class _ResultWithErrors(Protocol):
    errors: list[GraphQLError] | None


logger = logging.getLogger("app.graphql")

MASKED_MESSAGE = "Internal server error"
# graphql-core's validation hints ("Did you mean 'call' or 'calls'?") name fields, types,
# arguments and enum values the caller did not write: with introspection off they would
# reveal the schema piece by piece, so they are removed.
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def without_suggestions(message: str) -> str:
    return _SUGGESTION.sub("", message).strip()


def _original(error: GraphQLError) -> BaseException | None:
    original = error.original_error
    # Errors nested in GraphQLErrors (e.g. raised from a field extension) unwrap once.
    if isinstance(original, GraphQLError) and original.original_error is not None:
        return original.original_error
    return original


def is_expected(error: GraphQLError) -> bool:
    """Client mistakes and denials: answered with their code, not logged as failures.

    graphql-core's own errors without a path are about the document (syntax, validation,
    variables, limits); with a path they arose while executing, e.g. a value that did not
    serialise, and are the server's fault."""
    original = _original(error)
    if isinstance(original, ClientError):
        return True
    return (original is None or isinstance(original, GraphQLError)) and error.path is None


def classify(error: GraphQLError, *, hide_suggestions: bool = False) -> GraphQLError:
    original = _original(error)
    if isinstance(original, TooManyRequests):
        return _with_code(
            error,
            original.message,
            original.code,
            retry_after_s=original.retry_after_s,
        )
    if isinstance(original, ClientError):
        field = getattr(original, "field", None)
        return _with_code(error, original.message, original.code, field=field)
    if is_expected(error):
        message = without_suggestions(error.message) if hide_suggestions else error.message
        return _with_code(error, message, ErrorCode.BAD_USER_INPUT)
    return _with_code(error, MASKED_MESSAGE, ErrorCode.INTERNAL_SERVER_ERROR)


def _with_code(
    error: GraphQLError,
    message: str,
    code: ErrorCode,
    *,
    field: str | None = None,
    retry_after_s: int | None = None,
) -> GraphQLError:
    extensions: dict[str, object] = {"code": code.value}
    if field is not None:
        extensions["field"] = field
    if retry_after_s is not None:
        # The contract: every TOO_MANY_REQUESTS says when to try again, as a number.
        extensions["retryAfterSeconds"] = retry_after_s
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if not is_expected(error):
            logger.error(
                "unexpected error in GraphQL resolver at %s",
                ".".join(str(part) for part in error.path or ()),
                exc_info=error.original_error,
            )


class ErrorCodes(SchemaExtension):
    def __init__(self, *, hide_suggestions: bool = False) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def _classify(self, error: GraphQLError) -> GraphQLError:
        return classify(error, hide_suggestions=self.hide_suggestions)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """Subscription events carry their errors here, one result at a time."""
        # getattr, not isinstance on the Protocol: this runs once per subscriber per event,
        # and a runtime Protocol check costs more than the rest of this hook.
        errors: list[GraphQLError] | None = getattr(result, "errors", None)
        if errors:
            cast(_ResultWithErrors, result).errors = [self._classify(error) for error in errors]
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if (
            isinstance(result, (GraphQLExecutionResult, StrawberryExecutionResult))
            and result.errors
        ):
            result.errors = [self._classify(error) for error in result.errors]
        pre_execution_errors = self.execution_context.pre_execution_errors
        if pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                self._classify(error) for error in pre_execution_errors
            ]
