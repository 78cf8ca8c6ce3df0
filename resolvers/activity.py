"""Activity streams: the emission helper resolvers call, history pages and live following.

Streams are `<kind>:<id>` (`case:…`, `article:…`, `user:…`, …). Each domain declares who may read
its streams with :func:`register_stream`; anything that must happen in the same transaction as
every event (e.g. inbox notifications) hooks in with :func:`on_emit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hub import fanout, metrics
from hub.bus import BusBackendError, Resync, SubscriberOverflow
from hub.errors import ErrorCode, HubError
from hub.events import Event, EventLog, Visibility, channel, decode_cursor
from hub.fanout import Follower
from resolvers.context import Context
from resolvers.pagination import clamp

PAGE = 500
"""Events read from the store per round trip while replaying or back-filling."""
EXPIRY_GRACE = 2.0
"""Seconds past the token's `exp` before a live stream fails by itself with `UNAUTHENTICATED`.

Over WebSocket the connection's watchdog (`hub.app`) closes the socket with 4401 at `exp`
exactly; this check is the backstop for any other transport."""


class StreamInterrupted(HubError):
    """A live stream ended for a reason the client recovers from by resubscribing from its last
    cursor: `extensions.code` is `UNAVAILABLE`, `extensions.reason` says why (`SLOW_CONSUMER`,
    `SHUTTING_DOWN`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message)
        self.reason = reason


EmitHook = Callable[[Context, Event], Awaitable[None]]
_EMIT_HOOKS: list[EmitHook] = []


def on_emit(hook: EmitHook) -> None:
    """Run `hook(ctx, event)` after every :func:`emit`, inside the same transaction."""
    if hook not in _EMIT_HOOKS:
        _EMIT_HOOKS.append(hook)


async def emit(
    ctx: Context,
    stream: str,
    kind: str,
    summary: str,
    data: dict[str, Any] | None = None,
    *,
    visibility: Visibility = Visibility.INTERNAL,
) -> Event:
    """Append an event for the caller's change (inside the mutation's `ctx.events.write`).

    The emit hooks (notifications of followers, assignees, mentioned users, watchers) run right
    after, in the same transaction: the change, its event and its notifications commit together.
    """
    me = ctx.me
    event = await ctx.events.append(
        me.tenant, stream, kind, actor_id=me.sub, actor_name=me.name,
        summary=summary, data=data, visibility=visibility,
    )
    for hook in _EMIT_HOOKS:
        await hook(ctx, event)
    return event


def audience_filter(ctx: Context) -> dict[str, Any]:
    """What part of a stream the caller may read: customers see only PUBLIC events."""
    return {} if ctx.me.is_staff else {"visibility": Visibility.PUBLIC.value}


def visible(ctx: Context, event: Event) -> bool:
    return ctx.me.is_staff or event.visibility is Visibility.PUBLIC


async def history(ctx: Context, stream: str, after: str | None, first: int | None) -> tuple[list[Event], bool]:
    """A page of a stream the caller may read (authorisation is the caller's job).

    `EVENTS_PRUNED` if `after` is older than what is retained (the page would have a hole).
    """
    me = ctx.me
    limit = clamp(first, 50)
    seq = 0
    if after:
        seq = decode_cursor(after, stream)
        await ctx.events.check_retained(me.tenant, stream, seq)
    docs = await ctx.db["events"].find(
        {"stream": stream, "seq": {"$gt": seq}, **audience_filter(ctx)},
        sort=[("seq", 1)], limit=limit + 1,
    )
    events = [Event.from_doc(d) for d in docs]
    return events[:limit], len(events) > limit


async def _stored_after(log: EventLog, tenant: str, stream: str, seq: int) -> AsyncIterator[Event]:
    """Every stored event of `stream` after `seq`, in order, page by page."""
    while True:
        batch = await log.history(tenant, stream, seq, PAGE)
        for event in batch:
            seq = event.seq
            yield event
        if len(batch) < PAGE:
            return


async def _one(event: Event) -> AsyncIterator[Event]:
    yield event


def _check_token(ctx: Context) -> None:
    identity = ctx.identity
    if identity is None or identity.expired(time.time() - EXPIRY_GRACE):
        raise HubError(ErrorCode.UNAUTHENTICATED, "Token expired")


