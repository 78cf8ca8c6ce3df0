"""The event bus: process-local fan-out over broadcaster, with a Redis backend that reconnects.

Built on broadcaster 0.3.1's public ``Broadcast(backend=...)`` hook, fixing what it gets wrong:

* broadcaster's own Redis backend starts ``listen()`` before any subscription exists and, with
  redis-py 8, delivers nothing. :class:`RedisPubSubBackend` subscribes first and returns only once
  Redis has confirmed the subscription, so a message published right after ``subscribe`` arrives.
* ``Broadcast.subscribe`` races when two coroutines subscribe to the same new channel (a queue is
  lost, ``KeyError`` on exit). :class:`Bus` holds exactly one broadcaster subscription per channel,
  entered and left under a per-channel lock, and fans out to its own local subscribers.
* No reconnect: the backend reconnects with jittered exponential backoff, resubscribes every
  channel and then delivers a :class:`Resync` marker to every subscriber of it (messages may have
  been lost meanwhile; the caller back-fills from the database).
* Unbounded queues: each :class:`Subscription` has a bounded queue; a subscriber that lags too far
  gets :class:`SubscriberOverflow` without slowing anybody else down.

Redis is a lossy accelerator here: the event log in the database is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from broadcaster._base import Subscriber
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

__all__ = [
    "Bus",
    "BusBackendError",
    "RedisPubSubBackend",
    "Resync",
    "SubscriberOverflow",
    "Subscription",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_MIN = 0.05
"""First reconnect delay (seconds); doubles per failed attempt up to :data:`BACKOFF_MAX`."""
BACKOFF_MAX = 2.0
"""Largest reconnect delay (seconds)."""

# Errors that mean "the Redis connection is unusable".
_NET_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class BusBackendError(Exception):
    """The bus backend is unreachable or the bus is not connected (publish is best-effort)."""


class SubscriberOverflow(Exception):
    """The subscriber lagged too far behind and its bounded queue overflowed.

    Messages were dropped for this subscriber only; close it with a resumable error.
    """


class Resync:
    """Marker delivered after the Redis connection was re-established.

    Messages published while it was down may be lost: back-fill from the database.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Resync()"


RESYNC = Resync()
"""The shared :class:`Resync` instance (compare with ``isinstance``)."""


class _Wake:
    """Internal queue item that only wakes a blocked ``get()``."""

    __slots__ = ()


_WAKE = _Wake()


class _ResyncEvent(Event):
    """A broadcaster event that carries a :class:`Resync` through broadcaster's own fan-out."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel=channel, message="")


class Subscription:
    """One local subscriber of a channel; yields payloads (``str``) and :class:`Resync` markers."""

    def __init__(self, channel: str, queue_size: int) -> None:
        self.channel = channel
        self._queue: asyncio.Queue[str | Resync | _Wake] = asyncio.Queue(maxsize=queue_size)
        self._overflowed = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Messages already queued (``get()`` returns them without waiting)."""
        return self._queue.qsize()

    @property
    def overflowed(self) -> bool:
        """True once the bounded queue overflowed (``get()`` raises from then on)."""
        return self._overflowed

    async def get(self) -> str | Resync:
        """Return the next payload or :class:`Resync` marker.

        Raises :class:`SubscriberOverflow` after an overflow, and :class:`BusBackendError` once the
        subscription is closed (it left, or the bus disconnected).
        """
        while True:
            if self._overflowed:
                raise SubscriberOverflow(
                    f"subscriber of {self.channel!r} fell more than {self._queue.maxsize} messages behind"
                )
            if self._closed:
                raise BusBackendError(f"subscription to {self.channel!r} is closed")
            item = await self._queue.get()
            if not isinstance(item, _Wake):
                return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str | Resync:
        """Like :meth:`get`, but a closed subscription ends the iteration."""
        try:
            return await self.get()
        except BusBackendError:
            if self._closed:
                raise StopAsyncIteration from None
            raise

    def _offer(self, item: str | Resync) -> None:
        """Enqueue without blocking; on a full queue mark this subscriber overflowed."""
        if self._overflowed or self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True
            self._drain()  # free the memory now; get() raises before reading anything else

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._drain()
            self._queue.put_nowait(_WAKE)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


