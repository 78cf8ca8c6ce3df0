"""A stream that falls behind coalesces each socket's frames into one write (hub/fanout.py `Run`):
every event still arrives once, in order, as its own graphql-transport-ws message. And a stream
that back-fills a gap delivers the event it had in hand right after."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

from pymongo import MongoClient
from redis import Redis

from hub.events import Event, Visibility, channel
from tests.harness import Client, HubProcess
from tests.test_activity import CREATE
from tests.test_fanout import frames, gauge, raw_socket, subscribe, wait_followers

LIVE = """subscription($id: ID!) { caseActivity(caseId: $id) { seq kind data } }"""
BURST = 300


def test_a_burst_of_queued_events_is_coalesced_per_socket_and_nothing_is_lost(
    hub: HubProcess, user: Callable[..., Client], redis_url: str
) -> None:
    # given two agents and the customer live on one case over the fast path (one agent with two operations)
    alice, carol = user("alice", "agent"), user("carol", "customer")
    case_id = carol.mutate(CREATE, s="Burst")["case"]["id"]
    with ExitStack() as stack:
        sockets = [stack.enter_context(raw_socket(hub, user(f"agent{i}", "agent"))) for i in range(2)]
        sockets.append(stack.enter_context(raw_socket(hub, carol)))
        for ws in sockets:
            subscribe(ws, "1", LIVE, id=case_id)
        subscribe(sockets[0], "2", LIVE, id=case_id)
        wait_followers(hub, 4)
        coalesced = gauge(hub, "hub_fanout_coalesced_frames_total")

        # when 300 events of the case reach the bus at once (as committed mutations would be
        # published by a busy cluster: faster than one process writes them one by one)
        stream = f"case:{case_id}"
        with Redis.from_url(redis_url) as redis, redis.pipeline(transaction=False) as pipe:
            for seq in range(2, 2 + BURST):
                pipe.publish(channel(alice.tenant, stream), Event(
                    id=f"evt_burst_{seq}", tenant=alice.tenant, stream=stream, seq=seq, kind="comment.added",
                    actor_id="alice", actor_name="Alice", occurred_at=datetime.now(UTC),
                    visibility=Visibility.PUBLIC, summary="Alice commented", data={"n": seq}).to_json())
            pipe.execute()

        # then every operation gets every event once, in order, each its own message
        for ws, ops in ((sockets[0], 2), (sockets[1], 1), (sockets[2], 1)):
            got = frames(ws, BURST * ops)
            for op in [str(i + 1) for i in range(ops)]:
                seqs = [m["payload"]["data"]["caseActivity"]["seq"] for m in got if m["id"] == op]
                assert seqs == list(range(2, 2 + BURST)), (op, seqs[:5])
                assert all(m["type"] == "next" for m in got)
        # and the stream, having fallen behind, wrote runs of frames per socket in one go
        assert gauge(hub, "hub_fanout_coalesced_frames_total") > coalesced
        assert got[0]["payload"]["data"]["caseActivity"] == {"seq": 2, "kind": "comment.added", "data": {"n": 2}}


def test_an_event_just_past_a_short_back_fill_is_delivered_at_once(
    hub: HubProcess, hub_env: dict[str, str], user: Callable[..., Client], redis_url: str
) -> None:
    # given an agent live on a case whose stream is at seq 1 in the hub
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Short back-fill")["case"]["id"]
    stream = f"case:{case_id}"
    with raw_socket(hub, alice) as ws:
        subscribe(ws, "1", LIVE, id=case_id)
        wait_followers(hub, 1)
        # when seq 2 is in the store but never reached the bus, and seq 3 does (the stream sees a
        # jump, back-fills 2 from the store, which does not show 3 yet)
        with MongoClient(hub_env["HUB_MONGODB_URL"]) as mongo:
            events = mongo[hub_env["HUB_MONGODB_DB"]]["events"]
            created = events.find_one({"tenant": alice.tenant, "stream": stream, "seq": 1})
            assert created is not None
            events.insert_one({**created, "_id": "evt_short_2", "seq": 2, "kind": "comment.added",
                               "data": {"n": 2}})
        with Redis.from_url(redis_url) as redis:
            redis.publish(channel(alice.tenant, stream), Event(
                id="evt_short_3", tenant=alice.tenant, stream=stream, seq=3, kind="comment.added",
                actor_id="alice", actor_name="Alice", occurred_at=datetime.now(UTC),
                visibility=Visibility.PUBLIC, summary="Alice commented", data={"n": 3}).to_json())
        # then both arrive now, in order — the one in hand is not held until some later event
        got = frames(ws, 2, timeout=5)
        assert [m["payload"]["data"]["caseActivity"]["seq"] for m in got] == [2, 3]
