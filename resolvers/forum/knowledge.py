"""Consult, create, distribute: suggested experts, the staff draft answer, promotion to an article.

- Suggested experts (staff): staff whose `skills` match the question's tags or significant words,
  ranked by how many they match (then by user id); read with the `users` skills index.
- The draft (staff): one collaborative draft per thread in `forum_drafts`, versioned: pass
  `expectedVersion` (0 when creating) and a stale one answers `CONFLICT`. Everybody who saved it
  is a contributor. Drafts are never shown to customers or anonymous readers, anywhere.
- Promotion (staff licensed by KCS rules, see docs/articles.md): the accepted answer becomes a
  `WORK_IN_PROGRESS` article with `provenance` (question, answer, contributors). A near-duplicate
  (title words Jaccard ≥ 0.6, or content words Jaccard ≥ 0.5, stop words ignored) answers
  `CONFLICT` naming the existing article, unless `force: true`.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from hub.auth import STAFF_ROLES
from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id
from resolvers import activity, users
from resolvers.articles import authoring
from resolvers.articles import core as articles
from resolvers.context import Context
from resolvers.forum import core

MAX_EXPERTS = 10
MAX_SKILL_WORDS = 50
MAX_CANDIDATES = 200
TITLE_SIMILAR, CONTENT_SIMILAR = 0.6, 0.5


async def suggested_experts(ctx: Context, thread: Doc, first: int | None = None) -> list[Doc]:
    """Staff whose skills match the question's tags and words, best match first (staff only)."""
    if not ctx.me.is_staff:
        return []
    wanted = list(dict.fromkeys([*thread.get("tags", []), *core.significant(core.terms(
        f"{thread['title']} {thread['body']}"))]))[:MAX_SKILL_WORDS]
    if not wanted:
        return []
    variants = sorted({v for w in wanted for v in (w, w.title(), w.upper())})
    found = await ctx.db["users"].find({"skills": {"$in": variants}}, limit=MAX_CANDIDATES)
    ranked = []
    for doc in found:
        if not set(doc.get("roles") or []) & STAFF_ROLES:
            continue
        matched = {s.lower() for s in doc.get("skills") or []} & set(wanted)
        if matched:
            ranked.append((-len(matched), doc["uid"], doc))
    ranked.sort(key=lambda r: (r[0], r[1]))
    limit = MAX_EXPERTS if first is None else max(0, min(first, MAX_EXPERTS * 5))
    return [doc for *_, doc in ranked[:limit]]