class RedisPubSubBackend(BroadcastBackend):
    """broadcaster backend on Redis PUBLISH/SUBSCRIBE that survives Redis restarts.

    One pub/sub connection is read by a single reader task. ``subscribe`` sends SUBSCRIBE and waits
    (at most ``op_timeout``) for Redis to confirm it. On a connection error the reader reconnects
    with jittered exponential backoff, resubscribes every channel, and once each resubscription is
    confirmed emits a resync event for that channel. While idle the reader PINGs every
    ``health_interval`` seconds and treats a missing reply (a hung server) like a lost connection.
    Publishing and PING use a separate ordinary client with short socket timeouts.
    """

    def __init__(
        self,
        url: str,
        *,
        op_timeout: float = 1.0,
        health_interval: float = 5.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        # BroadcastBackend.__init__ only raises NotImplementedError: do not call it.
        self._url = url
        self._op_timeout = op_timeout
        self._health_interval = health_interval
        self._on_reconnect = on_reconnect
        self._channels: set[str] = set()
        # Per channel, one entry per SUBSCRIBE sent on the current connection, in order: a future
        # that a waiting subscribe() resolves, or None meaning "emit a resync when confirmed".
        self._confirms: dict[str, deque[asyncio.Future[None] | None]] = {}
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._client: Redis | None = None
        self._sub_client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._live = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0
        """Successful re-establishments of the pub/sub connection after it was lost."""

    @property
    def connected(self) -> bool:
        """True while the pub/sub connection is up."""
        return self._live.is_set()

    async def connect(self) -> None:
        """Start the reader; wait up to ``op_timeout`` for the first connection, never raise.

        If Redis is down the reader keeps retrying in the background (see :attr:`connected`).
        """
        kwargs: dict[str, Any] = {
            "socket_timeout": self._op_timeout,
            "socket_connect_timeout": self._op_timeout,
        }
        # redis-py's own retries would hide an outage (and its backoff delay it): handle it here.
        self._client = Redis.from_url(self._url, retry=Retry(NoBackoff(), 1), **kwargs)
        self._sub_client = Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **kwargs)
        self._queue = asyncio.Queue()
        self._live.clear()
        self._reader = asyncio.create_task(self._run(), name="hub.bus.redis-reader")
        try:
            await asyncio.wait_for(self._live.wait(), self._op_timeout)
        except TimeoutError:
            log.warning("event bus: Redis not reachable at connect; retrying in the background")

    async def disconnect(self) -> None:
        """Stop the reader and close both connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._drop_pubsub()
        for client in (self._client, self._sub_client):
            if client is not None:
                with contextlib.suppress(*_NET_ERRORS):
                    await client.aclose()
        self._client = self._sub_client = None
        self._channels.clear()

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for Redis's confirmation (bounded by ``op_timeout``).

        Never raises for an outage: the channel stays registered, and when the subscription does
        take effect (late confirmation or reconnect) the channel receives a resync event.
        """
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._live.is_set():
            return  # the reader subscribes it on (re)connect and then resyncs it
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirms.setdefault(channel, deque()).append(waiter)
        try:
            await asyncio.wait_for(pubsub.execute_command("SUBSCRIBE", channel), self._op_timeout)
            await asyncio.wait_for(waiter, self._op_timeout)
        except _NET_ERRORS as exc:
            if not waiter.done():
                waiter.cancel()  # a later confirmation of this SUBSCRIBE then emits a resync
            elif not waiter.cancelled():
                waiter.exception()  # set by _fail_waiters: mark it retrieved
            log.warning("event bus: subscribe to %r not confirmed yet: %s", channel, _why(exc))

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe; errors are ignored (a replacement connection will not subscribe it)."""
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._live.is_set():
            return
        try:
            await asyncio.wait_for(pubsub.execute_command("UNSUBSCRIBE", channel), self._op_timeout)
        except _NET_ERRORS as exc:
            log.debug("event bus: unsubscribe from %r failed: %s", channel, _why(exc))

    async def publish(self, channel: str, message: Any) -> None:
        """PUBLISH on the ordinary client; raise :class:`BusBackendError` within ``op_timeout``."""
        client = self._client
        if client is None:
            raise BusBackendError("event bus is not connected")
        await self._call(client.publish(channel, message), "publish")

    async def ping(self) -> bool:
        """A real PING round trip; False within ``op_timeout`` if Redis is down or hung."""
        client = self._client
        if client is None:
            return False
        try:
            return bool(await self._call(client.ping(), "ping"))
        except BusBackendError:
            return False

    async def next_published(self) -> Event:
        """Next event for broadcaster's listener (messages and resync events)."""
        return await self._queue.get()

    async def _call(self, aw: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(aw, self._op_timeout)
        except _NET_ERRORS as exc:
            raise BusBackendError(f"Redis {what} failed: {_why(exc)}") from exc

    # -- reader ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, read until the connection fails, back off, repeat (until cancelled)."""
        loop = asyncio.get_running_loop()
        delay = BACKOFF_MIN
        ever_connected = False
        while True:
            opened_at: float | None = None
            try:
                pubsub = await self._open()
                opened_at = loop.time()
                if ever_connected:
                    self.reconnects += 1
                    log.info("event bus: reconnected to Redis (%d channels)", len(self._channels))
                    if self._on_reconnect is not None:
                        self._on_reconnect()
                ever_connected = True
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the reader alive whatever happens
                if self._live.is_set():
                    log.warning("event bus: lost Redis connection: %s", _why(exc))
                else:
                    log.debug("event bus: Redis connect failed: %s", _why(exc))
            await self._drop_pubsub()
            if opened_at is not None and loop.time() - opened_at > BACKOFF_MAX:
                delay = BACKOFF_MIN  # it was up for a while: not a flapping server
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _open(self) -> PubSub:
        """Open a fresh pub/sub connection and resubscribe every registered channel."""
        assert self._sub_client is not None
        pubsub = self._sub_client.pubsub()
        try:
            await asyncio.wait_for(pubsub.connect(), self._op_timeout)  # type: ignore[no-untyped-call]
            # No await between here and sending SUBSCRIBE's snapshot bookkeeping: subscribe()
            # calls from now on use this connection, earlier ones are in the snapshot.
            channels = sorted(self._channels)
            self._fail_waiters()
            self._confirms = {channel: deque([None]) for channel in channels}
            self._pubsub = pubsub
            self._live.set()
            if channels:
                await asyncio.wait_for(pubsub.execute_command("SUBSCRIBE", *channels), self._op_timeout)
        except BaseException:
            if self._pubsub is not pubsub:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def _read(self, pubsub: PubSub) -> None:
        """Read messages, subscribe confirmations and PONGs until the connection fails."""
        loop = asyncio.get_running_loop()
        poll = min(0.5, self._health_interval / 2)
        last_rx = loop.time()
        ping_sent: float | None = None
        while True:
            # Not ignore_subscribe_messages: confirmations tell subscribe() that it took effect.
            msg = await pubsub.get_message(timeout=poll)
            now = loop.time()
            if msg is None:
                if ping_sent is not None:
                    if now - ping_sent > self._health_interval:
                        raise TimeoutError("Redis did not answer PING on the pub/sub connection")
                elif now - last_rx >= self._health_interval:
                    await asyncio.wait_for(pubsub.execute_command("PING"), self._op_timeout)
                    ping_sent = now
                continue
            last_rx = now
            ping_sent = None
            self._handle(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "message":
            self._queue.put_nowait(Event(channel=_text(msg["channel"]), message=_text(msg["data"])))
        elif kind == "subscribe":
            channel = _text(msg["channel"])
            waiters = self._confirms.get(channel)
            if not waiters:
                return
            waiter = waiters.popleft()
            if not waiters:
                del self._confirms[channel]
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            elif channel in self._channels:
                # (re)subscribed after an outage, or after subscribe() gave up waiting
                self._queue.put_nowait(_ResyncEvent(channel))

    def _fail_waiters(self) -> None:
        """Release subscribe() calls waiting on a connection that is gone."""
        for waiters in self._confirms.values():
            for waiter in waiters:
                if waiter is not None and not waiter.done():
                    # not cancel(): that would cancel the subscribe() awaiting it
                    waiter.set_exception(RedisConnectionError("pub/sub connection replaced"))
        self._confirms = {}

    async def _drop_pubsub(self) -> None:
        self._live.clear()
        self._fail_waiters()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), self._op_timeout)  # type: ignore[no-untyped-call]


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _ChannelLock:
    """A per-channel lock that is dropped from the registry when nobody uses it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _Channel:
    """This process's single broadcaster subscription to a channel, and its local subscribers."""

    def __init__(self, name: str, context: AbstractAsyncContextManager[Subscriber]) -> None:
        self.name = name
        self.context = context
        self.subs: set[Subscription] = set()
        self.pump: asyncio.Task[None] | None = None


