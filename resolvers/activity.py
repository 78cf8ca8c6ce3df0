"""Activity streams: the emission helper resolvers call, history pages and live following."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hub import metrics
from hub.bus import Resync, SubscriberOverflow
from hub.errors import ErrorCode, HubError
from hub.events import Event, Visibility, channel, decode_cursor
from resolvers.context import Context
from resolvers.pagination import clamp


async def emit(
    ctx: Context,
    stream: str,
    kind: str,
    summary: str,
    data: dict[str, Any] | None = None,
    *,
    visibility: Visibility = Visibility.INTERNAL,
) -> Event:
    """Append an event for the caller's change (inside the mutation's `ctx.events.write`)."""
    me = ctx.me
    return await ctx.events.append(
        me.tenant, stream, kind, actor_id=me.sub, actor_name=me.name,
        summary=summary, data=data, visibility=visibility,
    )


def audience_filter(ctx: Context) -> dict[str, Any]:
    """What part of a stream the caller may read: customers see only PUBLIC events."""
    return {} if ctx.me.is_staff else {"visibility": Visibility.PUBLIC.value}


def visible(ctx: Context, event: Event) -> bool:
    return ctx.me.is_staff or event.visibility is Visibility.PUBLIC


async def history(ctx: Context, stream: str, after: str | None, first: int | None) -> tuple[list[Event], bool]:
    """A page of a stream the caller may read (authorisation is the caller's job)."""
    limit = clamp(first, 50)
    seq = decode_cursor(after, stream) if after else 0
    docs = await ctx.db["events"].find(
        {"stream": stream, "seq": {"$gt": seq}, **audience_filter(ctx)},
        sort=[("seq", 1)], limit=limit + 1,
    )
    events = [Event.from_doc(d) for d in docs]
    return events[:limit], len(events) > limit


async def follow(ctx: Context, stream: str, after: str | None) -> AsyncIterator[Event]:
    """Every event of `stream` after the cursor, then live: no gap, no duplicate.

    Subscribes to the bus first, replays from the store, then drops live events already
    delivered; a jump in `seq` or a bus reconnect is back-filled from the store.
    """
    me = ctx.me
    log = ctx.events
    last = decode_cursor(after, stream) if after else None
    async with ctx.hub.bus.subscribe(channel(me.tenant, stream)) as sub:
        if last is None:
            last = await log.last_seq(me.tenant, stream)
        else:
            await log.check_retained(me.tenant, stream, last)
        while True:  # replay
            batch = await log.history(me.tenant, stream, last, 500)
            for event in batch:
                last = event.seq
                if visible(ctx, event):
                    yield event
            if len(batch) < 500:
                break
        while True:
            me = ctx.me  # re-checks token expiry on every wake-up
            try:
                message = await asyncio.wait_for(sub.get(), ctx.hub.settings.token_recheck_s)
            except TimeoutError:
                continue
            except SubscriberOverflow as exc:
                raise HubError(
                    ErrorCode.UNAVAILABLE, "Subscriber fell too far behind; resume from your last cursor"
                ) from exc
            if isinstance(message, Resync):
                pending = await log.history(me.tenant, stream, last, 1000)
            else:
                event = Event.from_json(message)
                if event.seq <= last:
                    continue
                pending = [event] if event.seq == last + 1 else await log.history(me.tenant, stream, last, 1000)
            for event in pending:
                if event.seq <= last:
                    continue
                last = event.seq
                if visible(ctx, event):
                    metrics.EVENTS_DELIVERED.inc()
                    metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - event.occurred_at.timestamp()))
                    yield event


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
