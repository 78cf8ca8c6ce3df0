"""The search index: postings per audience scope, one entry per document, a typo vocabulary.

Collections (all tenant-scoped, every read through an index starting with `tenant`):

- `search_postings` `{k, t, doc, tf, dl, ptf, pdl}`: one per term `t` of a document, where
  `k` lists `"<scope>|<KIND>|<term>"` for every scope that may match the term (multikey index
  `tenant, k`) and `doc = "<KIND>|<id>"` (index `tenant, doc`). Scopes: `s` staff (every field),
  `p` every customer of the tenant (public fields of a public document), `u:<uid>` one customer
  (public fields of a document only some customers read); a term found only in internal fields
  carries only its `s` key. `tf`/`dl` are the field-weighted term frequency and length over every
  field (staff), `ptf`/`pdl` over the public fields (customers). A query names exactly the keys
  its caller may match, so matching never touches text the caller cannot read, and the store's
  filter is a plain `$in` on one indexed field.
- `search_docs` `{key, kind, docId, title, boost, public, scopes, dl, pdl}`: the entry (index
  `tenant, key`, unique): the ranking boost and lengths, small so that corpus statistics
  (documents and average length per kind) aggregate quickly.
- `search_texts` `{key, fields}`: the field texts snippets are cut from (read for final hits only).
- `search_vocab` `{term, stem, keys}`: every word (4+ letters) ever indexed, its stem and its typo
  keys (index `tenant, keys`), written outside the transaction (an accelerator: an extra word is
  harmless, it only ever expands to postings the caller may match).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hub.errors import invalid
from hub.store import Doc, register_indexes
from resolvers.context import Context
from resolvers.search import text

register_indexes("search_postings", IndexModel([("tenant", ASCENDING), ("k", ASCENDING)]),
                 IndexModel([("tenant", ASCENDING), ("doc", ASCENDING)]))
register_indexes("search_docs", IndexModel([("tenant", ASCENDING), ("key", ASCENDING)], unique=True))
register_indexes("search_texts", IndexModel([("tenant", ASCENDING), ("key", ASCENDING)], unique=True))
register_indexes("search_vocab", IndexModel([("tenant", ASCENDING), ("term", ASCENDING)], unique=True),
                 IndexModel([("tenant", ASCENDING), ("keys", ASCENDING)]))

KINDS = ("ARTICLE", "CASE", "FORUM_THREAD", "IDEA")
MAX_FIELD_TEXT = 4000
"""Characters of each field kept for snippets (terms come from the whole text)."""
MAX_TERMS = 20_000
"""Tokens indexed per document at most."""
STATS_TTL = 30.0

Visible = Callable[[Context, list[str]], Awaitable[dict[str, Doc]]]


@dataclass(frozen=True)
class Kind:
    """How hits of one kind are checked and shown (see :func:`register_kind`)."""

    name: str
    visible: Visible
    public_fields: frozenset[str]
    title_field: str = "title"
    default_weights: Mapping[str, float] = field(default_factory=dict)


REGISTRY: dict[str, Kind] = {}


def register_kind(
    kind: str, visible: Visible, public_fields: tuple[str, ...] | list[str], *, title_field: str = "title",
    weights: Mapping[str, float] | None = None,
) -> None:
    """Declare a searchable kind.

    `visible(ctx, ids)` returns `{id: doc}` for the ids the caller may read now (the final
    access check of every hit); `public_fields` are the fields customers may match and see in
    snippets; `title_field` names the hit's title; `weights` are the default field weights.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown search kind {kind}")
    REGISTRY[kind] = Kind(kind, visible, frozenset(public_fields), title_field, dict(weights or {}))


def doc_key(kind: str, doc_id: str) -> str:
    return f"{kind}|{doc_id}"


def scopes_of(audience: Mapping[str, Any]) -> list[str]:
    """The customer scopes of a document: `p` when public, else `u:<uid>` per reader."""
    if audience.get("public"):
        return ["p"]
    return [f"u:{uid}" for uid in sorted(set(audience.get("users") or []))]


def _weighted(fields: Mapping[str, str], weights: Mapping[str, float]) -> tuple[dict[str, float], float]:
    tf: dict[str, float] = defaultdict(float)
    length = 0.0
    budget = MAX_TERMS
    for name, value in fields.items():
        w = float(weights.get(name, 1.0))
        found = text.terms(value or "")[:budget]
        budget -= len(found)
        for term in found:
            tf[term] += w
        length += w * len(found)
    return tf, length


