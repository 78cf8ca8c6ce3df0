"""Search quality on the labelled set: top-1 / top-3 hit rate and MRR@10 of `search` and `suggestedArticles`.

The set (this folder): `articles.json`, a product knowledge base; `queries.json`, queries as
customers type them (misspellings, plurals, chatty phrasing) with the article that answers each;
`cases.json`, cases (subject, description, maybe a later customer comment) with the article that
solves each. Everything goes through the public GraphQL operations: an editor publishes the
articles, a customer searches and opens the cases, an agent asks for suggestions.

`evaluate(call)` is transport-neutral (`call(who, query, variables) -> data`, who is `editor`,
`customer` or `agent`): the test suite runs it over HTTP against the shared hub, and
`python -m tests.search_quality.bench` (or `scripts/bench_search`) in-process against an
embedded store, writing `bench-results/search.json`. `--ablate stemming|typos|weights` (repeatable)
switches a part of the ranking off in-process, to see what each part is worth.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
Call = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
PEOPLE = {"editor": (["editor", "agent"], "publisher"), "customer": (["customer"], None), "agent": (["agent"], None)}

CREATE = """mutation($input: ArticleCreateInput!) { articleCreate(input: $input) {
  errors { message } article { id } } }"""
VALIDATE = """mutation($id: ID!) { articleSetState(input: {articleId: $id, state: VALIDATED}) {
  errors { message } } }"""
CASE = """mutation($s: String!, $d: String!) { caseCreate(input: {subject: $s, description: $d}) {
  errors { message } case { id } } }"""
COMMENT = """mutation($id: ID!, $b: String!) { commentAdd(input: {subjectId: $id, body: $b}) { errors { message } } }"""
SEARCH = """query($q: String!) { search(query: $q, kinds: [ARTICLE], first: 10) { id title score } }"""
SUGGEST = """query($id: ID!) { suggestedArticles(caseId: $id, first: 10) { article { id } score reason } }"""


def load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((HERE / name).read_text())
    return data


def _summary(ranks: list[int | None], seconds: float) -> dict[str, Any]:
    n = len(ranks)
    return {
        "n": n,
        "top1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "top3": round(sum(1 for r in ranks if r is not None and r <= 3) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 4),
        "meanMs": round(1000 * seconds / n, 1),
    }


async def evaluate(call: Call) -> dict[str, Any]:
    """Load the set through `call`, run every query and case; the metrics and the misses."""
    ids: dict[str, str] = {}
    for art in load("articles.json"):
        fields = {k: art[k] for k in ("title", "issue", "environment", "cause", "resolution", "tags", "product")}
        data = await call("editor", CREATE, {"input": {**fields, "audience": "EXTERNAL"}})
        article_id = data["articleCreate"]["article"]["id"]
        await call("editor", VALIDATE, {"id": article_id})
        ids[art["key"]] = article_id
    keys = {v: k for k, v in ids.items()}

    def rank_of(found: list[str], expect: str) -> int | None:
        return found.index(ids[expect]) + 1 if ids[expect] in found else None

    search_ranks: list[int | None] = []
    misses: list[dict[str, Any]] = []
    started = time.perf_counter()
    for item in load("queries.json"):
        hits = (await call("customer", SEARCH, {"q": item["q"]}))["search"]
        rank = rank_of([h["id"] for h in hits], item["expect"])
        search_ranks.append(rank)
        if rank != 1:
            misses.append({"query": item["q"], "expect": item["expect"], "rank": rank,
                           "got": [keys.get(h["id"]) for h in hits[:3]]})
    search_s = time.perf_counter() - started

    suggest_ranks: list[int | None] = []
    suggest_s = 0.0
    for item in load("cases.json"):
        case_id = (await call("customer", CASE, {"s": item["subject"], "d": item["description"]}))[
            "caseCreate"]["case"]["id"]
        if item.get("comment"):
            await call("customer", COMMENT, {"id": case_id, "b": item["comment"]})
        started = time.perf_counter()
        found = (await call("agent", SUGGEST, {"id": case_id}))["suggestedArticles"]
        suggest_s += time.perf_counter() - started
        rank = rank_of([s["article"]["id"] for s in found], item["expect"])
        suggest_ranks.append(rank)
        if rank != 1:
            misses.append({"case": item["subject"], "expect": item["expect"], "rank": rank,
                           "got": [keys.get(s["article"]["id"]) for s in found[:3]]})
    return {"articles": len(ids), "search": _summary(search_ranks, search_s),
            "suggestions": _summary(suggest_ranks, suggest_s), "misses": misses}


def ablate(parts: list[str]) -> None:
    """Switch parts of the ranking off in this process (for comparison runs only)."""
    import dataclasses

    from resolvers.search import index, text

    if "stemming" in parts:
        text.stem = lambda word: word  # type: ignore[assignment]
    if "typos" in parts:
        async def no_typos(ctx: Any, words: Any) -> dict[str, list[tuple[str, int]]]:
            return {}
        index.similar = no_typos  # type: ignore[assignment]
    if "weights" in parts:
        for kind, spec in list(index.REGISTRY.items()):
            index.REGISTRY[kind] = dataclasses.replace(spec, default_weights={})


async def in_process(ablated: list[str] | None = None) -> dict[str, Any]:
    """Run `evaluate` against a fresh embedded store with the hub's resolvers in this process."""
    from hub.auth import Identity
    from hub.embedded import EmbeddedStore
    from hub.runtime import Hub
    from hub.settings import Settings
    from resolvers.context import Context
    from schema import build

    store = EmbeddedStore(":memory:").start()
    hub = await Hub.start(Settings(mongodb_url=store.url, mongodb_db=f"bench_{uuid.uuid4().hex[:8]}"))
    schema = build(hub.settings)
    ablate(ablated or [])
    tenant = f"bench{uuid.uuid4().hex[:6]}"

    async def call(who: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        roles, kcs = PEOPLE[who]
        identity = Identity(sub=who, tenant=tenant, roles=frozenset(roles), name=who.title(), kcs=kcs)
        result = await schema.execute(query, variable_values=variables,
                                      context_value=Context(hub=hub, identity=identity))
        if result.errors:
            raise RuntimeError(f"{who}: {result.errors}")
        data: dict[str, Any] = result.data or {}
        return data

    try:
        return await evaluate(call)
    finally:
        await hub.stop()
        store.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ablate", action="append", choices=["stemming", "typos", "weights"], default=[])
    args = parser.parse_args()
    results = asyncio.run(in_process(args.ablate))
    results["ablated"] = args.ablate
    name = "search" + "".join(f"-no-{part}" for part in args.ablate)
    out = ROOT / "bench-results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("search", "suggestions"):
        r = results[name]
        print(f"{name:<12} n={r['n']:<3} top1={r['top1']:.3f} top3={r['top3']:.3f} mrr={r['mrr']:.3f} "
              f"mean={r['meanMs']} ms")
    for miss in results["misses"]:
        print("  miss:", json.dumps(miss), file=sys.stderr)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
