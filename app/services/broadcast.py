"""Fan Redis pub/sub messages out to many local subscribers over ONE Redis connection.

Why not one pubsub connection per subscriber: a process serving hundreds of `callStatus`
WebSockets would hold hundreds of Redis connections. Here every local subscriber gets a small
in-process mailbox and the process holds a single SUBSCRIBE connection, subscribing a channel
when its first local subscriber arrives and unsubscribing when its last one leaves.

Contract for subscribers (read this before using `subscribe`):

* When `async with broadcaster.subscribe(channel) as messages:` enters, Redis has
  *confirmed* the subscription. Any message published after that moment is delivered. So:
  subscribe first, then read the current state from the database, then iterate; a change
  committed in between arrives as a message (possibly one you already saw in the database:
  consumers must tolerate duplicates).
* Iterating yields `bytes` (the published payload), `FeedInterrupted` or `MessagesLost`.
  `FeedInterrupted` comes as soon as the Redis connection is lost: nothing will arrive until
  it is back, which a consumer may tell its own clients. `MessagesLost` means
  some messages could not be delivered: the subscriber fell more than `queue_size` messages
  behind (its queue is then emptied: drop-all-keep-marker, so one slow WebSocket never slows
  the others or grows memory), or the Redis connection dropped and was re-established. It is
  only yielded once the subscription is active again, so the right reaction is to re-read
  the authoritative state (the database) and carry on iterating.
* A message for which the broadcaster's `supersedes(message)` is true (asked once per
  message) makes every message still queued for that channel obsolete: each subscriber's
  queue is emptied before it is added, so a slow subscriber gets it next (a deleted call's
  end at once, not after a backlog of its progress).
* On `stop()` iteration raises `BroadcasterClosed`.
* Every local subscriber of a channel receives the same message; `shared(channel, message,
  build)` gives them one object per message (built by the first, reused by the rest while
  anyone holds it), so decoding a message and reading what it refers to is done once per
  process rather than once per subscriber.

Publishing is not done here: `app.services.status.RedisStatusPublisher` publishes on an
ordinary pooled client, and publishers need no subscription connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.errors import OvozlyError

logger = logging.getLogger(__name__)

PUBSUB_CLIENT_NAME = "ovozly-pubsub"
Shared = TypeVar("Shared")
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)


class BroadcastError(OvozlyError):
    pass


class BroadcasterClosed(BroadcastError):
    """The broadcaster was stopped (or never started) while a subscriber used it."""


class BroadcasterUnavailable(BroadcastError):
    """Redis did not confirm a subscription in time."""


@dataclass(frozen=True, slots=True)
class MessagesLost:
    """Stands in for messages that were dropped; re-read the authoritative state."""

    reason: Literal["overflow", "reconnect"]


@dataclass(frozen=True, slots=True)
class FeedInterrupted:
    """The connection to Redis is lost: no message arrives until it is back, and then a
    `MessagesLost("reconnect")` follows (re-read the state then)."""


Delivery = bytes | FeedInterrupted | MessagesLost
"""What a subscriber's iterator yields."""


class _ConnectionLost(Exception):
    pass


