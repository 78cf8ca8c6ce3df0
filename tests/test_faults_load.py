"""Load faults (issue #10, reliability): a stalled consumer, and a reconnect storm.

* A subscriber that stops reading while large events flow: the hub's memory stays bounded (its
  per-subscriber queue is bounded and the WebSocket send waits for the socket instead of
  buffering), a fast subscriber of the same stream keeps its latency, and the stalled one, once it
  reads again, finds a resumable `SLOW_CONSUMER` error and resumes from its cursor with nothing lost.
* 2,000 clients reconnecting to two hubs within 5 s, each with a cursor of its own: no crash,
  no duplicate, no gap, bounded memory.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.harness import Client, HubProcess, token
from tests.streamclients import (
    COMMENT,
    CREATE,
    Follower,
    Writer,
    now,
    percentile,
    rss_mb,
    stop_all,
    until,
)
from tests.test_activity import HISTORY

LIMITS = {"HUB_RATE_LIMIT_PER_MIN": "1000000", "HUB_RATE_LIMIT_SUBSCRIBE_PER_MIN": "1000000",
          "HUB_WS_INIT_TIMEOUT_S": "10"}
BIG_NAME = 200_000
"""Characters in the writer's name: every event summary carries it (~400 kB of event JSON)."""
STALLED = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  seq cursor summary } }"""


async def ws_open(hub: HubProcess, tok: str, **options: Any) -> ClientConnection:
    ws = await connect(hub.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                       compression=None, max_size=None, ping_interval=None, **options)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def ws_comments(hub: HubProcess, tok: str, case_id: str, count: int, rate: float) -> list[float]:
    """`count` commentAdd mutations over one WebSocket (the token's huge name fits no HTTP header),
    at most `rate` per second; their latencies."""
    ws = await ws_open(hub, tok)
    took = []
    try:
        start = now()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - now()))
            began = now()
            await ws.send(json.dumps({"id": f"m{i}", "type": "subscribe", "payload": {
                "query": COMMENT, "variables": {"id": case_id, "b": f"big {i}"}}}))
            while (message := json.loads(await ws.recv()))["type"] != "complete":
                assert message["type"] == "next" and not message["payload"]["data"]["commentAdd"]["errors"], message
            took.append(now() - began)
    finally:
        await ws.close()
    return took


def test_stalled_consumer_memory_is_bounded_and_others_keep_their_latency(
    spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    hub = spawn_hub(HUB_SUBSCRIBER_QUEUE="5", **LIMITS)
    writer = Client(hub, "writer", "agent", tenant)
    case_id = writer.mutate(CREATE, s="Large events")["case"]["id"]
    created = writer.gql(HISTORY, s=f"case:{case_id}", after=None, first=1)["activity"]["edges"][0]["cursor"]
    report = asyncio.run(stalled(hub, tenant, case_id, created))
    print("\nstalled consumer:", report)


async def stalled(hub: HubProcess, tenant: str, case_id: str, created: str) -> dict[str, Any]:
    tok = token("writer", "agent", tenant)
    big = token("big", "agent", tenant, name="N" * BIG_NAME)
    pid = hub.proc.pid if hub.proc else 0
    # given a fast subscriber and one that subscribes, then never reads (1 frame of client buffer)
    fast = Follower(tok, case_id, [hub.ws_url], cursor=created)
    following = asyncio.create_task(fast.run())
    slow = await ws_open(hub, tok, max_queue=1)
    await slow.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
        "query": STALLED, "variables": {"id": case_id, "after": created}}}))
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(0.2)

    sampling = asyncio.create_task(asyncio.sleep(0))
    try:
        await ws_comments(hub, big, case_id, 10, rate=20)  # warm up: buffers fill, the queue overflows
        await until(lambda: fast.last >= 11, "the fast subscriber's first events", 20)
        baseline = rss_mb(pid)
        fast.latencies.clear()
        sampling = asyncio.create_task(sample())

        # when ~60 MB of events flow past the stalled subscriber
        count = 150
        took = await ws_comments(hub, big, case_id, count, rate=20)
        await until(lambda: fast.last >= 11 + count, "the fast subscriber to get every event", 30)
        sampling.cancel()

        # then the hub's memory stayed bounded, and the fast subscriber kept its latency
        peak = max(samples) - baseline
        p99 = percentile(fast.latencies, 99)
        # and the stalled one, reading again, gets what was on its way, then a resumable error
        seen, error = await drain(slow)
    finally:
        sampling.cancel()
        await slow.close()
        await stop_all([following])
    assert fast.problems(2, 11 + count) is None, fast.problems(2, 11 + count)
    assert peak < 20, f"hub RSS grew {peak:.0f} MiB while a consumer was stalled"
    assert p99 < 1.5, f"fast subscriber p99 {p99:.2f} s"
    assert error == {"code": "UNAVAILABLE", "reason": "SLOW_CONSUMER", "resumable": True}
    assert seen == list(range(2, 2 + len(seen))) and len(seen) < count
    # and resumes from its last cursor with nothing lost
    cursor = await asyncio.to_thread(cursor_of, hub, tenant, case_id, seen[-1])
    resumed = Follower(tok, case_id, [hub.ws_url], cursor=cursor)
    resuming = asyncio.create_task(resumed.run())
    try:
        await until(lambda: resumed.last >= 11 + count, "the resumed subscriber to catch up", 30)
    finally:
        await stop_all([resuming])
    assert resumed.problems(seen[-1] + 1, 11 + count) is None
    return {
        "events": count, "event JSON kB": round(2 * BIG_NAME / 1000), "RSS baseline MiB": round(baseline),
        "RSS growth max MiB": round(peak, 1), "fast subscriber latency p50/p99 s":
            [round(percentile(fast.latencies, 50), 3), round(p99, 3)],
        "mutation latency p50 s": round(percentile(took, 50), 3),
        "stalled one got before SLOW_CONSUMER": len(seen),
    }


async def drain(ws: ClientConnection) -> tuple[list[int], dict[str, Any]]:
    """Read a stalled subscription to its end: the seqs it got, and the extensions of its error."""
    seen: list[int] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert message["type"] == "next", message
        if errors := message["payload"].get("errors"):
            assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "complete"
            extensions: dict[str, Any] = errors[0]["extensions"]
            return seen, extensions
        seen.append(message["payload"]["data"]["caseActivity"]["seq"])


def cursor_of(hub: HubProcess, tenant: str, case_id: str, seq: int) -> str:
    """The cursor of event `seq` of a case (the stalled client read it; the test kept only seqs)."""
    edges = Client(hub, "writer", "agent", tenant).gql(HISTORY, s=f"case:{case_id}", after=None, first=seq)
    node = edges["activity"]["edges"][-1]["node"]
    assert node["seq"] == seq
    cursor: str = node["cursor"]
    return cursor


# -- reconnect storm ------------------------------------------------------------------------------


STORM = 2000
CASES = 10


def test_reconnect_storm_of_2000_clients_with_cursors(
    spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    hubs = [spawn_hub(**LIMITS) for _ in range(2)]
    writer = Client(hubs[0], "writer", "agent", tenant)
    histories: list[tuple[str, list[str]]] = []
    for i in range(CASES):
        case_id = writer.mutate(CREATE, s=f"Storm case {i}")["case"]["id"]
        for j in range(4):
            writer.mutate(COMMENT, id=case_id, b=f"before the storm {j}")
        edges = writer.gql(HISTORY, s=f"case:{case_id}", after=None, first=10)["activity"]["edges"]
        histories.append((case_id, [e["cursor"] for e in edges]))
    report = asyncio.run(storm(hubs, tenant, histories))
    print("\nreconnect storm:", report)


async def storm(hubs: list[HubProcess], tenant: str, histories: list[tuple[str, list[str]]]) -> dict[str, Any]:
    rng = random.Random(10)
    # given 2,000 clients, each with a cursor somewhere in its case's history (seq 1..4: each
    # gets at least one event replayed, which tells when it was served)
    starts: list[int] = []
    followers = []
    for i in range(STORM):
        case_id, cursors = histories[i % CASES]
        at = rng.randrange(len(cursors) - 1)
        starts.append(at + 2)
        followers.append(Follower(token(f"agent{i % 20}", "agent", tenant), case_id,
                                  [hubs[i % 2].ws_url, hubs[(i + 1) % 2].ws_url], cursor=cursors[at],
                                  open_timeout=30))
    pids = [h.proc.pid if h.proc else 0 for h in hubs]
    baseline = [rss_mb(p) for p in pids]
    peak = list(baseline)
    stop = asyncio.Event()
    writer = Writer(hubs, token("writer", "agent", tenant),
                    lambda i: (COMMENT, {"id": histories[i % CASES][0], "b": f"during the storm {i}"}), rate=1)

    async def staggered(f: Follower, delay: float) -> None:
        await asyncio.sleep(delay)
        await f.run()

    async def sample() -> None:
        while True:
            for h, pid in enumerate(pids):
                peak[h] = max(peak[h], rss_mb(pid))
            await asyncio.sleep(0.25)

    # when they all reconnect within 5 s while events keep coming
    began = now()
    tasks = [asyncio.create_task(staggered(f, rng.uniform(0, 5))) for f in followers]
    tasks.append(asyncio.create_task(sample()))
    writing = asyncio.create_task(writer.run(stop))
    try:
        served = await until(lambda: all(f.live.is_set() for f in followers), "every client served", 150,
                             lambda: (sum(f.live.is_set() for f in followers), sum(f.reconnects for f in followers),
                                      Counter(e for f in followers for e in f.ended).most_common(5),
                                      Counter(str(e)[:200] for f in followers for e in f.errors).most_common(3),
                                      [(round(now() - f.subscribed_at, 1) if f.subscribed_at else None, f.ended[-2:],
                                        f.hub % 2, f.case_id[-4:]) for f in followers if not f.live.is_set()][:8],
                                      len(writer.outcomes), len(writer.failures())))
        await asyncio.sleep(2.0)
        stop.set()
        await writing
        finals = {case_id: await asyncio.to_thread(last_seq, hubs[0], tenant, case_id) for case_id, _ in histories}
        settled = await until(lambda: all(f.last >= finals[f.case_id] for f in followers),
                              "every client to reach the last event", 60)
    finally:
        stop.set()
        await stop_all([*tasks, writing])

    # then nobody missed or got twice anything, and both processes are alive with bounded memory
    problems = [p for f, s in zip(followers, starts, strict=True) if (p := f.problems(s, finals[f.case_id]))]
    assert not problems, f"{len(problems)} clients wrong, e.g. {problems[:3]}"
    assert all(h.proc is not None and h.proc.poll() is None for h in hubs)
    growth = [p - b for p, b in zip(peak, baseline, strict=True)]
    assert max(growth) < 400, f"RSS grew {growth} MiB"
    # (mutations meanwhile may be shed with the retryable UNAVAILABLE, never anything else)
    assert {o.code for o in writer.failures()} <= {"UNAVAILABLE"}, writer.failures()[:3]
    first = [f.first_at - f.started_at for f in followers]
    return {
        "clients": STORM, "all served after s": round(served, 1),
        "all at the last event after writes stopped s": round(settled, 1),
        "reconnect retries": sum(f.reconnects for f in followers),
        "RSS baseline/peak MiB": [(round(b), round(p)) for b, p in zip(baseline, peak, strict=True)],
        "mutations during the storm": len(writer.outcomes), "UNAVAILABLE after 3 retries": len(writer.failures()),
        "retried": len(writer.retried),
        "connect to first event p50/p99/max s": [round(percentile(first, 50), 2), round(percentile(first, 99), 2),
                                                 round(max(first), 2)],
        "elapsed s": round(now() - began, 1),
    }


def last_seq(hub: HubProcess, tenant: str, case_id: str) -> int:
    client = Client(hub, "writer", "agent", tenant)
    edges = client.gql(HISTORY, s=f"case:{case_id}", after=None, first=100)["activity"]["edges"]
    seq: int = edges[-1]["node"]["seq"]
    return seq


def test_repeated_documents_skip_validation() -> None:
    """Storm capacity: subscription set-up is CPU-bound, and ~40 % of a hub's CPU in the storm went
    to GraphQL validation of the same few documents. strawberry's `ValidationCache` keys on the
    request's validation rules, and the limiter extensions (built per request by their factories in
    `schema.build`) create new rule classes every time, so the cache never hits.

    Fails until `schema.build` keeps the rule classes stable across requests (reported; not this
    file's owner's code)."""
    from strawberry.extensions.validation_cache import _get_validate_cache

    from hub.settings import Settings
    from schema import build

    schema = build(Settings(env="test"))
    cache: Any = _get_validate_cache(1000)  # the LRU shared by every ValidationCache(maxsize=1000)
    before = cache.cache_info()

    async def run() -> None:
        for _ in range(5):
            result = await schema.execute("query Same { __typename }")
            assert result.errors is None

    asyncio.run(run())
    after = cache.cache_info()
    assert after.hits - before.hits >= 4, f"validation cache: {after}"
