"""Edit proposals: how staff not licensed to edit an article suggest a change for review.

Any staff member may propose changes to an article they can read. Someone licensed to make
those changes (see `core.check_edit`; the editor role sees the whole review queue) accepts —
the changes become a revision authored by the proposer and approved by the decider — or
rejects; the proposer may also withdraw (reject) their own. Accepting answers CONFLICT when a
proposed field was changed by someone else since the proposal was made.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, users
from resolvers.articles import core, revisions
from resolvers.context import Context
from resolvers.pagination import Page, paginate

_ORDER = [("createdAt", DESCENDING), ("_id", DESCENDING)]
register_indexes(
    "article_proposals",
    *(IndexModel([("tenant", ASCENDING), *prefix, *_ORDER]) for prefix in (
        [], [("status", ASCENDING)], [("articleId", ASCENDING)], [("articleId", ASCENDING), ("status", ASCENDING)],
        [("proposerId", ASCENDING)], [("proposerId", ASCENDING), ("status", ASCENDING)],
        [("proposerId", ASCENDING), ("articleId", ASCENDING), ("status", ASCENDING)],
    )),
)

MAX_NOTE = 2000


def _note(value: str | None, field: str = "note") -> str:
    note = (value or "").strip()
    if len(note) > MAX_NOTE:
        raise invalid(f"{field} is longer than {MAX_NOTE} characters", field)
    return note


async def propose(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Record proposed changes (`article.edit_proposed`); nothing changes in the article yet."""
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Customers cannot propose edits; leave feedback instead")
    content = core.clean_content(data, partial=True)
    note = _note(data.get("note"))
    await users.remember(ctx)

    async def write() -> tuple[Doc, Doc]:
        article = await core.load_for_write(ctx, data["article_id"])
        changes = revisions.changed(article, content)
        if not changes:
            raise invalid("Nothing to propose: every given field already has that value", "articleId")
        proposal: Doc = {
            "_id": new_id("aprop"), "articleId": article["_id"], "proposerId": me.sub, "changes": changes,
            "base": {f: article.get(f) for f in changes}, "baseRevision": article["revision"], "note": note,
            "status": "OPEN", "createdAt": core.now(), "decidedBy": None, "decidedAt": None,
            "decisionNote": None, "appliedRevision": None,
        }
        await ctx.db["article_proposals"].insert(proposal)
        await activity.emit(
            ctx, core.stream(article["_id"]), "article.edit_proposed",
            f"{me.name} proposed an edit of “{article['title']}”",
            {"proposalId": proposal["_id"], "fields": sorted(changes), "proposerId": me.sub,
             "ownerId": article["ownerId"]},
            visibility=Visibility.INTERNAL,
        )
        return proposal, article

    proposal, article = await ctx.events.write(write)
    return {"proposal": proposal, "article": article}


def _check_base(article: Doc, proposal: Doc) -> None:
    for field, value in proposal["changes"].items():
        current = article.get(field)
        if current != proposal["base"].get(field) and current != value:
            raise conflict(f"{field} changed since this edit was proposed; reject it or ask for a new one", "id")


async def decide(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Accept (apply as a revision by the proposer) or reject an open proposal."""
    me = ctx.me
    accept = bool(data["accept"])
    note = _note(data.get("note"))

    async def write() -> tuple[Doc, Doc]:
        proposal = await ctx.db["article_proposals"].find_one({"_id": data["id"]}) if me.is_staff else None
        if proposal is None:
            raise not_found("Proposal", "id")
        article = await core.load_for_write(ctx, proposal["articleId"])
        if proposal["status"] != "OPEN":
            raise invalid(f"This proposal was already {proposal['status'].lower()}", "id")
        stream = core.stream(article["_id"])
        decided = {"decidedBy": me.sub, "decidedAt": core.now(), "decisionNote": note}
        if accept:
            if proposal["proposerId"] == me.sub:
                raise forbidden("A proposal needs another reviewer; edit directly if you are licensed", "id")
            core.check_edit(me, article, proposal["changes"])
            _check_base(article, proposal)
            changes = revisions.changed(article, proposal["changes"])
            if not changes:
                raise invalid("The article already contains these changes; reject the proposal", "id")
            article, revision, unflagged = await revisions.apply(
                ctx, article, changes, kind="PROPOSAL", author_id=proposal["proposerId"], licensee=me,
                proposalId=proposal["_id"], approvedBy=me.sub,
            )
            decided |= {"status": "ACCEPTED", "appliedRevision": article["revision"]}
            fields = [c["field"] for c in revision["changes"]]
            await activity.emit(
                ctx, stream, "article.revised",
                f"{me.name} applied an edit of “{article['title']}” (revision {article['revision']})",
                {"revision": article["revision"], "fields": fields, "proposalId": proposal["_id"]},
                visibility=core.event_visibility(article),
            )
            if unflagged:
                await revisions.emit_unflagged(ctx, article, "revised")
        else:
            if proposal["proposerId"] != me.sub:
                core.check_edit(me, article, proposal["changes"])
            decided["status"] = "REJECTED"
        updated = await ctx.db["article_proposals"].find_one_and_update(
            {"_id": proposal["_id"], "status": "OPEN"}, {"$set": decided}
        )
        if updated is None:
            raise conflict("The proposal was decided meanwhile", "id")
        verb = "accepted" if accept else "rejected"
        await activity.emit(
            ctx, stream, "article.edit_decided", f"{me.name} {verb} an edit of “{article['title']}”",
            {"proposalId": proposal["_id"], "accepted": accept, "proposerId": proposal["proposerId"],
             "revision": updated["appliedRevision"], "note": note},
            visibility=Visibility.INTERNAL,
        )
        return updated, article

    proposal, article = await ctx.events.write(write)
    ctx.loader("articles").clear(article["_id"])
    return {"proposal": proposal, "article": article}


async def list_proposals(
    ctx: Context, filter: dict[str, Any], first: int | None, after: str | None
) -> Page:
    """The review queue: editors see every proposal, others the ones they could decide or made."""
    me = ctx.me
    if not me.is_staff:
        return Page(items=[], cursors=[], has_next=False)
    query: dict[str, Any] = {}
    if filter.get("article_id"):
        query["articleId"] = filter["article_id"]
    if filter.get("status"):
        query["status"] = {"$in": list(filter["status"])}
    if core.level(me) < core.EDITOR:
        article = await core.get(ctx, query["articleId"]) if "articleId" in query else None
        if article is None or not core.may_edit(me, article):
            query["proposerId"] = me.sub
    return await paginate(ctx.db["article_proposals"], query, sort_key="createdAt", first=first, after=after)
