"""User and auth resolvers: translate GraphQL arguments to service calls and back."""

from __future__ import annotations

import strawberry

from app.core.ids import parse_typed_id
from app.schema.context import Info
from app.schema.user import AuthPayload, CreateUserInput, UpdateUserInput, User
from app.services import users as user_service
from app.services import voiceprints as voiceprint_service


async def me(info: Info) -> User:
    return User.from_row(await info.context.require_viewer())


async def users(info: Info) -> list[User]:
    async with info.context.session() as session:
        return [User.from_row(user) for user in await user_service.list_users(session)]


def _tokens(info: Info) -> user_service.TokenSettings:
    settings = info.context.settings
    return user_service.TokenSettings(key=settings.signing_key, expires_in_s=settings.jwt_expires_s)


def _gate(info: Info) -> user_service.LoginGate:
    return user_service.LoginGate(
        info.context.resources.login_throttle, info.context.client_address
    )


def _auth_payload(signed_in: user_service.SignedIn) -> AuthPayload:
    return AuthPayload(
        access_token=signed_in.token.token,
        token_type="Bearer",  # noqa: S106 (the token scheme, not a secret)
        expires_in=signed_in.token.expires_in_s,
        user=User.from_row(signed_in.user),
    )


async def login(info: Info, username: str, password: str) -> AuthPayload:
    signed_in = await user_service.log_in(
        info.context.transaction, _gate(info), username, password, tokens=_tokens(info)
    )
    return _auth_payload(signed_in)


async def create_user(info: Info, input: CreateUserInput) -> User:
    new_user = user_service.NewUser(
        username=input.username, password=input.password, full_name=input.full_name, role=input.role
    )
    async with info.context.transaction() as session:
        user = await user_service.create_user(
            session,
            new_user,
            password_min_length=info.context.settings.password_min_length,
            actor=await info.context.actor(),
        )
    return User.from_row(user)


async def update_user(info: Info, id: strawberry.ID, input: UpdateUserInput) -> User:
    viewer = await info.context.require_viewer()
    user_id = parse_typed_id(id, "User")
    changes = user_service.UserChanges(
        full_name=input.full_name, role=input.role, is_active=input.is_active
    )
    async with info.context.transaction() as session:
        updated = await user_service.update_user(
            session, viewer, user_id, changes, address=info.context.client_address
        )
    return User.from_row(updated.user)


async def reset_password(info: Info, id: strawberry.ID, new_password: str) -> User:
    user = await user_service.reset_password(
        info.context.transaction,
        await info.context.actor(),
        parse_typed_id(id, "User"),
        new_password,
        password_min_length=info.context.settings.password_min_length,
    )
    return User.from_row(user)


async def change_password(info: Info, current_password: str, new_password: str) -> AuthPayload:
    signed_in = await user_service.change_password(
        info.context.transaction,
        _gate(info),
        await info.context.require_viewer(),
        current_password,
        new_password,
        password_min_length=info.context.settings.password_min_length,
        tokens=_tokens(info),
    )
    return _auth_payload(signed_in)


async def delete_voiceprint(info: Info, user_id: strawberry.ID) -> User:
    target = parse_typed_id(user_id, "User")
    async with info.context.transaction() as session:
        user = await voiceprint_service.delete_voiceprint(
            session, await info.context.actor(), target
        )
    return User.from_row(user)
