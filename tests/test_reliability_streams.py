"""Streams under failure, with several hub processes: Redis outage, crash after commit, slow consumer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect

from tests.harness import Client, HubProcess
from tests.redis_server import start_redis
from tests.test_activity import CASE_ACTIVITY, CREATE, SET_STATUS, all_history


def toggle_status(client: Client, case_id: str, times: int, start: int = 0) -> None:
    """`times` status changes (OPEN, PENDING, OPEN, …) of a NEW/OPEN/PENDING case."""
    for i in range(start, start + times):
        client.mutate(SET_STATUS, id=case_id, s="PENDING" if i % 2 else "OPEN")


def test_redis_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(
    spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    redis = start_redis()
    try:
        # given a subscriber on one process and a writer on another, sharing a Redis
        reader_hub, writer_hub = spawn_hub(HUB_REDIS_URL=redis.url), spawn_hub(HUB_REDIS_URL=redis.url)
        writer = Client(writer_hub, "alice", "agent", tenant)
        case_id = writer.mutate(CREATE, s="Outage")["case"]["id"]
        created = all_history(writer, f"case:{case_id}")[0]["cursor"]
        with writer.subscribe(CASE_ACTIVITY, hub=reader_hub, id=case_id, after=created) as sub:
            toggle_status(writer, case_id, 2)
            assert [e["caseActivity"]["seq"] for e in sub.take(2)] == [2, 3]
            # when Redis dies, mutations still commit, promptly: a publish gives up after the bus's
            # 1 s deadline (the bound leaves room for a loaded machine, not for waiting on Redis)
            redis.kill()
            for i in range(3):
                began = time.monotonic()
                toggle_status(writer, case_id, 1, start=i)
                assert time.monotonic() - began < 5.0, "a mutation waited on the dead Redis"
            # and when it is back, more happens
            redis.restart()
            toggle_status(writer, case_id, 2, start=3)
            # then the subscriber gets exactly the events it missed and the new ones, in order
            assert [e["caseActivity"]["seq"] for e in sub.take(5, timeout=15)] == [4, 5, 6, 7, 8]
            assert sub.nothing(2.0)  # relayed copies of the outage's events are dropped
        assert [e["seq"] for e in all_history(writer, f"case:{case_id}")] == list(range(1, 9))
    finally:
        redis.stop()


def test_event_of_a_process_killed_right_after_commit_still_arrives(
    hub: HubProcess, spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    # given a process that dies between commit and publish, and a subscriber elsewhere
    doomed = spawn_hub(HUB_TEST_DROP_PUBLISH="1")
    alice = Client(hub, "alice", "agent", tenant)
    case_id = alice.mutate(CREATE, s="Crash")["case"]["id"]
    created = all_history(alice, f"case:{case_id}")[0]["cursor"]
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=created) as sub:
        # when a mutation commits there and the process is killed right after
        Client(doomed, "alice", "agent", tenant).mutate(SET_STATUS, id=case_id, s="OPEN")
        committed = time.monotonic()
        doomed.kill()
        # then the surviving process's outbox relay delivers the event, once
        event = sub.next(timeout=10)["caseActivity"]
        assert (event["seq"], event["kind"]) == (2, "case.status_changed")
        assert time.monotonic() - committed > 0.5, "delivered by the dead process, not by the relay"
        assert sub.nothing(1.5)


SUMMARIES = " ".join(f"s{i}: summary" for i in range(25))
SLOW = ("subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) { seq cursor "
        + SUMMARIES + " } }")


def test_slow_consumer_is_cut_off_without_affecting_others(
    spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    # given a process with small per-subscriber queues, large events, and two subscribers
    small = spawn_hub(HUB_SUBSCRIBER_QUEUE="20")
    writer = Client(small, "writer", "agent", tenant, name="W" * 6000)  # summaries of ~6 kB
    case_id = writer.mutate(CREATE, s="Busy case")["case"]["id"]
    created = all_history(writer, f"case:{case_id}")[0]["cursor"]
    total = 80
    with writer.subscribe(CASE_ACTIVITY, id=case_id, after=created) as fast, \
            connect(small.ws_url, subprotocols=["graphql-transport-ws"], max_queue=1,  # type: ignore[list-item]
                    compression=None) as slow:  # no deflate: the big frames must stay big
        slow.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {writer.token}"}}))
        assert json.loads(slow.recv(timeout=10))["type"] == "connection_ack"
        slow.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": SLOW, "variables": {"id": case_id, "after": created}}}))
        time.sleep(0.3)
        # when many events are published while the slow one reads nothing (~150 kB per frame)
        for i in range(total):
            toggle_status(writer, case_id, 1, start=i)
            if i % 10 == 9:  # the fast subscriber keeps up
                assert [e["caseActivity"]["seq"] for e in fast.take(10)] == list(range(i - 7, i + 3))
        # then the slow one gets what was already on its way, then a resumable error
        seen: list[int] = []
        error: list[dict[str, Any]] = []
        while not error:
            message = json.loads(slow.recv(timeout=10))
            assert message["type"] == "next", message
            if message["payload"].get("errors"):
                error = message["payload"]["errors"]
            else:
                seen.append(message["payload"]["data"]["caseActivity"]["seq"])
                last_cursor = message["payload"]["data"]["caseActivity"]["cursor"]
        assert json.loads(slow.recv(timeout=10))["type"] == "complete"  # read all: close is prompt
        assert fast.nothing(0.3)
    print(f"slow consumer got {len(seen)} of {total} events before SLOW_CONSUMER")
    assert seen == list(range(2, 2 + len(seen))) and len(seen) < total
    assert error[0]["extensions"] == {"code": "UNAVAILABLE", "reason": "SLOW_CONSUMER", "resumable": True}
    # and it resumes from its last cursor with nothing lost
    with writer.subscribe(CASE_ACTIVITY, hub=small, id=case_id, after=last_cursor) as resumed:
        rest = [e["caseActivity"]["seq"] for e in resumed.take(total - len(seen), timeout=20)]
        assert rest == list(range(2 + len(seen), total + 2))
        assert resumed.nothing(0.3)