class Bus:
    """Publish/subscribe on named channels, in memory or across processes through Redis.

    ``url`` None or ``memory://`` uses broadcaster's in-memory backend (one process only);
    ``redis://`` / ``rediss://`` uses :class:`RedisPubSubBackend`. Each subscriber gets a bounded
    queue of ``queue_size`` items. ``op_timeout`` bounds every Redis operation; ``health_interval``
    is how long the pub/sub connection may stay silent before it is PINGed (and then dropped).
    """

    def __init__(
        self,
        url: str | None,
        *,
        queue_size: int = 1000,
        op_timeout: float = 1.0,
        health_interval: float = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        scheme = urlparse(url).scheme if url else "memory"
        backend: BroadcastBackend
        self._redis: RedisPubSubBackend | None = None
        if scheme == "memory":
            backend = MemoryBackend("memory://")
        elif scheme in ("redis", "rediss", "unix"):
            assert url is not None
            backend = self._redis = RedisPubSubBackend(url, op_timeout=op_timeout, health_interval=health_interval)
        else:
            raise ValueError(f"unsupported event bus URL scheme: {scheme!r}")
        self._broadcast = Broadcast(backend=backend)
        self._channels: dict[str, _Channel] = {}
        self._locks: dict[str, _ChannelLock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = False

    @property
    def connected(self) -> bool:
        """True when connected and, for Redis, the pub/sub connection is currently up."""
        if not self._connected:
            return False
        return self._redis is None or self._redis.connected

    @property
    def reconnects(self) -> int:
        """Successful Redis reconnects since start (always 0 in memory)."""
        return 0 if self._redis is None else self._redis.reconnects

    async def connect(self) -> None:
        """Start the backend. A Redis outage does not fail this: the bus reconnects by itself."""
        if self._connected:
            return
        await self._broadcast.connect()
        self._connected = True

    async def disconnect(self) -> None:
        """Close every subscription (their ``get()`` raises / iteration ends) and the backend."""
        if not self._connected:
            return
        self._connected = False
        for channel in list(self._channels.values()):
            async with self._lock(channel.name):
                if self._channels.get(channel.name) is channel:
                    del self._channels[channel.name]
                    for sub in channel.subs:
                        sub._close()
                    await self._close_channel(channel)
        await self._broadcast.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        """Publish ``message`` on ``channel``; raises :class:`BusBackendError` if Redis is down."""
        if not self._connected:
            raise BusBackendError("event bus is not connected")
        await self._broadcast.publish(channel, message)

    async def ping(self) -> bool:
        """Readiness: a real Redis PING round trip (False within ~1 s if it is dead)."""
        if not self._connected:
            return False
        return True if self._redis is None else await self._redis.ping()

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``channel`` for the duration of an ``async with`` block.

        On entry the subscription is in effect (Redis confirmed it, or it was not reachable and
        a :class:`Resync` follows once it is): anything published afterwards is delivered.
        Entering raises :class:`BusBackendError` only if the bus itself is not connected.
        """
        return self._subscription(channel)

    @asynccontextmanager
    async def _subscription(self, channel: str) -> AsyncIterator[Subscription]:
        sub = Subscription(channel, self._queue_size)
        state = await self._shielded(self._attach(channel, sub), undo=lambda state: self._detach(state, sub))
        try:
            yield sub
        finally:
            sub._close()
            await self._shielded(self._detach(state, sub))

    async def _shielded(
        self,
        coro: Coroutine[Any, Any, T],
        undo: Callable[[T], Coroutine[Any, Any, None]] | None = None,
    ) -> T:
        """Run ``coro`` to completion even if the caller is cancelled meanwhile.

        broadcaster's subscribe/unsubscribe must not be interrupted halfway (that corrupts its
        registry). If the caller is cancelled first, ``undo`` runs on the result afterwards.
        """
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if undo is not None:

                def on_done(done: asyncio.Future[T]) -> None:
                    if not done.cancelled() and done.exception() is None:
                        self._spawn(undo(done.result()))

                task.add_done_callback(on_done)
            raise

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @asynccontextmanager
    async def _lock(self, channel: str) -> AsyncIterator[None]:
        entry = self._locks.get(channel)
        if entry is None:
            entry = self._locks[channel] = _ChannelLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[channel]

    async def _attach(self, channel: str, sub: Subscription) -> _Channel:
        async with self._lock(channel):
            if not self._connected:
                raise BusBackendError("event bus is not connected")
            state = self._channels.get(channel)
            if state is None:
                context = self._broadcast.subscribe(channel)
                subscriber = await context.__aenter__()
                state = _Channel(channel, context)
                if not self._connected:  # disconnect() ran while Redis confirmed the subscription
                    await self._close_channel(state)
                    raise BusBackendError("event bus is not connected")
                state.pump = asyncio.create_task(self._pump(state, subscriber), name=f"hub.bus.pump:{channel}")
                self._channels[channel] = state
            state.subs.add(sub)
            return state

    async def _detach(self, state: _Channel, sub: Subscription) -> None:
        async with self._lock(state.name):
            state.subs.discard(sub)
            if state.subs or self._channels.get(state.name) is not state:
                return
            del self._channels[state.name]
            await self._close_channel(state)

    async def _close_channel(self, state: _Channel) -> None:
        """Leave the broadcaster subscription (caller holds the channel lock)."""
        if state.pump is not None:
            state.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.pump
        try:
            await state.context.__aexit__(None, None, None)
        except Exception:
            log.exception("event bus: leaving channel %r failed", state.name)

    @staticmethod
    async def _pump(state: _Channel, subscriber: Subscriber) -> None:
        """Move events from broadcaster's (unbounded) queue into each bounded local queue."""
        while True:
            event = await subscriber.get()
            item: str | Resync = RESYNC if isinstance(event, _ResyncEvent) else event.message
            for sub in list(state.subs):
                sub._offer(item)
