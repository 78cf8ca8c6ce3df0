"""The workspace of a case: ordered documents, logs, steps and results staff build while solving it.

Only staff write. Items are internal unless `shared`; customers who may read the case see the
shared ones (positioned among themselves only). Updates are conditional on `expectedVersion`
(stale → CONFLICT, nothing written). Every write of a case's workspace first bumps its row in
`workspaces`, so concurrent adds and moves on one case serialise instead of interleaving.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, attachments, cases
from resolvers.context import Context

register_indexes(
    "workspace_items",
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("position", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("shared", ASCENDING), ("position", ASCENDING)]),
)

KINDS = ("DOCUMENT", "LOG", "STEP", "RESULT")
MAX_TITLE = 300
MAX_CONTENT = 200_000
MAX_ITEMS = 1_000


def _visibility(item: Doc) -> Visibility:
    return Visibility.PUBLIC if item.get("shared") else Visibility.INTERNAL


async def list_items(ctx: Context, case_id: str) -> list[Doc]:
    """The workspace of a case in order: everything for staff, shared items for customers."""
    if await cases.get(ctx, case_id) is None:
        return []
    if ctx.me.is_staff:
        return await ctx.db["workspace_items"].find({"caseId": case_id}, sort=[("position", 1)], limit=MAX_ITEMS)
    docs = await ctx.db["workspace_items"].find(
        {"caseId": case_id, "shared": True}, sort=[("position", 1)], limit=MAX_ITEMS
    )
    return [{**d, "position": i} for i, d in enumerate(docs)]


async def get(ctx: Context, item_id: str) -> Doc | None:
    """An item the caller may read, else `None`."""
    item = await ctx.loader("workspace_items").load(item_id)
    if item is None or not (ctx.me.is_staff or item.get("shared")):
        return None
    return item if await cases.get(ctx, item["caseId"]) else None


def _title(value: str | None, required: bool) -> str:
    title = (value or "").strip()
    if required and not title:
        raise invalid("title must not be empty", "title")
    if len(title) > MAX_TITLE:
        raise invalid(f"title is longer than {MAX_TITLE} characters", "title")
    return title


def _content(value: str | None) -> str:
    content = value or ""
    if len(content) > MAX_CONTENT:
        raise invalid(f"content is longer than {MAX_CONTENT} characters", "content")
    return content


def _staff(ctx: Context) -> None:
    if not ctx.me.is_staff:
        raise forbidden("Only staff may change a case workspace")


async def _lock(ctx: Context, case_id: str, counter: str) -> Doc:
    """Bump the case's workspace row inside the write: concurrent writers of one case conflict and retry."""
    row = await ctx.db["workspaces"].find_one_and_update({"_id": case_id}, {"$inc": {counter: 1}}, upsert=True)
    assert row is not None
    return row


