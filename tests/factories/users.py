"""Users, written through the users service, and people who sign in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.db.engine import SessionFactory
from app.db.models import Role, User
from app.services.users import NewUser, create_user

if TYPE_CHECKING:
    from tests.api.helpers import GraphQLClient

PASSWORD = "correct-horse-battery"


async def make_user(
    sessions: SessionFactory,
    username: str,
    role: Role = Role.AGENT,
    password: str = PASSWORD,
) -> User:
    async with sessions() as session, session.begin():
        return await create_user(
            session,
            NewUser(username=username, password=password, role=role),
            password_min_length=8,
        )


@dataclass(frozen=True)
class Person:
    """A user row and a token of theirs."""

    id: uuid.UUID
    token: str


async def make_person(
    gql: GraphQLClient, sessions: SessionFactory, name: str, role: Role = Role.AGENT
) -> Person:
    user = await make_user(sessions, name, role)
    return Person(user.id, await gql.login(name))
