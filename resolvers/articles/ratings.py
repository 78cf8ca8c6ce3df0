"""Ratings: one helpful / not-helpful vote per user per article, the score, flag-it-or-fix-it.

**Score** = the lower bound of the Wilson score interval (95 %, z = 1.96) of the helpful ratio:
what fraction of readers find the article helpful, at least, given the votes so far. Unrated
articles score 0; few votes score low, so an article rises as evidence accumulates. Lists sort
by score, then by last update.

**Flag**: an article with at least `MIN_VOTES` votes (since its last rework) whose score is
under `FLAG_BELOW` is flagged for rework (`article.flagged`, data `ownerId` — the owner is
notified). 0.2 rather than 0.3: with five votes, 3 helpful scores 0.23 and 4 helpful 0.38, and
an article 60 % of readers found helpful is not one to pull; 2 of 5 (0.12) is. The flag clears
(`article.unflagged`) when the score recovers to `FLAG_BELOW` or when someone licensed to
validate the article revises it (see `revisions`).
"""

from __future__ import annotations

import math
from typing import Any

from pymongo import ASCENDING, IndexModel

from hub.errors import invalid
from hub.events import Visibility
from hub.store import Doc, register_indexes
from resolvers import activity, users
from resolvers.articles import core
from resolvers.context import Context

register_indexes(
    "article_ratings",
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("userId", ASCENDING)], unique=True),
)

Z = 1.959964
FLAG_BELOW = 0.2
MIN_VOTES = 5
MAX_COMMENT = 2000


def wilson(helpful: int, total: int, z: float = Z) -> float:
    """Lower bound of the Wilson score interval of `helpful / total` (0 when there are no votes)."""
    if total <= 0:
        return 0.0
    p = helpful / total
    denominator = 1 + z * z / total
    centre = p + z * z / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return round(max(0.0, (centre - margin) / denominator), 6)


def should_flag(article: Doc, score: float, total: int) -> bool:
    return total - article.get("flagBaseline", 0) >= MIN_VOTES and score < FLAG_BELOW


def rating_id(article_id: str, uid: str) -> str:
    return f"arate|{article_id}|{uid}"


async def rate(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Cast or change the caller's vote (`article.rated`, maybe `article.flagged`/`unflagged`)."""
    me = ctx.me
    helpful = bool(data["helpful"])
    comment = (data.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        raise invalid(f"comment is longer than {MAX_COMMENT} characters", "comment")
    await users.remember(ctx)

    async def write() -> Doc:
        article = await core.load_for_write(ctx, data["article_id"])
        ratings = ctx.db["article_ratings"]
        previous = await ratings.find_one({"_id": rating_id(article["_id"], me.sub)})
        now = core.now()
        await ratings.update_one(
            {"_id": rating_id(article["_id"], me.sub)},
            {"$set": {"helpful": helpful, "comment": comment, "updatedAt": now, "revision": article["revision"]},
             "$setOnInsert": {"articleId": article["_id"], "userId": me.sub, "createdAt": now}},
            upsert=True,
        )
        h, n = article["helpfulCount"], article["notHelpfulCount"]
        if previous is not None:
            h, n = (h - 1, n) if previous["helpful"] else (h, n - 1)
        h, n = (h + 1, n) if helpful else (h, n + 1)
        score = wilson(h, h + n)
        flagged = bool(article.get("flagged"))
        update: dict[str, Any] = {"helpfulCount": h, "notHelpfulCount": n, "score": score,
                                  "rank": core.rank_key(score, article["updatedAt"])}
        change = None
        if not flagged and should_flag(article, score, h + n):
            update |= {"flagged": True, "flaggedAt": now}
            change = "flagged"
        elif flagged and score >= FLAG_BELOW:
            update["flagged"] = False
            change = "unflagged"
        updated = await ctx.db["articles"].find_one_and_update({"_id": article["_id"]}, {"$set": update})
        assert updated is not None
        stream = core.stream(article["_id"])
        await activity.emit(
            ctx, stream, "article.rated",
            f"{me.name} rated “{article['title']}” {'helpful' if helpful else 'not helpful'}",
            {"helpful": helpful, "changed": previous is not None, "score": score,
             "helpfulCount": h, "notHelpfulCount": n},
            visibility=Visibility.INTERNAL,
        )
        counts = {"ownerId": article["ownerId"], "score": score, "helpfulCount": h, "notHelpfulCount": n}
        if change == "flagged":
            await activity.emit(
                ctx, stream, "article.flagged", f"“{article['title']}” was flagged for rework (score {score:.2f})",
                counts, visibility=Visibility.INTERNAL,
            )
        elif change == "unflagged":
            await activity.emit(
                ctx, stream, "article.unflagged", f"“{article['title']}” recovered (score {score:.2f})",
                {**counts, "reason": "recovered", "revision": article["revision"]},
                visibility=Visibility.INTERNAL,
            )
        return updated

    article = await ctx.events.write(write)
    ctx.loader("articles").clear(article["_id"])
    return {"article": article}


async def viewer_rating(ctx: Context, article_id: str) -> Doc | None:
    """The caller's own vote on an article, if any."""
    return await ctx.db["article_ratings"].find_one({"_id": rating_id(article_id, ctx.me.sub)})
