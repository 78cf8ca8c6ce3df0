"""Inbox notifications: one evolving notification per recipient and subject, pushed live.

Every event emitted on a subject stream (`case:<id>`, `article:<id>`, …) goes through
:func:`_notify` (an `activity.on_emit` hook, so it runs in the emitting transaction). The stream
kind's recipient function (:func:`register_recipients`) says who is told; each recipient except the
actor gets their unread notification for that subject bumped (`count`, latest `summary`/`kind`,
`updatedAt`) or a new one, plus a `notification.updated` event on their `user:<uid>` stream, which
`notificationReceived` follows (resumable, like every stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.errors import invalid, not_found
from hub.events import Event, Visibility, encode_cursor
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, users
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "notifications",
    IndexModel([("tenant", ASCENDING), ("uid", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]),
    IndexModel([
        ("tenant", ASCENDING), ("uid", ASCENDING), ("read", ASCENDING), ("updatedAt", DESCENDING),
        ("_id", DESCENDING),
    ]),
    # `openKey` is `<uid>|<stream>` while unread (at most one open notification per subject),
    # then the notification's own id.
    IndexModel([("tenant", ASCENDING), ("openKey", ASCENDING)], unique=True),
)

MAX_MARK = 100
"""Most notifications one `notificationMarkRead` names (`all` marks up to ten times as many)."""

Recipients = Callable[[Context, str, Event], Awaitable[Iterable[str]]]
RECIPIENTS: dict[str, Recipients] = {}


def register_recipients(kind: str, fn: Recipients) -> None:
    """Declare who is notified of events on streams `<kind>:<id>`: `fn(ctx, id, event)` → uids.

    Runs inside the emitting transaction (read the subject with `ctx.db`). The actor is removed
    afterwards; `fn` must apply the audience rules itself (see :func:`customer_side`).
    """
    RECIPIENTS[kind] = fn


def stream_of(uid: str) -> str:
    return f"user:{uid}"


def mentioned(event: Event) -> set[str]:
    """Users @mentioned by an event (`data.mentions`, or only `data.newMentions` when an edit says
    which are new): they are told even if not following."""
    mentions = event.data.get("newMentions", event.data.get("mentions")) or []
    return {m for m in mentions if isinstance(m, str) and m}


async def customer_side(ctx: Context, uids: Iterable[str], customers: Iterable[str | None] = ()) -> set[str]:
    """Those of `uids` who are (or may be) customers.

    A known user is one if their profile has no staff role; an unknown one if listed in
    `customers` (e.g. the case's customer and participants), since staff are known once they act.
    """
    wanted = set(uids)
    if not wanted:
        return set()
    profiles = await users.find_many(ctx, sorted(wanted))
    hint = {c for c in customers if c}
    out = set()
    for uid in wanted:
        profile = profiles.get(uid)
        if profile is not None:
            if not set(profile.get("roles") or []) & STAFF_ROLES:
                out.add(uid)
        elif uid in hint:
            out.add(uid)
    return out


def snapshot(doc: Doc) -> dict[str, Any]:
    """A notification as JSON: the data of its `notification.*` events."""
    return {
        "id": doc["_id"], "kind": doc["kind"], "subjectId": doc["subjectId"],
        "subjectKind": doc["subjectKind"], "stream": doc["stream"], "summary": doc["summary"],
        "read": bool(doc["read"]), "count": int(doc["count"]),
        "createdAt": _iso(doc["createdAt"]), "updatedAt": _iso(doc["updatedAt"]),
    }


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


async def _notify(ctx: Context, event: Event) -> None:
    kind, _, object_id = event.stream.partition(":")
    fn = RECIPIENTS.get(kind)
    if fn is None or not object_id:
        return
    recipients = set(await fn(ctx, object_id, event)) - {event.actor_id}
    for uid in sorted(recipients):
        doc = await ctx.db["notifications"].find_one_and_update(
            {"openKey": f"{uid}|{event.stream}"},
            {
                "$set": {"kind": event.kind, "summary": event.summary, "updatedAt": event.occurred_at,
                         "actorId": event.actor_id, "eventCursor": event.cursor},
                "$inc": {"count": 1},
                "$setOnInsert": {"_id": new_id("ntf"), "uid": uid, "subjectId": object_id,
                                 "subjectKind": kind, "stream": event.stream, "read": False,
                                 "createdAt": event.occurred_at},
            },
            upsert=True,
        )
        assert doc is not None
        await ctx.events.append(
            event.tenant, stream_of(uid), "notification.updated", actor_id=event.actor_id,
            actor_name=event.actor_name, summary=event.summary, data=snapshot(doc),
            visibility=Visibility.PUBLIC,  # the stream itself is private to its owner
        )


activity.on_emit(_notify)


async def _own_stream(ctx: Context, uid: str) -> bool:
    return uid == ctx.me.sub


activity.register_stream("user", _own_stream)


async def _case_recipients(ctx: Context, case_id: str, event: Event) -> set[str]:
    """Followers, the assignee and mentioned users; customers only for PUBLIC events of their case."""
    case = await ctx.db["cases"].find_one(
        {"_id": case_id}, projection={"followers": 1, "assigneeId": 1, "customerId": 1, "participants": 1}
    )
    if case is None:
        return set()
    uids = set(case.get("followers") or []) | mentioned(event)
    if case.get("assigneeId"):
        uids.add(case["assigneeId"])
    allowed = {case.get("customerId"), *(case.get("participants") or [])}
    customers = await customer_side(ctx, uids, allowed)
    if event.visibility is Visibility.INTERNAL:
        return uids - customers
    return uids - {uid for uid in customers if uid not in allowed}


register_recipients("case", _case_recipients)


async def _article_recipients(ctx: Context, article_id: str, event: Event) -> set[str]:
    """Watchers, the owner and mentioned users; customers only for PUBLIC events of an article
    they can read (published: `EXTERNAL` and `VALIDATED`)."""
    article = await ctx.db["articles"].find_one(
        {"_id": article_id}, projection={"watchers": 1, "ownerId": 1, "audience": 1, "state": 1}
    )
    if article is None:
        return set()
    uids = set(article.get("watchers") or []) | mentioned(event)
    if article.get("ownerId"):
        uids.add(article["ownerId"])
    published = article.get("audience") == "EXTERNAL" and article.get("state") == "VALIDATED"
    if event.visibility is Visibility.PUBLIC and published:
        return uids
    return uids - await customer_side(ctx, uids)


register_recipients("article", _article_recipients)


# -- reads ----------------------------------------------------------------------------------------


async def list_notifications(ctx: Context, unread_only: bool, first: int | None, after: str | None) -> Page:
    """The caller's notifications, most recently updated first."""
    query: dict[str, Any] = {"uid": ctx.me.sub}
    if unread_only:
        query["read"] = False
    return await paginate(ctx.db["notifications"], query, sort_key="updatedAt", first=first, after=after)


async def unread_count(ctx: Context) -> int:
    return await ctx.db["notifications"].count({"uid": ctx.me.sub, "read": False})


async def stream_cursor(ctx: Context) -> str:
    """Where `notificationReceived(after:)` resumes so that nothing after this read is missed.

    Read it *before* the list: anything committed in between is delivered again, never lost.
    """
    me = ctx.me
    stream = stream_of(me.sub)
    return encode_cursor(stream, await ctx.events.last_seq(me.tenant, stream))


async def follow(ctx: Context, after: str | None) -> AsyncIterator[Event]:
    """The caller's `notification.*` events after the cursor, then live (see `activity.follow`)."""
    stream = await activity.authorize(ctx, stream_of(ctx.me.sub))
    async for event in activity.follow(ctx, stream, after):
        if event.kind.startswith("notification."):
            yield event


# -- writes ---------------------------------------------------------------------------------------


async def mark_read(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Mark the caller's notifications `ids` (or `all` unread ones) read; one event per change."""
    me = ctx.me
    ids = list(dict.fromkeys(data.get("ids") or []))
    mark_all = bool(data.get("all"))
    if not ids and not mark_all:
        raise invalid("Give the ids of the notifications to mark read, or all: true", "ids")
    if len(ids) > MAX_MARK:
        raise invalid(f"At most {MAX_MARK} ids at once", "ids")

    async def write() -> list[Doc]:
        coll = ctx.db["notifications"]
        found = await coll.find({"_id": {"$in": ids}, "uid": me.sub}) if ids else []
        if len(found) != len(ids):
            raise not_found("Notification", "ids")
        if mark_all:
            known = {d["_id"] for d in found}
            found += [d for d in await coll.find({"uid": me.sub, "read": False}, limit=10 * MAX_MARK)
                      if d["_id"] not in known]
        out = []
        now = datetime.now(UTC)
        for doc in found:
            if not doc["read"]:
                updated = await coll.find_one_and_update(
                    {"_id": doc["_id"], "read": False},
                    {"$set": {"read": True, "readAt": now, "openKey": doc["_id"]}},
                )
                if updated is not None:
                    doc = updated
                    await activity.emit(
                        ctx, stream_of(me.sub), "notification.read", doc["summary"], snapshot(doc),
                        visibility=Visibility.PUBLIC,
                    )
            out.append(doc)
        return out

    docs = await ctx.events.write(write)
    order = {nid: i for i, nid in enumerate(ids)}
    docs.sort(key=lambda d: order.get(d["_id"], len(order)))
    return {"notifications": docs, "unread_count": await unread_count(ctx)}
