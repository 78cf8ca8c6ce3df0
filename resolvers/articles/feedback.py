"""Feedback on articles: GAP / INACCURATE / OUTDATED / SUGGESTION items with a lifecycle.

Anyone who can read an article (customers included) may leave feedback. Staff licensed to edit
the article resolve it: `OPEN → ACCEPTED | REJECTED | DONE`, `ACCEPTED → DONE | REJECTED`;
`DONE` links the revision that resolved it (default: the current one). Customers see only
their own feedback; staff see all of it; the editor role works the whole queue.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, users
from resolvers.articles import core
from resolvers.context import Context
from resolvers.pagination import Page, paginate

_ORDER = [("createdAt", DESCENDING), ("_id", DESCENDING)]
register_indexes(
    "article_feedback",
    IndexModel([("tenant", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("status", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("authorId", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("status", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("ownerId", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("ownerId", ASCENDING), ("status", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("authorId", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("authorId", ASCENDING), ("status", ASCENDING), *_ORDER]),
)

KINDS = ("GAP", "INACCURATE", "OUTDATED", "SUGGESTION")
STATUSES = ("OPEN", "ACCEPTED", "REJECTED", "DONE")
TRANSITIONS = {"OPEN": {"ACCEPTED", "REJECTED", "DONE"}, "ACCEPTED": {"DONE", "REJECTED"}}
MAX_BODY = 10_000
MAX_NOTE = 2000


async def add(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """File feedback on a readable article (`article.feedback_added`)."""
    me = ctx.me
    kind = data["kind"]
    if kind not in KINDS:
        raise invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    body = (data.get("body") or "").strip()
    if not body:
        raise invalid("body must not be empty", "body")
    if len(body) > MAX_BODY:
        raise invalid(f"body is longer than {MAX_BODY} characters", "body")
    await users.remember(ctx)

    async def write() -> tuple[Doc, Doc]:
        article = await core.load_for_write(ctx, data["article_id"])
        now = core.now()
        item: Doc = {
            "_id": new_id("afb"), "articleId": article["_id"], "ownerId": article["ownerId"], "kind": kind,
            "body": body, "status": "OPEN", "authorId": me.sub, "fromCustomer": not me.is_staff,
            "revision": article["revision"], "resolvedRevision": None, "note": None,
            "createdAt": now, "updatedAt": now, "history": [{"status": "OPEN", "by": me.sub, "at": now}],
        }
        await ctx.db["article_feedback"].insert(item)
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.feedback_added",
            f"{me.name} reported {kind.lower()} on “{article['title']}”",
            {"feedbackId": item["_id"], "kind": kind, "ownerId": article["ownerId"], "authorId": me.sub},
            visibility=Visibility.INTERNAL,
        )
        return item, article

    item, article = await ctx.events.write(write)
    return {"feedback": item, "article": article}


async def resolve(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Move feedback along its lifecycle (`article.feedback_resolved`)."""
    me = ctx.me
    status = data["status"]
    if status not in STATUSES or status == "OPEN":
        raise invalid("status must be ACCEPTED, REJECTED or DONE", "status")
    note = (data.get("note") or "").strip()
    if len(note) > MAX_NOTE:
        raise invalid(f"note is longer than {MAX_NOTE} characters", "note")
    wanted = data.get("resolved_revision")
    if wanted is not None and status != "DONE":
        raise invalid("resolvedRevision goes only with DONE", "resolvedRevision")

    async def write() -> tuple[Doc, Doc]:
        item = await ctx.db["article_feedback"].find_one({"_id": data["feedback_id"]}) if me.is_staff else None
        if item is None:
            raise not_found("Feedback", "feedbackId")
        article = await core.load_for_write(ctx, item["articleId"])
        if not core.may_edit(me, article):
            raise forbidden("Only those licensed to edit this article may resolve its feedback", "feedbackId")
        if status not in TRANSITIONS.get(item["status"], set()):
            raise invalid(f"{item['status']} feedback cannot become {status}", "status")
        now = core.now()
        update: dict[str, Any] = {"status": status, "updatedAt": now, "note": note, "resolvedBy": me.sub}
        if status == "DONE":
            revision = article["revision"] if wanted is None else wanted
            if not item["revision"] <= revision <= article["revision"]:
                raise invalid(
                    f"resolvedRevision must be between {item['revision']} and {article['revision']}",
                    "resolvedRevision",
                )
            update["resolvedRevision"] = revision
        updated = await ctx.db["article_feedback"].find_one_and_update(
            {"_id": item["_id"], "status": item["status"]},
            {"$set": update, "$push": {"history": {"status": status, "by": me.sub, "at": now, "note": note}}},
        )
        if updated is None:
            raise conflict("The feedback changed meanwhile; reload and retry", "feedbackId")
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.feedback_resolved",
            f"{me.name} marked feedback on “{article['title']}” {status.lower()}",
            {"feedbackId": item["_id"], "from": item["status"], "to": status, "authorId": item["authorId"],
             "resolvedRevision": updated.get("resolvedRevision")},
            visibility=Visibility.INTERNAL,
        )
        return updated, article

    item, article = await ctx.events.write(write)
    return {"feedback": item, "article": article}


def _statuses(statuses: list[str] | None) -> dict[str, Any]:
    return {"status": {"$in": list(statuses)}} if statuses else {}


async def for_article(ctx: Context, article: Doc, statuses: list[str] | None, first: int | None) -> list[Doc]:
    """Newest first: all of it for staff, only their own for customers."""
    me = ctx.me
    query: dict[str, Any] = {"articleId": article["_id"], **_statuses(statuses)}
    if not me.is_staff:
        query["authorId"] = me.sub
    page = await paginate(ctx.db["article_feedback"], query, sort_key="createdAt", first=50 if first is None else first)
    return page.items


async def queue(ctx: Context, statuses: list[str] | None, first: int | None, after: str | None) -> Page:
    """The feedback queue: editors see all, other staff feedback on their articles, customers their own."""
    me = ctx.me
    query = _statuses(statuses)
    if not me.is_staff:
        query["authorId"] = me.sub
    elif core.level(me) < core.EDITOR:
        query["ownerId"] = me.sub
    return await paginate(ctx.db["article_feedback"], query, sort_key="createdAt", first=first, after=after)

