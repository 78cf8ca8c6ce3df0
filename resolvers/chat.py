"""Chat: direct, group, case and swarm rooms; persisted messages; ephemeral typing and receipts.

Rooms and who may be in them:
* DIRECT — two members, no name, no case; one room per pair (creating it again returns it).
* GROUP — staff only, any number (≤ 100) of members.
* CASE — a room tied to a case (`caseId`): any staff, plus customers who are on that case.
* SWARM — the case's swarm room, created and joined through `swarmRequest` / `swarmJoin`.
Every member must be a known user of the tenant (they called the API once). Customers are only in
rooms of their cases or direct rooms with staff, and only staff open rooms without a case.

Messages are durable: each is a `chat.message_sent` event on the room's stream `room:<id>` (its
`seq` orders the room) plus a `chat_messages` document, so `chatEvents(after:)` resumes with no gap
and no duplicate through `activity.follow`. Typing and read receipts are ephemeral: published on
the bus channel `<tenant>|room-live:<id>` only (rate-limited typing; a receipt also moves the
member's read mark, which `unreadCount` counts from).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hub.auth import STAFF_ROLES
from hub.bus import BusBackendError, Resync
from hub.errors import ErrorCode, HubError, forbidden, invalid, not_found
from hub.events import Event, Visibility, decode_cursor, encode_cursor
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, cases, presence, users
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "chat_rooms",
    IndexModel([("tenant", ASCENDING), ("members", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("kind", ASCENDING)]),
)
register_indexes(
    "chat_messages",
    IndexModel([("tenant", ASCENDING), ("roomId", ASCENDING), ("seq", DESCENDING), ("_id", DESCENDING)]),
)

MAX_MEMBERS = 100
MAX_BODY = 10_000
MAX_NAME = 200
TYPING_LIMIT = (5, 5.0)
"""At most 5 typing signals per member and room in 5 s (clients send one every ~2 s)."""
MESSAGE_LIMIT = (30, 10.0)
"""At most 30 messages per member and room in 10 s."""


def stream(room_id: str) -> str:
    return f"room:{room_id}"


def live_channel(tenant: str, room_id: str) -> str:
    return f"{tenant}|room-live:{room_id}"


@dataclass(frozen=True)
class Item:
    """One `chatEvents` element; ephemeral ones carry the cursor of the last durable one."""

    kind: str  # MESSAGE, TYPING, READ, MEMBERS
    seq: int
    cursor: str
    uid: str | None
    at: datetime
    message: Doc | None = None
    message_id: str | None = None


async def get(ctx: Context, room_id: str) -> Doc | None:
    """The room if the caller is a member, else `None`."""
    room = await ctx.loader("chat_rooms").load(room_id)
    return room if room is not None and ctx.me.sub in room["members"] else None


async def _room(ctx: Context, room_id: str | None) -> Doc:
    room = await get(ctx, room_id or "")
    if room is None:
        raise not_found("Room", "roomId")
    return room


async def authorize(ctx: Context, room_id: str) -> Doc:
    """The room for `chatEvents`; `NOT_FOUND` unless the caller is a member."""
    return await _room(ctx, room_id)


async def _readable(ctx: Context, room_id: str) -> bool:
    return await get(ctx, room_id) is not None


activity.register_stream("room", _readable)


def _direct_id(tenant: str, a: str, b: str) -> str:
    digest = hashlib.sha256(json.dumps([tenant, *sorted((a, b))]).encode()).hexdigest()[:24]
    return f"room_d{digest}"


def _visibility(room: Doc) -> Visibility:
    return Visibility.PUBLIC if room.get("hasCustomer") else Visibility.INTERNAL


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`chatRoomCreate(memberIds, name?, caseId?)`: the caller is always a member."""
    me = ctx.me
    await users.remember(ctx)
    members = list(dict.fromkeys([me.sub, *[m.strip() for m in data.get("member_ids") or [] if m.strip()]]))
    name = (data.get("name") or "").strip()
    case_id = data.get("case_id")
    if len(members) < 2:
        raise invalid("A room needs at least one other member", "memberIds")
    if len(members) > MAX_MEMBERS:
        raise invalid(f"A room has at most {MAX_MEMBERS} members", "memberIds")
    if len(name) > MAX_NAME:
        raise invalid(f"name is longer than {MAX_NAME} characters", "name")
    profiles = await users.find_many(ctx, members)
    unknown = [m for m in members if m not in profiles]
    if unknown:
        raise invalid(f"Unknown users: {', '.join(unknown[:10])}", "memberIds")
    customers = {m for m, p in profiles.items() if not set(p.get("roles") or []) & STAFF_ROLES}
    if case_id:
        case = await cases.get(ctx, case_id)
        if case is None:
            raise not_found("Case", "caseId")
        allowed = {case.get("customerId"), *(case.get("participants") or [])}
        if customers - allowed:
            raise forbidden("Customers in a case room must be on the case", "memberIds")
        kind = "CASE"
    else:
        if customers and (not me.is_staff or len(members) != 2 or len(customers) != 1):
            raise forbidden("Customers chat in rooms of their cases, or one-to-one with staff", "memberIds")
        kind = "DIRECT" if len(members) == 2 and not name else "GROUP"
    now = datetime.now(UTC)
    room: Doc = {
        "_id": _direct_id(me.tenant, *members) if kind == "DIRECT" else new_id("room"),
        "kind": kind, "name": name, "members": members, "caseId": case_id, "createdBy": me.sub,
        "createdAt": now, "updatedAt": now, "lastMessage": None, "hasCustomer": bool(customers),
    }
    if kind == "DIRECT" and (existing := await ctx.db["chat_rooms"].find_one({"_id": room["_id"]})):
        return {"room": existing}

    async def write() -> None:
        await ctx.db["chat_rooms"].insert(room)
        await activity.emit(ctx, stream(room["_id"]), "chat.room_created", f"{me.name} opened a chat room",
                            {"kind": kind, "name": name, "members": members, "caseId": case_id},
                            visibility=_visibility(room))

    try:
        await ctx.events.write(write)
    except DuplicateKeyError:  # the same direct room, created concurrently
        existing = await ctx.db["chat_rooms"].find_one({"_id": room["_id"]})
        if existing is None:
            raise
        return {"room": existing}
    ctx.loader("chat_rooms").prime(room["_id"], room)
    return {"room": room}


