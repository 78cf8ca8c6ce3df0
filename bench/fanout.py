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
    mutate: Callable[[int, int], Awaitable[None]] | None = None
    """Publish one event through a real mutation (`commentAdd`), hub targets only."""

    @property
    def pids(self) -> list[int]:
        return [pid_of(s) for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _body(phase: int, n: int) -> str:
    return f"{phase}:{n}:{time.time():.6f}"


class EventWriter:
    """Publishes events in the hub's own wire format (`hub.events.Event.to_json`) on a case's
    channel, in `seq` order, and appends them to the store's event log in the background (batched),
    so replays and back-fills find them. The store here (SecantusDB) commits only a few mutations per
    second, so the fan-out matrix cannot be driven through `commentAdd`; see `e2e` for that."""

    def __init__(self, infra: Infra, tenant: str, case_id: str) -> None:
        from hub.store import Store

        self.store = Store(infra.mongo_url, infra.db)
        self.tenant = tenant
        self.stream = f"case:{case_id}"
        self.channel = f"{tenant}|{self.stream}"
        self.case_id = case_id
        self.seq = 0
        self.lock = asyncio.Lock()
        self.buffer: list[dict[str, Any]] = []
        self.store_failures = 0
        self.flusher: asyncio.Task[None] | None = None
        from redis.asyncio import Redis

        self.redis = Redis.from_url(infra.redis_url)

    async def start(self) -> None:
        counter = await self.store.raw("counters").find_one({"_id": f"{self.tenant}/{self.stream}"}) or {}
        self.seq = int(counter.get("seq", 0))
        self.flusher = asyncio.create_task(self._flush_loop())

    async def publish(self, body: str) -> None:
        from hub.events import Event, Visibility
        from hub.store import new_id

        async with self.lock:  # one publisher, strictly in seq order
            self.seq += 1
            now = datetime.now(UTC)
            event = Event(id=new_id("evt"), tenant=self.tenant, stream=self.stream, seq=self.seq,
                          kind="comment.added", actor_id="pub", actor_name="Publisher",
                          occurred_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
                          visibility=Visibility.PUBLIC, summary="Publisher added a comment",
                          data={"commentId": new_id("cmt"), "subjectId": self.case_id, "body": body, "mentions": []})
            self.buffer.append({"_id": event.id, "stream": self.stream, "seq": event.seq, "kind": event.kind,
                                "actor": {"id": "pub", "name": "Publisher"}, "occurredAt": event.occurred_at,
                                "visibility": "PUBLIC", "summary": event.summary, "data": event.data,
                                "published": True})
            await self.redis.publish(self.channel, event.to_json())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self.flush()

    async def flush(self) -> None:
        docs, self.buffer = self.buffer, []
        if not docs:
            return
        try:
            await self.store.tenant(self.tenant)["events"].insert_many(docs)
            await self.store.raw("counters").update_one(
                {"_id": f"{self.tenant}/{self.stream}"},
                {"$max": {"seq": docs[-1]["seq"]}, "$setOnInsert": {"tenant": self.tenant}}, upsert=True)
        except Exception as exc:  # an overloaded store: the events stay published, replays miss them
            self.store_failures += 1
            print(f"  (event log append failed: {type(exc).__name__}; {len(docs)} events not stored)", flush=True)

    async def close(self) -> None:
        if self.flusher is not None:
            self.flusher.cancel()
        await self.flush()
        await self.redis.aclose()
        await self.store.close()


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
    writer = EventWriter(infra, tenant, case_id)
    await writer.start()

    def specs(start: int, count: int) -> list[dict[str, Any]]:
        return [{"url": hubs[i % 2].ws_url, "token": customer if i % 10 == 9 else agents[i % len(agents)],
                 "query": HUB_QUERY, "variables": {"id": case_id}} for i in range(start, start + count)]

    async def publish(phase: int, n: int) -> None:
        await writer.publish(_body(phase, n))

    async def mutate(phase: int, n: int) -> None:
        response = await clients[n % 2].post("/graphql", json={
            "query": COMMENT, "variables": {"id": case_id, "b": _body(phase, n)}})
        errors = response.json().get("errors") or response.json()["data"]["commentAdd"]["errors"]
        if errors:
            raise RuntimeError(f"publish failed: {errors}")

    async def close() -> None:
        await writer.close()
        for client in clients:
            await client.aclose()

    return Target(name, list(hubs), specs, publish, close, mutate=mutate)


async def baseline_target(infra: Infra, kind: str) -> Target:
    """Two baseline processes; events are published straight to their Redis channel."""
    from redis.asyncio import Redis

    servers = [Baseline(kind, infra.log_dir, "--redis", infra.redis_url).start() for _ in range(2)]
    redis = Redis.from_url(infra.redis_url)
    lock = asyncio.Lock()
    seq = 0

    def specs(start: int, count: int) -> list[dict[str, Any]]:
        return [{"url": servers[i % 2].ws_url, "token": "-", "query": HUB_QUERY, "variables": {"id": "case_bench"}}
                for i in range(start, start + count)]

    async def publish(phase: int, n: int) -> None:
        nonlocal seq
        async with lock:  # one publisher, strictly in seq order
            seq += 1
            await _publish_baseline(redis, seq, phase, n)

    async def close() -> None:
        await redis.aclose()

    return Target(kind, list(servers), specs, publish, close)


async def _publish_baseline(redis: Any, seq: int, phase: int, n: int) -> None:
    """The JSON of an ActivityEvent as the hub would render it, on the baselines' channel."""
    event = {"id": f"evt_{seq}", "seq": seq, "cursor": f"c{seq}", "stream": "case:case_bench",
             "kind": "comment.added", "visibility": "PUBLIC", "summary": "Publisher added a comment",
             "occurredAt": datetime.now(UTC).isoformat(), "actor": {"id": "pub"},
             "data": {"commentId": f"cmt_{seq}", "subjectId": "case_bench", "body": _body(phase, n), "mentions": []}}
    await redis.publish(CHANNEL, json.dumps(event, separators=(",", ":")))


async def publish_at(target: Target, phase: int, rate: float, duration: float,
                     via: Callable[[int, int], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Open-loop publishing at `rate` per second for `duration` s (at most MAX_INFLIGHT pending)."""
    send = via or target.publish
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(MAX_INFLIGHT)
    pending: set[asyncio.Task[None]] = set()
    failures = 0
    start = loop.time()
    n = 0

    async def one(i: int) -> None:
        nonlocal failures
        try:
            await send(phase, i)
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


async def warm_up(target: Target, gens: LoadGenerators, expect: int, limit_s: float = 60.0) -> bool:
    """Publish phase -1 events until every connection has received one (all subscriptions live)."""
    deadline = time.monotonic() + limit_s
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
    drain_timeout: float = 20.0
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
                duration = min(config.duration, max(0.5, config.budget / (opened * rate)))
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
                    f"gaps {point['gaps']} dups {point['duplicates']} errors {point['errors']}, "
                    f"CPU servers {point['server_cpu_util']:.2f} clients {point['client_cpu_util']:.2f} "
                    f"({point['cpu_s_per_1000'] or 0:.3f} s/1k)")
                phase += 1
                await asyncio.sleep(0.5)
    finally:
        gens.close()
    return points


async def run(infra: Infra, targets: list[str], config: FanoutConfig,
              log: Callable[[str], None]) -> list[dict[str, Any]]:
    makers: dict[str, Callable[[], Awaitable[Target]]] = {
        "hub": lambda: hub_target(infra, "hub"),
        "hub-before": lambda: hub_target(infra, "hub-before", HUB_WS_FANOUT="0", HUB_WS_PER_MESSAGE_DEFLATE="1"),
        "raw": lambda: baseline_target(infra, "raw"),
        "raw-broadcast": lambda: baseline_target(infra, "raw-broadcast"),
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
            live = await warm_up(target, gens, opened, limit_s=120)
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


async def e2e(infra: Infra, subscribers: int, rate: float, duration: float, generators: int,
              log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The hub end to end: `commentAdd` mutations (HTTP, GraphQL, store transaction, publish) → subscribers."""
    target = await hub_target(infra, "hub")
    gens = LoadGenerators(generators)
    try:
        opened, _ = gens.open(target.specs(0, subscribers))
        live = await warm_up(target, gens, opened)
        started = time.time()
        assert target.mutate is not None
        published = await publish_at(target, 0, rate, duration, via=target.mutate)
        expected = published["sent"] * opened
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum(a["received"] for a in gens.ask({"cmd": "status"})) >= expected:
                break
            await asyncio.sleep(0.2)
        point = summarize(gens.ask({"cmd": "report"}), 0, started)
        point.update(target="hub", subscribers=opened, rate=rate, live=live, expected=expected,
                     complete=point["delivered"] / expected if expected else 0, **published)
        log(f"e2e: {opened} subscribers, commentAdd asked {rate:g}/s, sent {published['achieved_rate']:.1f}/s "
            f"({published['failures']} failed): p50 {point.get('p50_ms', float('nan')):.0f} ms, "
            f"p99 {point.get('p99_ms', float('nan')):.0f} ms, gaps {point['gaps']} dups {point['duplicates']}")
        return [point]
    finally:
        gens.close()
        await target.close()
        target.stop()
