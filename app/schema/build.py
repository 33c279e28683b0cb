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
)
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.core.config import Settings
from app.schema.audit import AuditEvent
from app.schema.call import WORD_TIMINGS_SCALAR, Call, WordTimings
from app.schema.document_guard import DocumentGuard, DocumentLimits
from app.schema.errors import ErrorCodes, log_unexpected
from app.schema.execution import SharingExecutor
from app.schema.root import Mutation, Query, Subscription
from app.schema.team import Team
from app.schema.upload_rules import UploadCallStandsAlone
from app.schema.user import User


class OvozlySchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error; ours logs only the unexpected ones, with traceback.
        log_unexpected(errors)


def document_limits(settings: Settings) -> DocumentLimits:
    return DocumentLimits(
        max_depth=settings.graphql_max_depth,
        max_fields=settings.graphql_max_fields,
        max_field_repeats=settings.graphql_max_field_repeats,
        max_fragments=settings.graphql_max_fragments,
    )


def build_schema(settings: Settings) -> Schema:
    limits = document_limits(settings)
    # Factories, so each operation gets fresh extension instances. The guard comes before
    # every validation rule: a document it refuses is never walked by graphql-core.
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: ErrorCodes(hide_suggestions=not settings.introspection_enabled),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: DocumentGuard(limits=limits),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: AddValidationRules([UploadCallStandsAlone]),
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    return OvozlySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Call, Team, AuditEvent],
        extensions=extensions,
        execution_context_class=SharingExecutor,
        config=StrawberryConfig(scalar_map={WordTimings: WORD_TIMINGS_SCALAR}),
    )
