"""Fan-out of live activity streams: one bus subscription per stream per process, one payload per
event and selection set, the same bytes written to every socket.

The per-subscriber path (`resolvers.activity.follow` under strawberry) gives every subscriber its
own bus queue, JSON decode, GraphQL execution and encoding. Here, per process:

* :class:`StreamHub` keeps one bus subscription per stream, decodes each event once and keeps the
  stream in order: duplicates are dropped, a `seq` jump or a :class:`~hub.bus.Resync` is back-filled
  from the store, and an overflow of its own queue resubscribes and back-fills (nobody is cut off).
* Its :class:`Follower` s are grouped by the caller's key (selection set, variables, audience); a
  group renders the `payload` of a `next` frame once per event, and every live follower of the
  group gets `{"id":…,"type":"next","payload":…}` built by string concatenation.
* :class:`FrameSink` writes one connection's frames. Each distinct frame is framed once
  (:func:`text_frame`) and, on uvicorn's websockets-sansio connections (:class:`DirectWire`), the
  same bytes go straight to every socket's transport: one `write` per delivery, no per-socket
  framing, no coroutine. Elsewhere (or while a socket is paused) the ASGI send is started inline;
  while the socket is blocked frames wait in a backlog of at most `limit`, beyond which the
  connection's followers end with :class:`~hub.bus.SubscriberOverflow` (`SLOW_CONSUMER`).

A follower first buffers what the stream delivers while its owner replays from the store, then
goes live (`go_live(last)`): `resolvers.activity.follow_fast` keeps `follow`'s guarantees.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from contextlib import asynccontextmanager
from typing import Any

from hub import metrics
from hub.bus import Bus, Resync, SubscriberOverflow, Subscription
from hub.errors import ErrorCode, HubError
from hub.events import Event, EventLog, Visibility, channel

log = logging.getLogger("hub.fanout")

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Render = Callable[[Event], Awaitable[str]]
"""Renders the JSON `payload` of a `next` frame for one event (once per group)."""
Renderer = Callable[[], Render]
"""Makes a group's `Render` (called once, for the group's first follower)."""

PAGE = 500
RUN = 32
"""Most queued events whose frames are coalesced into one write per socket (:class:`Run`)."""
EXPIRY_GRACE = 2.0
"""Seconds past a token's `exp` before its follower is ended (the socket's watchdog closes at `exp`)."""


async def _resume(coro: Coroutine[Any, Any, Any], blocker: Any) -> None:
    """Drive a coroutine that `send(None)` suspended on `blocker` to its end, as a task would."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            if isinstance(blocker, asyncio.Future):
                blocker._asyncio_future_blocking = False
                woken: asyncio.Future[None] = loop.create_future()

                def wake(_: object, woken: asyncio.Future[None] = woken) -> None:
                    if not woken.done():
                        woken.set_result(None)

                blocker.add_done_callback(wake)
                await woken
            elif blocker is None:
                await asyncio.sleep(0)
            else:
                raise RuntimeError(f"send yielded {blocker!r}")
        except BaseException:
            coro.close()
            raise
        try:
            blocker = coro.send(None)
        except StopIteration:
            return


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"


class DirectWire:
    """The transport under one uvicorn websockets-sansio connection, for pre-framed text frames.

    uvicorn's `send` of a text message frames it with the connection's sans-I/O protocol and calls
    `transport.write` synchronously; without extensions (no per-message deflate) that framing is
    exactly :func:`text_frame`, so writing the bytes framed once for everybody is the same on the
    wire. Used only while uvicorn itself would write synchronously: open, not closing, not paused
    (a paused socket takes the ASGI path, which waits for it to drain)."""

    __slots__ = ("_protocol", "transport")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self.transport = protocol.transport

    @classmethod
    def of(cls, send: Send) -> DirectWire | None:
        """The direct wire behind the server's own ASGI `send`, None where it is not safe."""
        protocol = getattr(send, "__self__", None)
        if protocol is None or type(protocol).__module__ != _SANSIO:
            return None
        conn = getattr(protocol, "conn", None)
        if conn is None or getattr(conn, "extensions", None) or getattr(protocol, "transport", None) is None:
            return None
        return cls(protocol)

    def ready(self) -> bool:
        p = self._protocol
        return (p.writable.is_set() and p.handshake_complete and not p.close_sent and not p.disconnected
                and p.initial_response is None and not self.transport.is_closing())


