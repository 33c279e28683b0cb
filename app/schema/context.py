"""The typed GraphQL context: resources, the viewer, and per-request DataLoaders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext
from strawberry.file_uploads import Upload
from strawberry.types import Info as StrawberryInfo

from app.api.resources import Resources
from app.auth.policy import CallScope, call_scope
from app.auth.tokens import bearer_token, decode_access_token
from app.core.errors import Unauthenticated
from app.db.models import Call as CallModel
from app.db.models import User
from app.schema.dataloaders import DataLoaders, ViewerDataLoaders
from app.services import audit
from app.services import calls as call_service
from app.services import users as user_service
from app.services.effects import unit_of_work
from app.services.uploads import AsyncReadable, StoredUpload, stored_upload

_UNSET: Any = object()


class Context(BaseContext):
    def __init__(
        self,
        resources: Resources,
        authorization: str | None,
        client_address: str | None = None,
        connection: HTTPConnection | None = None,
    ) -> None:
        super().__init__()
        self.resources = resources
        self.client_address = client_address
        """The caller's address (behind a trusted proxy, the forwarded one): login throttling."""
        self.connection = connection
        self.settings = resources.settings
        self.loaders = DataLoaders(resources.sessions)
        self.viewer_loaders = ViewerDataLoaders(resources.sessions, self.require_viewer)
        self._authorization = authorization
        self._viewer: User | None = _UNSET
        self._viewer_key: Hashable | None = None
        self._call_scope: CallScope | None = None
        self._new_audit_batches()

    def _new_audit_batches(self) -> None:
        # Reads audited once per call and request (or subscription), however many fields
        # or calls of a page ask, in one write per batch.
        self.calls_viewed = DataLoader[uuid.UUID, None](load_fn=self._record_views)
        self.audio_opened = DataLoader[uuid.UUID, None](load_fn=self._record_audio_opened)

    async def actor(self) -> audit.Actor:
        """The viewer and the client address, as the audit trail names them."""
        return audit.Actor((await self.require_viewer()).id, self.client_address)

    async def _record_reads(
        self, action: audit.AuditAction, call_ids: Sequence[uuid.UUID], detail: str | None
    ) -> list[None]:
        await audit.record_committed(
            self.resources.sessions, action, await self.actor(), call_ids=call_ids, detail=detail
        )
        return [None for _ in call_ids]

    async def _record_views(self, call_ids: Sequence[uuid.UUID]) -> list[None]:
        return await self._record_reads(audit.AuditAction.CALL_VIEWED, call_ids, None)

    async def _record_audio_opened(self, call_ids: Sequence[uuid.UUID]) -> list[None]:
        return await self._record_reads(
            audit.AuditAction.CALL_AUDIO_OPENED, call_ids, "link issued"
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short read session; sibling resolvers run concurrently, so each opens its own."""
        async with self.resources.sessions() as session:
            yield session

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """The request boundary for writes, a unit of work: commits on success, rolls back
        on any error, and after the commit runs the effects the services asked for."""
        return unit_of_work(self.resources.sessions, self.resources.effect_targets)

    def stored_upload(self, file: Upload) -> AbstractAsyncContextManager[StoredUpload]:
        """A GraphQL upload received, probed and stored; removed again if the block fails."""
        return stored_upload(
            self.resources.storage,
            cast(AsyncReadable, file),
            getattr(file, "filename", None),
            max_bytes=self.settings.max_upload_bytes,
            tmp_dir=self.settings.data_dir / "tmp",
            prober=self.resources.probes,
            max_duration_s=self.settings.max_call_seconds,
        )

    async def visible_call(self, call_id: uuid.UUID) -> CallModel:
        """The call, if the viewer may see it; NOT_FOUND otherwise (also when it is another
        agent's)."""
        viewer = await self.require_viewer()
        async with self.session() as session:
            return await call_service.get_visible_call(session, viewer, call_id)

    async def may_see_call(self, call: CallModel) -> bool:
        """`visible_call`'s rule for a row already read (one read shared by many viewers);
        the viewer's scope is read once per request (per subscription on a WebSocket)."""
        if self._call_scope is None:
            viewer = await self.require_viewer()
            async with self.session() as session:
                self._call_scope = await call_scope(session, viewer)
        return self._call_scope.allows(call)

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
        self._viewer_key = None
        self._call_scope = None
        self.viewer_loaders = ViewerDataLoaders(self.resources.sessions, self.require_viewer)
        self._new_audit_batches()

    def viewer_key(self) -> Hashable | None:
        """Who the results are for, once the viewer is known (no I/O): results computed
        for one viewer may be given to another with the same key (SharingExecutor)."""
        # Asked once per subscriber per event, so it is kept, not rebuilt from the row's
        # (instrumented, slow) attributes each time.
        return self._viewer_key

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
                # A password change, reset or deactivation raises the version: every token
                # issued before is refused from then on, on every request.
                if user is None or claims.token_version != user.token_version:
                    raise Unauthenticated("Invalid access token")
                self._viewer = user
                self._viewer_key = (user.id, user.role)
        return self._viewer

    async def require_viewer(self) -> User:
        user = await self.viewer()
        if user is None:
            raise Unauthenticated()
        return user


Info = StrawberryInfo[Context, None]
