"""Knowledge and support metrics over a time window, computed by aggregation pipelines.

Definitions (also in `docs/metrics.md`); the window is `[from, to)`, default the 30 days up to now.
A case is *closed in the window* when its `solvedAt` (set when it became SOLVED, or CLOSED without
being solved first; cleared by a reopen) lies in the window — so it is SOLVED or CLOSED now.

Who: supervisors, editors and admins (team and content leads); others get `FORBIDDEN`.
Every pipeline runs on a tenant-scoped collection and starts with an indexed `$match`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel

from hub.errors import forbidden, invalid
from hub.store import Doc, register_indexes
from resolvers import cases, knowledge, users
from resolvers.articles import ratings
from resolvers.context import Context

register_indexes("cases", IndexModel([("tenant", ASCENDING), ("solvedAt", ASCENDING)]),
                 IndexModel([("tenant", ASCENDING), ("createdAt", ASCENDING)]))
register_indexes("articles", IndexModel([("tenant", ASCENDING), ("createdAt", ASCENDING)]))
register_indexes("article_revisions", IndexModel([("tenant", ASCENDING), ("createdAt", ASCENDING)]))
register_indexes("article_feedback", IndexModel([("tenant", ASCENDING), ("updatedAt", ASCENDING)]))

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=3 * 366)
STALE_AFTER = timedelta(days=180)
"""A VALIDATED article not updated for this long before the window's end is stale."""
SOLVING = (knowledge.CAPTURED, "SOLVED_BY")
"""Relations meaning "this article closed the case" (topArticles)."""
MAX_TOP = 50
__all__ = ["knowledge_metrics", "support_metrics", "window"]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """`[from, to)` with defaults; `INVALID` when reversed, empty or longer than three years."""
    end = _utc(end) if end else datetime.now(UTC)
    start = _utc(start) if start else end - DEFAULT_WINDOW
    if start >= end:
        raise invalid("from must be before to", "from")
    if end - start > MAX_WINDOW:
        raise invalid("The window is at most three years", "from")
    return start, end


def _authorise(ctx: Context) -> None:
    if not ctx.me.has("supervisor", "editor"):
        raise forbidden("Metrics are for supervisors, editors and admins")


def ratio(part: int, whole: int) -> float:
    """`part / whole` rounded to 4 places; 0 when there is nothing to measure."""
    return round(part / whole, 4) if whole else 0.0


def _in(start: datetime, end: datetime) -> dict[str, Any]:
    return {"$gte": start, "$lt": end}


async def closed_cases(ctx: Context, start: datetime, end: datetime) -> list[Doc]:
    """Cases closed in the window (id and assignee)."""
    return await ctx.db["cases"].aggregate([
        {"$match": {"solvedAt": _in(start, end)}},
        {"$project": {"assigneeId": 1}},
    ])


async def _count(ctx: Context, collection: str, match: dict[str, Any]) -> int:
    rows = await ctx.db[collection].aggregate([{"$match": match}, {"$count": "n"}])
    return int(rows[0]["n"]) if rows else 0


