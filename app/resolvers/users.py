"""User and auth resolvers: translate GraphQL arguments to service calls and back."""

from __future__ import annotations

import strawberry

from app.auth.policy import require_admin
from app.db.models import User as UserModel
from app.errors import Unauthenticated
from app.ids import parse_typed_id
from app.schema.context import Info
from app.schema.user import AuthPayload, CreateUserInput, UpdateUserInput, User
from app.services import users as user_service
from app.services import voiceprints as voiceprint_service
from app.ws_connections import announce_credentials_changed


async def me(info: Info) -> User:
    return User.from_model(await info.context.require_viewer())


async def users(info: Info) -> list[User]:
    require_admin(await info.context.require_viewer())
    async with info.context.session() as session:
        return [User.from_model(user) for user in await user_service.list_users(session)]


def _auth_payload(info: Info, user: UserModel) -> AuthPayload:
    settings = info.context.settings
    token = user_service.issue_token_for(
        user, key=settings.signing_key, expires_in_s=settings.jwt_expires_s
    )
    return AuthPayload(
        access_token=token.token,
        token_type="Bearer",  # noqa: S106 (the token scheme, not a secret)
        expires_in=token.expires_in_s,
        user=User.from_model(user),
    )


async def _checked_password(
    info: Info, user: UserModel | None, username: str, password: str
) -> str | None:
    """Verifies a password under the login throttle (per username and client address):
    refused with TOO_MANY_REQUESTS while blocked, failures counted, success clears them.
    Returns a replacement hash when the stored one is outdated."""
    throttle = info.context.resources.login_throttle
    address = info.context.client_address
    await throttle.check(username, address)
    try:
        new_hash = await user_service.verify_login(user, password)
    except Unauthenticated:
        await throttle.record_failure(username, address)
        raise
    await throttle.record_success(username)
    return new_hash


async def login(info: Info, username: str, password: str) -> AuthPayload:
    username = user_service.normalize_username(username[:256])
    async with info.context.session() as session:
        user = await user_service.get_by_username(session, username)
    new_hash = await _checked_password(info, user, username, password)
    assert user is not None, "verify_login rejects unknown users"
    if new_hash is not None:
        async with info.context.transaction() as session:
            await user_service.replace_password_hash(session, user.id, new_hash)
    return _auth_payload(info, user)


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


async def _credentials_changed(info: Info, user: UserModel) -> None:
    """After commit: the user's open WebSockets close in every API process."""
    resources = info.context.resources
    await announce_credentials_changed(resources.websockets, resources.redis, user.id)


async def update_user(info: Info, id: strawberry.ID, input: UpdateUserInput) -> User:
    viewer = await info.context.require_viewer()
    require_admin(viewer)
    user_id = parse_typed_id(id, "User")
    changes = user_service.UserChanges(
        full_name=input.full_name, role=input.role, is_active=input.is_active
    )
    async with info.context.transaction() as session:
        updated = await user_service.update_user(session, viewer, user_id, changes)
    if updated.tokens_revoked:
        await _credentials_changed(info, updated.user)
    return User.from_model(updated.user)


async def reset_password(info: Info, id: strawberry.ID, new_password: str) -> User:
    require_admin(await info.context.require_viewer())
    user_id = parse_typed_id(id, "User")
    async with info.context.session() as session:
        target = await user_service.get_user(session, user_id)
    new_hash = await user_service.hash_new_password(
        new_password,
        username=target.username,
        password_min_length=info.context.settings.password_min_length,
    )
    async with info.context.transaction() as session:
        user = await user_service.replace_credentials(session, user_id, new_hash)
    await _credentials_changed(info, user)
    return User.from_model(user)


async def change_password(info: Info, current_password: str, new_password: str) -> AuthPayload:
    viewer = await info.context.require_viewer()
    # A stolen token must not be enough to take the account over: the current password is
    # checked, under the same throttle as logins.
    await _checked_password(info, viewer, viewer.username, current_password)
    new_hash = await user_service.hash_new_password(
        new_password,
        username=viewer.username,
        password_min_length=info.context.settings.password_min_length,
    )
    async with info.context.transaction() as session:
        user = await user_service.replace_credentials(session, viewer.id, new_hash)
    await _credentials_changed(info, user)
    return _auth_payload(info, user)


async def delete_voiceprint(info: Info, user_id: strawberry.ID) -> User:
    require_admin(await info.context.require_viewer())
    target = parse_typed_id(user_id, "User")
    async with info.context.transaction() as session:
        user = await voiceprint_service.delete_voiceprint(session, target)
    return User.from_model(user)
