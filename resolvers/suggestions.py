"""Proactive article suggestions for a case, kept current as the case changes.

`suggestedArticles(caseId, first)` ranks articles (the search index, BM25 + rating boost) for a
query built from the case: subject (weight 2), description (1) and the latest public comments
of its customers (1.5 — fresh words of the customer often name the actual symptom). Terms
found in several places add up. Only articles the caller may read are suggested (customers:
published ones); `reason` names the case words that matched and where (`matches 'vpn',
'disconnect' in subject; 'timeout' in latest comment`).

Change tracking: when a case's subject or description changes, or a customer adds a public
comment, the top `TRACKED` suggestions as staff see them are recomputed in the same
transaction; if the list differs from the stored one (`case_suggestions`, whose baseline is
stored silently when the case is created), the case stream gets `case.suggestions_changed`
(INTERNAL) with `articleIds`, `added` and `removed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel

from hub.errors import not_found
from hub.events import Event, Visibility
from hub.store import Doc, register_indexes
from resolvers import activity, cases, users
from resolvers.context import Context
from resolvers.search import check_first, text
from resolvers.search.query import Hit, Scope, boosted, rank, readable

register_indexes("case_suggestions", IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING)], unique=True))

SOURCES = (("subject", 2.0), ("description", 1.0), ("latest comment", 1.5))
MAX_TERMS = {"subject": 20, "description": 40, "latest comment": 30}
COMMENTS_READ, COMMENTS_USED = 20, 3
TRACKED = 5
DEFAULT_FIRST = 5


@dataclass
class Suggestion:
    article: Doc
    score: float
    reason: str


@dataclass
class CaseQuery:
    """The weighted terms of a case and, per term, where it occurs and as which word."""

    weights: dict[str, float]
    places: dict[str, list[str]]
    words: dict[str, str]


async def case_query(ctx: Context, case: Doc) -> CaseQuery:
    """Terms of the subject, description and latest public customer comments (weighted)."""
    texts = {"subject": case.get("subject") or "", "description": case.get("description") or "",
             "latest comment": "\n".join(await _customer_comments(ctx, case))}
    weights: dict[str, float] = {}
    places: dict[str, list[str]] = {}
    words: dict[str, str] = {}
    for place, weight in SOURCES:
        forms = text.surface_forms(texts[place])
        for term in list(forms)[: MAX_TERMS[place]]:
            weights[term] = weights.get(term, 0.0) + weight
            places.setdefault(term, []).append(place)
            words.setdefault(term, forms[term])
    return CaseQuery(weights, places, words)


async def _customer_comments(ctx: Context, case: Doc) -> list[str]:
    """Bodies of the latest public comments written by customers (newest last)."""
    recent = await ctx.db["comments"].find(
        {"subjectId": case["_id"], "visibility": Visibility.PUBLIC.value}, sort=[("_id", -1)], limit=COMMENTS_READ,
        projection={"body": 1, "authorId": 1, "deleted": 1},
    )
    authors = await users.find_many(ctx, sorted({c["authorId"] for c in recent}))
    mine = [c for c in recent if not c.get("deleted") and not _staff(authors.get(c["authorId"]))]
    return [c["body"] for c in reversed(mine[:COMMENTS_USED])]


def _staff(profile: Doc | None) -> bool:
    return profile is not None and cases.is_staff_user(profile)


def reason(query: CaseQuery, hit: Hit) -> str:
    """`matches 'vpn', 'disconnect' in subject; 'timeout' in latest comment` (typos noted)."""
    by_place: dict[str, list[str]] = {}
    for term in sorted(hit.matched, key=lambda t: -query.weights.get(t, 0.0)):
        word = query.words.get(term, term)
        found = hit.matched[term]
        label = f"'{word}'" if found == term else f"'{word}' (≈ {found})"
        by_place.setdefault(query.places.get(term, ["case"])[0], []).append(label)
    order = [p for p, _ in SOURCES if p in by_place]
    parts = [f"{', '.join(by_place[p][:4])} in {p}" for p in order]
    return "matches " + "; ".join(parts) if parts else "related to the case"


async def suggested(ctx: Context, case_id: str, first: int | None) -> list[Suggestion]:
    """`suggestedArticles`: NOT_FOUND unless the caller reads the case; articles they may read."""
    case = await cases.get(ctx, cases.case_id_of(case_id))
    if case is None:
        raise not_found("Case", "caseId")
    limit = check_first(DEFAULT_FIRST if first is None else first)
    query = await case_query(ctx, case)
    hits = await rank(ctx, Scope.of(ctx), query.weights, ["ARTICLE"], max(limit * 3, 15), query.words)
    found = await readable(ctx, await boosted(ctx, hits), limit)
    return [Suggestion(doc, round(hit.score, 4), reason(query, hit)) for hit, _, doc in found]


async def tracked(ctx: Context, case: Doc) -> list[str]:
    """The top suggestions as staff see them (from the index, inside the current transaction)."""
    query = await case_query(ctx, case)
    hits = await rank(ctx, Scope(staff=True, uid=""), query.weights, ["ARTICLE"], TRACKED * 3, query.words)
    return [hit.doc_id for hit, _ in (await boosted(ctx, hits))[:TRACKED]]


async def refresh(ctx: Context, case_id: str, *, created: bool = False) -> list[str] | None:
    """Recompute a case's tracked suggestions; emit `case.suggestions_changed` if they changed.

    For a new case (`created`) this only stores the baseline: the case's first timeline entries
    belong to whoever opened it (e.g. a self-service session's steps), and an agent opening the
    case reads `suggestedArticles` anyway.
    """
    case = await ctx.db["cases"].find_one({"_id": case_id})
    if case is None:
        return None
    ids = await tracked(ctx, case)
    store = ctx.db["case_suggestions"]
    before = await store.find_one({"caseId": case_id})
    previous: list[str] = list(before["articleIds"]) if before else []
    if ids == previous and before is not None:
        return None
    await store.update_one({"caseId": case_id}, {"$set": {"articleIds": ids, "updatedAt": datetime.now(UTC)}},
                           upsert=True)
    if before is None and created:  # the baseline of a new case: nothing has changed yet
        return None
    if ids == previous:
        return None
    added = [a for a in ids if a not in previous]
    removed = [a for a in previous if a not in ids]
    summary = f"Suggested articles changed ({len(added)} new)" if added else "Suggested articles changed"
    data: dict[str, Any] = {"articleIds": ids, "added": added, "removed": removed}
    await activity.emit(ctx, cases.stream(case_id), "case.suggestions_changed", summary, data,
                        visibility=Visibility.INTERNAL)
    return ids


def _relevant(ctx: Context, event: Event) -> bool:
    if event.kind == "case.created":
        return True
    if event.kind == "case.updated":
        return bool({"subject", "description"} & set(event.data.get("fields") or []))
    if event.kind == "comment.added":
        return event.visibility is Visibility.PUBLIC and not ctx.me.is_staff and not event.data.get("published")
    return False


async def _on_event(ctx: Context, event: Event) -> None:
    prefix, _, case_id = event.stream.partition(":")
    if prefix == "case" and _relevant(ctx, event):
        await refresh(ctx, case_id, created=event.kind == "case.created")


activity.on_emit(_on_event)
