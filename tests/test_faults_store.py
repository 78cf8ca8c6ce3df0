"""The store failing under two hub processes (issue #10, reliability).

A dedicated SecantusDB with its data on disk sits behind the in-repo fault proxy; two hubs reach it
only through the proxy, with short store deadlines. The store is blackholed (a hung server or a
silent partition), then restarted on the same port and data directory, while mutations are in
flight. Each in-flight mutation either commits or fails with `UNAVAILABLE` ("retry") — never
`INTERNAL`, never a traceback, never a hang — nothing is half-written (checked in the store
directly), and service resumes without restarting the hubs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from hub.embedded import EmbeddedStore
from tests.faultproxy import FaultProxy, Mode
from tests.harness import Client, HubProcess, new_tenant, token
from tests.streamclients import COMMENT, CREATE, Outcome, ReadyProbe, Writer, now, percentile

TIMEOUT = 3.0  # HUB_MONGODB_TIMEOUT_S of the hubs here: one read, one transaction with its retries
SELECT = 1.0  # HUB_MONGODB_SELECT_TIMEOUT_S
CASES = "query { cases(first: 5) { edges { node { id } } } }"


@dataclass
class Rig:
    store: EmbeddedStore
    proxy: FaultProxy
    hubs: list[HubProcess]
    db_name: str

    def db(self, client: MongoClient[dict[str, Any]]) -> Database[dict[str, Any]]:
        return client[self.db_name]

    def direct(self) -> MongoClient[dict[str, Any]]:
        """A client of the store itself, not through the proxy (to check what was written)."""
        return MongoClient(self.store.url, serverSelectionTimeoutMS=10000)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("store-faults")
    store = EmbeddedStore(str(root / "data"), log=root / "store.log").start()
    proxy = FaultProxy(store.port).start()
    env = {
        "HUB_ENV": "test", "HUB_MONGODB_URL": proxy.url(), "HUB_MONGODB_DB": "faults",
        "HUB_REDIS_URL": redis_url, "HUB_OUTBOX_INTERVAL_S": "0.5", "HUB_RATE_LIMIT_ANON_PER_MIN": "5000",
        "HUB_MONGODB_TIMEOUT_S": str(TIMEOUT), "HUB_MONGODB_SELECT_TIMEOUT_S": str(SELECT),
        "HUB_RATE_LIMIT_PER_MIN": "100000",
    }
    hubs = [HubProcess(env, root).start() for _ in range(2)]
    try:
        yield Rig(store, proxy, hubs, "faults")
    finally:
        for hub in hubs:
            hub.kill()
        proxy.stop()
        store.stop()


def test_fault_proxy_passes_delays_drops_and_blackholes() -> None:
    # given an echo server behind the proxy
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=echo, args=(server,), daemon=True).start()
    with FaultProxy(server.getsockname()[1]) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as conn:
            assert roundtrip(conn, b"pass") == b"pass"
            # DELAY holds every chunk
            proxy.set(Mode.DELAY, delay=0.3)
            began = time.monotonic()
            assert roundtrip(conn, b"slow") == b"slow"
            assert 0.6 <= time.monotonic() - began < 2.0  # both directions are delayed
            # BLACKHOLE: nothing comes back, the connection stays open
            proxy.set(Mode.BLACKHOLE)
            conn.sendall(b"lost")
            with pytest.raises(TimeoutError):
                conn.settimeout(0.5)
                conn.recv(64)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as late:
                late.sendall(b"lost too")
                with pytest.raises(TimeoutError):
                    late.settimeout(0.5)
                    late.recv(64)
            # leaving BLACKHOLE resets the connections it swallowed bytes of; new ones pass
            proxy.set(Mode.PASS)
            with pytest.raises(OSError):
                conn.settimeout(2)
                if conn.recv(64) == b"":
                    raise ConnectionResetError
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as conn:
            assert roundtrip(conn, b"again") == b"again"
            # DROP resets open connections and every new one
            proxy.set(Mode.DROP)
            with pytest.raises(OSError):
                if conn.recv(64) == b"":
                    raise ConnectionResetError
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as conn:
            conn.sendall(b"x")
            if conn.recv(64) == b"":
                raise ConnectionResetError
    server.close()


def echo(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return

        def serve(c: socket.socket) -> None:
            with c:
                while data := c.recv(65536):
                    c.sendall(data)

        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def roundtrip(conn: socket.socket, data: bytes) -> bytes:
    conn.sendall(data)
    return conn.recv(64)


# -- consistency, checked in the store itself ----------------------------------------------------


def assert_consistent(rig: Rig, tenant: str) -> dict[str, int]:
    """Nothing half-written: every case has its `case.created` event and every such event its case;
    every comment its `comment.added` event and back; every stream's seqs are 1..counter."""
    with rig.direct() as client:
        db = rig.db(client)
        cases = {c["_id"] for c in db.cases.find({"tenant": tenant}, {"_id": 1})}
        comments = {c["_id"] for c in db.comments.find({"tenant": tenant}, {"_id": 1})}
        events = list(db.events.find({"tenant": tenant}, {"stream": 1, "seq": 1, "kind": 1, "data": 1}))
        counters = {c["_id"].split("/", 1)[1]: c["seq"] for c in db.counters.find({"tenant": tenant})}
    created = [e["stream"].removeprefix("case:") for e in events if e["kind"] == "case.created"]
    assert sorted(created) == sorted(cases), "a case without its event, or an event without its case"
    added = [e["data"]["commentId"] for e in events if e["kind"] == "comment.added"]
    assert sorted(added) == sorted(comments), "a comment without its event, or an event without its comment"
    streams: dict[str, list[int]] = {}
    for e in events:
        streams.setdefault(e["stream"], []).append(e["seq"])
    for stream, seqs in streams.items():
        assert sorted(seqs) == list(range(1, counters[stream] + 1)), f"{stream} has a hole"
    return {"cases": len(cases), "comments": len(comments), "events": len(events)}


