"""Root types: each field delegates to a resolver module of its domain."""

from __future__ import annotations

import strawberry

from app.resolvers import audit as audit_resolvers
from app.resolvers import calls as call_resolvers
from app.resolvers import node as node_resolvers
from app.resolvers import retention as retention_resolvers
from app.resolvers import rules as rule_resolvers
from app.resolvers import stats as stats_resolvers
from app.resolvers import teams as team_resolvers
from app.resolvers import users as user_resolvers
from app.resolvers import webhooks as webhook_resolvers
from app.schema.audit import AuditEventConnection
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
from app.schema.permissions import IsAuthenticated, admin_field, admin_mutation
from app.schema.retention import RetentionPolicy
from app.schema.team import Team
from app.schema.user import AuthPayload, User


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node_resolvers.node)
    me: User = strawberry.field(resolver=user_resolvers.me)
    users: list[User] = admin_field(user_resolvers.users)
    call: Call = strawberry.field(
        resolver=call_resolvers.call, description="NOT_FOUND when missing or not visible"
    )
    calls: CallConnection = strawberry.field(
        resolver=call_resolvers.calls,
        description="Newest first; first defaults to 20, at most 100; "
        "an AGENT sees only their own calls, a SUPERVISOR those of the agents in their teams",
    )
    call_stats: list[CallStats] = strawberry.field(
        resolver=stats_resolvers.call_stats,
        description="Figures over finished calls, one row per combination of the groupBy "
        "keys (one row without groupBy); an AGENT counts only their own calls, a SUPERVISOR "
        "those of the agents in their teams",
    )
    categories: list[Category] = strawberry.field(
        resolver=rule_resolvers.categories, permission_classes=[IsAuthenticated]
    )
    scorecards: list[Scorecard] = strawberry.field(
        resolver=rule_resolvers.scorecards, permission_classes=[IsAuthenticated]
    )
    rule_evaluation: RuleEvaluation = admin_field(rule_resolvers.rule_evaluation)
    webhook_endpoints: list[WebhookEndpoint] = admin_field(webhook_resolvers.webhook_endpoints)
    webhook_deliveries: WebhookDeliveryConnection = admin_field(
        webhook_resolvers.webhook_deliveries, "newest first, every attempt logged"
    )
    teams: list[Team] = strawberry.field(
        resolver=team_resolvers.teams, description="ADMIN: all; others: their own"
    )
    audit_events: AuditEventConnection = admin_field(audit_resolvers.audit_events, "newest first")
    retention_policy: RetentionPolicy = admin_field(retention_resolvers.retention_policy)


@strawberry.type
class Mutation:
    login: AuthPayload = strawberry.mutation(resolver=user_resolvers.login)
    create_user: User = admin_mutation(user_resolvers.create_user)
    upload_call: Call = strawberry.mutation(
        resolver=call_resolvers.upload_call,
        description="agentId: an ADMIN uploading for an agent. Speaker-count hints are "
        "honoured exactly by the diarizer.",
    )
    update_user: User = admin_mutation(user_resolvers.update_user)
    delete_voiceprint: User = admin_mutation(
        user_resolvers.delete_voiceprint, "learning starts again"
    )
    reset_password: User = admin_mutation(
        user_resolvers.reset_password, "the user's earlier tokens stop working"
    )
    change_password: AuthPayload = strawberry.mutation(
        resolver=user_resolvers.change_password,
        description="Oneself; earlier tokens stop working, a fresh one is returned",
    )
    reprocess_call: Call = strawberry.mutation(resolver=call_resolvers.reprocess_call)
    delete_call: strawberry.ID = strawberry.mutation(resolver=call_resolvers.delete_call)
    create_category: CategoryPayload = admin_mutation(
        rule_resolvers.create_category, "re-evaluates existing calls in the background"
    )
    update_category: CategoryPayload = admin_mutation(
        rule_resolvers.update_category, "re-evaluates existing calls in the background"
    )
    delete_category: strawberry.ID = admin_mutation(rule_resolvers.delete_category)
    create_scorecard: ScorecardPayload = admin_mutation(
        rule_resolvers.create_scorecard, "re-evaluates existing calls in the background"
    )
    update_scorecard: ScorecardPayload = admin_mutation(
        rule_resolvers.update_scorecard, "re-evaluates existing calls in the background"
    )
    delete_scorecard: strawberry.ID = admin_mutation(rule_resolvers.delete_scorecard)
    create_webhook_endpoint: WebhookEndpointPayload = admin_mutation(
        webhook_resolvers.create_webhook_endpoint
    )
    delete_webhook_endpoint: strawberry.ID = admin_mutation(
        webhook_resolvers.delete_webhook_endpoint
    )
    create_team: Team = admin_mutation(team_resolvers.create_team)
    update_team: Team = admin_mutation(
        team_resolvers.update_team, "the input's members replace the team's"
    )
    delete_team: strawberry.ID = admin_mutation(team_resolvers.delete_team)
    set_retention_policy: RetentionPolicy = admin_mutation(retention_resolvers.set_retention_policy)
    set_legal_hold: Call = admin_mutation(
        retention_resolvers.set_legal_hold, "retention never deletes a call on hold"
    )


@strawberry.type
class Subscription:
    call_status: CallStatusEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=call_resolvers.call_status,
        description="First event: the call's current state; then one event per change; "
        "completes after SUCCESS or FAIL.",
    )
