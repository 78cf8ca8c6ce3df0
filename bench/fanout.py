"""Fan-out workload: N subscribers of one case over 2 server processes on one Redis, events
published at a fixed rate; the hub and its baselines, measured the same way in the same run."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from bench.baselines import CHANNEL
from bench.servers import (
    Baseline,
    Infra,
    LoadGenerators,
    cpu_seconds,
    pid_of,
    rss_bytes,
    start_hubs,
)
from tests.harness import HubProcess, token

HUB_QUERY = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  id seq cursor stream kind visibility summary occurredAt actor { id } data } }"""
CREATE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code message } case { id } } }"""
COMMENT = """mutation($id: ID!, $b: String!) { commentAdd(input: {subjectId: $id, body: $b, visibility: PUBLIC}) {
  errors { code message } } }"""
TENANT = "bench"
MAX_INFLIGHT = 16
"""Mutations in flight at once (the publisher is open-loop until this many are outstanding)."""


@dataclass
class Target:
    """A server under test: its processes, how to subscribe to it and how to publish one event."""

    name: str
    servers: list[HubProcess | Baseline]
    specs: Callable[[int, int], list[dict[str, Any]]]
    publish: Callable[[int, int], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    description: str = ""

    @property
    def pids(self) -> list[int]:
        return [pid_of(s) for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _body(phase: int, n: int) -> str:
    return f"{phase}:{n}:{time.time():.6f}"


async def hub_target(infra: Infra, name: str, **env: str) -> Target:
    """Two hub processes; one case opened by a customer; agents (and that customer) subscribe."""
    hubs = start_hubs(infra, 2, **env)
    tenant = f"{TENANT}{uuid.uuid4().hex[:6]}"
    customer = token("cust", "customer", tenant, name="Customer")
    publisher = token("pub", "agent", tenant, name="Publisher")
    agents = [token(f"agent{i}", "agent", tenant, name=f"Agent {i}") for i in range(50)]
    clients = [httpx.AsyncClient(base_url=h.url, timeout=30, headers={"Authorization": f"Bearer {publisher}"},
                                 limits=httpx.Limits(max_connections=MAX_INFLIGHT)) for h in hubs]
    async with httpx.AsyncClient(base_url=hubs[0].url, timeout=30,
                                 headers={"Authorization": f"Bearer {customer}"}) as opener:
        answer = (await opener.post("/graphql", json={"query": CREATE, "variables": {"s": "Benchmark"}})).json()
    case_id = answer["data"]["caseCreate"]["case"]["id"]

    def specs(start: int, count: int) -> list[dict[str, Any]]:
        return [{"url": hubs[i % 2].ws_url, "token": customer if i % 10 == 9 else agents[i % len(agents)],
                 "query": HUB_QUERY, "variables": {"id": case_id}} for i in range(start, start + count)]

    async def publish(phase: int, n: int) -> None:
        response = await clients[n % 2].post("/graphql", json={
            "query": COMMENT, "variables": {"id": case_id, "b": _body(phase, n)}})
        errors = response.json().get("errors") or response.json()["data"]["commentAdd"]["errors"]
        if errors:
            raise RuntimeError(f"publish failed: {errors}")

    async def close() -> None:
        for client in clients:
            await client.aclose()

    return Target(name, list(hubs), specs, publish, close)


async def baseline_target(infra: Infra, kind: str) -> Target:
    """Two baseline processes; events are published straight to their Redis channel."""
    from redis.asyncio import Redis

    servers = [Baseline(kind, infra.log_dir, "--redis", infra.redis_url).start() for _ in range(2)]
    redis = Redis.from_url(infra.redis_url)
    seq = 0

    def specs(start: int, count: int) -> list[dict[str, Any]]:
        return [{"url": servers[i % 2].ws_url, "token": "-", "query": HUB_QUERY, "variables": {"id": "case_bench"}}
                for i in range(start, start + count)]

    async def publish(phase: int, n: int) -> None:
        nonlocal seq
        seq += 1
        event = {"id": f"evt_{seq}", "seq": seq, "cursor": f"c{seq}", "stream": "case:case_bench",
                 "kind": "comment.added", "visibility": "PUBLIC", "summary": "Publisher added a comment",
                 "occurredAt": datetime.now(UTC).isoformat(), "actor": {"id": "pub"},
                 "data": {"commentId": f"cmt_{seq}", "subjectId": "case_bench", "body": _body(phase, n),
                          "mentions": []}}
        await redis.publish(CHANNEL, json.dumps(event, separators=(",", ":")))

    async def close() -> None:
        await redis.aclose()

    return Target(kind, list(servers), specs, publish, close)


async def publish_at(target: Target, phase: int, rate: float, duration: float) -> dict[str, Any]:
    """Open-loop publishing at `rate` per second for `duration` s (at most MAX_INFLIGHT pending)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(MAX_INFLIGHT)
    pending: set[asyncio.Task[None]] = set()
    failures = 0
    start = loop.time()
    n = 0

    async def one(i: int) -> None:
        nonlocal failures
        try:
            await target.publish(phase, i)
        except Exception:
            failures += 1
        finally:
            gate.release()

    while (due := start + n / rate) < start + duration:
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        task = asyncio.create_task(one(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    await asyncio.gather(*pending)
    elapsed = loop.time() - start
    return {"sent": n - failures, "failures": failures, "achieved_rate": (n - failures) / elapsed if elapsed else 0}


async def warm_up(target: Target, gens: LoadGenerators, expect: int, timeout: float = 60.0) -> bool:
    """Publish phase -1 events until every connection has received one (all subscriptions live)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        await target.publish(-1, n)
        n += 1
        await asyncio.sleep(0.3)
        live = sum(a["live"] for a in gens.ask({"cmd": "status"}))
        if live >= expect:
            await asyncio.sleep(0.5)
            gens.ask({"cmd": "report"})  # forget the warm-up
            return True
    gens.ask({"cmd": "report"})
    return False


def summarize(reports: list[dict[str, Any]], phase: int, started: float) -> dict[str, Any]:
    lat = np.concatenate([np.frombuffer(r["phases"][phase]["latencies"]) for r in reports
                          if phase in r["phases"]] or [np.zeros(0)])
    last = max((r["phases"][phase]["last_recv"] or 0) for r in reports if phase in r["phases"]) \
        if any(phase in r["phases"] for r in reports) else started
    errors: dict[str, int] = {}
    for r in reports:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    span = max(last - started, 1e-9)
    out: dict[str, Any] = {
        "delivered": int(lat.size), "deliveries_per_s": lat.size / span, "span_s": span,
        "gaps": sum(r["gaps"] for r in reports), "duplicates": sum(r["duplicates"] for r in reports),
        "errors": errors, "resubscribes": sum(r["resubscribes"] for r in reports),
    }
    if lat.size:
        ms = lat * 1000
        out.update(p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)),
                   p999_ms=float(np.percentile(ms, 99.9)), max_ms=float(ms.max()),
                   cdf_ms=[float(x) for x in np.percentile(ms, np.linspace(0, 100, 101))])
    return out


@dataclass
class FanoutConfig:
    sizes: list[int]
    rates: list[float]
    duration: float = 5.0
    budget: float = 400_000
    """Largest number of deliveries one point asks for (a saturated point is shortened to it)."""
    drain_timeout: float = 15.0
    generators: int = 2
    points: list[dict[str, Any]] = field(default_factory=list)


async def run_target(target: Target, config: FanoutConfig, log: Callable[[str], None]) -> list[dict[str, Any]]:
    gens = LoadGenerators(config.generators)
    points: list[dict[str, Any]] = []
    try:
        idle_rss = rss_bytes(target.pids)
        opened = 0
        phase = 0
        for size in sorted(config.sizes):
            ok, failed = gens.open(target.specs(opened, size - opened))
            opened += ok
            live = await warm_up(target, gens, opened)
            rss = rss_bytes(target.pids)
            log(f"  {target.name}: {opened} subscribers open ({failed} failed), live={live}, "
                f"RSS/conn {(rss - idle_rss) / max(opened, 1) / 1024:.1f} KiB")
            for rate in config.rates:
                duration = min(config.duration, max(1.0, config.budget / (opened * rate)))
                cpu0, client0 = cpu_seconds(target.pids), cpu_seconds(gens.pids)
                started = time.time()
                published = await publish_at(target, phase, rate, duration)
                expected = published["sent"] * opened
                deadline = time.monotonic() + config.drain_timeout
                while time.monotonic() < deadline:
                    if sum(a["received"] for a in gens.ask({"cmd": "status"})) >= expected:
                        break
                    await asyncio.sleep(0.2)
                wall = time.time() - started
                cpu = cpu_seconds(target.pids) - cpu0
                client_cpu = cpu_seconds(gens.pids) - client0
                point = summarize(gens.ask({"cmd": "report"}), phase, started)
                point.update(target=target.name, subscribers=opened, rate=rate, duration_s=duration,
                             expected=expected, complete=point["delivered"] / expected if expected else 0,
                             server_cpu_s=cpu, server_cpu_util=cpu / wall, client_cpu_util=client_cpu / wall,
                             cpu_s_per_1000=cpu / point["delivered"] * 1000 if point["delivered"] else None,
                             rss_per_conn_kib=(rss - idle_rss) / max(opened, 1) / 1024, live=live, **published)
                points.append(point)
                log(f"  {target.name} N={opened} rate={rate:g}/s (achieved {published['achieved_rate']:.0f}): "
                    f"{point['deliveries_per_s']:.0f} deliveries/s, p50 {point.get('p50_ms', float('nan')):.1f} ms, "
                    f"p99 {point.get('p99_ms', float('nan')):.1f} ms, complete {point['complete']:.3f}, "
                    f"gaps {point['gaps']} dups {point['duplicates']} errors {point['errors']}")
                phase += 1
                await asyncio.sleep(0.5)
    finally:
        gens.close()
    return points


async def run(infra: Infra, targets: list[str], config: FanoutConfig, log: Callable[[str], None]) -> list[dict[str, Any]]:
    makers: dict[str, Callable[[], Awaitable[Target]]] = {
        "hub": lambda: hub_target(infra, "hub"),
        "hub-before": lambda: hub_target(infra, "hub-before", HUB_WS_FANOUT="0", HUB_WS_PER_MESSAGE_DEFLATE="1"),
        "raw": lambda: baseline_target(infra, "raw"),
        "raw-asgi": lambda: baseline_target(infra, "raw-asgi"),
        "naive": lambda: baseline_target(infra, "naive"),
    }
    points: list[dict[str, Any]] = []
    for name in targets:
        log(f"fan-out: {name}")
        target = await makers[name]()
        try:
            points += await run_target(target, config, log)
        finally:
            await target.close()
            target.stop()
    return points


async def scale(infra: Infra, targets: list[str], connections: int, generators: int,
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    """`connections` subscribed sockets over 2 processes; one event to all: time to the last delivery."""
    results = []
    for name in targets:
        target = await (hub_target(infra, name) if name == "hub" else baseline_target(infra, name))
        gens = LoadGenerators(generators)
        try:
            idle = rss_bytes(target.pids)
            began = time.monotonic()
            opened, failed = gens.open(target.specs(0, connections))
            connect_s = time.monotonic() - began
            live = await warm_up(target, gens, opened, timeout=120)
            rss = rss_bytes(target.pids)
            started = time.time()
            await target.publish(0, 0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if sum(a["received"] for a in gens.ask({"cmd": "status"})) >= opened:
                    break
                await asyncio.sleep(0.05)
            point = summarize(gens.ask({"cmd": "report"}), 0, started)
            point.update(target=name, connections=opened, failed=failed, live=live, connect_s=connect_s,
                         last_delivery_s=point["span_s"], rss_per_conn_kib=(rss - idle) / max(opened, 1) / 1024)
            log(f"scale {name}: {opened} sockets ({failed} failed), one event delivered to {point['delivered']} "
                f"in {point['span_s'] * 1000:.0f} ms, RSS/conn {point['rss_per_conn_kib']:.1f} KiB")
            results.append(point)
        finally:
            gens.close()
            await target.close()
            target.stop()
    return results