def attempt(hub: HubProcess, tok: str, query: str, variables: dict[str, Any]) -> tuple[Outcome, str]:
    """One request; its outcome and raw body (to look for tracebacks)."""
    began = now()
    response = httpx.post(f"{hub.url}/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {tok}"}, timeout=60)
    return Writer.outcome(began, 0, response), response.text


def assert_retryable(outcome: Outcome, body: str) -> None:
    assert outcome.code == "UNAVAILABLE", (outcome, body[:500])
    assert "retry" in outcome.message
    assert "Traceback" not in body and "pymongo" not in body.lower() and "INTERNAL" not in body


# -- blackhole ------------------------------------------------------------------------------------


def test_blackholed_store_fails_fast_and_retryably_then_recovers(rig: Rig) -> None:
    tenant = new_tenant()
    alice = Client(rig.hubs[0], "alice", "agent", tenant)
    case_id = alice.mutate(CREATE, s="Before the partition")["case"]["id"]
    tok = alice.token
    for hub in rig.hubs:  # each process has met alice (its profile upsert is cached)
        attempt(hub, tok, CASES, {})

    # when the store stops answering (connections accepted, nothing forwarded)
    rig.proxy.set(Mode.BLACKHOLE)
    cut = now()
    requests = [(h, CREATE, {"s": f"In the partition {i}"}) for i, h in enumerate(rig.hubs * 3)]
    requests += [(h, COMMENT, {"id": case_id, "b": "lost?"}) for h in rig.hubs]
    requests += [(h, CASES, {}) for h in rig.hubs]
    results: list[tuple[Outcome, str]] = []
    threads = [threading.Thread(target=lambda r=r: results.append((*attempt(r[0], tok, r[1], r[2]), r[1][:20])))  # type: ignore[arg-type]
               for r in requests]
    for t in threads:
        t.start()
    ready = [httpx.get(f"{h.url}/readyz", timeout=10) for h in rig.hubs]
    for t in threads:
        t.join(30)

    # then every request, write or read, fails with a clear retryable error within seconds
    assert len(results) == len(requests)
    for outcome, body, *_ in results:
        assert_retryable(outcome, body)
    took = [o.latency for o, *_ in results]
    assert max(took) < TIMEOUT + SELECT + 2.0, [(round(o.latency, 2), r[-1]) for o, *r in results]
    # and /readyz says so
    assert [r.status_code for r in ready] == [503, 503]
    assert all(r.json()["store"] is False for r in ready)

    # when the partition heals, service resumes by itself (same processes)
    rig.proxy.set(Mode.PASS)
    healed = now()
    recovered = wait_ready(rig.hubs, 200, 20)
    for hub in rig.hubs:
        outcome, body = attempt(hub, tok, CREATE, {"s": "After the partition"})
        assert outcome.ok, body
    # and nothing was half-written
    counts = assert_consistent(rig, tenant)
    print(f"\nblackholed store: {len(results)} requests failed UNAVAILABLE after "
          f"p50 {percentile(took, 50):.2f} s, max {max(took):.2f} s; /readyz 200 again "
          f"{recovered:.2f} s after the heal ({healed - cut:.1f} s partition); store holds {counts}")


def wait_ready(hubs: list[HubProcess], status: int, deadline: float) -> float:
    began = now()
    while True:
        codes = []
        for hub in hubs:
            try:
                codes.append(httpx.get(f"{hub.url}/readyz", timeout=5).status_code)
            except httpx.HTTPError:
                codes.append(0)
        if all(c == status for c in codes):
            return now() - began
        assert now() - began < deadline, f"/readyz still {codes}"
        time.sleep(0.1)


# -- restart --------------------------------------------------------------------------------------


