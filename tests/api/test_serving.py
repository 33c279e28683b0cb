"""The API server process's tuning for many watchers: its garbage collector, and
the per-event executors of shared subscription events."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from collections.abc import AsyncGenerator, Hashable
from typing import Any

import strawberry

from app.api.main import GC_OLDER_THRESHOLDS, GC_YOUNG_THRESHOLD
from app.schema.execution import SharingExecutor


def test_the_server_process_freezes_start_up_objects_and_still_collects_cycles() -> None:
    """In a process of its own: the tuning changes process-wide collector state."""
    script = textwrap.dedent(
        """
        import gc, weakref
        from app.api.main import tune_garbage_collection

        tune_garbage_collection()
        print(gc.get_threshold())
        print(gc.get_freeze_count() > 1000)

        class Node:
            pass

        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        # Allocation alone (no explicit collect) reaches the young threshold.
        keep = [[n] for n in range(200_000)]
        print(alive() is None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    threshold, frozen, collected = done.stdout.strip().splitlines()
    assert threshold == str((GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS))
    assert frozen == "True", "start-up objects are kept out of later collections"
    assert collected == "True", "reference cycles are still collected"


@strawberry.type
class _Event:
    value: int
    shared_results: strawberry.Private[dict[Hashable, Any]]


class _Viewer:
    def viewer_key(self) -> Hashable:
        return ("viewer", "AGENT")


EXECUTIONS: list[int] = []


@strawberry.type
class _Query:
    ping: int = 1


def _doubled(root: _Event) -> int:
    EXECUTIONS.append(root.value)
    return root.value * 2


@strawberry.type
class _EventWithWork(_Event):
    doubled: int = strawberry.field(resolver=_doubled)


SHARED_EVENTS = [_EventWithWork(value=n, shared_results={}) for n in (1, 2, 3)]


@strawberry.type
class _WorkSubscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[_EventWithWork, None]:
        for event in SHARED_EVENTS:
            yield event


def test_a_per_event_executor_is_a_shallow_copy() -> None:
    original = object.__new__(SharingExecutor)
    original.__dict__.update({"root_value": "first", "shared": ["state"]})
    clone = copy.copy(original)
    assert clone is not original and type(clone) is SharingExecutor
    assert clone.__dict__ == original.__dict__
    clone.root_value = "second"
    assert original.root_value == "first"
    assert clone.__dict__["shared"] is original.__dict__["shared"]


async def test_shared_events_execute_once_for_all_subscribers_with_their_own_results() -> None:
    schema = strawberry.Schema(
        query=_Query, subscription=_WorkSubscription, execution_context_class=SharingExecutor
    )
    EXECUTIONS.clear()
    for event in SHARED_EVENTS:
        event.shared_results.clear()
    streams = [
        await schema.subscribe("subscription { events { value doubled } }", context_value=_Viewer())
        for _ in range(5)
    ]
    received: list[list[Any]] = []
    for stream in streams:
        assert not isinstance(stream, strawberry.types.ExecutionResult)
        results = [result async for result in stream]
        assert all(not result.errors for result in results)
        received.append([result.data for result in results])
    expected = [{"events": {"value": n, "doubled": n * 2}} for n in (1, 2, 3)]
    assert received == [expected] * 5
    assert EXECUTIONS == [1, 2, 3], "each event's selection ran once for the five subscribers"