async def ensure_case_room(ctx: Context, case: Doc, kind: str = "SWARM") -> tuple[Doc, bool]:
    """The case's room of `kind` (staff only), created with the caller if missing (inside a write)."""
    me = ctx.me
    found = await ctx.db["chat_rooms"].find({"caseId": case["_id"], "kind": kind}, limit=1)
    if found:
        return found[0], False
    now = datetime.now(UTC)
    room: Doc = {
        "_id": new_id("room"), "kind": kind, "name": f"Swarm: {case.get('subject', '')}"[:MAX_NAME],
        "members": [me.sub], "caseId": case["_id"], "createdBy": me.sub, "createdAt": now, "updatedAt": now,
        "lastMessage": None, "hasCustomer": False,
    }
    await ctx.db["chat_rooms"].insert(room)
    await activity.emit(ctx, stream(room["_id"]), "chat.room_created", f"{me.name} opened the swarm room",
                        {"kind": kind, "name": room["name"], "members": room["members"], "caseId": case["_id"]})
    return room, True


async def add_member(ctx: Context, room_id: str, uid: str) -> None:
    """Add a staff member to a room (inside a write); emits `chat.member_added` if new."""
    added = await ctx.db["chat_rooms"].update_one(
        {"_id": room_id, "members": {"$ne": uid}}, {"$push": {"members": uid}}
    )
    if added:
        await activity.emit(ctx, stream(room_id), "chat.member_added", f"{uid} joined the room", {"userId": uid})
        ctx.loader("chat_rooms").clear(room_id)


async def _limit(ctx: Context, what: str, room_id: str, rule: tuple[int, float]) -> None:
    me = ctx.me
    if not await presence.store(ctx).allow(f"{what}:{me.tenant}:{me.sub}:{room_id}", *rule):
        raise HubError(ErrorCode.RATE_LIMITED, f"Too many {what} events; slow down")


