"""Open WebSocket connections of this API process: caps, and closing a user's sockets when
their credentials change.

Every connection is admitted against a per-process cap at the handshake and bound to its
user at `connection_init` against a per-user cap. When a user's password is changed or reset,
or the user is deactivated, the API that did it publishes the user's id on a Redis channel;
every API process closes that user's sockets (4403), open subscriptions included, so a stolen
token's live streams end at once and not at the token's expiry. A process that was cut off
from Redis may have missed such a message: once it is back, it checks every open socket's
token version against the database instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from redis.asyncio import Redis
from starlette.websockets import WebSocket

from app.db.engine import SessionFactory
from app.services import users as user_service
from app.services.broadcast import (
    BroadcasterClosed,
    FeedInterrupted,
    MessagesLost,
    StatusBroadcaster,
)

logger = logging.getLogger(__name__)

CREDENTIALS_CHANGED_CHANNEL = "ovozly:credentials-changed"
CLOSE_CREDENTIALS_CHANGED = 4403
CLOSE_SERVER_BUSY = 1013
"""RFC 6455 "try again later": the process holds its maximum of connections."""
CLOSE_TOO_MANY_FOR_USER = 4429
RECONNECT_DELAY_S = 1.0


class ConnectionLimitReached(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class WebSocketRegistry:
    max_connections: int
    max_per_user: int
    _open: set[WebSocket] = field(default_factory=set)
    _by_user: defaultdict[uuid.UUID, set[WebSocket]] = field(
        default_factory=lambda: defaultdict(set)
    )
    _user_of: dict[WebSocket, uuid.UUID] = field(default_factory=dict)
    _version_of: dict[WebSocket, int] = field(default_factory=dict)

    def admit(self, websocket: WebSocket) -> None:
        if len(self._open) >= self.max_connections:
            raise ConnectionLimitReached(
                CLOSE_SERVER_BUSY, "Too many open connections on this server; try again later"
            )
        self._open.add(websocket)

    def bind(self, websocket: WebSocket, user_id: uuid.UUID, token_version: int) -> None:
        """`token_version`: the user's, checked against the socket's token at init."""
        previous = self._user_of.get(websocket)
        self._version_of[websocket] = token_version
        if previous == user_id:
            return
        sockets = self._by_user[user_id]
        if len(sockets) >= self.max_per_user:
            raise ConnectionLimitReached(
                CLOSE_TOO_MANY_FOR_USER,
                f"Too many open connections for this user (at most {self.max_per_user})",
            )
        sockets.add(websocket)
        self._user_of[websocket] = user_id

    def release(self, websocket: WebSocket) -> None:
        self._open.discard(websocket)
        self._version_of.pop(websocket, None)
        user_id = self._user_of.pop(websocket, None)
        if user_id is not None:
            sockets = self._by_user.get(user_id)
            if sockets is not None:
                sockets.discard(websocket)
                if not sockets:
                    del self._by_user[user_id]

    def open_count(self, user_id: uuid.UUID | None = None) -> int:
        if user_id is None:
            return len(self._open)
        return len(self._by_user.get(user_id, ()))

    async def close_user(self, user_id: uuid.UUID) -> int:
        """Closes every socket of this user in this process; returns how many."""
        return await self._close(user_id, list(self._by_user.get(user_id, ())))

    async def close_stale(self, sessions: SessionFactory) -> int:
        """Closes the sockets whose user is gone or inactive, or whose token predates the
        user's current token version; returns how many."""
        async with sessions() as session:
            current = await user_service.active_token_versions(session, set(self._by_user))
        closed = 0
        for user_id, sockets in list(self._by_user.items()):
            stale = [
                websocket
                for websocket in sockets
                if self._version_of.get(websocket) != current.get(user_id)
            ]
            closed += await self._close(user_id, stale)
        return closed

    async def _close(self, user_id: uuid.UUID, sockets: list[WebSocket]) -> int:
        for websocket in sockets:
            self.release(websocket)
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_CREDENTIALS_CHANGED, "Credentials changed")
        if sockets:
            logger.info(
                "closed %d WebSocket(s) of user %s: credentials changed", len(sockets), user_id
            )
        return len(sockets)

    async def follow_credential_changes(
        self, broadcaster: StatusBroadcaster, sessions: SessionFactory
    ) -> None:
        """Runs for the life of the process: closes sockets of users whose credentials
        changed in any API process. Survives Redis outages by subscribing again, and then
        checks every open socket, since announcements made meanwhile were missed."""
        while True:
            try:
                async with broadcaster.subscribe(CREDENTIALS_CHANGED_CHANNEL) as messages:
                    async for message in messages:
                        if isinstance(message, FeedInterrupted):
                            continue
                        if isinstance(message, MessagesLost):
                            await self.close_stale(sessions)
                            continue
                        try:
                            user_id = uuid.UUID(message.decode())
                        except ValueError:
                            logger.warning("ignoring malformed credentials-changed message")
                            continue
                        await self.close_user(user_id)
            except BroadcasterClosed:
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("credentials-changed listener lost Redis; retrying", exc_info=True)
                await asyncio.sleep(RECONNECT_DELAY_S)


async def announce_credentials_changed(
    registry: WebSocketRegistry, redis: Redis, user_id: uuid.UUID
) -> None:
    """After commit: close the user's sockets here at once, and in every other process
    through Redis (best effort; the per-request token check holds regardless)."""
    await registry.close_user(user_id)
    try:
        await redis.publish(CREDENTIALS_CHANGED_CHANNEL, str(user_id))
    except Exception:
        logger.warning("could not announce credentials change of %s", user_id, exc_info=True)


class CredentialChangeAnnouncer:
    """The after-commit target (app/services/effects.py) that closes a user's sockets."""

    def __init__(self, registry: WebSocketRegistry, redis: Redis) -> None:
        self._registry = registry
        self._redis = redis

    async def announce(self, user_id: uuid.UUID) -> None:
        await announce_credentials_changed(self._registry, self._redis, user_id)