class _Mailbox:
    """One subscriber's bounded queue. Pushing never blocks or awaits."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[bytes] = deque()
        self._maxsize = maxsize
        self._lost: MessagesLost | None = None
        self._interrupted = False
        self._closed = False
        self._wakeup = asyncio.Event()

    def push(self, data: bytes, *, supersedes: bool = False) -> None:
        if supersedes:
            self._items.clear()
        if len(self._items) >= self._maxsize:
            self.mark_lost("overflow")
            return
        self._items.append(data)
        self._wakeup.set()

    def mark_lost(self, reason: Literal["overflow", "reconnect"]) -> None:
        # Everything queued predates the state the consumer will re-read, so it is dropped.
        self._items.clear()
        self._lost = MessagesLost(reason)
        self._wakeup.set()

    def mark_interrupted(self) -> None:
        self._interrupted = True
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            if self._interrupted:
                # Before anything queued: the consumer learns of the outage at once; what is
                # queued is still delivered after it.
                self._interrupted = False
                yield FeedInterrupted()
            elif self._lost is not None:
                lost, self._lost = self._lost, None
                yield lost
            elif self._items:
                yield self._items.popleft()
            elif self._closed:
                raise BroadcasterClosed("the status broadcaster has stopped")
            else:
                self._wakeup.clear()
                await self._wakeup.wait()


@dataclass(eq=False)
class _Channel:
    name: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    mailboxes: set[_Mailbox] = field(default_factory=set)
    # Local users, counted before any await so a concurrent release never deletes the state
    # out from under a subscriber that is still waiting for the lock.
    users: int = 0
    # The connection epoch in which Redis confirmed SUBSCRIBE; None when not subscribed.
    confirmed_epoch: int | None = None
    # The epoch in which SUBSCRIBE was last sent (confirmed or not): UNSUBSCRIBE is needed.
    sent_epoch: int | None = None
    needs_resync: bool = False
    pending: tuple[str, asyncio.Future[None]] | None = None


class StatusBroadcaster:
    """Process-wide pub/sub fan-out. Create one per process; `start()` before use."""

    def __init__(
        self,
        redis_url: str,
        *,
        queue_size: int = 256,
        subscribe_timeout_s: float = 10.0,
        ack_timeout_s: float = 5.0,
        ping_interval_s: float = 15.0,
        reconnect_delay_s: tuple[float, float] = (0.1, 5.0),
        supersedes: Callable[[bytes], bool] | None = None,
    ) -> None:
        if queue_size <= 0:
            raise ValueError("queue_size must be positive")
        self._redis_url = redis_url
        self._queue_size = queue_size
        self._subscribe_timeout_s = subscribe_timeout_s
        self._ack_timeout_s = ack_timeout_s
        self._ping_interval_s = ping_interval_s
        self._reconnect_delay_s = reconnect_delay_s
        self._supersedes = supersedes
        self._channels: dict[str, _Channel] = {}
        self._pool: ConnectionPool | None = None
        self._conn: AbstractConnection | None = None
        self._epoch = 0
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_received = 0.0
        self._stopping = False
        # Weak values: an object lives as long as some subscriber still holds it, so memory
        # follows the subscribers, not the message history.
        self._shared: weakref.WeakValueDictionary[tuple[str, bytes], Any] = (
            weakref.WeakValueDictionary()
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the shared subscription connection (fails fast)."""
        if self._reader is not None:
            return
        self._stopping = False
        self._pool = ConnectionPool.from_url(
            self._redis_url,
            client_name=PUBSUB_CLIENT_NAME,
            socket_keepalive=True,
            socket_connect_timeout=5,
            # A client-side health check would PING and read the reply itself, stealing a
            # message from the reader; liveness is handled by `_keepalive` instead.
            health_check_interval=0,
        )
        # The first connection is made here so a misconfigured URL fails start-up loudly
        # instead of surfacing later as subscriptions that never confirm.
        await self._connect()
        self._reader = asyncio.create_task(self._run(), name="status-broadcaster-reader")

    async def stop(self) -> None:
        """Disconnect; every live subscription's iterator raises `BroadcasterClosed`."""
        self._stopping = True
        tasks = [t for t in (self._reader, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reader = None
        self._tasks.clear()
        self._ready.clear()
        self._fail_pending(BroadcasterClosed("the status broadcaster has stopped"))
        for channel in self._channels.values():
            channel.confirmed_epoch = channel.sent_epoch = None
            for mailbox in channel.mailboxes:
                mailbox.close()
        if self._conn is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._conn.disconnect()
            self._conn = None
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    # -- subscribing -------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Delivery]]:
        """Yield an iterator of this channel's messages, with the subscription already live.

        See the module docstring for the delivery contract. Raises `BroadcasterUnavailable`
        if Redis does not confirm within `subscribe_timeout_s`.
        """
        if self._reader is None or self._stopping:
            raise BroadcasterClosed("start() the broadcaster before subscribing")
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(channel)
        state.users += 1
        mailbox = _Mailbox(self._queue_size)
        try:
            try:
                async with asyncio.timeout(self._subscribe_timeout_s), state.lock:
                    await self._ensure_subscribed(state)
                    # Registered under the lock and after the confirmation: every message
                    # the reader sees from now on was published after the subscription.
                    state.mailboxes.add(mailbox)
            except TimeoutError:
                raise BroadcasterUnavailable(
                    f"Redis did not confirm the subscription to {channel!r}"
                ) from None
            yield aiter(mailbox)
        finally:
            state.mailboxes.discard(mailbox)
            state.users -= 1
            if state.users == 0 and not self._stopping:
                # Unsubscribing in the background keeps a closing WebSocket from waiting on
                # Redis, and runs even when this exit is a cancellation.
                self._spawn(self._release(state))
            elif state.users == 0:
                self._channels.pop(channel, None)

    def shared(self, channel: str, message: bytes, build: Callable[[], Shared]) -> Shared:
        """The one object built from `message` in this process.

        The first subscriber to call this builds it; every other subscriber of the channel
        gets the same object for as long as any of them keeps a reference to it (so keep it
        until you move on to the next message). The object must be weak-referenceable.
        """
        key = (channel, message)
        found = self._shared.get(key)
        if found is None:
            found = build()
            self._shared[key] = found
        return cast(Shared, found)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.mailboxes) if state else 0

    def active_channels(self) -> set[str]:
        """Channels this process is currently subscribed to on Redis (confirmed)."""
        return {name for name, c in self._channels.items() if c.confirmed_epoch == self._epoch}

    # -- channel operations (callers hold the channel's lock) ---------------------------------

    async def _ensure_subscribed(self, state: _Channel) -> None:
        while state.confirmed_epoch != self._epoch or not self._ready.is_set():
            await self._command(state, "subscribe")
            state.confirmed_epoch = self._epoch

    async def _release(self, state: _Channel) -> None:
        async with state.lock:
            if state.users > 0:
                return
            while state.sent_epoch == self._epoch and self._ready.is_set():
                try:
                    await self._command(state, "unsubscribe")
                except TimeoutError:
                    continue
                break
            state.confirmed_epoch = state.sent_epoch = None
            if state.users == 0 and self._channels.get(state.name) is state:
                del self._channels[state.name]

    async def _command(self, state: _Channel, kind: Literal["subscribe", "unsubscribe"]) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE and wait for Redis to acknowledge it.

        Retries across reconnects; a timeout forces a reconnect (the connection is assumed
        dead) and is re-raised for the caller's deadline to judge.
        """
        while True:
            await self._ready.wait()
            conn, epoch = self._conn, self._epoch
            if conn is None or not self._ready.is_set():
                if self._stopping:
                    raise BroadcasterClosed("the status broadcaster has stopped")
                continue
            if not conn.is_connected:
                # redis-py would silently reconnect this socket on send, giving us a second,
                # unread subscription connection; hand the loss to the reader instead.
                await self._drop_connection(conn)
                continue
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            state.pending = (kind, future)
            try:
                if kind == "subscribe":
                    state.sent_epoch = epoch
                await conn.send_command(kind.upper(), state.name)
                await asyncio.wait_for(asyncio.shield(future), self._ack_timeout_s)
                return
            except _ConnectionLost:
                continue
            except _CONNECTION_ERRORS:
                await self._drop_connection(conn)
                continue
            except TimeoutError:
                await self._drop_connection(conn)
                raise
            finally:
                if state.pending is not None and state.pending[1] is future:
                    state.pending = None
                if not future.done():
                    future.cancel()

    # -- the reader --------------------------------------------------------------------------

    async def _connect(self) -> None:
        assert self._pool is not None
        conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
        await conn.connect()
        self._conn = conn
        self._epoch += 1
        self._last_received = asyncio.get_running_loop().time()
        self._ready.set()

    async def _drop_connection(self, conn: AbstractConnection) -> None:
        # Marking the loss right away stops new commands going to this connection; closing
        # the socket makes the reader's pending read fail, and the reader reconnects.
        if conn is self._conn:
            self._on_connection_lost(conn)
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await conn.disconnect(nowait=True)

    async def _run(self) -> None:
        delay = self._reconnect_delay_s[0]
        while not self._stopping:
            conn = self._conn
            if conn is None:
                try:
                    await self._connect()
                except _CONNECTION_ERRORS as error:
                    logger.warning("pub/sub reconnect failed (%s); retrying in %.1fs", error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._reconnect_delay_s[1])
                    continue
                delay = self._reconnect_delay_s[0]
                self._resubscribe_all()
                continue
            pinger = asyncio.create_task(self._keepalive(conn))
            try:
                while True:
                    response = await conn.read_response()
                    self._last_received = asyncio.get_running_loop().time()
                    self._handle(response)
            except _CONNECTION_ERRORS as error:
                if not self._stopping:
                    logger.warning("pub/sub connection lost (%s); reconnecting", error)
            finally:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
            self._on_connection_lost(conn)
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await conn.disconnect(nowait=True)

    async def _keepalive(self, conn: AbstractConnection) -> None:
        """PING in subscribed mode so a half-open TCP connection is noticed within ~2 pings."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval_s)
            if loop.time() - self._last_received > 2.5 * self._ping_interval_s:
                logger.warning("pub/sub connection silent; reconnecting")
                await self._drop_connection(conn)
                return
            try:
                await conn.send_command("PING")
            except _CONNECTION_ERRORS:
                await self._drop_connection(conn)
                return

    def _on_connection_lost(self, conn: AbstractConnection) -> None:
        if conn is self._conn:
            self._conn = None
            self._ready.clear()
        self._fail_pending(_ConnectionLost())
        for state in self._channels.values():
            if state.confirmed_epoch is not None and state.mailboxes:
                state.needs_resync = True
                for mailbox in state.mailboxes:
                    mailbox.mark_interrupted()
            state.confirmed_epoch = state.sent_epoch = None

    def _fail_pending(self, error: Exception) -> None:
        for state in self._channels.values():
            if state.pending is not None and not state.pending[1].done():
                state.pending[1].set_exception(error)

    def _resubscribe_all(self) -> None:
        for state in list(self._channels.values()):
            if state.users > 0:
                self._spawn(self._resubscribe(state))

    async def _resubscribe(self, state: _Channel) -> None:
        while state.users > 0 and not self._stopping:
            try:
                async with state.lock:
                    if state.users > 0:
                        await self._ensure_subscribed(state)
                return
            except TimeoutError:
                continue

    def _handle(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return  # +PONG outside subscribed mode
        kind = bytes(response[0]).lower()
        if kind == b"message" and len(response) == 3:
            state = self._channels.get(_text(response[1]))
            if state is not None:
                data = bytes(response[2])
                supersedes = self._supersedes is not None and self._supersedes(data)
                for mailbox in state.mailboxes:
                    mailbox.push(data, supersedes=supersedes)
        elif kind in (b"subscribe", b"unsubscribe") and len(response) >= 2:
            state = self._channels.get(_text(response[1]))
            if state is None:
                return
            if kind == b"subscribe" and state.needs_resync:
                # Delivered by the reader itself, before any message that follows the ack, so
                # the consumer's re-read cannot miss a change published after it.
                state.needs_resync = False
                for mailbox in state.mailboxes:
                    mailbox.mark_lost("reconnect")
            if state.pending is not None and state.pending[0] == _text(kind):
                future = state.pending[1]
                if not future.done():
                    future.set_result(None)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


__all__ = [
    "PUBSUB_CLIENT_NAME",
    "BroadcastError",
    "BroadcasterClosed",
    "BroadcasterUnavailable",
    "FeedInterrupted",
    "MessagesLost",
    "RedisError",
    "StatusBroadcaster",
]