async def knowledge_metrics(ctx: Context, start: datetime | None, end: datetime | None, top: int = 10) -> Doc:
    """Link rate, reuse, top articles, new vs known issues, content health and contributions."""
    _authorise(ctx)
    start, end = window(start, end)
    top = max(1, min(top, MAX_TOP))
    closed = await closed_cases(ctx, start, end)
    ids = [c["_id"] for c in closed]
    links = ctx.db["case_article_links"]
    per_case = await links.aggregate([
        {"$match": {"caseId": {"$in": ids}}},
        {"$group": {"_id": "$caseId", "known": {"$max": "$reuse"}}},
    ]) if ids else []
    known = sum(1 for row in per_case if row["known"])
    top_rows = await links.aggregate([
        {"$match": {"caseId": {"$in": ids}, "relation": {"$in": list(SOLVING)}}},
        {"$group": {"_id": {"a": "$articleId", "c": "$caseId"}}},
        {"$group": {"_id": "$_id.a", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
        {"$limit": top},
    ]) if ids else []
    reused = await links.aggregate([
        {"$match": {"createdAt": _in(start, end), "reuse": True}},
        {"$group": {"_id": {"c": "$caseId", "a": "$articleId"}}},
        {"$count": "n"},
    ])
    created = await ctx.db["articles"].aggregate([
        {"$match": {"createdAt": _in(start, end)}},
        {"$group": {"_id": None, "n": {"$sum": 1},
                    "captured": {"$sum": {"$cond": [{"$ifNull": ["$capturedFromCaseId", False]}, 1, 0]}}}},
    ])
    return {
        "from": start, "to": end, "casesClosed": len(ids), "casesWithLinks": len(per_case),
        "linkRate": ratio(len(per_case), len(ids)),
        "reuseCount": int(reused[0]["n"]) if reused else 0,
        "knownIssues": known, "newIssues": len(per_case) - known,
        "topArticles": [{"articleId": r["_id"], "casesClosed": int(r["n"])} for r in top_rows],
        "articlesCreated": int(created[0]["n"]) if created else 0,
        "articlesCapturedFromCases": int(created[0]["captured"]) if created else 0,
        **await content_health(ctx, end),
        "contributors": await contributions(ctx, start, end, closed),
    }


async def content_health(ctx: Context, end: datetime) -> Doc:
    """Current health of the tenant's non-archived articles (flagged, low-rated, stale, average score)."""
    rows = await ctx.db["articles"].aggregate([
        {"$match": {"state": {"$in": ["WORK_IN_PROGRESS", "NOT_VALIDATED", "VALIDATED"]}}},
        {"$project": {
            "flagged": {"$cond": ["$flagged", 1, 0]},
            "rated": {"$cond": [{"$gt": [{"$add": ["$helpfulCount", "$notHelpfulCount"]}, 0]}, 1, 0]},
            "score": 1, "state": 1, "updatedAt": 1,
        }},
        {"$group": {
            "_id": None, "flagged": {"$sum": "$flagged"}, "rated": {"$sum": "$rated"},
            "scoreSum": {"$sum": {"$cond": [{"$eq": ["$rated", 1]}, "$score", 0]}},
            "lowRated": {"$sum": {"$cond": [{"$and": [{"$eq": ["$rated", 1]},
                                                       {"$lt": ["$score", ratings.FLAG_BELOW]}]}, 1, 0]}},
            "stale": {"$sum": {"$cond": [{"$and": [{"$eq": ["$state", "VALIDATED"]},
                                                    {"$lt": ["$updatedAt", end - STALE_AFTER]}]}, 1, 0]}},
        }},
    ])
    row = rows[0] if rows else {"flagged": 0, "rated": 0, "scoreSum": 0, "lowRated": 0, "stale": 0}
    return {"flaggedCount": int(row["flagged"]), "lowRatedCount": int(row["lowRated"]),
            "staleCount": int(row["stale"]), "ratedCount": int(row["rated"]),
            "averageScore": round(row["scoreSum"] / row["rated"], 4) if row["rated"] else 0.0}


async def contributions(ctx: Context, start: datetime, end: datetime, closed: list[Doc]) -> list[Doc]:
    """Per staff member: cases solved (assignee), articles created, improved, feedback handled."""
    table: dict[str, Doc] = {}

    def add(uid: Any, key: str, n: int) -> None:
        if uid:
            row = table.setdefault(uid, {"userId": uid, "casesSolved": 0, "articlesCreated": 0,
                                         "articlesImproved": 0, "feedbackHandled": 0})
            row[key] += n

    for case in closed:
        add(case.get("assigneeId"), "casesSolved", 1)
    for row in await ctx.db["articles"].aggregate([
        {"$match": {"createdAt": _in(start, end)}}, {"$group": {"_id": "$createdBy", "n": {"$sum": 1}}},
    ]):
        add(row["_id"], "articlesCreated", int(row["n"]))
    for row in await ctx.db["article_revisions"].aggregate([
        {"$match": {"createdAt": _in(start, end), "kind": {"$ne": "CREATED"}}},
        {"$group": {"_id": "$authorId", "n": {"$sum": 1}}},
    ]):
        add(row["_id"], "articlesImproved", int(row["n"]))
    for row in await ctx.db["article_feedback"].aggregate([
        {"$match": {"updatedAt": {"$gte": start}}},
        {"$unwind": "$history"},
        {"$match": {"history.status": {"$ne": "OPEN"}, "history.at": _in(start, end)}},
        {"$group": {"_id": "$history.by", "n": {"$sum": 1}}},
    ]):
        add(row["_id"], "feedbackHandled", int(row["n"]))
    return sorted(table.values(), key=lambda r: (-r["casesSolved"], -r["articlesCreated"], r["userId"]))


async def support_metrics(ctx: Context, start: datetime | None, end: datetime | None) -> Doc:
    """Cases opened/closed, first-contact resolution and self-service deflection."""
    _authorise(ctx)
    start, end = window(start, end)
    closed = await closed_cases(ctx, start, end)
    first_contact, reopened = await _first_contact(ctx, closed)
    sessions = await ctx.db["selfservice_sessions"].aggregate([
        {"$match": {"createdAt": _in(start, end)}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}},
    ])
    by_status = {row["_id"]: int(row["n"]) for row in sessions}
    total, escalated = sum(by_status.values()), by_status.get("ESCALATED", 0)
    return {
        "from": start, "to": end, "casesOpened": await _count(ctx, "cases", {"createdAt": _in(start, end)}),
        "casesClosed": len(closed), "firstContactResolved": first_contact, "casesReopened": reopened,
        "firstContactResolution": ratio(first_contact, len(closed)),
        "selfServiceSessions": total, "selfServiceEscalated": escalated,
        "selfServiceResolved": by_status.get("RESOLVED", 0),
        "selfServiceDeflection": ratio(total - escalated, total),
    }


async def _first_contact(ctx: Context, closed: list[Doc]) -> tuple[int, int]:
    """(closed cases resolved on first contact, closed cases that were ever reopened).

    First contact: never reopened (no SOLVED/CLOSED → OPEN), never reassigned (at most one
    `case.assigned` to someone), and at most one PUBLIC comment by staff.
    """
    if not closed:
        return 0, 0
    streams = [cases.stream(c["_id"]) for c in closed]
    rows = await ctx.db["events"].aggregate([
        {"$match": {"stream": {"$in": streams},
                    "kind": {"$in": ["case.status_changed", "case.assigned", "comment.added"]}}},
        {"$project": {"stream": 1, "kind": 1, "actor": "$actor.id", "visibility": 1,
                      "from": "$data.from", "to": "$data.to"}},
    ])
    authors = {r["actor"] for r in rows if r["kind"] == "comment.added" and r["visibility"] == "PUBLIC"}
    staff = {uid for uid, doc in (await users.find_many(ctx, list(authors))).items() if cases.is_staff_user(doc)}
    reopens: dict[str, int] = {}
    assigns: dict[str, int] = {}
    replies: dict[str, int] = {}
    for r in rows:
        s = r["stream"]
        if r["kind"] == "case.status_changed" and r.get("from") in ("SOLVED", "CLOSED") and r.get("to") == "OPEN":
            reopens[s] = reopens.get(s, 0) + 1
        elif r["kind"] == "case.assigned" and r.get("to"):
            assigns[s] = assigns.get(s, 0) + 1
        elif r["kind"] == "comment.added" and r["visibility"] == "PUBLIC" and r["actor"] in staff:
            replies[s] = replies.get(s, 0) + 1
    first = sum(1 for s in streams if not reopens.get(s) and assigns.get(s, 0) <= 1 and replies.get(s, 0) <= 1)
    return first, sum(1 for s in streams if reopens.get(s))

