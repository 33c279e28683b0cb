"""User accounts: creation, authentication, lookup, changes and password resets.
Services flush; the boundary commits."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import hash_password, last_verification_s, verify_password
from app.auth.policy import visible_users
from app.auth.throttle import Admission, LoginThrottle
from app.auth.tokens import AccessToken, issue_access_token
from app.core.errors import INVALID_CREDENTIALS, BadUserInput, NotFound, Unauthenticated
from app.db.models import Role, User
from app.services import audit
from app.services import teams as team_service
from app.services.effects import after_commit

UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""Opens a unit of work (app/services/effects.py): the boundary's `transaction`."""
MAX_USERNAME_INPUT = 256

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
MAX_PASSWORD_LENGTH = 1024
MAX_FULL_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    password: str
    full_name: str | None = None
    role: Role = Role.AGENT


def normalize_username(username: str) -> str:
    return username.strip().lower()


def validate_password(password: str, *, username: str, min_length: int) -> None:
    """The one password policy: creation, change, reset and the CLI all apply it."""
    if len(password) < min_length:
        raise BadUserInput(f"Password must be at least {min_length} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadUserInput(f"Password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if password.strip().lower() == normalize_username(username):
        raise BadUserInput("Password must not be the username")


def validate_full_name(full_name: str | None) -> str | None:
    cleaned = (full_name or "").strip() or None
    if cleaned is not None and len(cleaned) > MAX_FULL_NAME_LENGTH:
        raise BadUserInput(f"Full name must be at most {MAX_FULL_NAME_LENGTH} characters long")
    return cleaned


def validate_new_user(new_user: NewUser, *, password_min_length: int) -> NewUser:
    username = normalize_username(new_user.username)
    if not USERNAME_PATTERN.fullmatch(username):
        raise BadUserInput(
            "Username must be 3-64 characters: letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    validate_password(new_user.password, username=username, min_length=password_min_length)
    full_name = validate_full_name(new_user.full_name)
    return NewUser(username, new_user.password, full_name, new_user.role)


async def create_user(
    session: AsyncSession,
    new_user: NewUser,
    *,
    password_min_length: int,
    actor: audit.Actor = audit.SYSTEM,
) -> User:
    valid = validate_new_user(new_user, password_min_length=password_min_length)
    # Hash before the first query: the session takes its connection only then.
    password_hash = await hash_password(valid.password)
    if await get_by_username(session, valid.username) is not None:
        raise BadUserInput(f"Username '{valid.username}' is already taken")
    user = User(
        username=valid.username,
        password_hash=password_hash,
        full_name=valid.full_name,
        role=valid.role,
        is_active=True,
    )
    session.add(user)
    try:
        # A savepoint, so a concurrent duplicate leaves the outer transaction usable.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise BadUserInput(f"Username '{valid.username}' is already taken") from exc
    audit.record_by(
        session,
        audit.AuditAction.USER_CHANGED,
        actor,
        target_user_id=user.id,
        detail=f"created '{user.username}' as {user.role.value}",
    )
    return user


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(
        select(User).where(User.username == normalize_username(username))
    )
    return result.scalar_one_or_none()


async def get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    user = await session.get(User, user_id)
    return user if user is not None and user.is_active else None


async def active_token_versions(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The current token version of each of these users that is still active."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, User.token_version).where(User.id.in_(user_ids), User.is_active)
    )
    return {row.id: row.token_version for row in rows}


async def list_users(session: AsyncSession) -> Sequence[User]:
    result = await session.execute(select(User).order_by(User.created_at, User.id))
    return result.scalars().all()


async def verify_login(user: User | None, password: str) -> str | None:
    """Checks a login against the user found for it (None when unknown): the same error,
    and about the same time, for an unknown user and a wrong password. Needs no session,
    so no database connection is held during the hash. Returns a replacement hash when
    the stored one uses outdated parameters."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Unauthenticated(INVALID_CREDENTIALS)
    verification = await verify_password(user.password_hash if user else None, password)
    if user is None or not verification.ok or not user.is_active:
        raise Unauthenticated(INVALID_CREDENTIALS)
    return verification.new_hash


@dataclass(frozen=True, slots=True)
class TokenSettings:
    key: str
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    token: AccessToken


@dataclass(frozen=True, slots=True)
class LoginGate:
    """The login throttle and where the attempt comes from (the client address)."""

    throttle: LoginThrottle
    address: str | None


async def checked_password(
    gate: LoginGate, user: User | None, username: str, password: str
) -> str | None:
    """Verifies a password under the login throttle: admitted and counted before the check
    (TOO_MANY_REQUESTS while a bucket is spent), given back on success. Returns a
    replacement hash when the stored one is outdated."""
    admission = await gate.throttle.admit(username, gate.address, known=user is not None)
    if admission is Admission.ANSWER_INVALID:
        # An unknown username from an address that spent its budget for them: no check,
        # but the same answer after the same time as one.
        await asyncio.sleep(last_verification_s())
        raise Unauthenticated(INVALID_CREDENTIALS)
    new_hash = await verify_login(user, password)
    await gate.throttle.record_success(username, gate.address, admission)
    return new_hash


async def log_in(
    units: UnitOfWork, gate: LoginGate, username: str, password: str, *, tokens: TokenSettings
) -> SignedIn:
    """Checks the credentials under the throttle, replaces an outdated hash, issues a
    token; the attempt is audited either way. No database connection is held during the
    hash."""
    username = normalize_username(username[:MAX_USERNAME_INPUT])
    async with units() as session:
        user = await get_by_username(session, username)
    try:
        new_hash = await checked_password(gate, user, username, password)
    except Unauthenticated:
        async with units() as session:
            audit.record_by(
                session,
                audit.AuditAction.USER_LOGIN_FAILED,
                audit.Actor(user.id if user else None, gate.address),
                target_user_id=user.id if user else None,
                detail=f"username '{username[:64]}'",
            )
        raise
    assert user is not None, "verify_login rejects unknown users"
    async with units() as session:
        if new_hash is not None:
            await replace_password_hash(session, user.id, new_hash)
        audit.record_by(
            session,
            audit.AuditAction.USER_LOGIN,
            audit.Actor(user.id, gate.address),
            target_user_id=user.id,
        )
    return SignedIn(user, issue_token_for(user, key=tokens.key, expires_in_s=tokens.expires_in_s))


async def change_password(
    units: UnitOfWork,
    gate: LoginGate,
    viewer: User,
    current_password: str,
    new_password: str,
    *,
    password_min_length: int,
    tokens: TokenSettings,
) -> SignedIn:
    """A stolen token must not be enough to take the account over: the current password
    is checked, under the same throttle as logins. Earlier tokens are revoked and the
    user's WebSockets close after the commit."""
    await checked_password(gate, viewer, viewer.username, current_password)
    new_hash = await hash_new_password(
        new_password, username=viewer.username, password_min_length=password_min_length
    )
    async with units() as session:
        user = await replace_credentials(
            session, viewer.id, new_hash, actor=audit.Actor(viewer.id, gate.address)
        )
        after_commit(session).close_connections(user.id)
    return SignedIn(user, issue_token_for(user, key=tokens.key, expires_in_s=tokens.expires_in_s))


async def reset_password(
    units: UnitOfWork,
    actor: audit.Actor,
    user_id: uuid.UUID,
    new_password: str,
    *,
    password_min_length: int,
) -> User:
    """An administrator sets a user's password: earlier tokens are revoked and the user's
    WebSockets close after the commit."""
    async with units() as session:
        target = await get_user(session, user_id)
    new_hash = await hash_new_password(
        new_password, username=target.username, password_min_length=password_min_length
    )
    async with units() as session:
        user = await replace_credentials(session, user_id, new_hash, actor=actor)
        after_commit(session).close_connections(user.id)
    return user


async def replace_password_hash(session: AsyncSession, user_id: uuid.UUID, new_hash: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=new_hash))


def issue_token_for(user: User, *, key: str, expires_in_s: int) -> AccessToken:
    return issue_access_token(
        user.id,
        user.role,
        key=key,
        expires_in_s=expires_in_s,
        token_version=user.token_version,
    )


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User")
    return user


async def get_visible_user(session: AsyncSession, viewer: User, user_id: uuid.UUID) -> User | None:
    """A user by id, if the viewer may look them up (see `policy.visible_users`)."""
    return await session.scalar(select(User).where(User.id == user_id, visible_users(viewer)))


async def get_user_for_update(session: AsyncSession, user_id: uuid.UUID) -> User:
    result = await session.execute(select(User).where(User.id == user_id).with_for_update())
    user = result.scalar_one_or_none()
    if user is None:
        raise NotFound("User")
    return user


async def hash_new_password(password: str, *, username: str, password_min_length: int) -> str:
    """Applies the password policy and hashes; needs no session, so no database connection
    is held during the hash."""
    validate_password(password, username=username, min_length=password_min_length)
    return await hash_password(password)


async def replace_credentials(
    session: AsyncSession,
    user_id: uuid.UUID,
    new_hash: str,
    *,
    actor: audit.Actor = audit.SYSTEM,
) -> User:
    """Sets a new password hash and revokes every token issued before (change and reset)."""
    user = await get_user_for_update(session, user_id)
    user.password_hash = new_hash
    user.token_version += 1
    await session.flush()
    own = actor.user_id == user.id
    audit.record_by(
        session,
        audit.AuditAction.USER_CHANGED,
        actor,
        target_user_id=user.id,
        detail="password changed" if own else "password reset",
    )
    return user


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Fields to change; None leaves a field as it is (a full name is cleared with "")."""

    full_name: str | None = None
    role: Role | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class UpdatedUser:
    user: User
    tokens_revoked: bool
    """True when the change (deactivation) made the user's earlier tokens unusable."""


async def update_user(
    session: AsyncSession,
    acting_admin: User,
    user_id: uuid.UUID,
    changes: UserChanges,
    *,
    address: str | None = None,
) -> UpdatedUser:
    """A role change takes effect on the user's next request; the user leaves the team
    places of the old role, and their open sockets (and those of supervisors who saw them)
    close after the commit."""
    user = await get_user_for_update(session, user_id)
    removes_admin = user.role is Role.ADMIN and (
        changes.is_active is False or (changes.role is not None and changes.role is not Role.ADMIN)
    )
    if removes_admin and user.is_active:
        if user.id == acting_admin.id:
            raise BadUserInput("You cannot deactivate yourself or remove your own ADMIN role")
        if await _other_active_admins(session, user.id) == 0:
            raise BadUserInput("The last active administrator cannot be deactivated or demoted")
    changed: list[str] = []
    if changes.full_name is not None:
        full_name = validate_full_name(changes.full_name)
        if full_name != user.full_name:
            changed.append("full name")
        user.full_name = full_name
    old_role = user.role
    if changes.role is not None and changes.role is not user.role:
        user.role = changes.role
        changed.append(f"role {old_role.value} -> {user.role.value}")
    revoked = False
    if changes.is_active is not None and changes.is_active != user.is_active:
        user.is_active = changes.is_active
        changed.append("activated" if changes.is_active else "deactivated")
        if not changes.is_active:
            user.token_version += 1
            revoked = True
    await session.flush()
    if revoked:
        after_commit(session).close_connections(user.id)
    if user.role is not old_role:
        await team_service.drop_memberships_of_role(session, user, old_role)
        if not revoked:
            after_commit(session).close_connections(user.id)
    if changed:
        audit.record_by(
            session,
            audit.AuditAction.USER_CHANGED,
            audit.Actor(acting_admin.id, address),
            target_user_id=user.id,
            detail=", ".join(changed),
        )
    return UpdatedUser(user, revoked)


async def _other_active_admins(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.is_active.is_(True), User.id != user_id)
    )
    return int(count or 0)


async def ensure_admin(
    session: AsyncSession, username: str, password: str, *, password_min_length: int
) -> User | None:
    """Creates the first admin; returns None (touching nothing) when the user exists."""
    if await get_by_username(session, username) is not None:
        return None
    return await create_user(
        session,
        NewUser(username=username, password=password, role=Role.ADMIN),
        password_min_length=password_min_length,
    )
