"""The one emission point: every change appends a typed event to its stream, then publishes it.

An event is written to the `events` collection in the same transaction as the change it
describes, with the next `seq` of its stream (a per-stream counter: concurrent writers conflict
and retry, so a stream never has a gap). After commit it is published on the bus, best effort;
the outbox relay of every process republishes anything committed but not yet published (Redis
down, process killed). Pruning raises the stream counter's `prunedThrough` watermark before it
deletes, so resuming from before retention is always refused with `EVENTS_PRUNED`.
See `docs/realtime.md`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from pymongo import ASCENDING, IndexModel

from hub.bus import Bus, BusBackendError
from hub.errors import ErrorCode, HubError
from hub.store import Store, background_job, new_id, outage_as_unavailable, register_indexes

log = logging.getLogger("hub.events")
T = TypeVar("T")


class Visibility(StrEnum):
    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"


register_indexes(
    "events",
    IndexModel([("tenant", ASCENDING), ("stream", ASCENDING), ("seq", ASCENDING)], unique=True),
    IndexModel([("published", ASCENDING), ("occurredAt", ASCENDING)]),
    IndexModel([("occurredAt", ASCENDING)]),
)


@dataclass(frozen=True)
class Event:
    """One entry of an activity stream (`case:<id>`, `article:<id>`, `user:<id>`, `room:<id>`)."""

    id: str
    tenant: str
    stream: str
    seq: int
    kind: str
    actor_id: str
    actor_name: str
    occurred_at: datetime
    visibility: Visibility
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def cursor(self) -> str:
        return encode_cursor(self.stream, self.seq)

    @property
    def channel(self) -> str:
        return channel(self.tenant, self.stream)

    def to_json(self) -> str:
        body = asdict(self)
        body["occurred_at"] = self.occurred_at.isoformat()
        body["visibility"] = self.visibility.value
        return json.dumps(body, separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str) -> Event:
        body = json.loads(raw)
        body["occurred_at"] = datetime.fromisoformat(body["occurred_at"])
        body["visibility"] = Visibility(body["visibility"])
        return cls(**body)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Event:
        occurred = doc["occurredAt"]
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        return cls(
            id=doc["_id"], tenant=doc["tenant"], stream=doc["stream"], seq=doc["seq"],
            kind=doc["kind"], actor_id=doc["actor"]["id"], actor_name=doc["actor"].get("name", ""),
            occurred_at=occurred, visibility=Visibility(doc["visibility"]),
            summary=doc["summary"], data=doc.get("data") or {},
        )


def channel(tenant: str, stream: str) -> str:
    return f"{tenant}|{stream}"


def encode_cursor(stream: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"ev|{stream}|{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, stream: str) -> int:
    """The `seq` a cursor points at; `INVALID` if it is malformed or of another stream."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, cursor_stream, seq = raw.split("|")
        if tag != "ev" or cursor_stream != stream:
            raise ValueError(raw)
        return int(seq)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise HubError(ErrorCode.INVALID, "Invalid cursor for this stream", "after") from exc


PUBLISH_PAUSE_S = 1.0
"""After a publish failed (Redis hung or gone), mutations skip publishing for this long and leave
their events to the relay: one mutation pays the bus timeout, not every one during an outage."""

_pending: contextvars.ContextVar[list[Event] | None] = contextvars.ContextVar(
    "hub_pending_events", default=None
)