async def save_draft(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Create or update the thread's draft answer (staff); `expectedVersion` guards collisions."""
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff edit draft answers", "threadId")
    thread_id = core.thread_id_of(data.get("thread_id"))
    body = core.text(data.get("body"), "body", core.MAX_BODY, strip=False)
    expected = data.get("expected_version")
    thread = await core.get(ctx, thread_id)
    if thread is None:
        raise not_found("Forum thread", "threadId")
    await users.remember(ctx)

    async def write() -> Doc:
        draft = await ctx.db["forum_drafts"].find_one({"threadId": thread_id})
        current = draft["version"] if draft else 0
        if expected is not None and expected != current:
            raise conflict(f"The draft changed (now version {current}); reload and retry", "expectedVersion")
        at = core.now()
        if draft is None:
            draft = {"_id": new_id("fdr"), "threadId": thread_id, "body": body, "version": 1,
                     "contributors": [me.sub], "createdAt": at, "updatedAt": at, "updatedBy": me.sub}
            await ctx.db["forum_drafts"].insert(draft)
        elif draft["body"] == body:
            return draft
        else:
            saved = await ctx.db["forum_drafts"].find_one_and_update(
                {"_id": draft["_id"], "version": draft["version"]},
                {"$set": {"body": body, "updatedAt": at, "updatedBy": me.sub},
                 "$addToSet": {"contributors": me.sub}, "$inc": {"version": 1}},
            )
            if saved is None:
                raise conflict("The draft changed meanwhile; reload and retry", "expectedVersion")
            draft = saved
        await activity.emit(
            ctx, core.stream(thread_id), "forum.draft_saved", f"{me.name} saved the draft answer",
            {"threadId": thread_id, "draftId": draft["_id"], "version": draft["version"]},
            visibility=Visibility.INTERNAL,
        )
        return draft

    try:
        draft = await ctx.events.write(write)
    except DuplicateKeyError as exc:  # two first saves raced: the loser reloads
        raise conflict("Somebody else started the draft; reload and retry", "expectedVersion") from exc
    return {"draft": draft, "thread": thread}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


async def near_duplicate(ctx: Context, title: str, content_terms: list[str]) -> tuple[Doc, float] | None:
    """The most similar existing (not archived) article above the thresholds, if any."""
    title_words = set(core.significant(articles.terms(title)))
    content = set(core.significant(content_terms))
    probe = sorted(title_words) or sorted(content)[:20]
    if not probe:
        return None
    candidates = await ctx.db["articles"].find(
        {"terms": {"$in": probe}, "state": {"$ne": "ARCHIVED"}},
        projection={"title": 1, "terms": 1}, limit=MAX_CANDIDATES,
    )
    best: tuple[Doc, float] | None = None
    for doc in candidates:
        by_title = _jaccard(title_words, set(core.significant(articles.terms(doc["title"]))))
        by_content = _jaccard(content, set(core.significant(doc.get("terms") or [])))
        if by_title >= TITLE_SIMILAR or by_content >= CONTENT_SIMILAR:
            score = max(by_title, by_content)
            if best is None or score > best[1]:
                best = (doc, score)
    return best


async def promote(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Turn the accepted answer into a KCS article with provenance; link it from the thread."""
    me = ctx.me
    answer_id = data.get("answer_id")
    answer = await core.answer(ctx, answer_id) if isinstance(answer_id, str) else None
    thread = await core.get(ctx, answer["threadId"]) if answer else None
    if answer is None or thread is None:
        raise not_found("Answer", "answerId")
    if not me.is_staff:
        raise forbidden("Only staff promote answers to articles", "answerId")
    if not answer.get("accepted"):
        raise invalid("Only the accepted answer can be promoted", "answerId")
    if thread.get("promotedArticleId"):
        raise conflict(f"Already promoted as article {thread['promotedArticleId']}", "answerId")
    title = core.text(data.get("title"), "title", core.MAX_TITLE, required=False) or thread["title"]
    provenance = {
        "source": "FORUM", "threadId": thread["_id"], "answerId": answer["_id"], "caseId": thread.get("caseId"),
        "question": {"title": thread["title"], "body": thread["body"], "askerId": thread["askerId"],
                     "postedAt": thread["createdAt"].isoformat()},
        "answer": {"body": answer["body"], "authorId": answer["authorId"],
                   "postedAt": answer["createdAt"].isoformat()},
        "contributors": sorted({answer["authorId"], *answer.get("contributors", [])}),
        "promotedBy": me.sub,
    }
    article = authoring.prepare(ctx, {
        "title": title, "issue": thread["body"][: articles.TEXT_LIMITS["issue"]], "environment": "",
        "cause": "", "resolution": answer["body"], "tags": thread.get("tags") or [],
        "audience": data.get("audience") or "INTERNAL", "product": "",
    }, provenance=provenance)
    if not data.get("force"):
        duplicate = await near_duplicate(ctx, article["title"], article["terms"])
        if duplicate is not None:
            doc, score = duplicate
            raise conflict(
                f"A similar article exists: {doc['_id']} “{doc['title']}” (similarity {score:.2f}); "
                "pass force: true to promote anyway", "force",
            )
    await users.remember(ctx)

    async def write() -> Doc:
        linked = await ctx.db["forum_threads"].find_one_and_update(
            {"_id": thread["_id"], "promotedArticleId": None},
            {"$set": {"promotedArticleId": article["_id"], "updatedAt": core.now()}, "$inc": {"version": 1}},
        )
        if linked is None:
            raise conflict("The answer was promoted meanwhile; reload", "answerId")
        await ctx.db["forum_answers"].update_one(
            {"_id": answer["_id"]}, {"$set": {"promotedArticleId": article["_id"]}})
        await authoring.insert(ctx, article)
        await activity.emit(
            ctx, core.stream(thread["_id"]), "forum.answer_promoted",
            f"{me.name} promoted an answer to “{thread['title']}” to an article",
            {"threadId": thread["_id"], "answerId": answer["_id"], "articleId": article["_id"]},
            visibility=Visibility.INTERNAL,
        )
        return linked

    linked = await ctx.events.write(write)
    ctx.loader("forum_threads").clear(thread["_id"])
    return {"article": article, "thread": linked}