async def add(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`workspaceItemAdd`: append an item to the case's workspace."""
    me = ctx.me
    _staff(ctx)
    case_id = str(data["case_id"])
    if await cases.get(ctx, case_id) is None:
        raise not_found("Case", "caseId")
    kind = data.get("kind")
    if kind not in KINDS:
        raise invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    title = _title(data.get("title"), required=True)
    content = _content(data.get("content"))
    attachment_ids = await attachments.check(ctx, data.get("attachment_ids"))
    now = datetime.now(UTC)
    item: Doc = {
        "_id": new_id("wsi"), "caseId": case_id, "kind": kind, "title": title, "content": content,
        "shared": bool(data.get("shared") or False), "attachmentIds": attachment_ids, "version": 1,
        "authorId": me.sub, "updatedBy": me.sub, "createdAt": now, "updatedAt": now,
    }

    async def write() -> Doc:
        row = await _lock(ctx, case_id, "count")
        if row["count"] > MAX_ITEMS:
            raise invalid(f"A workspace holds at most {MAX_ITEMS} items", "caseId")
        doc = await ctx.db["workspace_items"].insert({**item, "position": row["count"] - 1})
        await attachments.link(ctx, attachment_ids, "workspace", item["_id"])
        await activity.emit(
            ctx, cases.stream(case_id), "workspace.item_added", f"{me.name} added {kind.lower()} “{title}”",
            {"itemId": item["_id"], "kind": kind, "title": title, "version": 1}, visibility=_visibility(item),
        )
        return doc

    return {"item": await ctx.events.write(write)}


async def _writable(ctx: Context, item_id: str) -> Doc:
    _staff(ctx)
    item = await ctx.db["workspace_items"].find_one({"_id": item_id})
    if item is None or await cases.get(ctx, item["caseId"]) is None:
        raise not_found("Workspace item", "itemId")
    return item


async def update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`workspaceItemUpdate`: change content/title/shared/attachments if `expectedVersion` is current."""
    me = ctx.me
    item = await _writable(ctx, str(data["item_id"]))
    expected = data.get("expected_version")
    if not isinstance(expected, int):
        raise invalid("expectedVersion is required", "expectedVersion")
    changes: dict[str, Any] = {}
    if data.get("content") is not None:
        changes["content"] = _content(data["content"])
    if data.get("title") is not None:
        changes["title"] = _title(data["title"], required=True)
    if data.get("shared") is not None:
        changes["shared"] = bool(data["shared"])
    if data.get("attachment_ids") is not None:
        changes["attachmentIds"] = await attachments.check(ctx, data["attachment_ids"])
    if not changes:
        raise invalid("Nothing to change", "content")
    if expected != item["version"]:
        raise conflict(f"The item changed (now version {item['version']}); reload and retry", "expectedVersion")
    changes = {k: v for k, v in changes.items() if item.get(k) != v}
    if not changes:
        return {"item": item}  # the current values: no new version, no event
    case_id = item["caseId"]

    async def write() -> Doc:
        await _lock(ctx, case_id, "updates")
        updated = await ctx.db["workspace_items"].find_one_and_update(
            {"_id": item["_id"], "version": expected},
            {"$set": {**changes, "updatedAt": datetime.now(UTC), "updatedBy": me.sub}, "$inc": {"version": 1}},
        )
        if updated is None:
            raise conflict("The item changed meanwhile; reload and retry", "expectedVersion")
        if "attachmentIds" in changes:
            kept = changes["attachmentIds"]
            await attachments.link(ctx, kept, "workspace", item["_id"])
            gone = [i for i in item.get("attachmentIds") or [] if i not in kept]
            await attachments.unlink(ctx, gone, "workspace", item["_id"])
        if item.get("shared") and not updated.get("shared"):
            # customers saw it: tell them it is gone, without its new content
            await activity.emit(ctx, cases.stream(case_id), "workspace.item_unshared",
                                f"{me.name} withdrew a shared item", {"itemId": item["_id"]},
                                visibility=Visibility.PUBLIC)
        else:
            await activity.emit(
                ctx, cases.stream(case_id), "workspace.item_updated", f"{me.name} updated “{updated['title']}”",
                {"itemId": item["_id"], "kind": updated["kind"], "title": updated["title"],
                 "version": updated["version"], "changed": sorted(changes)},
                visibility=_visibility(updated),
            )
        return updated

    return {"item": await ctx.events.write(write)}


async def move(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`workspaceItemMove`: put an item at `position` (0-based, clamped to the end), shifting the others."""
    me = ctx.me
    item = await _writable(ctx, str(data["item_id"]))
    position = data.get("position")
    if not isinstance(position, int) or position < 0:
        raise invalid("position must be 0 or more", "position")
    case_id = item["caseId"]

    async def write() -> Doc:
        row = await _lock(ctx, case_id, "moves")
        current = await ctx.db["workspace_items"].find_one({"_id": item["_id"]})
        assert current is not None
        old, new = current["position"], min(position, max(int(row.get("count", 0)) - 1, 0))
        if new == old:
            return current
        items = ctx.db["workspace_items"]
        if new < old:
            await items.update_many({"caseId": case_id, "position": {"$gte": new, "$lt": old}},
                                    {"$inc": {"position": 1}})
        else:
            await items.update_many({"caseId": case_id, "position": {"$gt": old, "$lte": new}},
                                    {"$inc": {"position": -1}})
        moved = await items.find_one_and_update(
            {"_id": item["_id"]}, {"$set": {"position": new, "updatedAt": datetime.now(UTC)}}
        )
        assert moved is not None
        # positions among all items would tell customers how many internal ones exist
        shown = {"itemId": item["_id"]} if moved.get("shared") else {"itemId": item["_id"], "from": old, "to": new}
        await activity.emit(ctx, cases.stream(case_id), "workspace.item_moved",
                            f"{me.name} moved “{moved['title']}”", shown, visibility=_visibility(moved))
        return moved

    return {"item": await ctx.events.write(write)}


async def _readable(ctx: Context, item_id: str) -> bool:
    return await get(ctx, item_id) is not None


attachments.register_reference("workspace", _readable)
