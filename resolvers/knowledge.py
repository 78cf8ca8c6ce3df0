"""Knowledge inside case work: case ↔ article links and capturing an article from a case.

- `caseLinkArticle(caseId, articleId, relation: SOLVED_BY|REFERENCED)` (staff only): one row of
  `case_article_links` per (case, article, relation) — linking again changes nothing and emits
  nothing. The first SOLVED_BY/REFERENCED link of an article to a case counts one use
  (`Article.useCount`, KCS *reuse*), in the same transaction. `caseUnlinkArticle` undoes it.
- `articleCaptureFromCase(caseId, title?)` (staff, any KCS licence — candidates capture too): a
  `WORK_IN_PROGRESS` `INTERNAL` article prefilled from the case (subject, symptom/description,
  channel/tags/skills, cause, resolution plus the workspace's STEP and RESULT items), with
  `provenance {source: CASE, caseId}` and a `CAPTURED` link back (KCS *create*, not a reuse).
- A link records whether the article existed before the case was opened (`reuse`): metrics use
  it to tell known issues from new ones.
- Customers never link or capture (`FORBIDDEN`, whatever the case), and read on a case only the
  links to published articles.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hub.errors import forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, register_indexes
from resolvers import activity, cases, users
from resolvers.articles import authoring, core
from resolvers.context import Context

register_indexes(
    "case_article_links",
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("articleId", ASCENDING), ("relation", ASCENDING)],
               unique=True),
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("createdAt", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("articleId", ASCENDING), ("createdAt", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("createdAt", ASCENDING)]),
)

LINK_RELATIONS = ("SOLVED_BY", "REFERENCED")
"""What `caseLinkArticle` takes; both count as reuse of the article."""
CAPTURED = "CAPTURED"
RELATIONS = (*LINK_RELATIONS, CAPTURED)
MAX_LINKS = 500
"""Links read per case or per article (far more than any real case has)."""


def link_id(case_id: str, article_id: str, relation: str) -> str:
    return f"cal|{case_id}|{article_id}|{relation}"


def _relation(value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise invalid(f"relation must be one of {', '.join(allowed)}", "relation")
    return str(value)


def _staff(ctx: Context, what: str) -> None:
    # Same answer for every case, so a refused customer learns nothing about existence.
    if not ctx.me.is_staff:
        raise forbidden(f"Only staff may {what}", "caseId")


async def _case_for_write(ctx: Context, case_id: str) -> Doc:
    case = await ctx.db["cases"].find_one({"_id": case_id})
    if case is None or not cases.can_read(ctx, case):
        raise not_found("Case", "caseId")
    return case


async def _article_for_write(ctx: Context, article_id: Any) -> Doc:
    if not isinstance(article_id, str) or not article_id:
        raise not_found("Article", "articleId")
    return await core.load_for_write(ctx, article_id)


def link_doc(case: Doc, article: Doc, relation: str, by: str, now: Any) -> Doc:
    return {
        "_id": link_id(case["_id"], article["_id"], relation), "caseId": case["_id"], "articleId": article["_id"],
        "relation": relation, "createdBy": by, "createdAt": now, "caseCreatedAt": case["createdAt"],
        "articleCreatedAt": article["createdAt"],
        # reuse: the article was already there when the case was opened (a known issue)
        "reuse": relation != CAPTURED and article["createdAt"] < case["createdAt"],
        "public": core.published(article),
    }


async def _reuse_links(ctx: Context, case_id: str, article_id: str) -> int:
    return await ctx.db["case_article_links"].count(
        {"caseId": case_id, "articleId": article_id, "relation": {"$in": list(LINK_RELATIONS)}}
    )


async def link(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`caseLinkArticle`: idempotent per (case, article, relation); events on both streams."""
    me = ctx.me
    _staff(ctx, "link articles to cases")
    case_id = cases.case_id_of(data.get("case_id"))
    relation = _relation(data.get("relation"), LINK_RELATIONS)
    await users.remember(ctx)

    async def write() -> dict[str, Any]:
        case = await _case_for_write(ctx, case_id)
        article = await _article_for_write(ctx, data.get("article_id"))
        links = ctx.db["case_article_links"]
        existing = await links.find_one({"_id": link_id(case_id, article["_id"], relation)})
        if existing is not None:
            return {"case": case, "article": article, "link": existing}
        first_use = await _reuse_links(ctx, case_id, article["_id"]) == 0
        doc = await links.insert(link_doc(case, article, relation, me.sub, core.now()))
        if first_use:
            await authoring.count_use(ctx, article["_id"], 1)
        updated = await ctx.db["articles"].find_one({"_id": article["_id"]})
        assert updated is not None
        verb = "solved by" if relation == "SOLVED_BY" else "referencing"
        await activity.emit(
            ctx, cases.stream(case_id), "case.article_linked",
            f"{me.name} linked the case as {verb} “{article['title']}”",
            {"articleId": article["_id"], "relation": relation, "title": article["title"]},
            visibility=Visibility.PUBLIC if core.published(article) else Visibility.INTERNAL,
        )
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.linked_to_case",
            f"{me.name} linked “{article['title']}” to case “{case['subject']}”",
            {"caseId": case_id, "relation": relation, "reuse": doc["reuse"], "useCount": updated.get("useCount", 0)},
            visibility=Visibility.INTERNAL,
        )
        return {"case": case, "article": updated, "link": doc}

    try:
        result = await ctx.events.write(write)
    except DuplicateKeyError:  # a concurrent identical link won: ours is a no-op
        result = await ctx.events.write(write)
    ctx.loader("articles").clear(result["article"]["_id"])
    return result


