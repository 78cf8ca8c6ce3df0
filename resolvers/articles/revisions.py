"""Article revisions: every content edit is a numbered revision with a snapshot and a diff.

`article_revisions` keeps, per revision, the author, time, the full content snapshot, a
field-level diff (`changes`: `{field, before, after}`) and a unified text diff. The article's
`revision` is the collision guard: a write with a stale `expectedRevision` answers CONFLICT and
writes nothing. A revision by someone licensed to validate the article clears its rework flag
("fix it"); ratings must then pile up `MIN_VOTES` again before it can be flagged anew.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import Identity
from hub.errors import conflict, invalid
from hub.store import Doc, new_id, register_indexes
from resolvers import activity
from resolvers.articles import core
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "article_revisions",
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("revision", DESCENDING)], unique=True),
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("revision", DESCENDING), ("_id", DESCENDING)]),
)


def changed(article: Doc, content: dict[str, Any]) -> dict[str, Any]:
    """The subset of `content` that differs from the article."""
    return {f: v for f, v in content.items() if v != article.get(f)}


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).splitlines()


def unified_diff(before: Doc, after: Doc, fields: list[str]) -> str:
    """A unified text diff of the given fields (`a/<field>` → `b/<field>`)."""
    out: list[str] = []
    for field in fields:
        out.extend(difflib.unified_diff(
            _lines(before.get(field)), _lines(after.get(field)), f"a/{field}", f"b/{field}", lineterm="",
        ))
    return "\n".join(out)


def revision_doc(
    article_id: str, number: int, kind: str, author_id: str, before: Doc, after: Doc,
    when: datetime, **extra: Any,
) -> Doc:
    fields = [f for f in core.CONTENT if before.get(f) != after.get(f)]
    return {
        "_id": new_id("arev"), "articleId": article_id, "revision": number, "kind": kind,
        "authorId": author_id, "createdAt": when,
        "snapshot": {f: after.get(f) for f in core.CONTENT},
        "changes": [{"field": f, "before": before.get(f), "after": after.get(f)} for f in fields],
        "diff": unified_diff(before, after, fields), **extra,
    }


async def apply(
    ctx: Context, article: Doc, changes: dict[str, Any], *, kind: str, author_id: str,
    licensee: Identity, **extra: Any,
) -> tuple[Doc, Doc, bool]:
    """Write `changes` as the next revision (inside a write); returns (article, revision, unflagged).

    The update is conditional on the revision read, so a concurrent edit answers CONFLICT.
    """
    now = core.now()
    number = article["revision"] + 1
    after = {**article, **changes}
    update: dict[str, Any] = {
        **changes, "revision": number, "updatedAt": now, "rank": core.rank_key(article.get("score", 0.0), now),
        "terms": core.terms_of(after), "lastEditorId": author_id,
    }
    unflag = bool(article.get("flagged")) and core.may_validate(licensee, after)
    if unflag:
        update |= {"flagged": False, "flagBaseline": article["helpfulCount"] + article["notHelpfulCount"]}
    if core.published(after) and not article.get("publishedAt"):
        update["publishedAt"] = now
    updated = await ctx.db["articles"].find_one_and_update(
        {"_id": article["_id"], "revision": article["revision"]}, {"$set": update}
    )
    if updated is None:
        raise conflict("The article changed meanwhile; reload and retry", "expectedRevision")
    revision = revision_doc(article["_id"], number, kind, author_id, article, updated, now, **extra)
    await ctx.db["article_revisions"].insert(revision)
    return updated, revision, unflag


async def emit_unflagged(ctx: Context, article: Doc, reason: str) -> None:
    await activity.emit(
        ctx, core.stream(article["_id"]), "article.unflagged",
        f"{ctx.me.name} cleared the rework flag of “{article['title']}”",
        {"reason": reason, "revision": article["revision"], "ownerId": article["ownerId"]},
    )


def check_expected(article: Doc, expected: int | None) -> None:
    if expected is not None and expected != article["revision"]:
        raise conflict(
            f"The article is at revision {article['revision']}, not {expected}; reload and retry",
            "expectedRevision",
        )


async def update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Edit content fields as a new revision (`article.revised`)."""
    me = ctx.me
    content = core.clean_content(data, partial=True)
    expected = data.get("expected_revision")

    async def write() -> Doc:
        article = await core.load_for_write(ctx, data["article_id"])
        core.check_edit(me, article, content)
        check_expected(article, expected)
        changes = changed(article, content)
        if not changes:
            raise invalid("Nothing to change: every given field already has that value", "articleId")
        updated, revision, unflagged = await apply(
            ctx, article, changes, kind="EDITED", author_id=me.sub, licensee=me
        )
        fields = [c["field"] for c in revision["changes"]]
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.revised",
            f"{me.name} revised “{updated['title']}” (revision {updated['revision']})",
            {"revision": updated["revision"], "fields": fields},
            visibility=core.event_visibility(updated),
        )
        if unflagged:
            await emit_unflagged(ctx, updated, "revised")
        return updated

    return {"article": await ctx.events.write(write)}


async def revert(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A new revision whose content equals an earlier one (`article.reverted`)."""
    me = ctx.me
    target = data["revision"]
    expected = data.get("expected_revision")

    async def write() -> Doc:
        article = await core.load_for_write(ctx, data["article_id"])
        old = await ctx.db["article_revisions"].find_one({"articleId": article["_id"], "revision": target})
        if old is None:
            raise invalid(f"Revision {target} does not exist", "revision")
        changes = changed(article, old["snapshot"])
        core.check_edit(me, article, changes)
        check_expected(article, expected)
        if not changes:
            raise invalid(f"The article already equals revision {target}", "revision")
        updated, revision, unflagged = await apply(
            ctx, article, changes, kind="REVERTED", author_id=me.sub, licensee=me, revertedTo=target
        )
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.reverted",
            f"{me.name} reverted “{updated['title']}” to revision {target}",
            {"revision": updated["revision"], "revertedTo": target,
             "fields": [c["field"] for c in revision["changes"]]},
            visibility=core.event_visibility(updated),
        )
        if unflagged:
            await emit_unflagged(ctx, updated, "reverted")
        return updated

    return {"article": await ctx.events.write(write)}


async def list_revisions(ctx: Context, article: Doc, first: int | None, after: str | None) -> Page:
    """Newest first; staff only (older revisions may hold content customers never saw)."""
    if not ctx.me.is_staff:
        return Page(items=[], cursors=[], has_next=False)
    return await paginate(
        ctx.db["article_revisions"], {"articleId": article["_id"]}, sort_key="revision", first=first, after=after
    )
