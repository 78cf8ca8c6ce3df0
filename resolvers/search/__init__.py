"""Search over articles, cases, forum threads and ideas (see `docs/search.md`).

Contract for domains (call these inside your mutation's `ctx.events.write`):

    register_kind(kind, visible, public_fields, *, title_field="title", weights=None)
        once at import: `visible(ctx, ids) -> {id: doc}` returns the documents of `ids` the
        caller may read now (the final check of every hit); customers match and see snippets
        only from `public_fields`; `weights` are default field weights (title 3 > issue or
        subject 2 > body 1 is the convention).
    await index_document(ctx, kind, doc_id, fields={...}, weights=None,
                         audience={"public": bool, "users": [uid, ...]}, boost=1.0)
        upsert the document's entry (staff always find it; customers when `public`, or when
        listed in `users`); call it again whenever a field or the audience changes.
    await remove_document(ctx, kind, doc_id)
    await set_boost(ctx, kind, doc_id, boost)

Kinds: `ARTICLE CASE FORUM_THREAD IDEA`. Articles and cases are indexed by `sources` (an
activity hook: their modules need no search code); forums and ideas call the functions above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.errors import invalid
from resolvers.context import Context
from resolvers.search import text
from resolvers.search.index import (
    KINDS,
    REGISTRY,
    check_kinds,
    index_document,
    register_kind,
    remove_document,
    set_boost,
)
from resolvers.search.query import Scope, boosted, rank, readable

__all__ = [
    "KINDS", "Result", "check_first", "index_document", "query_terms", "register_kind", "remove_document", "search",
    "set_boost",
]

MAX_QUERY = 500
MAX_QUERY_TERMS = 32
DEFAULT_FIRST, MAX_FIRST = 10, 50


@dataclass
class Result:
    kind: str
    id: str
    title: str
    snippet: str
    score: float
    doc: dict[str, Any]


def query_terms(value: str, limit: int = MAX_QUERY_TERMS) -> dict[str, float]:
    """Stemmed query terms weighted by how often they occur (at most `limit` distinct ones)."""
    weights: dict[str, float] = {}
    for term in text.terms(value):
        if term in weights or len(weights) < limit:
            weights[term] = weights.get(term, 0.0) + 1.0
    return weights


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_FIRST
    if first < 1:
        raise invalid("first must be at least 1", "first")
    return min(first, MAX_FIRST)


async def search(ctx: Context, query: str, kinds: list[str] | None, first: int | None) -> list[Result]:
    """`search(query, kinds, first)`: the best hits the caller may read, with safe snippets.

    The query is plain text: it is only ever split into words, never passed to the store as an
    expression, so operators or regular expressions in it are just characters.
    """
    value = (query or "").strip()
    if not value:
        raise invalid("query must not be empty", "query")
    if len(value) > MAX_QUERY:
        raise invalid(f"query is longer than {MAX_QUERY} characters", "query")
    limit = check_first(first)
    chosen = check_kinds(kinds)
    terms = query_terms(value)
    if not terms:
        raise invalid("query has no searchable words (only punctuation or very common words)", "query")
    scope = Scope.of(ctx)
    hits = await rank(ctx, scope, terms, chosen, max(limit * 3, 30), text.surface_forms(value))
    found = await readable(ctx, await boosted(ctx, hits), limit)
    texts = {d["key"]: d.get("fields") or {} for d in await ctx.db["search_texts"].find(
        {"key": {"$in": [hit.key for hit, _, _ in found]}}, projection={"key": 1, "fields": 1})} if found else {}
    results = []
    for hit, entry, doc in found:
        fields = texts.get(hit.key, {})
        spec = REGISTRY[hit.kind]
        allowed = [v for n, v in fields.items() if n != spec.title_field and (scope.staff or n in spec.public_fields)]
        wanted = set(hit.matched.values())
        results.append(Result(hit.kind, hit.doc_id, entry.get("title") or "", text.snippet(allowed, wanted),
                              round(hit.score, 4), doc))
    return results
