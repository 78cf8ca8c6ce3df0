"""Ranking: BM25 over field-weighted term frequencies, typo expansion, boosts, access checks.

score(doc) = boost(doc) * sqrt(c) * sum over query terms q of
    w_q * max over t in {q} + typos(q) of f_t * idf(t) * tf*(k1+1) / (tf + k1*(1 - b + b*dl/avgdl))

- `tf` is the field-weighted term frequency of the caller's scope, `dl` its weighted length,
  `avgdl` the kind's average (documents of other kinds are not longer or shorter "on average").
- `idf(t) = ln(1 + (N - df + 0.5)/(df + 0.5))` with `df` counted among the documents the caller
  may match (so scores never reveal how many hidden documents contain a word) and `N` the
  number of documents of the chosen kinds in the caller's audience (staff: all, customers:
  public ones), cached per process for a few seconds.
- Typos: a query term with no match takes the vocabulary's terms one edit away at `f = 0.8`;
  a term that matches only rarely also takes neighbours three times as frequent at `f = 0.4`
  (a misspelling that happens to be in some document must not hide the real word).
- `w_q` is the query-term weight (repeats in the query, or the case field a suggestion term
  came from). A document matching a share `c` of the query weight is multiplied by `√c`, so
  matching more of what was asked beats matching one word many times.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from hub.store import Doc
from resolvers.context import Context
from resolvers.search import index

K1, B = 1.2, 0.75
TYPO_MISSING, TYPO_RARE, RARE_RATIO = 0.8, 0.4, 3


@dataclass(frozen=True)
class Scope:
    """Whose view of the index a ranking uses: staff see every field of every document."""

    staff: bool
    uid: str

    @property
    def keys(self) -> list[str]:
        return ["s"] if self.staff else ["p", f"u:{self.uid}"]

    @classmethod
    def of(cls, ctx: Context) -> Scope:
        return cls(staff=ctx.me.is_staff, uid=ctx.me.sub)


@dataclass
class Hit:
    kind: str
    doc_id: str
    key: str
    score: float
    matched: dict[str, str] = field(default_factory=dict)
    """Query term → the indexed term that matched it (itself, or a typo neighbour)."""


async def rank(
    ctx: Context, scope: Scope, query: dict[str, float], kinds: list[str], limit: int,
    typed: dict[str, str] | None = None,
) -> list[Hit]:
    """The best `limit` documents of `kinds` for the weighted query terms (stems), by BM25 (no
    boost); `typed` maps each stem to the word the user typed (for typo matching)."""
    if not query or not kinds:
        return []
    near = await index.similar(ctx, {t: (typed or {}).get(t, t) for t in query})
    wanted = set(query) | {t for ts in near.values() for t, _ in ts}
    keys = [f"{s}|{k}|{t}" for s in scope.keys for k in kinds for t in sorted(wanted)]
    tf_key, dl_key = ("tf", "dl") if scope.staff else ("ptf", "pdl")
    rows = await ctx.db["search_postings"].find(
        {"k": {"$in": keys}}, projection={"_id": 0, "t": 1, "doc": 1, tf_key: 1, dl_key: 1}
    )
    postings: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for row in rows:
        postings[row["t"]][row["doc"]] = (float(row[tf_key]), float(row[dl_key]))
    stats = await index.stats(ctx, "s" if scope.staff else "p")
    docs = {d for p in postings.values() for d in p}
    n = max(sum(stats.n.get(k, 0) for k in kinds), len(docs), 1)

    def idf(term: str) -> float:
        df = len(postings.get(term, {}))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    scores: dict[str, float] = defaultdict(float)
    covered: dict[str, float] = defaultdict(float)
    matched: dict[str, dict[str, str]] = defaultdict(dict)
    total = sum(query.values())
    for q, weight in query.items():
        df = len(postings.get(q, {}))
        options = [(q, 1.0)]
        for t, _ in near.get(q, []):
            if t in query:
                continue
            other = len(postings.get(t, {}))
            if df == 0 and other:
                options.append((t, TYPO_MISSING))
            elif other >= RARE_RATIO * max(df, 1) and df < 3:
                options.append((t, TYPO_RARE))
        best: dict[str, tuple[float, str]] = {}
        for term, factor in options:
            term_idf = idf(term)
            for doc, (tf, dl) in postings.get(term, {}).items():
                kind = doc.split("|", 1)[0]
                avgdl = stats.avgdl.get(kind) or dl or 1.0
                part = factor * term_idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))
                if part > best.get(doc, (0.0, ""))[0]:
                    best[doc] = (part, term)
        for doc, (part, term) in best.items():
            scores[doc] += weight * part
            covered[doc] += weight
            matched[doc][q] = term
    hits = []
    for doc, score in scores.items():
        kind, _, doc_id = doc.partition("|")
        hits.append(Hit(kind, doc_id, doc, score * math.sqrt(covered[doc] / total), matched[doc]))
    hits.sort(key=lambda h: (-h.score, h.key))
    return hits[:limit]


async def boosted(ctx: Context, hits: list[Hit]) -> list[tuple[Hit, Doc]]:
    """Apply each entry's boost and re-sort; pairs each hit with its `search_docs` entry."""
    if not hits:
        return []
    entries = {d["key"]: d for d in await ctx.db["search_docs"].find({"key": {"$in": [h.key for h in hits]}})}
    out = []
    for hit in hits:
        entry = entries.get(hit.key)
        if entry is None:
            continue
        hit.score *= float(entry.get("boost", 1.0))
        out.append((hit, entry))
    out.sort(key=lambda pair: (-pair[0].score, pair[0].key))
    return out


async def readable(ctx: Context, pairs: list[tuple[Hit, Doc]], first: int) -> list[tuple[Hit, Doc, Doc]]:
    """The first `first` hits the caller may read now, each with the live document."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for hit, _ in pairs:
        by_kind[hit.kind].append(hit.doc_id)
    live: dict[str, dict[str, Doc]] = {}
    for kind, ids in by_kind.items():
        spec = index.REGISTRY.get(kind)
        live[kind] = await spec.visible(ctx, ids) if spec else {}
    out = []
    for hit, entry in pairs:
        doc = live[hit.kind].get(hit.doc_id)
        if doc is not None:
            out.append((hit, entry, doc))
        if len(out) >= first:
            break
    return out
