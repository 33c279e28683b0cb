"""Subscription events executed once per process, not once per subscriber.

graphql-core runs a subscription's selection set for every event and every subscriber. When
500 WebSockets watch one call, that is 500 identical executions of the same fields on the
same event. A process hands all its subscribers of a call one shared event object
(`SharedEvent`); the executor below runs the selection set on it once per distinct
(document, operation, variables, viewer) and gives every subscriber with that key the same
result. The viewer is in the key, so nothing one user is allowed to see reaches another.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterable, Hashable
from functools import partial
from typing import Any, Protocol, TypeVar, cast

from graphql import ExecutionResult, OperationType
from graphql.pyutils import AwaitableOrValue

from app.schema.fan_out import SubscriptionLane
from app.schema.plain_fields import PlainFieldsExecutor

T = TypeVar("T")

logger = logging.getLogger(__name__)


class SharedEvent(Protocol):
    """A subscription payload shared by a process's subscribers; it holds their results."""

    shared_results: dict[Hashable, Any]


class ViewerKeyed(Protocol):
    """A GraphQL context that can say, without I/O, whose results it may receive."""

    def viewer_key(self) -> Hashable | None: ...


class SharingExecutor(PlainFieldsExecutor):
    """Strawberry's executor, sharing one execution per key among a `SharedEvent`'s
    subscribers. Anything else (queries, mutations, unshared payloads) runs as usual."""

    _operation_key: Hashable | None = None

    def __copy__(self) -> SharingExecutor:
        # graphql-core copies the executor for every event of every subscriber
        # (build_per_event_executor); copy.copy's generic reduce/reconstruct protocol was
        # about a tenth of a delivery's CPU. The same shallow copy, directly.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def build_per_event_executor(self, payload: Any) -> SharingExecutor:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharingExecutor)
        if self._operation_key is None:
            self._operation_key = self._build_operation_key()
        executor._operation_key = self._operation_key
        return executor

    def _build_operation_key(self) -> Hashable:
        location = self.operation.loc
        if location is None:  # a document built without locations: nothing to key on
            return ()
        variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
        return (location.source.body, self.operation.name and self.operation.name.value, variables)

    def sharing_key(self) -> Hashable | None:
        """The key under which this subscriber's results are shared with others, as things
        stand (None: they are not shared). Duck-typed on purpose: a runtime Protocol check
        costs more than the execution it would save for a small selection."""
        if not self._operation_key or self.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        viewer_key = getattr(self.context_value, "viewer_key", None)
        if viewer_key is None:
            return None
        viewer = viewer_key()
        if viewer is None:
            return None
        return (self._operation_key, viewer)

    @staticmethod
    def shared_result_settled(results: dict[Hashable, Any], key: Hashable) -> bool:
        """Whether the shared execution under `key` ended with a result (not aborted)."""
        shared = results.get(key)
        if isinstance(shared, asyncio.Future):
            return shared.done() and not shared.cancelled() and shared.exception() is None
        return isinstance(shared, ExecutionResult)

    def cancellable_iterable(self, iterable: AsyncIterable[T]) -> AsyncIterable[T]:
        # graphql-core hands the subscription's source event stream through here once,
        # before mapping it to results: a transport's lane for this operation (if it opened
        # one) takes it, to relay ready-made payloads (app/schema/fan_out.py).
        iterable = super().cancellable_iterable(iterable)
        lane = SubscriptionLane.current()
        if (
            lane is None
            or lane.attached
            or self.operation.operation is not OperationType.SUBSCRIPTION
        ):
            return iterable
        return lane.attach(aiter(iterable), self)

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        results: dict[Hashable, Any] | None = getattr(self.root_value, "shared_results", None)
        key = self.sharing_key() if results is not None else None
        if results is None or key is None:
            return super().execute_operation(serially)
        shared = results.get(key)
        if shared is None:
            result = super().execute_operation(serially)
            if not self.is_awaitable(result):
                results[key] = result
                return result
            shared = results[key] = asyncio.ensure_future(result)
            shared.add_done_callback(partial(_settle, results, key))
        if not isinstance(shared, asyncio.Future):
            return shared
        return self._await_shared(shared, serially)

    async def _await_shared(
        self, shared: asyncio.Future[ExecutionResult], serially: bool | None
    ) -> ExecutionResult:
        try:
            # Shielded: the subscriber that started the execution may go away while others
            # wait for it.
            return await asyncio.shield(shared)
        except asyncio.CancelledError:
            if not shared.cancelled():
                raise  # this subscriber was cancelled
        except Exception as error:
            # Field errors are inside the result; an exception means the execution was
            # aborted with the subscriber that ran it, so this one runs its own.
            logger.debug("shared subscription execution aborted (%r)", error)
        own = super().execute_operation(serially)
        if self.is_awaitable(own):
            return cast(ExecutionResult, await own)
        return cast(ExecutionResult, own)


def _settle(results: dict[Hashable, Any], key: Hashable, task: asyncio.Future[Any]) -> None:
    """Once the shared execution is done, later subscribers take its result synchronously;
    a failure is retrieved here, so one nobody awaits any more is not logged as lost."""
    if not task.cancelled() and task.exception() is None and results.get(key) is task:
        results[key] = task.result()


__all__ = ["SharedEvent", "SharingExecutor", "ViewerKeyed"]
