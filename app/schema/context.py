"""The typed GraphQL context: resources, the viewer, and per-request DataLoaders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from app.auth.tokens import bearer_token, decode_access_token
from app.db.models import User
from app.errors import Unauthenticated
from app.resources import Resources
from app.schema.loaders import Loaders
from app.services import users as user_service

_UNSET: Any = object()


class Context(BaseContext):
    def __init__(self, resources: Resources, authorization: str | None) -> None:
        super().__init__()
        self.resources = resources
        self.settings = resources.settings
        self.loaders = Loaders(resources.sessions)
        self._authorization = authorization
        self._viewer: User | None = _UNSET

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short read session; sibling resolvers run concurrently, so each opens its own."""
        async with self.resources.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The request boundary for writes: commits on success, rolls back on any error."""
        async with self.resources.sessions() as session, session.begin():
            yield session

    def _authorization_value(self) -> str | None:
        if self._authorization is not None:
            return self._authorization
        params = self.connection_params
        if isinstance(params, dict):
            for key in ("Authorization", "authorization"):
                value = params.get(key)
                if isinstance(value, str):
                    return value
        return None

    def forget_viewer(self) -> None:
        """The next `viewer()` checks the token and the user again."""
        self._viewer = _UNSET

    async def viewer(self) -> User | None:
        """The authenticated user, or None without a token. A bad token raises."""
        if self._viewer is _UNSET:
            token = bearer_token(self._authorization_value())
            if token is None:
                self._viewer = None
            else:
                claims = decode_access_token(token, key=self.settings.signing_key)
                async with self.session() as session:
                    user = await user_service.get_active_user(session, claims.user_id)
                if user is None:
                    raise Unauthenticated("Invalid access token")
                self._viewer = user
        return self._viewer

    async def require_viewer(self) -> User:
        user = await self.viewer()
        if user is None:
            raise Unauthenticated()
        return user


Info = StrawberryInfo[Context, None]
