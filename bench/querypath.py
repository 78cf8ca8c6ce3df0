"""Query-path workload: `case` with 20 comments and their authors, and `cases(first: 50)`, at
concurrency 1 and 32 on 2 hub processes (round-robin), against a bare Starlette endpoint doing
the same store reads and returning the same JSON (`bench.baselines bare`, the ceiling)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from bench.fanout import COMMENT, CREATE
from bench.servers import Baseline, Infra, cpu_seconds, pid_of, start_hubs
from tests.harness import token

CASE = """query($id: ID!) { case(id: $id) { id subject status priority
  comments(first: 20) { edges { node { id body visibility createdAt author { id name } } } } } }"""
CASES = """{ cases(first: 50) { edges { cursor node { id subject status priority } }
  pageInfo { hasNextPage endCursor } } }"""


async def seed(url: str, tenant: str) -> tuple[str, str]:
    """60 cases; one of them with 20 comments by 5 authors. Returns (agent token, that case's id)."""
    agent = token("qagent", "agent", tenant, name="Query Agent")
    authors = [token(f"author{i}", "agent", tenant, name=f"Author {i}") for i in range(5)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def post(tok: str, query: str, **variables: Any) -> dict[str, Any]:
            body: dict[str, Any] = (await http.post("/graphql", json={"query": query, "variables": variables},
                                                    headers={"Authorization": f"Bearer {tok}"})).json()
            return body

        ids = [(await post(agent, CREATE, s=f"Case {i}"))["data"]["caseCreate"]["case"]["id"] for i in range(60)]
        for i in range(20):
            await post(authors[i % 5], COMMENT, id=ids[0], b=f"Comment {i}: the printer is on fire again")
    return agent, ids[0]


def _worker(requests: list[dict[str, Any]], concurrency: int, duration: float, out: Any) -> None:
    """Closed loop: `concurrency` requesters cycling through `requests` for `duration` seconds."""
    async def main() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + duration
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency * 2)) as http:
            async def loop(k: int) -> None:
                nonlocal errors
                i = k
                while time.perf_counter() < deadline:
                    request = requests[i % len(requests)]
                    i += 1
                    began = time.perf_counter()
                    response = await http.request(**request)
                    if response.status_code != 200 or b'"errors"' in response.content:
                        errors += 1
                    latencies.append(time.perf_counter() - began)

            await asyncio.gather(*(loop(k) for k in range(concurrency)))
        return latencies, errors

    out.put(asyncio.run(main()))


def measure(requests: list[dict[str, Any]], concurrency: int, duration: float, pids: list[int]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    processes = min(2, concurrency)
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(requests, concurrency // processes, duration, queue))
               for _ in range(processes)]
    cpu0 = cpu_seconds(pids)
    for w in workers:
        w.start()
    results = [queue.get(timeout=duration + 120) for _ in workers]
    for w in workers:
        w.join(10)
    cpu = cpu_seconds(pids) - cpu0
    lat = np.array([x for r in results for x in r[0]]) * 1000
    return {"concurrency": concurrency, "requests": int(lat.size), "rps": lat.size / duration,
            "errors": sum(r[1] for r in results), "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
            "server_cpu_ms_per_request": cpu / lat.size * 1000 if lat.size else None}


async def run(infra: Infra, concurrencies: list[int], duration: float, log: Callable[[str], None]) -> dict[str, Any]:
    hubs = start_hubs(infra, 2)
    bares = [Baseline("bare", infra.log_dir, "--mongo", infra.mongo_url, "--db", infra.db).start() for _ in range(2)]
    try:
        tenant = f"q{int(time.time())}"
        agent, case_id = await seed(hubs[0].url, tenant)
        auth = {"Authorization": f"Bearer {agent}"}
        targets = {
            "hub": {
                "case": [{"method": "POST", "url": f"{h.url}/graphql", "headers": auth,
                          "json": {"query": CASE, "variables": {"id": case_id}}} for h in hubs],
                "cases": [{"method": "POST", "url": f"{h.url}/graphql", "headers": auth, "json": {"query": CASES}}
                          for h in hubs]},
            "bare": {
                "case": [{"method": "GET", "url": f"{b.url}/case?id={case_id}", "headers": auth} for b in bares],
                "cases": [{"method": "GET", "url": f"{b.url}/cases", "headers": auth} for b in bares]},
        }
        same = {}
        for name in ("case", "cases"):
            async with httpx.AsyncClient(timeout=30) as http:
                answers = [(await http.request(**targets[t][name][0])).json() for t in ("hub", "bare")]
            same[name] = answers[0] == answers[1]
            n = len(answers[0]["data"]["case"]["comments"]["edges"]) if name == "case" else \
                len(answers[0]["data"]["cases"]["edges"])
            log(f"query path: {name} returns {n} items; hub JSON == bare JSON: {same[name]}")
        points = []
        for name in ("case", "cases"):
            for concurrency in concurrencies:
                for target, servers in (("hub", hubs), ("bare", bares)):
                    point = measure(targets[target][name], concurrency, duration, [pid_of(s) for s in servers])
                    point.update(target=target, query=name)
                    points.append(point)
                    log(f"  {name} c={concurrency} {target}: {point['rps']:.0f} rps, p50 {point['p50_ms']:.1f} ms, "
                        f"p99 {point['p99_ms']:.1f} ms, errors {point['errors']}")
        return {"same_json": same, "points": points}
    finally:
        for server in (*hubs, *bares):
            server.stop()