async def send(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`chatMessageSend(roomId, body)`."""
    me = ctx.me
    room = await _room(ctx, data.get("room_id"))
    body = (data.get("body") or "").strip()
    if not body:
        raise invalid("body must not be empty", "body")
    if len(body) > MAX_BODY:
        raise invalid(f"body is longer than {MAX_BODY} characters", "body")
    await _limit(ctx, "message", room["_id"], MESSAGE_LIMIT)
    now = datetime.now(UTC)
    message: Doc = {"_id": new_id("msg"), "roomId": room["_id"], "authorId": me.sub, "body": body}

    async def write() -> Doc:
        event = await activity.emit(
            ctx, stream(room["_id"]), "chat.message_sent", f"{me.name}: {body[:80]}",
            {"messageId": message["_id"], "body": body, "authorId": me.sub}, visibility=_visibility(room),
        )
        doc = {**message, "seq": event.seq, "createdAt": event.occurred_at}
        await ctx.db["chat_messages"].insert(doc)
        last = {"id": doc["_id"], "seq": event.seq, "authorId": me.sub, "body": body[:200], "createdAt": now}
        await ctx.db["chat_rooms"].update_one({"_id": room["_id"]}, {"$set": {"lastMessage": last, "updatedAt": now}})
        return doc

    return {"message": await ctx.events.write(write)}


async def _publish(ctx: Context, room_id: str, body: dict[str, Any]) -> None:
    try:
        await ctx.hub.bus.publish(live_channel(ctx.me.tenant, room_id), json.dumps(body, default=str))
    except BusBackendError as exc:
        raise HubError(ErrorCode.UNAVAILABLE, "Live delivery is unavailable; retry shortly") from exc


async def typing(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`chatTyping(roomId)`: ephemeral, not persisted, rate-limited."""
    room = await _room(ctx, data.get("room_id"))
    await _limit(ctx, "typing", room["_id"], TYPING_LIMIT)
    await _publish(ctx, room["_id"], {"kind": "TYPING", "uid": ctx.me.sub, "at": datetime.now(UTC).isoformat()})
    return {"room": room}


def _read_id(room_id: str, uid: str) -> str:
    return json.dumps([room_id, uid], separators=(",", ":"))


async def mark_read(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`chatMarkRead(roomId, messageId?)`: move the caller's read mark forward and tell the room."""
    me = ctx.me
    room = await _room(ctx, data.get("room_id"))
    message_id = data.get("message_id")
    if message_id:
        message = await ctx.db["chat_messages"].find_one({"_id": message_id, "roomId": room["_id"]})
        if message is None:
            raise not_found("Message", "messageId")
        seq, message_id = int(message["seq"]), message["_id"]
    else:
        last = room.get("lastMessage") or {}
        seq, message_id = int(last.get("seq", 0)), last.get("id")
    await ctx.db["chat_reads"].update_one(
        {"_id": _read_id(room["_id"], me.sub)},
        {"$max": {"seq": seq}, "$set": {"roomId": room["_id"], "uid": me.sub, "readAt": datetime.now(UTC)}},
        upsert=True,
    )
    await _publish(ctx, room["_id"], {"kind": "READ", "uid": me.sub, "messageId": message_id, "seq": seq,
                                      "at": datetime.now(UTC).isoformat()})
    return {"room": room}


async def unread_count(ctx: Context, room: Doc) -> int:
    me = ctx.me
    mark = await ctx.loader("chat_reads").load(_read_id(room["_id"], me.sub))
    seen = int(mark["seq"]) if mark else 0
    if int((room.get("lastMessage") or {}).get("seq", 0)) <= seen:
        return 0
    return await ctx.db["chat_messages"].count(
        {"roomId": room["_id"], "seq": {"$gt": seen}, "authorId": {"$ne": me.sub}}
    )


async def messages(ctx: Context, room: Doc, first: int | None, after: str | None) -> Page:
    """A room's messages, newest first."""
    return await paginate(ctx.db["chat_messages"], {"roomId": room["_id"]}, sort_key="seq", first=first, after=after)


async def list_rooms(ctx: Context, first: int | None, after: str | None) -> Page:
    """The caller's rooms, most recently active first."""
    return await paginate(ctx.db["chat_rooms"], {"members": ctx.me.sub}, sort_key="updatedAt", first=first, after=after)


def _durable(event: Event) -> Item:
    if event.kind == "chat.message_sent":
        message = {"_id": event.data["messageId"], "body": event.data["body"], "authorId": event.data["authorId"],
                   "createdAt": event.occurred_at, "seq": event.seq}
        return Item("MESSAGE", event.seq, event.cursor, event.actor_id, event.occurred_at, message, message["_id"])
    return Item("MEMBERS", event.seq, event.cursor, event.actor_id, event.occurred_at)


async def follow(ctx: Context, room_id: str, after: str | None) -> AsyncIterator[Item]:
    """Messages after `after` then live (durable), merged with live typing and receipts."""
    me = ctx.me
    name = stream(room_id)
    seq = decode_cursor(after, name) if after else await ctx.events.last_seq(me.tenant, name)
    position = (seq, encode_cursor(name, seq))
    queue: asyncio.Queue[Item | BaseException | None] = asyncio.Queue(maxsize=ctx.hub.settings.subscriber_queue)

    async def durable() -> None:
        async for event in activity.follow(ctx, name, position[1]):
            await queue.put(_durable(event))

    async def ephemeral(sub: AsyncIterator[str | Resync]) -> None:
        async for raw in sub:
            if isinstance(raw, Resync):
                continue
            body = json.loads(raw)
            if (body["kind"] == "TYPING" and body["uid"] == me.sub) or queue.full():
                continue  # ephemeral: dropped rather than blocking durable delivery
            queue.put_nowait(Item(body["kind"], 0, "", body["uid"], datetime.fromisoformat(body["at"]),
                                  message_id=body.get("messageId")))

    async def run(job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await queue.put(exc)
        else:
            await queue.put(None)

    async with ctx.hub.bus.subscribe(live_channel(me.tenant, room_id)) as sub:
        tasks = [asyncio.create_task(run(durable())), asyncio.create_task(run(ephemeral(sub)))]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item.kind in ("MESSAGE", "MEMBERS"):
                    position = (item.seq, item.cursor)
                    yield item
                else:
                    yield Item(item.kind, position[0], position[1], item.uid, item.at, message_id=item.message_id)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