async def index_document(
    ctx: Context, kind: str, doc_id: str, *, fields: dict[str, str], weights: dict[str, float] | None = None,
    audience: dict[str, Any], boost: float = 1.0,
) -> None:
    """Upsert the search entry of one document (call inside the domain's `ctx.events.write`).

    `fields` maps field names to text; `weights` field weights (default: the kind's, else 1);
    `audience` `{"public": bool, "users": [uid, ...]}` says which customers may find it (staff
    always may); `boost` multiplies its score (e.g. well-rated articles).
    """
    if kind not in REGISTRY:
        raise ValueError(f"search kind {kind} is not registered")
    spec = REGISTRY[kind]
    weights = {**spec.default_weights, **(weights or {})}
    key = doc_key(kind, doc_id)
    public = {n: v for n, v in fields.items() if n in spec.public_fields}
    tf, dl = _weighted(fields, weights)
    ptf, pdl = _weighted(public, weights)
    scopes = scopes_of(audience)
    postings = [
        {"k": [f"s|{kind}|{t}", *(f"{s}|{kind}|{t}" for s in scopes if t in ptf)], "t": t, "doc": key,
         "tf": round(n, 3), "dl": dl, "ptf": round(ptf.get(t, 0.0), 3), "pdl": pdl}
        for t, n in tf.items()
    ]
    db = ctx.db
    await db["search_postings"].delete_many({"doc": key})
    await db["search_postings"].insert_many(postings)
    await db["search_docs"].update_one({"key": key}, {"$set": {
        "kind": kind, "docId": doc_id, "title": fields.get(spec.title_field, ""),
        "boost": float(boost), "public": bool(audience.get("public")), "scopes": scopes, "dl": dl, "pdl": pdl,
    }}, upsert=True)
    await db["search_texts"].update_one(
        {"key": key}, {"$set": {"fields": {n: (v or "")[:MAX_FIELD_TEXT] for n, v in fields.items()}}}, upsert=True
    )
    await _learn(ctx, fields)


async def set_boost(ctx: Context, kind: str, doc_id: str, boost: float) -> None:
    """Change only the ranking boost of an indexed document (e.g. after a rating)."""
    await ctx.db["search_docs"].update_one({"key": doc_key(kind, doc_id)}, {"$set": {"boost": float(boost)}})


async def remove_document(ctx: Context, kind: str, doc_id: str) -> None:
    """Drop a document from the index (inside the domain's write)."""
    key = doc_key(kind, doc_id)
    await ctx.db["search_postings"].delete_many({"doc": key})
    await ctx.db["search_docs"].delete_one({"key": key})
    await ctx.db["search_texts"].delete_one({"key": key})


async def _learn(ctx: Context, fields: Mapping[str, str]) -> None:
    """Add unseen words to the typo vocabulary, outside the transaction (idempotent upserts)."""
    seen = {w for value in fields.values() for w in text.words(value or "") if text.keep(w) and len(w) >= 4}
    if not seen:
        return
    vocab = ctx.db["search_vocab"]
    async with ctx.hub.store.no_transaction():
        known = {d["term"] for d in await vocab.find({"term": {"$in": sorted(seen)}}, projection={"term": 1})}
        for word in sorted(seen - known):
            try:
                await vocab.update_one(
                    {"term": word}, {"$setOnInsert": {"stem": text.stem(word), "keys": text.typo_keys(word)}},
                    upsert=True,
                )
            except DuplicateKeyError:  # a concurrent writer learnt it first
                pass


async def similar(ctx: Context, words: Mapping[str, str]) -> dict[str, list[tuple[str, int]]]:
    """For each query term (`stem -> word typed`) of 4+ letters: the stems of known words one edit
    away from the typed word (compared unstemmed: a misspelt word often stems differently)."""
    wanted = {stem: text.typo_keys(word) for stem, word in words.items() if len(word) >= 4}
    keys = sorted({k for ks in wanted.values() for k in ks})
    if not keys:
        return {}
    found = await ctx.db["search_vocab"].find({"keys": {"$in": keys}}, projection={"term": 1, "stem": 1, "_id": 0})
    out: dict[str, list[tuple[str, int]]] = {}
    for stem, word in words.items():
        if stem not in wanted:
            continue
        near = {d["stem"]: text.distance(word, d["term"], 1) for d in found if d["stem"] != stem}
        out[stem] = sorted((t, n) for t, n in near.items() if n <= 1)
    return out


@dataclass
class Stats:
    """Documents per kind and their average weighted length, per audience (`s` staff, `p` public)."""

    n: dict[str, int]
    avgdl: dict[str, float]


_STATS: dict[tuple[str, str], tuple[float, Stats]] = {}


async def stats(ctx: Context, audience: str) -> Stats:
    """Corpus statistics for BM25, cached per process for `STATS_TTL` seconds."""
    cache_key = (ctx.me.tenant, audience)
    hit = _STATS.get(cache_key)
    if hit and time.monotonic() - hit[0] < STATS_TTL:
        return hit[1]
    match: dict[str, Any] = {} if audience == "s" else {"public": True}
    length = "$dl" if audience == "s" else "$pdl"
    rows = await ctx.db["search_docs"].aggregate([
        {"$match": match}, {"$group": {"_id": "$kind", "n": {"$sum": 1}, "avgdl": {"$avg": length}}},
    ])
    result = Stats(n={r["_id"]: int(r["n"]) for r in rows},
                   avgdl={r["_id"]: float(r["avgdl"] or 0.0) for r in rows})
    if len(_STATS) > 10_000:  # many tenants: start over rather than grow without bound
        _STATS.clear()
    _STATS[cache_key] = (time.monotonic(), result)
    return result


def check_kinds(kinds: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(kinds)) if kinds else [k for k in KINDS if k in REGISTRY]
    for kind in chosen:
        if kind not in KINDS:
            raise invalid(f"kinds must be among {', '.join(KINDS)}", "kinds")
    return [k for k in chosen if k in REGISTRY]
