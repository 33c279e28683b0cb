"""Schema assembly, the end of the import chain: root types, limits and error policy."""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.config import Settings
from app.schema.call import WORD_TIMINGS_SCALAR, Call, WordTimings
from app.schema.errors import ErrorCodes, log_unexpected
from app.schema.execution import SharingExecutor
from app.schema.root import Mutation, Query, Subscription
from app.schema.upload_rules import UploadCallStandsAlone
from app.schema.user import User


class OvozlySchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error; ours logs only the unexpected ones, with traceback.
        log_unexpected(errors)


def build_schema(settings: Settings) -> Schema:
    # Factories, so each operation gets fresh extension instances.
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: ErrorCodes(hide_suggestions=not settings.introspection_enabled),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: AddValidationRules([UploadCallStandsAlone]),
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    return OvozlySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Call],
        extensions=extensions,
        execution_context_class=SharingExecutor,
        config=StrawberryConfig(scalar_map={WordTimings: WORD_TIMINGS_SCALAR}),
    )
