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
from app.schema.permissions import IsAdmin, IsAuthenticated
from app.schema.retention import RetentionPolicy
from app.schema.team import Team
from app.schema.user import AuthPayload, User


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node_resolvers.node)
    me: User = strawberry.field(resolver=user_resolvers.me)
    users: list[User] = strawberry.field(
        resolver=user_resolvers.users, permission_classes=[IsAdmin], description="ADMIN only"
    )
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
    rule_evaluation: RuleEvaluation = strawberry.field(
        resolver=rule_resolvers.rule_evaluation,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoints,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    webhook_deliveries: WebhookDeliveryConnection = strawberry.field(
        resolver=webhook_resolvers.webhook_deliveries,
        permission_classes=[IsAdmin],
        description="ADMIN only; newest first, every attempt logged",
    )
    teams: list[Team] = strawberry.field(
        resolver=team_resolvers.teams, description="ADMIN: all; others: their own"
    )
    audit_events: AuditEventConnection = strawberry.field(
        resolver=audit_resolvers.audit_events,
        permission_classes=[IsAdmin],
        description="ADMIN only; newest first",
    )
    retention_policy: RetentionPolicy = strawberry.field(
        resolver=retention_resolvers.retention_policy,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )


@strawberry.type
class Mutation:
    login: AuthPayload = strawberry.mutation(resolver=user_resolvers.login)
    create_user: User = strawberry.mutation(
        resolver=user_resolvers.create_user, permission_classes=[IsAdmin], description="ADMIN only"
    )
    upload_call: Call = strawberry.mutation(
        resolver=call_resolvers.upload_call,
        description="agentId: an ADMIN uploading for an agent. Speaker-count hints are "
        "honoured exactly by the diarizer.",
    )
    update_user: User = strawberry.mutation(
        resolver=user_resolvers.update_user, permission_classes=[IsAdmin], description="ADMIN only"
    )
    delete_voiceprint: User = strawberry.mutation(
        resolver=user_resolvers.delete_voiceprint,
        permission_classes=[IsAdmin],
        description="ADMIN only; learning starts again",
    )
    reset_password: User = strawberry.mutation(
        resolver=user_resolvers.reset_password,
        permission_classes=[IsAdmin],
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
        permission_classes=[IsAdmin],
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    update_category: CategoryPayload = strawberry.mutation(
        resolver=rule_resolvers.update_category,
        permission_classes=[IsAdmin],
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    delete_category: strawberry.ID = strawberry.mutation(
        resolver=rule_resolvers.delete_category,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    create_scorecard: ScorecardPayload = strawberry.mutation(
        resolver=rule_resolvers.create_scorecard,
        permission_classes=[IsAdmin],
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    update_scorecard: ScorecardPayload = strawberry.mutation(
        resolver=rule_resolvers.update_scorecard,
        permission_classes=[IsAdmin],
        description="ADMIN only; re-evaluates existing calls in the background",
    )
    delete_scorecard: strawberry.ID = strawberry.mutation(
        resolver=rule_resolvers.delete_scorecard,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    create_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhook_resolvers.create_webhook_endpoint,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    delete_webhook_endpoint: strawberry.ID = strawberry.mutation(
        resolver=webhook_resolvers.delete_webhook_endpoint,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    create_team: Team = strawberry.mutation(
        resolver=team_resolvers.create_team, permission_classes=[IsAdmin], description="ADMIN only"
    )
    update_team: Team = strawberry.mutation(
        resolver=team_resolvers.update_team,
        permission_classes=[IsAdmin],
        description="ADMIN only; the input's members replace the team's",
    )
    delete_team: strawberry.ID = strawberry.mutation(
        resolver=team_resolvers.delete_team, permission_classes=[IsAdmin], description="ADMIN only"
    )
    set_retention_policy: RetentionPolicy = strawberry.mutation(
        resolver=retention_resolvers.set_retention_policy,
        permission_classes=[IsAdmin],
        description="ADMIN only",
    )
    set_legal_hold: Call = strawberry.mutation(
        resolver=retention_resolvers.set_legal_hold,
        permission_classes=[IsAdmin],
        description="ADMIN only; retention never deletes a call on hold",
    )


@strawberry.type
class Subscription:
    call_status: CallStatusEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=call_resolvers.call_status,
        description="First event: the call's current state; then one event per change; "
        "completes after SUCCESS or FAIL.",
    )