class EventLog:
    """Appends, publishes, replays and prunes events; owns the outbox relay task."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        retention: timedelta,
        *,
        relay_age: float = 1.0,
        drop_publish: bool = False,
    ) -> None:
        self.store = store
        self.bus = bus
        self.retention = retention
        self.relay_age = relay_age
        """The relay republishes unpublished events older than this (seconds): younger ones are
        normally still being published by the process that committed them."""
        self.drop_publish = drop_publish
        """Fault injection for tests: never publish after commit, as if the process died there."""
        self.published = 0
        self.publish_failures = 0
        self.relayed = 0
        self.pruned = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._paused_until = 0.0  # monotonic; see PUBLISH_PAUSE_S

    async def write(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a mutation's writes in one transaction, then publish the events it appended."""
        if _pending.get() is not None:
            return await fn()
        events: list[Event] = []

        async def attempt() -> T:
            events.clear()  # a retried transaction starts over
            return await fn()

        token = _pending.set(events)
        try:
            result = await self.store.transaction(attempt)
        finally:
            _pending.reset(token)
        if not self.drop_publish:
            if asyncio.get_running_loop().time() < self._paused_until:
                self.publish_failures += len(events)  # the relay publishes them
            else:
                await self.publish_all(events)
        return result

    async def append(
        self,
        tenant: str,
        stream: str,
        kind: str,
        *,
        actor_id: str,
        actor_name: str = "",
        summary: str,
        data: dict[str, Any] | None = None,
        visibility: Visibility = Visibility.INTERNAL,
    ) -> Event:
        """Append one event; must run inside `write()` so it commits with the change."""
        pending = _pending.get()
        if pending is None:
            raise RuntimeError("EventLog.append outside EventLog.write")
        db = self.store.tenant(tenant)
        counter = await db["counters"].find_one_and_update(
            {"_id": f"{tenant}/{stream}"}, {"$inc": {"seq": 1}}, upsert=True
        )
        assert counter is not None
        now = datetime.now(UTC)
        event = Event(
            id=new_id("evt"), tenant=tenant, stream=stream, seq=int(counter["seq"]), kind=kind,
            actor_id=actor_id, actor_name=actor_name,
            occurred_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
            visibility=visibility, summary=summary, data=data or {},
        )
        await db["events"].insert({
            "_id": event.id, "stream": stream, "seq": event.seq, "kind": kind,
            "actor": {"id": actor_id, "name": actor_name}, "occurredAt": event.occurred_at,
            "visibility": visibility.value, "summary": summary, "data": event.data,
            "published": False,
        })
        pending.append(event)
        return event

    async def publish_all(self, events: list[Event]) -> int:
        """Best effort, in order: publish each event and mark it published; returns how many.

        Never raises and never waits on a bus known to be down (a mutation must not fail or stall
        because Redis is): what is not published here is republished by the relay.
        """
        sent: list[str] = []
        for event in events:
            if not self.bus.connected:
                self.publish_failures += len(events) - len(sent)
                break
            try:
                await self.bus.publish(event.channel, event.to_json())
            except BusBackendError:
                self.publish_failures += len(events) - len(sent)
                self._paused_until = asyncio.get_running_loop().time() + PUBLISH_PAUSE_S
                break  # keep the stream's order: the relay sends the rest
            sent.append(event.id)
        self.published += len(sent)
        if sent:
            with contextlib.suppress(Exception):  # unmarked means republished once more: harmless
                await self.store.raw("events").update_many(
                    {"_id": {"$in": sent}}, {"$set": {"published": True}}
                )
        return len(sent)

    async def publish(self, event: Event) -> bool:
        """Publish one event (see :meth:`publish_all`)."""
        return await self.publish_all([event]) == 1

    async def history(self, tenant: str, stream: str, after: int, limit: int) -> list[Event]:
        """Stored events after `after`; a store outage is `HubError(UNAVAILABLE)` (live streams end
        with a retryable code, not `INTERNAL`)."""
        async with outage_as_unavailable():
            docs = await self.store.tenant(tenant)["events"].find(
                {"stream": stream, "seq": {"$gt": after}}, sort=[("seq", 1)], limit=limit
            )
        return [Event.from_doc(d) for d in docs]

    async def _counter(self, tenant: str, stream: str) -> dict[str, Any]:
        async with outage_as_unavailable():
            return await self.store.tenant(tenant)["counters"].find_one({"_id": f"{tenant}/{stream}"}) or {}

    async def last_seq(self, tenant: str, stream: str) -> int:
        return int((await self._counter(tenant, stream)).get("seq", 0))

    async def check_retained(self, tenant: str, stream: str, after: int) -> int:
        """Validate a resume point; returns the stream's last seq.

        `EVENTS_PRUNED` if events after `after` were pruned (the stream's `prunedThrough`
        watermark is past it), `INVALID` for a cursor beyond the end of the stream.
        """
        counter = await self._counter(tenant, stream)
        if after < int(counter.get("prunedThrough", 0)):
            raise HubError(
                ErrorCode.EVENTS_PRUNED,
                "Events after this cursor are past retention; re-query, then resubscribe",
                "after",
            )
        last = int(counter.get("seq", 0))
        if after > last:
            raise HubError(ErrorCode.INVALID, "Invalid cursor for this stream", "after")
        return last

    async def relay_once(self, older_than: float | None = None) -> int:
        """Republish events committed but not published (oldest first); returns how many were sent.

        Runs in every process: an event whose publisher died after commit, or was cut off from
        Redis, is delivered by whichever process relays first. Subscribers drop duplicates by seq.
        """
        if not self.bus.connected:
            return 0
        age = self.relay_age if older_than is None else older_than
        cutoff = datetime.now(UTC) - timedelta(seconds=age)
        docs = await self.store.raw("events").find(
            {"published": False, "occurredAt": {"$lte": cutoff}}
        ).sort([("occurredAt", 1)]).limit(500).to_list()
        docs.sort(key=lambda d: (d["occurredAt"], d["tenant"], d["stream"], d["seq"]))
        sent = await self.publish_all([Event.from_doc(d) for d in docs])
        self.relayed += sent
        if sent:
            log.info("outbox relay republished %d events", sent)
        return sent

    async def prune_once(self) -> int:
        """Delete events past retention, stream by stream, behind a `prunedThrough` watermark.

        The watermark (on the stream's counter) is raised before the events go, so a resume point
        older than what is retained is always detected (`EVENTS_PRUNED`), never silently skipped.
        """
        cutoff = datetime.now(UTC) - self.retention
        groups = await (await self.store.raw("events").aggregate([
            {"$match": {"occurredAt": {"$lt": cutoff}}},
            {"$group": {"_id": {"tenant": "$tenant", "stream": "$stream"}, "seq": {"$max": "$seq"}}},
            {"$limit": 1000},
        ])).to_list()
        deleted = 0
        for group in groups:
            tenant, stream, seq = group["_id"]["tenant"], group["_id"]["stream"], int(group["seq"])
            await self.store.raw("counters").update_one(
                {"_id": f"{tenant}/{stream}", "tenant": tenant}, {"$max": {"prunedThrough": seq}}
            )
            result = await self.store.raw("events").delete_many(
                {"tenant": tenant, "stream": stream, "seq": {"$lte": seq}}
            )
            deleted += result.deleted_count
        self.pruned += deleted
        return deleted

    def start(self, interval: float, prune_interval: float = 60.0) -> None:
        self._tasks.append(asyncio.create_task(self._loop(self.relay_once, interval)))
        self._tasks.append(asyncio.create_task(self._loop(self.prune_once, prune_interval)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _loop(job: Callable[[], Awaitable[int]], interval: float) -> None:
        background_job()
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:  # keep the relay alive through store/bus outages
                log.warning("background job %s failed", job.__name__, exc_info=True)
