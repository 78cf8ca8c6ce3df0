"""Articles and cases in the search index, kept current by an activity hook.

Every event is emitted inside its mutation's transaction and `activity.on_emit` hooks run in
that same transaction, so re-indexing on the events that change searchable content keeps the
index exactly as current as the documents, without search code in the article and case
modules. Forum threads and ideas call `index_document` themselves.

Articles: title 3, issue 2, tags 2, product 1.5, environment/cause/resolution 1; customers
find only published ones (`EXTERNAL` + `VALIDATED`), every field of which they may read.
Boost: `(1 + 0.5 * score) * state`, where `score` is the Wilson rating score (0 to 1) and `state`
is 1 for validated, 0.9 for work in progress / not validated, 0.5 for archived articles.

Cases: subject 3, tags 2, symptom 1.5, description/resolution/comments/cause/notes 1, where
`comments` are the latest public comments and `notes` the internal ones. Customers find the
cases they read (customer and participants) through the public fields only (subject,
description, resolution, public comments): internal text never matches, nor shows, for them.
"""

from __future__ import annotations

from hub.events import Event, Visibility
from hub.store import Doc
from resolvers import activity, articles, cases
from resolvers.context import Context
from resolvers.search import index

ARTICLE_WEIGHTS = {"title": 3.0, "issue": 2.0, "tags": 2.0, "product": 1.5}
CASE_WEIGHTS = {"subject": 3.0, "tags": 2.0, "symptom": 1.5}
CASE_PUBLIC = ("subject", "description", "resolution", "comments")
STATE_FACTOR = {"VALIDATED": 1.0, "WORK_IN_PROGRESS": 0.9, "NOT_VALIDATED": 0.9, "ARCHIVED": 0.5}
COMMENTS_INDEXED = 50

ARTICLE_CONTENT = {"article.created", "article.revised", "article.reverted", "article.state_changed"}
ARTICLE_RATING = {"article.rated", "article.flagged", "article.unflagged"}
CASE_CONTENT = {"case.created", "case.updated", "case.participant_added"}
COMMENT_CHANGES = {"comment.added", "comment.edited", "comment.deleted", "comment.removed"}


def article_boost(doc: Doc) -> float:
    return (1 + 0.5 * float(doc.get("score") or 0.0)) * STATE_FACTOR.get(doc.get("state", ""), 1.0)


async def index_article(ctx: Context, article_id: str) -> None:
    doc = await ctx.db["articles"].find_one({"_id": article_id})
    if doc is None:
        await index.remove_document(ctx, "ARTICLE", article_id)
        return
    fields = {f: str(doc.get(f) or "") for f in ("title", "issue", "environment", "cause", "resolution", "product")}
    fields["tags"] = " ".join(doc.get("tags") or [])
    await index.index_document(ctx, "ARTICLE", article_id, fields=fields,
                               audience={"public": articles.published(doc)}, boost=article_boost(doc))


async def index_case(ctx: Context, case_id: str) -> None:
    doc = await ctx.db["cases"].find_one({"_id": case_id})
    if doc is None:
        await index.remove_document(ctx, "CASE", case_id)
        return
    comments = await ctx.db["comments"].find(
        {"subjectId": case_id}, sort=[("_id", -1)], limit=COMMENTS_INDEXED,
        projection={"body": 1, "visibility": 1, "deleted": 1},
    )
    live = [c for c in reversed(comments) if not c.get("deleted")]
    public = Visibility.PUBLIC.value
    fields = {f: str(doc.get(f) or "") for f in ("subject", "description", "resolution", "symptom", "cause")}
    fields["comments"] = "\n".join(c["body"] for c in live if c["visibility"] == public)
    fields["notes"] = "\n".join(c["body"] for c in live if c["visibility"] != public)
    fields["tags"] = " ".join(doc.get("tags") or [])
    readers = {doc.get("customerId"), *(doc.get("participants") or [])} - {None}
    await index.index_document(ctx, "CASE", case_id, fields=fields,
                               audience={"public": False, "users": sorted(readers)})


async def _on_event(ctx: Context, event: Event) -> None:
    """Re-index the subject of a content event, in the emitting transaction."""
    prefix, _, object_id = event.stream.partition(":")
    if prefix == "article":
        if event.kind in ARTICLE_CONTENT:
            await index_article(ctx, object_id)
        elif event.kind in ARTICLE_RATING:
            doc = await ctx.db["articles"].find_one({"_id": object_id}, projection={"score": 1, "state": 1})
            if doc is not None:
                await index.set_boost(ctx, "ARTICLE", object_id, article_boost(doc))
    elif prefix == "case" and (event.kind in CASE_CONTENT or event.kind in COMMENT_CHANGES):
        await index_case(ctx, object_id)


async def _visible_articles(ctx: Context, ids: list[str]) -> dict[str, Doc]:
    docs = await ctx.loader("articles").load_many(ids)
    return {d["_id"]: d for d in docs if d is not None and articles.can_read(ctx, d)}


async def _visible_cases(ctx: Context, ids: list[str]) -> dict[str, Doc]:
    docs = await ctx.loader("cases").load_many(ids)
    return {d["_id"]: d for d in docs if d is not None and cases.can_read(ctx, d)}


index.register_kind("ARTICLE", _visible_articles,
                    ("title", "issue", "environment", "cause", "resolution", "product", "tags"),
                    weights=ARTICLE_WEIGHTS)
index.register_kind("CASE", _visible_cases, CASE_PUBLIC, title_field="subject", weights=CASE_WEIGHTS)
activity.on_emit(_on_event)