class Run:
    """The frames for each socket while a stream works through events that were already queued
    (it fell behind): at the end of the run each socket gets them in one `write`, so it costs one
    system call per run instead of one per event, which is what lets a saturated process catch up.
    Only the stream's own writes are held, and never across a store read
    (:meth:`StreamHub._backfill`)."""

    __slots__ = ("sinks",)

    def __init__(self) -> None:
        self.sinks: dict[FrameSink, list[tuple[object, str, bytes]]] = {}

    def hold(self, sink: FrameSink, owner: object, frame: str, wire: bytes) -> None:
        held = self.sinks.get(sink)
        if held is None:
            self.sinks[sink] = [(owner, frame, wire)]
        else:
            held.append((owner, frame, wire))

    def release(self) -> None:
        sinks, self.sinks = self.sinks, {}
        saved = 0
        for sink, held in sinks.items():
            saved += sink.write_run(held)
        if saved:
            metrics.FANOUT_COALESCED.inc(saved)


class FrameSink:
    """The text frames of one WebSocket connection, written without a task per frame."""

    def __init__(self, send: Send, limit: int, watchdog: Any = None) -> None:
        self._send = send
        self._wire = DirectWire.of(send)
        self._watchdog = watchdog  # its `closed` turns true when it closed the socket (4401)
        self.limit = limit
        self._backlog: deque[tuple[object, str]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._idle: list[asyncio.Future[None]] = []
        self._listeners: dict[object, Callable[[BaseException], None]] = {}
        self.overflowed = False
        self.broken = False
        self.sent = 0

    @property
    def usable(self) -> bool:
        return not (self.overflowed or self.broken)

    def listen(self, owner: object, on_overflow: Callable[[BaseException], None]) -> None:
        self._listeners[owner] = on_overflow

    def discard(self, owner: object) -> None:
        """Forget `owner`: its frames still waiting are dropped (its operation is over)."""
        self._listeners.pop(owner, None)
        if self._backlog:
            self._backlog = deque(item for item in self._backlog if item[0] is not owner)

    def _open(self) -> bool:
        """Whether frames may still go out (not overflowed, not broken, not closed by the watchdog)."""
        if self.overflowed or self.broken:
            return False
        if self._watchdog is not None and self._watchdog.closed:  # the connection was closed (4401)
            self.broken = True
            return False
        return True

    def _straight(self, wire: bytes, frames: int) -> bool:
        """Write pre-framed bytes to the transport if it takes them now (nothing queued before)."""
        if self._flusher is not None or self._wire is None or not self._wire.ready():
            return False
        try:
            self._wire.transport.write(wire)
        except Exception:  # the client is gone: strawberry's receive loop cleans the operations up
            self.broken = True
        else:
            self.sent += frames
        return True

    def write(self, owner: object, frame: str, wire: bytes | None = None) -> bool:
        """Send `frame` (text); `wire` is the same frame already framed (:func:`text_frame`).
        True when it went straight to the transport."""
        if not self._open():
            return False
        if self._flusher is not None:
            if len(self._backlog) >= self.limit:
                self._overflow()
            else:
                self._backlog.append((owner, frame))
            return False
        if wire is not None and self._straight(wire, 1):
            return not self.broken
        coro = self._send({"type": "websocket.send", "text": frame})
        try:
            blocker = coro.send(None)
        except StopIteration:
            self.sent += 1
            return False
        except Exception:  # the client is gone: strawberry's receive loop cleans the operations up
            self.broken = True
            return False
        self._flusher = asyncio.ensure_future(self._flush(coro, blocker))
        return False

    def write_run(self, frames: list[tuple[object, str, bytes]]) -> int:
        """Write `frames` (owner, text, framed) in order, in one `write` where the socket takes it
        straight away; returns the number of writes that saved."""
        frames = [item for item in frames if item[0] in self._listeners]  # (operations still open)
        if len(frames) > 1 and self._open() and self._straight(b"".join(wire for _, _, wire in frames), len(frames)):
            if self.broken:
                return 0
            metrics.FANOUT_DIRECT.inc(len(frames))
            return len(frames) - 1
        for owner, frame, wire in frames:
            self.write(owner, frame, wire)
        return 0

    async def idle(self) -> None:
        """Wait until nothing is being written (the frame in flight and the backlog are out)."""
        if self._flusher is not None:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    def close(self) -> None:
        self.broken = True
        self._backlog.clear()
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush(self, coro: Coroutine[Any, Any, Any], blocker: Any) -> None:
        try:
            await _resume(coro, blocker)
            self.sent += 1
            while self._backlog and self.usable:
                _, frame = self._backlog.popleft()
                await self._send({"type": "websocket.send", "text": frame})
                self.sent += 1
        except asyncio.CancelledError:
            self.broken = True
        except Exception:
            self.broken = True
            self._backlog.clear()
        finally:
            self._flusher = None
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _overflow(self) -> None:
        self.overflowed = True
        self._backlog.clear()
        error = SubscriberOverflow(f"connection fell more than {self.limit} frames behind")
        for on_overflow in list(self._listeners.values()):
            on_overflow(error)


class Follower:
    """One subscriber as its stream sees it: buffering while its owner replays, then written to."""

    __slots__ = ("closed", "ended", "exp", "group", "key", "limit", "live", "pending", "prefix",
                 "renderer", "sink", "staff", "start")

    def __init__(self, key: Hashable, *, staff: bool, renderer: Renderer, sink: FrameSink, op_id: str,
                 exp: float | None, limit: int) -> None:
        self.key = key
        self.staff = staff
        self.renderer = renderer
        self.sink = sink
        self.prefix = '{"id":' + json.dumps(op_id) + ',"type":"next","payload":'
        self.exp = exp
        self.limit = limit
        self.pending: deque[Event] = deque()
        self.live = False
        self.start = 0
        self.closed = False
        self.group: _Group | None = None
        self.ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def finish(self, reason: BaseException) -> None:
        """End this follower (its owner raises `reason` once the connection's frames are out)."""
        self.closed = True
        self.pending.clear()
        if not self.ended.done():
            self.ended.set_result(reason)

    def offer(self, event: Event) -> None:
        """Buffer a live event while the owner replays (bounded like a bus queue)."""
        if self.closed:
            return
        if len(self.pending) >= self.limit:
            self.finish(SubscriberOverflow(f"subscriber fell more than {self.limit} events behind"))
        else:
            self.pending.append(event)

    def frame(self, payload: str) -> tuple[str, bytes]:
        """This operation's `next` message carrying `payload`: as text, and framed (:func:`text_frame`)."""
        text = self.prefix + payload + "}"
        return text, text_frame(text.encode())

    def go_live(self, last: int) -> None:
        """From now on the stream writes events after `last` straight to the socket."""
        self.start = last
        self.live = True
        if self.group is not None:
            self.group.buffering.discard(self)
            self.group.live.add(self)


class _Group:
    __slots__ = ("buffering", "live", "render", "staff")

    def __init__(self, staff: bool, render: Render) -> None:
        self.staff = staff
        self.render = render
        self.buffering: set[Follower] = set()
        self.live: set[Follower] = set()


class _Stream:
    def __init__(self, tenant: str, stream: str) -> None:
        self.tenant = tenant
        self.stream = stream
        self.channel = channel(tenant, stream)
        self.last = 0
        self.groups: dict[Hashable, _Group] = {}
        self.members = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    def add(self, follower: Follower) -> None:
        group = self.groups.get(follower.key)
        if group is None:
            group = self.groups[follower.key] = _Group(follower.staff, follower.renderer())
        follower.group = group
        (group.live if follower.live else group.buffering).add(follower)

    def remove(self, follower: Follower) -> None:
        group = follower.group
        if group is None:
            return
        group.live.discard(follower)
        group.buffering.discard(follower)
        if not group.live and not group.buffering and self.groups.get(follower.key) is group:
            del self.groups[follower.key]
        follower.group = None

    def fail(self, reason: BaseException) -> None:
        for group in list(self.groups.values()):
            for follower in (*group.live, *group.buffering):
                follower.finish(reason)


class StreamHub:
    """This process's live streams (one per `tenant|stream` with followers)."""

    def __init__(self, bus: Bus, events: EventLog) -> None:
        self.bus = bus
        self.events = events
        self._streams: dict[str, _Stream] = {}
        self.resubscribes = 0

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def followers(self) -> int:
        return sum(s.members for s in self._streams.values())

    @property
    def backlog(self) -> int:
        """Events buffered by replaying followers plus frames waiting on blocked sockets (O(n))."""
        sinks: dict[int, FrameSink] = {}
        pending = 0
        for state in self._streams.values():
            for group in state.groups.values():
                for follower in (*group.live, *group.buffering):
                    pending += len(follower.pending)
                    sinks[id(follower.sink)] = follower.sink
        return pending + sum(len(sink._backlog) for sink in sinks.values())

    @asynccontextmanager
    async def join(self, tenant: str, stream: str, follower: Follower) -> AsyncIterator[int]:
        """Follow `stream` while inside: the stream's bus subscription is in effect on entry, and
        every event after the stream's position then (the `seq` yielded) is offered to the follower
        (buffered until `go_live`). Raises what prevented the subscription (`BusBackendError`)."""
        name = channel(tenant, stream)
        state = self._streams.get(name)
        if state is None:
            state = self._streams[name] = _Stream(tenant, stream)
            state.task = asyncio.create_task(self._run(state), name=f"hub.fanout:{name}")
        state.members += 1
        try:
            await asyncio.shield(state.ready)
            state.add(follower)
            follower.sink.listen(follower, follower.finish)
            yield state.last
        finally:
            follower.closed = True
            follower.sink.discard(follower)
            state.remove(follower)
            state.members -= 1
            if state.members == 0:
                self._close(state)

    def _close(self, state: _Stream) -> None:
        if self._streams.get(state.channel) is state:
            del self._streams[state.channel]
        if state.task is not None:
            state.task.cancel()

    async def _run(self, state: _Stream) -> None:
        """Own the stream's bus subscription: pump it, resubscribe after an overflow."""
        first = True
        try:
            while True:
                async with self.bus.subscribe(state.channel) as sub:
                    if first:
                        state.last = await self.events.last_seq(state.tenant, state.stream)
                        state.ready.set_result(None)
                        first = False
                    else:
                        await self._backfill(state)
                    try:
                        await self._pump(state, sub)
                    except SubscriberOverflow:
                        self.resubscribes += 1
                        log.warning("fan-out of %s fell behind its bus queue: resubscribing", state.channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._streams.get(state.channel) is state:
                del self._streams[state.channel]
            if not state.ready.done():
                state.ready.set_exception(exc)
                state.ready.exception()  # retrieved by the joiners; never "unretrieved"
            state.fail(exc)
        finally:
            if not state.ready.done():
                state.ready.cancel()

    async def _pump(self, state: _Stream, sub: Subscription) -> None:
        while True:
            message = await sub.get()
            if not sub.pending:
                await self._take(state, message, None)
                continue
            run = Run()  # fallen behind: this run of queued events goes out in one write per socket
            try:
                await self._take(state, message, run)
                for _ in range(RUN - 1):
                    if not sub.pending:
                        break
                    await self._take(state, await sub.get(), run)
            finally:
                run.release()

    async def _take(self, state: _Stream, message: str | Resync, run: Run | None) -> None:
        if isinstance(message, Resync):
            await self._backfill(state, run)
            return
        event = Event.from_json(message)
        if event.seq <= state.last:
            return  # already delivered (back-fill, or a copy republished by the relay)
        if event.seq != state.last + 1:
            await self._backfill(state, run)  # a message lost, or published out of order
            if event.seq != state.last + 1:
                return  # the store had it (delivered), or a gap remains: the next event back-fills again
            # the store stopped just short of this event (not visible there yet): it is next
        state.last = event.seq
        await self._dispatch(state, event, run)

    async def _backfill(self, state: _Stream, run: Run | None = None) -> None:
        if run is not None:
            run.release()  # nothing held waits for the store
        while True:
            batch = await self.events.history(state.tenant, state.stream, state.last, PAGE)
            for event in batch:
                if event.seq > state.last:
                    state.last = event.seq
                    await self._dispatch(state, event, None)
            if len(batch) < PAGE:
                return

    async def _dispatch(self, state: _Stream, event: Event, run: Run | None) -> None:
        """Offer `event` to buffering followers, then render it once per group and write it."""
        public = event.visibility is Visibility.PUBLIC
        todo: list[_Group] = []
        for group in list(state.groups.values()):
            for follower in list(group.buffering):
                follower.offer(event)
            if group.live and (public or group.staff):
                todo.append(group)
        delivered = 0
        for group in todo:
            try:
                payload = await group.render(event)
                metrics.FANOUT_RENDERS.inc()
            except Exception as exc:  # a failing renderer ends its own group only
                log.exception("fan-out: rendering %s failed", event.kind)
                for follower in (*group.live, *group.buffering):
                    follower.finish(exc)
                continue
            delivered += self._write(group, event.seq, payload, run)
        if delivered:
            metrics.EVENTS_DELIVERED.inc(delivered)
            metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - event.occurred_at.timestamp()))

    @staticmethod
    def _write(group: _Group, seq: int, payload: str, run: Run | None) -> int:
        deadline = time.time() - EXPIRY_GRACE
        frames: dict[str, tuple[str, bytes]] = {}  # one frame per operation id in use (most share "1")
        written = direct = 0
        for follower in group.live:
            if follower.closed or seq <= follower.start:
                continue
            if follower.exp is not None and follower.exp <= deadline:
                follower.finish(HubError(ErrorCode.UNAUTHENTICATED, "Token expired"))
                continue
            framed = frames.get(follower.prefix)
            if framed is None:
                framed = frames[follower.prefix] = follower.frame(payload)
            if run is not None:
                run.hold(follower.sink, follower, *framed)
            else:
                direct += follower.sink.write(follower, *framed)
            written += 1
        if written:
            metrics.FANOUT_FRAMES.inc(len(frames))
            metrics.FANOUT_DIRECT.inc(direct)
        return written


def stream_hub(bus: Bus, events: EventLog, extras: dict[str, object]) -> StreamHub:
    """The process's stream hub (made on first use, kept in `Hub.extras`)."""
    found = extras.get("fanout")
    if not isinstance(found, StreamHub):
        found = extras["fanout"] = StreamHub(bus, events)
    return found
