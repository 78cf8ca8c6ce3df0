"""Faults under a steady event stream, with real processes (issue #10, reliability).

* Redis SIGKILLed, restarted, then SIGSTOPped and resumed while 200 subscribers on two hub
  processes follow four cases and a writer commits ~20 mutations per second.
* A hub process SIGKILLed: its subscribers resume on the other one with their last cursor; its
  users' presence expires within the TTL.

Every subscriber must end with the complete, gap-free, duplicate-free sequence of its case, as
the store records it. The figures printed here are collected in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from pymongo import MongoClient

from tests.harness import Client, HubProcess, token
from tests.redis_server import RedisProcess, start_redis
from tests.streamclients import (
    COMMENT,
    CREATE,
    Follower,
    ReadyProbe,
    Writer,
    now,
    percentile,
    stop_all,
    until,
)
from tests.test_activity import HISTORY

LIMITS = {"HUB_RATE_LIMIT_PER_MIN": "1000000", "HUB_RATE_LIMIT_SUBSCRIBE_PER_MIN": "1000000"}
RATE = 10.0
"""Mutations per second. On 2 cores the SecantusDB store saturates at ~15 concurrent commentAdd/s
(20/s: p50 5 s and half of them UNAVAILABLE at the transaction deadline), so 10/s is steady."""


def open_cases(hub: HubProcess, tenant: str, count: int) -> list[tuple[str, str]]:
    """`count` cases with two events each: (id, cursor of its first event, `case.created`).

    Subscribers resume from that cursor, so they start with a replay of event 2."""
    writer = Client(hub, "writer", "agent", tenant)
    cases = []
    for i in range(count):
        case_id = writer.mutate(CREATE, s=f"Fault case {i}")["case"]["id"]
        writer.mutate(COMMENT, id=case_id, b="first comment")
        first = writer.gql(HISTORY, s=f"case:{case_id}", after=None, first=1)["activity"]["edges"][0]
        cases.append((case_id, first["cursor"]))
    return cases


def stored_streams(hub_env: dict[str, str], tenant: str, case_ids: list[str]) -> dict[str, int]:
    """Last seq of each case stream, read from the store directly; asserts the log has no hole."""
    client: MongoClient[dict[str, Any]] = MongoClient(hub_env["HUB_MONGODB_URL"])
    with client:
        db = client[hub_env["HUB_MONGODB_DB"]]
        last = {}
        for case_id in case_ids:
            counter = db.counters.find_one({"_id": f"{tenant}/case:{case_id}"})
            assert counter is not None
            seqs = [e["seq"] for e in db.events.find({"tenant": tenant, "stream": f"case:{case_id}"}, {"seq": 1})
                    .sort("seq", 1)]
            assert seqs == list(range(1, counter["seq"] + 1)), f"the log of {case_id} has a hole"
            last[case_id] = int(counter["seq"])
        return last


def comment_on(cases: list[tuple[str, str]]) -> Callable[[int], tuple[str, dict[str, Any]]]:
    return lambda i: (COMMENT, {"id": cases[i % len(cases)][0], "b": f"steady comment {i}"})


async def caught_up(followers: list[Follower], last: dict[str, int], deadline: float) -> float:
    return await until(lambda: all(f.last >= last[f.case_id] for f in followers),
                       "every subscriber to receive the last event", deadline)


def assert_complete(followers: list[Follower], last: dict[str, int]) -> None:
    problems = [p for f in followers if (p := f.problems(2, last[f.case_id]))]
    assert not problems, f"{len(problems)} incomplete subscribers, e.g. {problems[:3]}"
    assert not [f.errors for f in followers if f.errors]


def test_redis_killed_paused_and_restarted_under_200_subscribers(
    spawn_hub: Callable[..., HubProcess], hub_env: dict[str, str], tenant: str
) -> None:
    redis = start_redis()
    try:
        hubs = [spawn_hub(HUB_REDIS_URL=redis.url, **LIMITS) for _ in range(2)]
        cases = open_cases(hubs[0], tenant, 8)
        report = asyncio.run(redis_outages(hubs, redis, hub_env, tenant, cases))
    finally:
        redis.stop()
    print("\nRedis outages:", report)


async def redis_outages(
    hubs: list[HubProcess], redis: RedisProcess, hub_env: dict[str, str], tenant: str,
    cases: list[tuple[str, str]],
) -> dict[str, Any]:
    # given 200 subscribers spread over two processes and eight cases, and a steady writer
    followers = [
        Follower(token(f"agent{i % 10}", "agent", tenant), cases[i % 8][0],
                 [hubs[i % 2].ws_url, hubs[(i + 1) % 2].ws_url], cursor=cases[i % 8][1])
        for i in range(200)
    ]
    writer = Writer(hubs, token("writer", "agent", tenant), comment_on(cases), RATE)
    probe = ReadyProbe(hubs)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f.run()) for f in followers]
    tasks.append(asyncio.create_task(probe.run()))
    writing = asyncio.create_task(asyncio.sleep(0))
    try:
        await until(lambda: all(f.live.is_set() for f in followers), "all subscribers live", 30)
        writing = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(1.5)

        # when Redis is killed for 3 s, then restarted (empty)
        killed = now()
        await asyncio.to_thread(redis.kill)
        down_503 = await probe.wait(503, killed, deadline=5)
        await asyncio.sleep(max(0.0, killed + 3.0 - now()))
        restarted = now()
        await asyncio.to_thread(redis.start)
        up_200 = await probe.wait(200, restarted, deadline=15)
        await asyncio.sleep(2.0)

        # and then hangs (SIGSTOP) for 3 s
        paused = now()
        await asyncio.to_thread(redis.pause)
        hung_503 = await probe.wait(503, paused, deadline=5)
        await asyncio.sleep(max(0.0, paused + 3.0 - now()))
        resumed = now()
        await asyncio.to_thread(redis.resume)
        resumed_200 = await probe.wait(200, resumed, deadline=15)
        await asyncio.sleep(2.0)
        stop.set()
        await writing

        # then every subscriber gets the complete sequence the store recorded
        last = await asyncio.to_thread(stored_streams, hub_env, tenant, [c[0] for c in cases])
        catch_up = await caught_up(followers, last, deadline=30)
    finally:
        stop.set()
        await stop_all([*tasks, writing])
    assert_complete(followers, last)

    # and mutations kept committing throughout, promptly, none failed
    assert not writer.failures(), writer.failures()[:5]
    during_kill = writer.committed_between(killed, restarted)
    during_hang = writer.committed_between(paused, resumed)
    assert during_kill >= 2.5 * RATE * 0.5 and during_hang >= 3, (during_kill, during_hang)
    latencies = [o.latency for o in writer.outcomes]
    assert max(latencies) < 3.0, max(latencies)
    # and /readyz told the outage (503) and the recovery (200) on both processes
    assert max(down_503) < 1.5 and max(hung_503) < 2.5, (down_503, hung_503)
    reconnects = [metric(h, "hub_bus_reconnects") for h in hubs]
    assert all(r >= 1 for r in reconnects), reconnects
    delivery = [x for f in followers for x in f.latencies]
    return {
        "mutations": len(writer.outcomes), "retried (UNAVAILABLE)": len(writer.retried),
        "committed while Redis was dead": during_kill,
        "committed while Redis hung": during_hang,
        "mutation latency p50/p99/max s": rounded(percentile(latencies, 50), percentile(latencies, 99),
                                                   max(latencies)),
        "readyz 503 after kill s": rounded(*down_503), "readyz 200 after restart s": rounded(*up_200),
        "readyz 503 after SIGSTOP s": rounded(*hung_503), "readyz 200 after SIGCONT s": rounded(*resumed_200),
        "bus reconnects": reconnects, "events per subscriber": sum(len(f.seqs) for f in followers) // 200,
        "delivery latency p50/p99/max s": rounded(percentile(delivery, 50), percentile(delivery, 99), max(delivery)),
        "all caught up after writes stopped s": round(catch_up, 2),
    }


def rounded(*values: float) -> list[float]:
    return [round(v, 2) for v in values]


def metric(hub: HubProcess, name: str) -> float:
    for line in httpx.get(f"{hub.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


PRESENCE_UPDATE = """mutation($r: ID!) { presenceUpdate(input: {resourceId: $r, state: VIEWING}) {
  errors { code message } ttlSeconds } }"""
PRESENCE = "query($r: ID!) { presence(resourceId: $r) { user { id } } }"


def test_killed_hub_clients_resume_elsewhere_and_its_presence_expires(
    spawn_hub: Callable[..., HubProcess], hub_env: dict[str, str], tenant: str
) -> None:
    hubs = [spawn_hub(HUB_PRESENCE_TTL_S="2", HUB_MONGODB_TIMEOUT_S=str(DEADLINE), **LIMITS) for _ in range(2)]
    cases = open_cases(hubs[1], tenant, 2)
    # the busy case is the busy user's own: nobody else follows it, so no other stream (such as a
    # follower's notifications) is written by its mutations — and locked if one is left open
    victim = Client(hubs[1], "busy", "agent", tenant).mutate(CREATE, s="Busy case")["case"]["id"]
    report = asyncio.run(hub_killed(hubs, hub_env, tenant, cases, victim))
    print("\nHub SIGKILL:", report)


DEADLINE = 10.0
"""`HUB_MONGODB_TIMEOUT_S` (the default): a transaction and its retries."""


async def hub_killed(
    hubs: list[HubProcess], hub_env: dict[str, str], tenant: str, cases: list[tuple[str, str]], victim: str,
) -> dict[str, Any]:
    doomed, survivor = hubs
    # given 100 subscribers, half on the doomed process, a writer on the other one, a user present
    # through the doomed one, and a second writer there busy with a third case
    followers = [
        Follower(token(f"agent{i % 10}", "agent", tenant), cases[i % 2][0],
                 [hubs[i % 2].ws_url, hubs[(i + 1) % 2].ws_url], cursor=cases[i % 2][1])
        for i in range(100)
    ]
    on_doomed = followers[::2]
    writer = Writer([survivor], token("writer", "agent", tenant), comment_on(cases), RATE * 0.5)
    busy = Writer([doomed], token("busy", "agent", tenant), comment_on([(victim, "")]), RATE * 0.3)
    watcher = Client(survivor, "wendy", "agent", tenant)
    stop, stop_busy = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(f.run()) for f in followers]
    tasks.append(asyncio.create_task(heartbeat(doomed, token("pat", "agent", tenant), cases[0][0])))
    writing = busy_writing = asyncio.create_task(asyncio.sleep(0))
    try:
        await until(lambda: all(f.live.is_set() for f in followers), "all subscribers live", 30)
        writing = asyncio.create_task(writer.run(stop))
        busy_writing = asyncio.create_task(busy.run(stop_busy))
        await until(lambda: present(watcher, cases[0][0]) == ["pat"], "pat's presence seen elsewhere", 5)
        await asyncio.sleep(2.5)  # longer than the TTL: the heartbeats keep pat present
        assert present(watcher, cases[0][0]) == ["pat"]

        # when one process is SIGKILLed
        killed = now()
        await asyncio.to_thread(doomed.kill)
        stop_busy.set()
        gone = await until(lambda: present(watcher, cases[0][0]) == [], "pat's presence to expire", 5)
        await until(lambda: all(f.lost_at is None and f.urls[f.hub % 2] == survivor.ws_url for f in on_doomed),
                    "its subscribers to resume on the other process", 15,
                    lambda: [(f.hub, f.lost_at, f.reconnects, f.retryable[-3:], f.last) for f in on_doomed][:5])
        # and the third case is written through the survivor: a transaction the dead process left
        # open there holds its documents until the store reaps it (60 s)
        victims = [await comment(survivor, token("busy", "agent", tenant), victim)]
        await asyncio.sleep(1.0)
        stop.set()
        await writing

        # then its subscribers resumed on the survivor and miss nothing
        last = await asyncio.to_thread(stored_streams, hub_env, tenant, [c[0] for c in cases])
        await caught_up(followers, last, deadline=20)
    finally:
        stop.set()
        stop_busy.set()
        await stop_all([*tasks, writing, busy_writing])
    assert_complete(followers, last)
    assert all(f.reconnects >= 1 for f in on_doomed)
    assert all(f.reconnects == 0 for f in followers[1::2])
    resumed = [f.resumed_after[0] for f in on_doomed]
    assert max(resumed) < 5.0, max(resumed)
    # and the writer on the survivor never failed; the dead process's writes were lost in flight
    # at most, and writes blocked by its abandoned transaction fail fast and retryably
    assert not writer.failures(), [(round(o.at - killed, 2), o.latency, o.code) for o in writer.failures()]
    assert {o.code for o in busy.failures()} <= {"NO_HUB"}
    for ok, code, message, took in victims:
        assert ok or (code == "UNAVAILABLE" and "retry" in message), (code, message)
        assert took < DEADLINE + 2.0, took
    # and the user present through the dead process expired within TTL + one sweep
    assert gone <= 2 + 1.0, gone
    return {
        "subscribers moved": len(on_doomed),
        "first event after the kill p50/max s": rounded(percentile(resumed, 50), max(resumed)),
        "mutations": len(writer.outcomes), "retried (UNAVAILABLE)": len(writer.retried),
        "busy writer lost in flight": busy.in_flight_lost,
        "writes to the busy case after the kill (ok, code, s)": [(v[0], v[1], round(v[3], 2)) for v in victims],
        "presence gone after s": round(gone, 2),
    }


async def comment(hub: HubProcess, tok: str, case_id: str) -> tuple[bool, str | None, str, float]:
    """One commentAdd: (ok, error code, message, seconds)."""
    began = now()
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {tok}"}) as http:
        response = await http.post(f"{hub.url}/graphql", json={
            "query": COMMENT, "variables": {"id": case_id, "b": "after the crash"}})
    outcome = Writer.outcome(began, 0, response)
    return outcome.ok, outcome.code, outcome.message, now() - began


async def heartbeat(hub: HubProcess, tok: str, resource: str) -> None:
    """Pat's client: a presence heartbeat every 0.5 s through `hub`, until it is unreachable."""
    async with httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {tok}"}) as http:
        while True:
            try:
                body = (await http.post(f"{hub.url}/graphql", json={
                    "query": PRESENCE_UPDATE, "variables": {"r": resource}})).json()
            except httpx.HTTPError:
                return
            assert body["data"]["presenceUpdate"]["ttlSeconds"] == 2, body
            await asyncio.sleep(0.5)


def present(client: Client, resource: str) -> list[str]:
    return [p["user"]["id"] for p in client.gql(PRESENCE, r=resource)["presence"]]
