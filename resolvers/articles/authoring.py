"""Creating articles, moving them through KCS confidence states, watching and view counting."""

from __future__ import annotations

from typing import Any

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id
from resolvers import activity, users
from resolvers.articles import core, revisions
from resolvers.articles.revisions import check_expected
from resolvers.context import Context


def prepare(ctx: Context, data: dict[str, Any], **extra: Any) -> Doc:
    """Validate `data` (an `ArticleCreateInput` dict) into a new article document for the caller.

    For other domains too (e.g. promoting a forum answer, capturing a case): `extra` adds fields
    such as `provenance`; then call `insert` inside their own `ctx.events.write`.
    """
    me = ctx.me
    if core.level(me) == core.CUSTOMER:
        raise forbidden("Customers cannot author articles")
    content = core.clean_content(data, partial=False)
    if content["audience"] == "EXTERNAL" and core.level(me) < core.PUBLISHER:
        raise forbidden("Only KCS publishers may create external articles", "audience")
    now = core.now()
    return {
        "_id": new_id("art"), **content, "state": "WORK_IN_PROGRESS", "revision": 1,
        "ownerId": me.sub, "createdBy": me.sub, "lastEditorId": me.sub, "watchers": [me.sub],
        "createdAt": now, "updatedAt": now, "helpfulCount": 0, "notHelpfulCount": 0, "score": 0.0,
        "rank": core.rank_key(0.0, now), "flagged": False, "flagBaseline": 0,
        "viewCount": 0, "useCount": 0, "terms": core.terms_of(content), "publishedAt": None, **extra,
    }


async def insert(ctx: Context, article: Doc) -> None:
    """Store a prepared article with its first revision and `article.created` (inside a write)."""
    me = ctx.me
    empty: Doc = {}
    await ctx.db["articles"].insert(article)
    await ctx.db["article_revisions"].insert(
        revisions.revision_doc(article["_id"], 1, "CREATED", me.sub, empty, article, article["createdAt"])
    )
    await activity.emit(
        ctx, core.stream(article["_id"]), "article.created", f"{me.name} created “{article['title']}”",
        {"title": article["title"], "audience": article["audience"], "ownerId": me.sub,
         **({"provenance": article["provenance"]} if article.get("provenance") else {})},
    )
    ctx.loader("articles").prime(article["_id"], article)


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A new `WORK_IN_PROGRESS` article at revision 1, owned and watched by the caller."""
    article = prepare(ctx, data)
    await users.remember(ctx)
    await ctx.events.write(lambda: insert(ctx, article))
    return {"article": article}


async def set_state(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Change the confidence state (`article.state_changed`); not a content revision."""
    me = ctx.me
    state = data["state"]
    if state not in core.STATES:
        raise invalid(f"state must be one of {', '.join(core.STATES)}", "state")

    async def write() -> Doc:
        article = await core.load_for_write(ctx, data["article_id"])
        core.check_state(me, article, state)
        check_expected(article, data.get("expected_revision"))
        if article["state"] == state:
            raise invalid(f"The article is already {state}", "state")
        now = core.now()
        update: dict[str, Any] = {"state": state, "updatedAt": now,
                                  "rank": core.rank_key(article.get("score", 0.0), now)}
        if state == "VALIDATED":
            update |= {"validatedAt": now, "validatedBy": me.sub}
        if core.published({**article, "state": state}) and not article.get("publishedAt"):
            update["publishedAt"] = now
        updated = await ctx.db["articles"].find_one_and_update(
            {"_id": article["_id"], "revision": article["revision"], "state": article["state"]}, {"$set": update}
        )
        if updated is None:
            raise conflict("The article changed meanwhile; reload and retry", "expectedRevision")
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.state_changed",
            f"{me.name} moved “{article['title']}” from {article['state']} to {state}",
            {"from": article["state"], "to": state, "revision": article["revision"]},
            visibility=core.event_visibility(updated),
        )
        return updated

    return {"article": await ctx.events.write(write)}


async def _watch(ctx: Context, article_id: str, follow: bool) -> dict[str, Any]:
    me = ctx.me

    async def write() -> Doc:
        article = await core.load_for_write(ctx, article_id)
        if (me.sub in article.get("watchers", [])) == follow:
            return article  # already so: nothing changes, nothing to tell
        op = "$addToSet" if follow else "$pull"
        updated = await ctx.db["articles"].find_one_and_update({"_id": article_id}, {op: {"watchers": me.sub}})
        assert updated is not None
        verb = "followed" if follow else "unfollowed"
        await activity.emit(
            ctx, core.stream(article_id), f"article.{verb}", f"{me.name} {verb} “{article['title']}”",
            {"userId": me.sub, "following": follow}, visibility=Visibility.INTERNAL,
        )
        return updated

    return {"article": await ctx.events.write(write)}


async def follow(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Watch an article the caller can read (notifications go to `watchers` and the owner)."""
    return await _watch(ctx, data["article_id"], True)


async def unfollow(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    return await _watch(ctx, data["article_id"], False)


async def record_view(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Count one view (cheap: a single `$inc`, no event, no transaction)."""
    article = await core.get(ctx, data["article_id"])
    if article is None:
        raise not_found("Article", "articleId")
    updated = await ctx.db["articles"].find_one_and_update({"_id": article["_id"]}, {"$inc": {"viewCount": 1}})
    return {"article": updated}


async def count_use(ctx: Context, article_id: str, delta: int = 1) -> None:
    """Count an article (un)used to solve a case: for the knowledge domain, inside its write."""
    await ctx.db["articles"].update_one({"_id": article_id}, {"$inc": {"useCount": delta}})
