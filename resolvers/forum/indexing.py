"""Forum threads and ideas in the search index (`search(kinds: [FORUM_THREAD, IDEA])`).

Both are public within their tenant, so every customer of the tenant may find them (staff always
do). Indexed fields: a thread's `title` (weight 3), `tags` (2), `body` and its published
`answers` (1); an idea's `title` (3) and `body` (1). Drafts, internal notes, linked cases and
assessments are never indexed. Called inside the writes that change those fields.
"""

from __future__ import annotations

from hub.store import Doc
from resolvers import search
from resolvers.context import Context

THREAD_WEIGHTS = {"title": 3.0, "tags": 2.0, "body": 1.0, "answers": 1.0}
IDEA_WEIGHTS = {"title": 3.0, "body": 1.0}
ANSWERS_INDEXED = 20


async def thread(ctx: Context, doc: Doc) -> None:
    """(Re-)index a forum thread with its latest published answers."""
    answers = await ctx.db["forum_answers"].find(
        {"threadId": doc["_id"]}, sort=[("_id", -1)], limit=ANSWERS_INDEXED, projection={"body": 1})
    fields = {"title": doc["title"], "tags": " ".join(doc.get("tags") or []), "body": doc["body"],
              "answers": "\n".join(a["body"] for a in reversed(answers))}
    await search.index_document(ctx, "FORUM_THREAD", doc["_id"], fields=fields, audience={"public": True})


async def idea(ctx: Context, doc: Doc) -> None:
    """(Re-)index an idea."""
    await search.index_document(ctx, "IDEA", doc["_id"], fields={"title": doc["title"], "body": doc["body"]},
                                audience={"public": True})


async def _visible(ctx: Context, collection: str, ids: list[str]) -> dict[str, Doc]:
    docs = await ctx.loader(collection).load_many(ids)
    return {d["_id"]: d for d in docs if d is not None}


async def _threads(ctx: Context, ids: list[str]) -> dict[str, Doc]:
    return await _visible(ctx, "forum_threads", ids)


async def _ideas(ctx: Context, ids: list[str]) -> dict[str, Doc]:
    return await _visible(ctx, "ideas", ids)


search.register_kind("FORUM_THREAD", _threads, ("title", "tags", "body", "answers"), weights=THREAD_WEIGHTS)
search.register_kind("IDEA", _ideas, ("title", "body"), weights=IDEA_WEIGHTS)
