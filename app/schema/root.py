"""Root types: each field delegates to a resolver module of its domain."""

from __future__ import annotations

import strawberry

from app.resolvers import calls as call_resolvers
from app.resolvers import node as node_resolvers
from app.resolvers import users as user_resolvers
from app.schema.call import Call, CallConnection, CallStatusEvent
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
    reprocess_call: Call = strawberry.mutation(resolver=call_resolvers.reprocess_call)
    delete_call: strawberry.ID = strawberry.mutation(resolver=call_resolvers.delete_call)


@strawberry.type
class Subscription:
    call_status: CallStatusEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=call_resolvers.call_status,
        description="First event: the call's current state; then one event per change; "
        "completes after SUCCESS or FAIL.",
    )
