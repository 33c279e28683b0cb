"""Subscription events relayed as ready-made `next` payloads.

`SharingExecutor` runs a selection set once per event for all of a process's subscribers with
the same (document, operation, variables, viewer). What stayed per subscriber was everything
around that shared result: graphql-core's per-event executor and event mapping, Strawberry's
per-result stream (result conversion, error processing, extension hooks) and the building and
encoding of the `next` message: about two thirds of a delivery's CPU with 500 subscribers.

A `SubscriptionLane` lets a transport go around that pipeline. The transport opens one in the
task that runs an operation; the executor attaches the subscription's source event stream to
it (`attach`). After each result the stock pipeline sent, the transport asks the lane for the
next event's payload (`next_payload`): the lane pulls the event from the source itself (so the
resolver's own per-subscriber logic, filtering and ending, still runs for every subscriber)
and, if another subscriber with the same key already had the stock pipeline make that event's
payload, returns it, ready to be sent. Otherwise the lane hands the event (or the source's
exception, or its end) back to the stock pipeline, which processes it as it always did; the
payload it produces is then recorded on the shared event (`record`) for the other subscribers.
So every payload a subscriber receives was made by Strawberry's own pipeline, for a viewer
with the same key; only a process's first subscriber of each key pays for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextvars import ContextVar
from typing import Any, Final, Protocol, cast

_FRAME: Final = "next-payload"
_NOT_SHAREABLE: Final = object()


class SharingKeyed(Protocol):
    """The executor side: which shared results a subscriber may be given (SharingExecutor)."""

    def sharing_key(self) -> Hashable | None: ...

    def shared_result_settled(self, results: dict[Hashable, Any], key: Hashable) -> bool: ...


class _PayloadInMaking:
    """A payload one subscriber's stock pipeline is making; the others wait for it.

    Each waiter waits on a future of its own (one wake-up each, and a waiter that is
    cancelled cancels nothing the others wait for)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[str | None]] = []

    def wait(self) -> asyncio.Future[str | None]:
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def settle(self, payload: str | None) -> None:
        """The payload, or None: it will not be made."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(payload)


class _HandedOver:
    """What the stock pipeline takes next from the source: an event, an exception, or the end."""

    __slots__ = ("error", "event")

    def __init__(self, event: Any = None, error: BaseException | None = None) -> None:
        self.event = event
        self.error = error

    def take(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.event


class _LaneSource:
    """The source event stream as the stock pipeline sees it: what the lane handed over
    comes first; otherwise the source itself."""

    __slots__ = ("_handed_over", "source")

    def __init__(self, source: AsyncIterator[Any]) -> None:
        self.source = source
        self._handed_over: _HandedOver | None = None

    def hand_over(self, event: Any = None, error: BaseException | None = None) -> None:
        self._handed_over = _HandedOver(event, error)

    def __aiter__(self) -> _LaneSource:
        return self

    async def __anext__(self) -> Any:
        handed_over, self._handed_over = self._handed_over, None
        if handed_over is None:
            return await self.source.__anext__()
        return handed_over.take()

    async def aclose(self) -> None:
        aclose = getattr(self.source, "aclose", None)
        if aclose is not None:
            await aclose()


_current_lane: ContextVar[SubscriptionLane | None] = ContextVar("subscription_lane", default=None)


class SubscriptionLane:
    """One operation's way around the per-result pipeline (see the module docstring)."""

    __slots__ = ("_executor", "_making", "_source")

    def __init__(self) -> None:
        self._source: _LaneSource | None = None
        self._executor: SharingKeyed | None = None
        # The payload this subscriber's stock pipeline is making for the others: the
        # event's shared results, the payload's and the execution result's keys there.
        self._making: tuple[dict[Hashable, Any], Hashable, Hashable, _PayloadInMaking] | None = None

    @classmethod
    def open(cls) -> SubscriptionLane:
        """A lane for the operation run by the current task (a context variable: each
        operation runs in a task of its own)."""
        lane = cls()
        _current_lane.set(lane)
        return lane

    @staticmethod
    def current() -> SubscriptionLane | None:
        return _current_lane.get()

    @property
    def attached(self) -> bool:
        return self._source is not None

    def attach(self, source: AsyncIterator[Any], executor: SharingKeyed) -> AsyncIterator[Any]:
        """Called by the executor with the subscription's source event stream; returns the
        stream the stock pipeline should iterate instead."""
        self._executor = executor
        self._source = _LaneSource(source)
        return self._source

    async def next_payload(self) -> str | None:
        """The next event's `next` payload (JSON text) when another subscriber's pipeline
        made it; None once the event went back to the stock pipeline (send what it yields)."""
        source = self._source
        assert source is not None and self._executor is not None
        try:
            event = await source.source.__anext__()
        except StopAsyncIteration as end:
            source.hand_over(error=end)
            return None
        except Exception as error:
            # The resolver's own errors (e.g. NOT_FOUND once the call is deleted): the stock
            # pipeline turns them into a `next` with errors, then `complete`.
            source.hand_over(error=error)
            return None
        results: dict[Hashable, Any] | None = getattr(event, "shared_results", None)
        result_key = self._executor.sharing_key() if results is not None else None
        if results is None or result_key is None:
            source.hand_over(event)
            return None
        payload_key = (_FRAME, result_key)
        while True:
            ready = results.get(payload_key)
            if isinstance(ready, str):
                return ready
            if ready is _NOT_SHAREABLE:
                source.hand_over(event)
                return None
            if ready is None:
                # The first subscriber of this key: its stock pipeline makes the payload.
                making = _PayloadInMaking()
                results[payload_key] = making
                self._making = (results, payload_key, result_key, making)
                source.hand_over(event)
                return None
            payload = await cast(_PayloadInMaking, ready).wait()
            if payload is not None:
                return payload
            # Not made (its maker left or its result was not shareable): look again; the
            # first subscriber back makes it.

    def record(self, payload: str | None, *, has_extensions: bool) -> None:
        """The stock pipeline's `next` payload for the event handed over (None: it could not
        be encoded): shared with the other subscribers of the key when it came from the
        shared execution result and carries nothing operation-specific."""
        making, self._making = self._making, None
        if making is None:
            return
        results, payload_key, result_key, in_making = making
        assert self._executor is not None
        if (
            payload is None
            or has_extensions
            or not self._executor.shared_result_settled(results, result_key)
        ):
            # Never offered again for this event: every subscriber runs the stock pipeline.
            results[payload_key] = _NOT_SHAREABLE
            in_making.settle(None)
            return
        results[payload_key] = payload
        in_making.settle(payload)

    def close(self) -> None:
        """The operation ended: a payload still being made will not be; the next subscriber
        makes it."""
        making, self._making = self._making, None
        if making is not None:
            results, payload_key, _, in_making = making
            if results.get(payload_key) is in_making:
                del results[payload_key]
            in_making.settle(None)


__all__ = ["SharingKeyed", "SubscriptionLane"]