async def follow(ctx: Context, stream: str, after: str | None) -> AsyncIterator[Event]:
    """Every event of `stream` after the cursor (or from now on), then live: no gap, no duplicate.

    1. Subscribe to the stream's bus channel first, so nothing committed from now on is missed.
    2. Replay from the store everything after the cursor (`EVENTS_PRUNED` if past retention).
    3. Go live, dropping what was already delivered (`seq <= last`). A jump in `seq` (a message
       lost, or published out of order by the relay) and a bus `Resync` (Redis reconnected) are
       back-filled from the store, which is the record.

    Customers get only PUBLIC events. A subscriber whose bounded queue overflows ends with
    :class:`StreamInterrupted` (`SLOW_CONSUMER`): it resumes from its last cursor.
    """
    me = ctx.me
    log = ctx.events
    tenant = me.tenant
    start = decode_cursor(after, stream) if after else None
    recheck = ctx.hub.settings.token_recheck_s
    async with ctx.hub.bus.subscribe(channel(tenant, stream)) as sub:
        if start is None:
            last = await log.last_seq(tenant, stream)
        else:
            await log.check_retained(tenant, stream, start)
            last = start
        async for event in _stored_after(log, tenant, stream, last):
            last = event.seq
            if visible(ctx, event):
                yield event
        while True:
            _check_token(ctx)
            try:
                message = await asyncio.wait_for(sub.get(), recheck)
            except TimeoutError:
                continue
            except SubscriberOverflow as exc:
                metrics.ERRORS.labels("SLOW_CONSUMER").inc()
                raise StreamInterrupted(
                    "SLOW_CONSUMER", "Subscriber fell too far behind; resubscribe from your last cursor"
                ) from exc
            except BusBackendError as exc:
                raise StreamInterrupted(
                    "SHUTTING_DOWN", "This server is going away; resubscribe from your last cursor"
                ) from exc
            if isinstance(message, Resync):
                source = _stored_after(log, tenant, stream, last)
            else:
                live = Event.from_json(message)
                if live.seq <= last:
                    continue  # already delivered (replay, back-fill or a relayed duplicate)
                gap = live.seq != last + 1
                source = _stored_after(log, tenant, stream, last) if gap else _one(live)
            async for event in source:
                if event.seq <= last:
                    continue
                last = event.seq
                if visible(ctx, event):
                    metrics.EVENTS_DELIVERED.inc()
                    metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - event.occurred_at.timestamp()))
                    yield event


def _interruption(exc: BaseException) -> BaseException:
    """What a live stream ends with when its bus subscription or its connection gives up."""
    if isinstance(exc, SubscriberOverflow):
        metrics.ERRORS.labels("SLOW_CONSUMER").inc()
        return StreamInterrupted("SLOW_CONSUMER", "Subscriber fell too far behind; resubscribe from your last cursor")
    if isinstance(exc, BusBackendError):
        return StreamInterrupted("SHUTTING_DOWN", "This server is going away; resubscribe from your last cursor")
    return exc


async def follow_fast(ctx: Context, stream: str, after: str | None, follower: Follower) -> AsyncIterator[Event]:
    """:func:`follow` with the live part fanned out by the process's stream hub (`hub.fanout`).

    Same guarantees: the stream is subscribed first, then everything after the cursor is replayed
    from the store (yielded, so the caller executes it per subscriber; without a cursor, live
    starts at the stream's position: no store read per subscriber); what the stream delivered
    meanwhile is drained without duplicates; then the follower goes live and the stream hub writes
    its frames (rendered once per group) straight to the socket. This generator then only waits
    for the end: `SLOW_CONSUMER`, `SHUTTING_DOWN`, an expired token or a store failure.
    """
    me = ctx.me
    log = ctx.events
    tenant = me.tenant
    start = decode_cursor(after, stream) if after else None
    streams = fanout.stream_hub(ctx.hub.bus, log, ctx.hub.extras)
    try:
        async with streams.join(tenant, stream, follower) as position:
            if start is None:
                last = position  # live from the stream's position: no store read per subscriber
            else:
                await log.check_retained(tenant, stream, start)
                last = start
                async for event in _stored_after(log, tenant, stream, last):
                    last = event.seq
                    if visible(ctx, event):
                        yield event
            while not follower.closed:  # what arrived live during the replay, in order
                if not follower.pending:
                    follower.go_live(last)
                    break
                event = follower.pending.popleft()
                if event.seq <= last:
                    continue
                last = event.seq
                if visible(ctx, event):
                    yield event
            while not follower.ended.done():
                _check_token(ctx)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(follower.ended), ctx.hub.settings.token_recheck_s)
            reason = follower.ended.result()
            await follower.sink.idle()  # frames already on their way go out before the error
    except (SubscriberOverflow, BusBackendError) as exc:
        raise _interruption(exc) from exc
    shaped = _interruption(reason)
    if shaped is reason:
        raise reason
    raise shaped from reason


async def authorize(ctx: Context, stream: str) -> str:
    """Check the caller may read `stream`; `NOT_FOUND` otherwise (existence never leaks)."""
    kind, _, object_id = stream.partition(":")
    readers = STREAM_READERS.get(kind)
    if readers is None or not object_id or not await readers(ctx, object_id):
        raise HubError(ErrorCode.NOT_FOUND, "No such stream", "stream")
    return stream


async def page(ctx: Context, stream: str, after: str | None, first: int | None) -> tuple[list[Event], bool]:
    await authorize(ctx, stream)
    return await history(ctx, stream, after, first)


StreamReader = Callable[[Context, str], Awaitable[bool]]
STREAM_READERS: dict[str, StreamReader] = {}


def register_stream(kind: str, reader: StreamReader) -> None:
    """Declare who may read streams `<kind>:<id>` (each domain registers its own)."""
    STREAM_READERS[kind] = reader
