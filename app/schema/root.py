"""Root types: each field delegates to a resolver module of its domain."""

from __future__ import annotations

import strawberry

from app.resolvers import calls as call_resolvers
from app.resolvers import node as node_resolvers
from app.resolvers import rules as rule_resolvers
from app.resolvers import stats as stats_resolvers
from app.resolvers import users as user_resolvers
from app.resolvers import webhooks as webhook_resolvers
from app.schema.call import Call, CallConnection, CallStatusEvent
from app.schema.desk import (
    CallStats,
    Category,
    CategoryPayload,
    RuleEvaluation,
    Scorecard,
    ScorecardPayload,
    WebhookDeliveryConnection,
    WebhookEndpoint,
    WebhookEndpointPayload,
)
from app.schema.node import Node
from app.schema.user import AuthPayload, User


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node_resolvers.node)
    me: User = strawberry.field(resolver=user_resolvers.me)
    users: list[User] = strawberry.field(resolver=user_resolvers.users, description="ADMIN only")
    call: Call = strawberry.field(
        resolver=call_resolvers.call, description="NOT_FOUND when missing or not visible"
    )
    calls: CallConnection = strawberry.field(
        resolver=call_resolvers.calls,
        description="Newest first; first defaults to 20, at most 100; "
        "an AGENT sees only their own calls",
    )
    call_stats: list[CallStats] = strawberry.field(
        resolver=stats_resolvers.call_stats,
        description="Figures over finished calls, one row per combination of the groupBy "
        "keys (one row without groupBy); an AGENT sees only their own calls",
    )
    categories: list[Category] = strawberry.field(resolver=rule_resolvers.categories)
    scorecards: list[Scorecard] = strawberry.field(resolver=rule_resolvers.scorecards)
    rule_evaluation: RuleEvaluation = strawberry.field(
        resolver=rule_resolvers.rule_evaluation, description="ADMIN only"
    )
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoints, description="ADMIN only"
    )
    webhook_deliveries: WebhookDeliveryConnection = strawberry.field(
        resolver=webhook_resolvers.webhook_deliveries,
        description="ADMIN only; newest first, every attempt logged",
    )


@strawberry.type
class Mutation:
    login: AuthPayload = strawberry.mutation(resolver=user_resolvers.login)
    create_user: User = strawberry.mutation(
        resolver=user_resolvers.create_user, description="ADMIN only"
    )
    upload_call: Call = strawberry.mutation(
        resolver=call_resolvers.upload_call,
        description="agentId: an ADMIN uploading for an agent. Speaker-count hints are "
        "honoured exactly by the diarizer.",
    )
    update_user: User = strawberry.mutation(
        resolver=user_resolvers.update_user, description="ADMIN only"
    )
    delete_voiceprint: User = strawberry.mutation(
        resolver=user_resolvers.delete_voiceprint,
        description="ADMIN only; learning starts again",
    )
    reset_password: User = strawberry.mutation(
        resolver=user_resolvers.reset_password,
        description="ADMIN only; the user's earlier tokens stop working",
    )
    change_password: AuthPayload = strawberry.mutation(
        resolver=user_resolvers.change_password,
        description="Oneself; earlier tokens stop working, a fresh one is returned",
    )
    reprocess_call: Call = strawberry.mutation(resolver=call_resolvers.reprocess_call)
    delete_call: strawberry.ID = strawberry.mutation(resolver=call_resolvers.delete_call)
    create_category: CategoryPayload = strawberry.mutation(
        resolver=rule_resolvers.create_category,
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    update_category: CategoryPayload = strawberry.mutation(
        resolver=rule_resolvers.update_category,
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    delete_category: strawberry.ID = strawberry.mutation(
        resolver=rule_resolvers.delete_category, description="ADMIN only"
    )
    create_scorecard: ScorecardPayload = strawberry.mutation(
        resolver=rule_resolvers.create_scorecard,
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    update_scorecard: ScorecardPayload = strawberry.mutation(
        resolver=rule_resolvers.update_scorecard,
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    delete_scorecard: strawberry.ID = strawberry.mutation(
        resolver=rule_resolvers.delete_scorecard, description="ADMIN only"
    )
    create_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhook_resolvers.create_webhook_endpoint, description="ADMIN only"
    )
    delete_webhook_endpoint: strawberry.ID = strawberry.mutation(
        resolver=webhook_resolvers.delete_webhook_endpoint, description="ADMIN only"
    )


@strawberry.type
class Subscription:
    call_status: CallStatusEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=call_resolvers.call_status,
        description="First event: the call's current state; then one event per change; "
        "completes after SUCCESS or FAIL.",
    )