def test_restarted_store_loses_nothing_committed_and_service_resumes(rig: Rig) -> None:
    tenant = new_tenant()
    alice = Client(rig.hubs[0], "alice", "agent", tenant)
    before = [alice.mutate(CREATE, s=f"Before the restart {i}")["case"]["id"] for i in range(3)]
    report = asyncio.run(restart_under_load(rig, tenant, token("alice", "agent", tenant), before))

    # then everything acknowledged survived the restart, and nothing is half-written
    with rig.direct() as client:
        stored = {c["_id"] for c in rig.db(client).cases.find({"tenant": tenant}, {"_id": 1})}
    assert set(before) <= stored
    counts = assert_consistent(rig, tenant)
    print("\nstore restart:", report, "store holds", counts)


async def restart_under_load(rig: Rig, tenant: str, tok: str, case_ids: list[str]) -> dict[str, Any]:
    # given writers creating cases and comments through both hubs
    def make(i: int) -> tuple[str, dict[str, Any]]:
        if i % 2:
            return COMMENT, {"id": case_ids[i % len(case_ids)], "b": f"comment {i}"}
        return CREATE, {"s": f"Case {i}"}

    writer = Writer(rig.hubs, tok, make, rate=6)
    writer.retries_per_mutation = 0  # record every UNAVAILABLE as it comes
    probe = ReadyProbe(rig.hubs)
    stop = asyncio.Event()
    writing = asyncio.create_task(writer.run(stop))
    probing = asyncio.create_task(probe.run())
    try:
        await asyncio.sleep(1.5)
        # when the store is stopped, kept down past the hubs' store deadline (so the mutations in
        # flight must fail, however fast the machine), and started again on the same data
        stopped = now()
        await asyncio.to_thread(rig.store.stop)
        down_503 = await probe.wait(503, stopped, deadline=5)
        await asyncio.sleep(max(0.0, stopped + TIMEOUT + SELECT + 0.5 - now()))
        # (not from a worker thread: the store dies with the thread that started it, PDEATHSIG)
        rig.store.start()
        started = now()
        up_200 = await probe.wait(200, started, deadline=20)
        await asyncio.sleep(2.0)
        stop.set()
        await writing
    finally:
        stop.set()
        probing.cancel()
        await asyncio.gather(writing, probing, return_exceptions=True)

    # then in-flight and later mutations either committed or failed retryably, none hung
    failed = writer.failures()
    assert {o.code for o in failed} <= {"UNAVAILABLE"}, {o.code for o in failed}
    assert all("retry" in o.message for o in failed)
    assert failed, "no mutation met the outage: the test proved nothing"
    took = [o.latency for o in writer.outcomes]
    assert max(took) < TIMEOUT + SELECT + 3.0, max(took)
    # and service resumed by itself: mutations after the restart commit
    resumed = [o for o in writer.outcomes if o.at > started + max(up_200)]
    assert resumed and all(o.ok for o in resumed), [(round(o.at - started, 2), o) for o in resumed if not o.ok][:3]
    return {
        "mutations": len(writer.outcomes), "UNAVAILABLE": len(failed),
        "latency max s": round(max(took), 2), "readyz 503 after stop s": [round(x, 2) for x in down_503],
        "readyz 200 after start s": [round(x, 2) for x in up_200],
    }


# -- a transaction abandoned by a dead process ---------------------------------------------------


def test_transaction_abandoned_by_a_dead_process_fails_writes_fast_not_forever(rig: Rig) -> None:
    # given a case, and another one, written through the hubs
    tenant = new_tenant()
    alice = Client(rig.hubs[0], "alice", "agent", tenant)
    stuck, free = (alice.mutate(CREATE, s=s)["case"]["id"] for s in ("Stuck", "Free"))
    # when a process dies in the middle of a transaction that wrote the first case's stream counter
    # (as a hub SIGKILLed mid-mutation does: the store keeps the transaction open for 60 s)
    die_mid_transaction(rig.store.url, rig.db_name, f"{tenant}/case:{stuck}")
    # then writes to that stream fail with a retryable error at the deadline instead of hanging
    outcome, body = attempt(rig.hubs[1], alice.token, COMMENT, {"id": stuck, "b": "blocked"})
    assert_retryable(outcome, body)
    assert TIMEOUT - 0.5 < outcome.latency < TIMEOUT + 2.0, outcome.latency
    # and every other stream is unaffected
    outcome, body = attempt(rig.hubs[1], alice.token, COMMENT, {"id": free, "b": "fine"})
    assert outcome.ok, body
    assert outcome.latency < 1.5, outcome.latency
    assert_consistent(rig, tenant)


def die_mid_transaction(url: str, db_name: str, counter: str) -> None:
    """A child process opens a transaction, bumps `counter` in it, and dies without a word."""
    child = (
        "import os, sys\n"
        "from pymongo import MongoClient\n"
        "client = MongoClient(sys.argv[1])\n"
        "db = client[sys.argv[2]]\n"
        "with client.start_session() as session:\n"
        "    session.start_transaction()\n"
        "    db.counters.update_one({'_id': sys.argv[3]}, {'$inc': {'seq': 1}}, session=session)\n"
        "    os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", child, url, db_name, counter], check=True, timeout=30,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})

