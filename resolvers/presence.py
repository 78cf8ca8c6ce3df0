"""Presence on resources and user status: heartbeats, leaves, snapshots and live changes.

A *resource* is anything with a readable activity stream (cases, articles, forum threads, chat
rooms, …): `resourceId` is either the object id (`case_…`, whose prefix names the stream kind) or
the stream name itself (`case:case_…`). Whoever may read the stream may see and set presence on
it; anybody else gets `NOT_FOUND` (existence never leaks).

Audience: staff see every user. A customer sees their own entries and, for everybody else, one
anonymous entry per role label (`agent`, `customer`) carrying the most active state of that group
(COMPOSING > EDITING > VIEWING > IDLE): "an agent is typing", never who, never their status.
Presence is ephemeral (see `hub.presence`): no activity events, nothing in the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hub.bus import BusBackendError, Resync, SubscriberOverflow
from hub.errors import ErrorCode, HubError, invalid, not_found
from hub.presence import ONLINE, STATES, STATUSES, PresenceStore, View, decode_message
from resolvers import activity, users
from resolvers.context import Context

PRIORITY = {"IDLE": 0, "VIEWING": 1, "EDITING": 2, "COMPOSING": 3}
"""How active a state is: an anonymous group shows its most active member's state."""
ALIASES = {"art": "article", "kb": "article", "forumthread": "forum", "ft": "forum"}
"""Id prefixes whose stream kind has another name."""
NO_PRESENCE = {"user", "remote"}
"""Stream kinds that are not places one can be present on."""
MAX_DEVICE = 64
UPDATE_LIMIT = (30, 10.0)
"""At most 30 presence updates per user and device in 10 s (heartbeats are every ~TTL/3)."""


@dataclass(frozen=True)
class Item:
    """One presence entry as a given caller sees it."""

    key: str
    uid: str | None  # None when anonymised
    label: str  # role label: "agent" or "customer"
    name: str
    state: str
    status: str | None  # None when anonymised
    updated_at: float

    @property
    def anonymous(self) -> bool:
        return self.uid is None

    def same(self, other: Item) -> bool:
        return (self.state, self.status, self.name, self.label) == (other.state, other.status, other.name, other.label)


@dataclass(frozen=True)
class Change:
    """One element of `presenceChanged`: a SNAPSHOT, or a JOINED / UPDATED / LEFT item."""

    kind: str
    resource_id: str
    items: list[Item]  # the whole list as the caller sees it after this change
    item: Item | None = None


def store(ctx: Context) -> PresenceStore:
    presence = ctx.hub.presence
    if presence is None:
        raise HubError(ErrorCode.UNAVAILABLE, "Presence is not running")
    return presence


def stream_of(resource_id: str) -> str:
    """The stream a resource id names (`case_x` → `case:case_x`; `case:case_x` unchanged)."""
    if ":" in resource_id:
        return resource_id
    prefix = resource_id.partition("_")[0].lower()
    return f"{ALIASES.get(prefix, prefix)}:{resource_id}"


async def authorize(ctx: Context, resource_id: str | None, field: str = "resourceId") -> str:
    """The resource's key if the caller may read it; `NOT_FOUND` otherwise."""
    if not resource_id or len(resource_id) > 200:
        raise not_found("Resource", field)
    stream = stream_of(resource_id)
    kind = stream.partition(":")[0]
    if kind in NO_PRESENCE or kind == ONLINE:
        raise not_found("Resource", field)
    try:
        await activity.authorize(ctx, stream)
    except HubError as exc:
        if exc.code is not ErrorCode.NOT_FOUND:
            raise
        raise not_found("Resource", field) from exc
    return stream


def label(is_staff: bool) -> str:
    return "agent" if is_staff else "customer"


def project(ctx: Context, views: dict[str, View]) -> dict[str, Item]:
    """The entries the caller may see, keyed stably (uid, or `anonymous:<label>`)."""
    me = ctx.me
    if me.is_staff:
        return {uid: Item(uid, uid, v.role, v.name, v.state, v.status, v.updated_at) for uid, v in views.items()}
    out: dict[str, Item] = {}
    for uid, v in views.items():
        if uid == me.sub:
            out[uid] = Item(uid, uid, v.role, v.name, v.state, v.status, v.updated_at)
            continue
        key = f"anonymous:{v.role}"
        current = out.get(key)
        if current is None or PRIORITY[v.state] > PRIORITY[current.state]:
            name = "An agent" if v.role == "agent" else "A customer"
            out[key] = Item(key, None, v.role, name, v.state, None, v.updated_at)
    return out


