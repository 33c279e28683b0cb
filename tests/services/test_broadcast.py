"""StatusBroadcaster against a real redis-server: fan-out, one connection, ordering, loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from redis.asyncio import Redis

from app.services.broadcast import (
    PUBSUB_CLIENT_NAME,
    BroadcasterClosed,
    FeedInterrupted,
    MessagesLost,
    StatusBroadcaster,
)
from app.services.status import status_channel
from tests.factories import wait_until

Item = bytes | FeedInterrupted | MessagesLost


@pytest.fixture
async def admin(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server)
    yield client
    await client.aclose()


@pytest.fixture
async def broadcaster(redis_server: str) -> AsyncIterator[StatusBroadcaster]:
    instance = StatusBroadcaster(redis_server, queue_size=64, ping_interval_s=0.5)
    await instance.start()
    yield instance
    await instance.stop()


async def next_item(messages: AsyncIterator[Item], timeout: float = 5.0) -> Item:
    return await asyncio.wait_for(anext(messages), timeout)


async def pubsub_clients(admin: Redis) -> list[dict[str, str]]:
    clients = await admin.client_list()
    return [c for c in clients if c.get("name") == PUBSUB_CLIENT_NAME]


async def numsub(admin: Redis, *channels: str) -> list[int]:
    return [int(count) for _, count in await admin.pubsub_numsub(*channels)]


async def test_many_subscribers_share_one_redis_subscription(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    channel = status_channel("many-subs")
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(broadcaster.subscribe(channel)) for _ in range(50)
        ]
        assert await numsub(admin, channel) == [1]
        assert broadcaster.subscriber_count(channel) == 50
        for index in range(10):
            assert await admin.publish(channel, f"event-{index}") == 1
        for stream in streams:
            received = [await next_item(stream) for _ in range(10)]
            assert received == [f"event-{i}".encode() for i in range(10)]


async def test_many_channels_over_exactly_one_connection(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    channels = [status_channel(f"chan-{i}") for i in range(30)]
    async with AsyncExitStack() as stack:
        streams = {
            channel: [
                await stack.enter_async_context(broadcaster.subscribe(channel)) for _ in range(3)
            ]
            for channel in channels
        }
        clients = await pubsub_clients(admin)
        assert len(clients) == 1
        assert int(clients[0]["sub"]) == len(channels)
        assert await numsub(admin, *channels) == [1] * len(channels)
        assert broadcaster.active_channels() == set(channels)

        for channel in channels:
            await admin.publish(channel, channel.encode())
        for channel, subscribers in streams.items():
            for stream in subscribers:
                # Only its own channel's message arrives, and nothing else is queued.
                assert await next_item(stream) == channel.encode()
                with pytest.raises(TimeoutError):
                    await next_item(stream, timeout=0.01)


async def test_last_subscriber_leaving_unsubscribes(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    channel = status_channel("cleanup")
    async with broadcaster.subscribe(channel), broadcaster.subscribe(channel):
        assert await numsub(admin, channel) == [1]
    # Unsubscribing happens in the background after the block exits.
    await wait_until(lambda: _numsub_is(admin, channel, 0), "Redis to drop the channel", 5)
    await wait_until(lambda: _no_local_state(broadcaster, channel), "the local state to go", 5)
    clients = await pubsub_clients(admin)
    assert len(clients) == 1
    assert clients[0]["sub"] == "0"

    # One of two leaving keeps the subscription for the other.
    async with broadcaster.subscribe(channel) as stays:
        async with broadcaster.subscribe(channel):
            pass
        assert broadcaster.subscriber_count(channel) == 1
        # An absence cannot be awaited: this grace lets an unsubscribe wrongly started in the
        # background reach Redis before the count is read.
        await asyncio.sleep(0.05)
        assert await numsub(admin, channel) == [1]
        await admin.publish(channel, b"still here")
        assert await next_item(stays) == b"still here"


async def _numsub_is(admin: Redis, channel: str, expected: int) -> bool:
    return await numsub(admin, channel) == [expected]


async def _no_local_state(broadcaster: StatusBroadcaster, channel: str) -> bool:
    return channel not in broadcaster.active_channels() and not broadcaster.subscriber_count(
        channel
    )


async def test_message_published_right_after_subscribe_is_never_lost(
    broadcaster: StatusBroadcaster, redis_server: str
) -> None:
    # The publisher is a separate client, as the worker is a separate process.
    publisher = Redis.from_url(redis_server)
    try:
        for attempt in range(100):
            channel = status_channel(f"order-{attempt}")
            async with broadcaster.subscribe(channel) as messages:
                await publisher.publish(channel, b"first")
                assert await next_item(messages) == b"first"
    finally:
        await publisher.aclose()


async def test_concurrent_churn_on_one_channel_settles(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    channel = status_channel("churn")

    async def visit(delay: float) -> None:
        async with broadcaster.subscribe(channel) as messages:
            # Staggered lifetimes are the churn under test: joins and leaves interleave.
            await asyncio.sleep(delay)
            await admin.publish(channel, b"ping")
            # Every visitor sees at least its own message, whatever others are doing.
            while await next_item(messages) != b"ping":
                pass

    await asyncio.gather(*(visit((i % 7) / 1000) for i in range(60)))
    await wait_until(lambda: _numsub_is(admin, channel, 0), "Redis to drop the channel", 5)
    async with broadcaster.subscribe(channel) as messages:
        await admin.publish(channel, b"after churn")
        assert await next_item(messages) == b"after churn"


async def test_slow_subscriber_is_dropped_to_a_marker_without_slowing_others(
    redis_server: str,
    admin: Redis,
) -> None:
    broadcaster = StatusBroadcaster(redis_server, queue_size=5)
    await broadcaster.start()
    try:
        channel = status_channel("slow")
        async with broadcaster.subscribe(channel) as slow, broadcaster.subscribe(channel) as fast:
            fast_received: list[Item] = []
            received = asyncio.Event()

            async def keep_up() -> None:
                while len(fast_received) < 100:
                    fast_received.append(await next_item(fast))
                    received.set()

            reader = asyncio.create_task(keep_up())
            for index in range(100):
                await admin.publish(channel, str(index))
                # Paced by the reader that keeps up: it has each message before the next.
                await asyncio.wait_for(received.wait(), 5)
                received.clear()
            await asyncio.wait_for(reader, 5)
            # The reader that keeps up gets everything, in order, despite the stalled one.
            assert fast_received == [str(i).encode() for i in range(100)]

            # The slow one: a marker first, then only messages newer than anything dropped.
            first = await next_item(slow)
            assert first == MessagesLost("overflow")
            rest: list[Item] = []
            while True:
                try:
                    rest.append(await next_item(slow, timeout=0.1))
                except TimeoutError:
                    break
            numbers = [int(item) for item in rest if isinstance(item, bytes)]
            assert len(numbers) == len(rest) <= 5
            assert numbers == list(range(100 - len(numbers), 100))
    finally:
        await broadcaster.stop()


async def test_reconnects_and_signals_lost_messages(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    channel = status_channel("reconnect")
    async with broadcaster.subscribe(channel) as messages:
        await admin.publish(channel, b"before")
        assert await next_item(messages) == b"before"

        killed = await admin.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT KILL", "TYPE", "pubsub"
        )
        assert int(killed) == 1
        # The outage is told at once, before the connection is back.
        assert await next_item(messages) == FeedInterrupted()
        # The marker arrives only once the subscription is live again on the new connection,
        # so a publish right after it must be delivered.
        assert await next_item(messages) == MessagesLost("reconnect")
        assert await numsub(admin, channel) == [1]
        await admin.publish(channel, b"after")
        assert await next_item(messages) == b"after"
        assert len(await pubsub_clients(admin)) == 1

        # New subscribers work on the new connection too.
        other = status_channel("reconnect-other")
        async with broadcaster.subscribe(other) as other_messages:
            await admin.publish(other, b"hello")
            assert await next_item(other_messages) == b"hello"


async def test_stop_ends_subscriptions(redis_server: str) -> None:
    broadcaster = StatusBroadcaster(redis_server)
    with pytest.raises(BroadcasterClosed):
        async with broadcaster.subscribe("x"):
            pass
    await broadcaster.start()
    async with broadcaster.subscribe(status_channel("stop")) as messages:
        reading = asyncio.Event()

        async def read_one() -> Item:
            reading.set()
            # Runs on into the subscription's wait in this same step: once `reading` is seen
            # set, the read is parked there.
            return await anext(messages)

        waiting = asyncio.create_task(read_one())
        await asyncio.wait_for(reading.wait(), 5)
        assert not waiting.done()
        await broadcaster.stop()
        with pytest.raises(BroadcasterClosed):
            await asyncio.wait_for(waiting, 5)


async def test_subscribers_of_a_message_share_one_object_built_once(
    broadcaster: StatusBroadcaster, admin: Redis
) -> None:
    class Decoded:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

    channel = "test:shared"
    built: list[bytes] = []

    def build(message: bytes) -> Decoded:
        built.append(message)
        return Decoded(message)

    async with broadcaster.subscribe(channel) as first, broadcaster.subscribe(channel) as second:
        await admin.publish(channel, b"event-1")
        one = await next_item(first)
        two = await next_item(second)
        assert isinstance(one, bytes) and isinstance(two, bytes)
        shared_one = broadcaster.shared(channel, one, lambda: build(one))
        shared_two = broadcaster.shared(channel, two, lambda: build(two))
        assert shared_one is shared_two
        assert built == [b"event-1"]
        # Held by nobody any more: the next subscriber builds afresh, so memory follows the
        # subscribers, not the history of messages.
        del shared_one, shared_two
        broadcaster.shared(channel, one, lambda: build(one))
        assert built == [b"event-1", b"event-1"]


async def test_a_superseding_message_overtakes_what_a_slow_subscriber_has_queued(
    redis_server: str, admin: Redis
) -> None:
    """A call deleted (or re-queued) while a subscriber is behind: it gets the end next,
    not after a backlog of the superseded job's progress."""
    import uuid
    from datetime import UTC, datetime

    from app.db.models import CallStatus, PipelineStage
    from app.services.status import StatusEvent, supersedes_queued

    call_id = uuid.uuid4()
    channel = status_channel(call_id)

    def event(progress: float, **flags: bool) -> str:
        return StatusEvent(
            call_id=call_id,
            status=CallStatus.RUNNING,
            stage=PipelineStage.TRANSCRIBING,
            progress=progress,
            error=None,
            at=datetime.now(UTC),
            job="call:old",
            **flags,
        ).to_json()

    instance = StatusBroadcaster(redis_server, supersedes=supersedes_queued)
    await instance.start()
    try:
        async with instance.subscribe(channel) as messages, instance.subscribe(channel) as witness:
            for n in range(30):
                await admin.publish(channel, event(n / 100))
            await admin.publish(channel, event(0.3, deleted=True))
            await admin.publish(channel, event(0.31))  # late, after the end
            # `messages` is busy elsewhere while the reader queues them all. The reader hands
            # each message to every subscriber at once: once a second subscriber has the
            # last one, the busy one's queue holds everything it will get.
            while True:
                seen = await next_item(witness)
                assert isinstance(seen, bytes)
                if StatusEvent.from_json(seen).progress == 0.31:
                    break
            first = await next_item(messages)
            assert isinstance(first, bytes)
            assert StatusEvent.from_json(first).deleted
            late = await next_item(messages)
            assert isinstance(late, bytes)
            assert StatusEvent.from_json(late).progress == 0.31
    finally:
        await instance.stop()