async def unlink(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`caseUnlinkArticle`: remove one link (no-op if absent); the last reuse link un-counts the use."""
    me = ctx.me
    _staff(ctx, "unlink articles from cases")
    case_id = cases.case_id_of(data.get("case_id"))
    relation = _relation(data.get("relation"), RELATIONS)

    async def write() -> dict[str, Any]:
        case = await _case_for_write(ctx, case_id)
        article = await _article_for_write(ctx, data.get("article_id"))
        links = ctx.db["case_article_links"]
        existing = await links.find_one({"_id": link_id(case_id, article["_id"], relation)})
        if existing is None:
            return {"case": case, "article": article}
        await links.delete_one({"_id": existing["_id"]})
        if relation in LINK_RELATIONS and await _reuse_links(ctx, case_id, article["_id"]) == 0:
            await authoring.count_use(ctx, article["_id"], -1)
        updated = await ctx.db["articles"].find_one({"_id": article["_id"]})
        assert updated is not None
        # customers saw the link if it was public then, or read it on the case now
        public = existing.get("public") or core.published(article)
        await activity.emit(
            ctx, cases.stream(case_id), "case.article_unlinked", f"{me.name} unlinked “{article['title']}”",
            {"articleId": article["_id"], "relation": relation},
            visibility=Visibility.PUBLIC if public else Visibility.INTERNAL,
        )
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.unlinked_from_case",
            f"{me.name} unlinked “{article['title']}” from case “{case['subject']}”",
            {"caseId": case_id, "relation": relation, "useCount": updated.get("useCount", 0)},
            visibility=Visibility.INTERNAL,
        )
        return {"case": case, "article": updated}

    result = await ctx.events.write(write)
    ctx.loader("articles").clear(result["article"]["_id"])
    return result


async def links_of_case(ctx: Context, case: Doc) -> list[tuple[Doc, Doc]]:
    """(link, article) pairs of a case, oldest first, whose article the viewer may read."""
    if not cases.can_read(ctx, case):
        return []
    docs = await ctx.db["case_article_links"].find({"caseId": case["_id"]}, sort=[("createdAt", 1)], limit=MAX_LINKS)
    articles = await ctx.loader("articles").load_many([d["articleId"] for d in docs])
    return [(d, a) for d, a in zip(docs, articles, strict=True) if a is not None and core.can_read(ctx, a)]


async def linked_articles(ctx: Context, case: Doc) -> list[Doc]:
    """Distinct articles linked to the case that the viewer may read (customers: published ones)."""
    seen: dict[str, Doc] = {}
    for _, article in await links_of_case(ctx, case):
        seen.setdefault(article["_id"], article)
    return list(seen.values())


async def linked_cases(ctx: Context, article: Doc) -> list[Doc]:
    """Distinct cases an article is linked to, among those the viewer may read, oldest link first."""
    docs = await ctx.db["case_article_links"].find(
        {"articleId": article["_id"]}, sort=[("createdAt", 1)], limit=MAX_LINKS
    )
    ids = list(dict.fromkeys(d["caseId"] for d in docs))
    found = await ctx.loader("cases").load_many(ids)
    return [c for c in found if c is not None and cases.can_read(ctx, c)]


def _fit(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def prefill(case: Doc, items: list[Doc], title: str | None) -> dict[str, Any]:
    """Article content from a case and its workspace STEP/RESULT items (no retyping)."""
    limits = core.TEXT_LIMITS
    environment = [f"Channel: {case.get('channel') or 'WEB'}"]
    if case.get("tags"):
        environment.append(f"Tags: {', '.join(case['tags'])}")
    if case.get("skills"):
        environment.append(f"Skills: {', '.join(case['skills'])}")
    resolution = [case.get("resolution") or ""]
    if items:
        resolution.append("Steps and results from the case workspace:")
        for n, item in enumerate(items, 1):
            block = f"{n}. [{item['kind']}] {item['title']}"
            resolution.append(block + (f"\n{item['content'].strip()}" if item.get("content", "").strip() else ""))
    return {
        "title": _fit(title or case["subject"], limits["title"]),
        "issue": _fit(case.get("symptom") or case.get("description") or "", limits["issue"]),
        "environment": _fit("\n".join(environment), limits["environment"]),
        "cause": _fit(case.get("cause") or "", limits["cause"]),
        "resolution": _fit("\n\n".join(r for r in resolution if r.strip()), limits["resolution"]),
        "tags": list(case.get("tags") or [])[: core.MAX_TAGS],
        "product": "", "audience": "INTERNAL",
    }


async def capture(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`articleCaptureFromCase`: a WIP internal article prefilled from the case, linked back."""
    me = ctx.me
    _staff(ctx, "capture articles")
    case_id = cases.case_id_of(data.get("case_id"))
    title = data.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise invalid("title must not be empty (omit it to use the case's subject)", "title")
    case = await cases.get(ctx, case_id)
    if case is None:
        raise not_found("Case", "caseId")
    items = await ctx.db["workspace_items"].find({"caseId": case_id}, sort=[("position", 1)], limit=1000)
    steps = [i for i in items if i["kind"] in ("STEP", "RESULT")]
    article = authoring.prepare(ctx, prefill(case, steps, title), provenance={"source": "CASE", "caseId": case_id},
                                capturedFromCaseId=case_id)
    await users.remember(ctx)

    async def write() -> Doc:
        current = await _case_for_write(ctx, case_id)
        await authoring.insert(ctx, article)
        await ctx.db["case_article_links"].insert(link_doc(current, article, CAPTURED, me.sub, article["createdAt"]))
        await activity.emit(
            ctx, cases.stream(case_id), "case.article_captured",
            f"{me.name} captured “{article['title']}” from the case",
            {"articleId": article["_id"], "title": article["title"], "relation": CAPTURED},
            visibility=Visibility.INTERNAL,
        )
        return current

    current = await ctx.events.write(write)
    return {"article": article, "case": current}
