"""User and auth resolvers: translate GraphQL arguments to service calls and back."""

from __future__ import annotations

from app.auth.policy import require_admin
from app.schema.context import Info
from app.schema.user import AuthPayload, CreateUserInput, User
from app.services import users as user_service


async def me(info: Info) -> User:
    return User.from_model(await info.context.require_viewer())


async def users(info: Info) -> list[User]:
    require_admin(await info.context.require_viewer())
    async with info.context.session() as session:
        return [User.from_model(user) for user in await user_service.list_users(session)]


async def login(info: Info, username: str, password: str) -> AuthPayload:
    settings = info.context.settings
    async with info.context.session() as session:
        user = await user_service.get_by_username(session, username[:256])
    new_hash = await user_service.verify_login(user, password)
    assert user is not None, "verify_login rejects unknown users"
    if new_hash is not None:
        async with info.context.transaction() as session:
            await user_service.replace_password_hash(session, user.id, new_hash)
    token = user_service.issue_token_for(
        user, key=settings.signing_key, expires_in_s=settings.jwt_expires_s
    )
    return AuthPayload(
        access_token=token.token,
        token_type="Bearer",  # noqa: S106 (the token scheme, not a secret)
        expires_in=token.expires_in_s,
        user=User.from_model(user),
    )


async def create_user(info: Info, input: CreateUserInput) -> User:
    require_admin(await info.context.require_viewer())
    new_user = user_service.NewUser(
        username=input.username, password=input.password, full_name=input.full_name, role=input.role
    )
    async with info.context.transaction() as session:
        user = await user_service.create_user(
            session, new_user, password_min_length=info.context.settings.password_min_length
        )
    return User.from_model(user)