def _sorted(items: dict[str, Item]) -> list[Item]:
    return sorted(items.values(), key=lambda i: (i.anonymous, i.key))


async def update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Heartbeat of one device: its state on a resource and, optionally, the user's status."""
    me = ctx.me
    resource_id = data.get("resource_id")
    state = data.get("state") or "VIEWING"
    status = data.get("status")
    device = (data.get("device") or "default").strip()
    if state not in STATES:
        raise invalid(f"state must be one of {', '.join(STATES)}", "state")
    if status is not None and status not in STATUSES:
        raise invalid(f"status must be one of {', '.join(STATUSES)}", "status")
    if not device or len(device) > MAX_DEVICE:
        raise invalid(f"device must be 1 to {MAX_DEVICE} characters", "device")
    key = await authorize(ctx, resource_id) if resource_id else None
    presence = store(ctx)
    limit, window = UPDATE_LIMIT
    if not await presence.allow(f"presence:{me.tenant}:{me.sub}:{device}", limit, window):
        raise HubError(ErrorCode.RATE_LIMITED, "Too many presence updates; heartbeat every few seconds")
    await users.remember(ctx)
    entry = await presence.heartbeat(
        me.tenant, key, me.sub, device, state=state, role=label(me.is_staff), name=me.name or me.sub,
        status=status,
    )
    item = Item(me.sub, me.sub, entry.role, entry.name, entry.state, entry.status, entry.updated_at)
    return {"presence": item if resource_id else None, "ttl_seconds": presence.ttl,
            "resource_id": resource_id}


async def leave(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """One device leaves a resource (the user stays while another device is there)."""
    me = ctx.me
    resource_id = data.get("resource_id")
    key = await authorize(ctx, resource_id)
    device = (data.get("device") or "default").strip()
    left = await store(ctx).leave(me.tenant, key, me.sub, device)
    return {"left": left}


async def list_presence(ctx: Context, resource_id: str) -> list[Item]:
    """Who is on a resource, as the caller may see it."""
    key = await authorize(ctx, resource_id)
    return _sorted(project(ctx, await store(ctx).snapshot(ctx.me.tenant, key)))


async def online(ctx: Context, uids: list[str]) -> dict[str, str]:
    """Status of those of `uids` who are online (heartbeating anywhere) and not invisible."""
    found = await store(ctx).online(ctx.me.tenant, uids)
    return {uid: status for uid, status in found.items() if status != "OFFLINE"}


async def follow(ctx: Context, resource_id: str) -> AsyncIterator[Change]:
    """A snapshot, then every change the caller may see (authorise first with `authorize`)."""
    me = ctx.me
    key = stream_of(resource_id)
    presence = store(ctx)
    recheck = ctx.hub.settings.token_recheck_s
    async with ctx.hub.bus.subscribe(presence.channel(me.tenant, key)) as sub:
        views = await presence.snapshot(me.tenant, key)
        shown = project(ctx, views)
        yield Change("SNAPSHOT", resource_id, _sorted(shown))
        while True:
            if ctx.identity is None or ctx.identity.expired(time.time() - activity.EXPIRY_GRACE):
                raise HubError(ErrorCode.UNAUTHENTICATED, "Token expired")
            try:
                message = await asyncio.wait_for(sub.get(), recheck)
            except TimeoutError:
                continue
            except (SubscriberOverflow, BusBackendError) as exc:
                raise HubError(ErrorCode.UNAVAILABLE, "Presence stream interrupted; resubscribe") from exc
            if isinstance(message, Resync):
                views = await presence.snapshot(me.tenant, key)
            else:
                view, present = decode_message(message)
                if present:
                    views[view.uid] = view
                else:
                    views.pop(view.uid, None)
            now = project(ctx, views)
            for change in diff(resource_id, shown, now):
                yield change
            shown = now


def diff(resource_id: str, before: dict[str, Item], after: dict[str, Item]) -> list[Change]:
    """The JOINED / UPDATED / LEFT changes between two projections."""
    items = _sorted(after)
    out: list[Change] = []
    for key, item in after.items():
        old = before.get(key)
        if old is None:
            out.append(Change("JOINED", resource_id, items, item))
        elif not old.same(item):
            out.append(Change("UPDATED", resource_id, items, item))
    for key, old in before.items():
        if key not in after:
            gone = Item(old.key, old.uid, old.label, old.name, old.state, "OFFLINE" if old.uid else None,
                        time.time())
            out.append(Change("LEFT", resource_id, items, gone))
    return out
