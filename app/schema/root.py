"""Root types: each field delegates to a resolver module of its domain."""

from __future__ import annotations

import strawberry

from app.resolvers import node as node_resolvers
from app.resolvers import users as user_resolvers
from app.schema.node import Node
from app.schema.user import AuthPayload, User


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node_resolvers.node)
    me: User = strawberry.field(resolver=user_resolvers.me)
    users: list[User] = strawberry.field(resolver=user_resolvers.users)


@strawberry.type
class Mutation:
    login: AuthPayload = strawberry.mutation(resolver=user_resolvers.login)
    create_user: User = strawberry.mutation(resolver=user_resolvers.create_user)
