"""User accounts: creation, authentication, lookup. Services flush; the boundary commits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import hash_password, verify_password
from app.auth.tokens import AccessToken, issue_access_token
from app.db.models import Role, User
from app.errors import INVALID_CREDENTIALS, BadUserInput, Unauthenticated

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


def validate_new_user(new_user: NewUser, *, password_min_length: int) -> NewUser:
    username = normalize_username(new_user.username)
    if not USERNAME_PATTERN.fullmatch(username):
        raise BadUserInput(
            "Username must be 3-64 characters: letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    if len(new_user.password) < password_min_length:
        raise BadUserInput(f"Password must be at least {password_min_length} characters long")
    if len(new_user.password) > MAX_PASSWORD_LENGTH:
        raise BadUserInput(f"Password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if new_user.password.strip().lower() == username:
        raise BadUserInput("Password must not be the username")
    full_name = (new_user.full_name or "").strip() or None
    if full_name is not None and len(full_name) > MAX_FULL_NAME_LENGTH:
        raise BadUserInput(f"Full name must be at most {MAX_FULL_NAME_LENGTH} characters long")
    return NewUser(username, new_user.password, full_name, new_user.role)


async def create_user(
    session: AsyncSession, new_user: NewUser, *, password_min_length: int
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
    return user


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(
        select(User).where(User.username == normalize_username(username))
    )
    return result.scalar_one_or_none()


async def get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    user = await session.get(User, user_id)
    return user if user is not None and user.is_active else None


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


async def replace_password_hash(session: AsyncSession, user_id: uuid.UUID, new_hash: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=new_hash))


def issue_token_for(user: User, *, key: str, expires_in_s: int) -> AccessToken:
    return issue_access_token(user.id, user.role, key=key, expires_in_s=expires_in_s)


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
